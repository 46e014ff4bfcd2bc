package access

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"net"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/crvault/crvault/audit/sqldb"
)

// LoginRate shapes the login throttle, which cannot lock a user out:
//
//   - Failures back off per (username, client) pair: after FreeFails failures
//     the pair must wait BaseDelay, doubling with each further failure up to
//     MaxDelay, without its password being checked. Other clients are not
//     affected, so an attacker cannot lock the user out from elsewhere.
//   - PerUser failures for a username across all clients within Window (a
//     distributed guess) make a correct password alone insufficient from a
//     client that never signed in successfully as that user: it must send a
//     TOTP code with the password or wait, whatever the name, so that the
//     answer does not tell which names exist or have TOTP. A user with TOTP
//     signs in with the code, one without waits for the window to pass.
//     Clients that signed in before carry on.
//
// The counters live in the database, shared by every instance.
type LoginRate struct {
	FreeFails int           // default 3
	BaseDelay time.Duration // default 1s
	MaxDelay  time.Duration // default 15m
	PerUser   int           // default 50
	Window    time.Duration // default 1h
}

func (r LoginRate) withDefaults() LoginRate {
	if r.FreeFails <= 0 {
		r.FreeFails = 3
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = time.Second
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 15 * time.Minute
	}
	if r.PerUser <= 0 {
		r.PerUser = 50
	}
	if r.Window <= 0 {
		r.Window = time.Hour
	}
	return r
}

// pairMemory is how long a pair's failure count lasts after its first
// failure; a client that signed in successfully stays known this long.
const pairMemory = 24 * time.Hour

// knownMemory is how long a client stays "known" for a user after its last
// successful sign-in.
const knownMemory = 90 * 24 * time.Hour

// delay is the backoff after fails failures of one pair.
func (r LoginRate) delay(fails int) time.Duration {
	if fails < r.FreeFails {
		return 0
	}
	d := r.BaseDelay
	for i := r.FreeFails; i < fails && d < r.MaxDelay; i++ {
		d *= 2
	}
	return min(d, r.MaxDelay)
}

// ClientKey names the client an address belongs to for throttling: the IPv4
// address, or the /64 prefix of an IPv6 address (one host usually holds a
// whole /64, so counting single addresses would let it rotate freely).
func ClientKey(ip string) string {
	a := net.ParseIP(strings.TrimSpace(ip))
	if a == nil {
		return "?" + truncate(ip, 64)
	}
	if v4 := a.To4(); v4 != nil {
		return v4.String()
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

type throttleKeys struct{ pair, user string }

// throttleKeys keys by the lower-cased username, so that unknown names are
// throttled exactly like existing ones (no existence oracle).
func (s *Service) throttleKeys(username, ip string) throttleKeys {
	name := strings.ToLower(username)
	if !usernameRE.MatchString(name) {
		sum := sha256.Sum256([]byte(username))
		name = "#" + hex.EncodeToString(sum[:8])
	}
	return throttleKeys{pair: "p:" + name + "|" + ClientKey(ip), user: "u:" + name}
}

// attemptStripes serialise, within this process, the credential checks
// of one (username, client) pair: the throttle is read before a password
// or code is checked and the failure recorded after, so checks sent at
// once would all be judged on the state before any of them failed (40
// guesses in one burst, where the backoff allows 3). One at a time, each
// sees the failures before it. Pairs share a stripe by hash, which only
// makes an unrelated sign-in wait for a moment.
type attemptStripes [256]chan struct{}

func newAttemptStripes() *attemptStripes {
	var a attemptStripes
	for i := range a {
		a[i] = make(chan struct{}, 1)
	}
	return &a
}

// take waits for key's stripe (or ctx) and returns its release.
func (a *attemptStripes) take(ctx context.Context, key string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	ch := a[h.Sum32()%uint32(len(a))]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// guardAttempt begins a check of a signed-in user's credential (the
// current password, a TOTP code) from ip: it takes the pair's stripe, to be
// released when the check and its counting are done, and refuses with a
// *ThrottledError while the pair is backed off.
func (s *Service) guardAttempt(ctx context.Context, username, ip string, now time.Time) (throttleKeys, func(), error) {
	keys := s.throttleKeys(username, ip)
	release, err := s.attempts.take(ctx, keys.pair)
	if err != nil {
		return keys, nil, err
	}
	wait, err := s.pairWait(ctx, keys, now)
	if err == nil && wait > 0 {
		err = &ThrottledError{RetryAfter: wait}
	}
	if err != nil {
		release()
		return keys, nil, err
	}
	return keys, release, nil
}

type throttleState struct {
	pair, user throttleRow
}

func (s *Service) loadThrottle(ctx context.Context, k throttleKeys) (throttleState, error) {
	var rows []throttleRow
	if err := s.db.WithContext(ctx).Where("key IN ?", []string{k.pair, k.user}).Find(&rows).Error; err != nil {
		return throttleState{}, err
	}
	var st throttleState
	for _, r := range rows {
		if r.Key == k.pair {
			st.pair = r
		} else {
			st.user = r
		}
	}
	return st, nil
}

// pairWait is how long the pair must still wait, or 0.
func (st throttleState) pairWait(now time.Time) time.Duration {
	if d := st.pair.BlockedUntil.Sub(now); d > 0 {
		return d
	}
	return 0
}

// userLimit reports whether the username's failures across all clients
// reached the limit in the current window, and until when.
func (st throttleState) userLimit(r LoginRate, now time.Time) (bool, time.Duration) {
	u := st.user
	if u.Key == "" || now.Sub(u.WindowStart) >= r.Window || u.Fails < r.PerUser {
		return false, 0
	}
	return true, u.WindowStart.Add(r.Window).Sub(now)
}

func (st throttleState) known(now time.Time) bool {
	return st.pair.KnownAt != nil && now.Sub(*st.pair.KnownAt) < knownMemory
}

func (s *Service) pairWait(ctx context.Context, k throttleKeys, now time.Time) (time.Duration, error) {
	st, err := s.loadThrottle(ctx, k)
	if err != nil {
		return 0, err
	}
	return st.pairWait(now), nil
}

// recordFailure counts a failure for the pair (setting its backoff) and the
// username.
func (s *Service) recordFailure(ctx context.Context, k throttleKeys, now time.Time) error {
	if err := s.bump(ctx, k.pair, now, pairMemory, true); err != nil {
		return err
	}
	return s.bump(ctx, k.user, now, s.rate.Window, false)
}

// recordSuccess clears the pair's failures and marks the client known.
func (s *Service) recordSuccess(ctx context.Context, k throttleKeys, now time.Time) error {
	row := throttleRow{Key: k.pair, WindowStart: now, KnownAt: &now, UpdatedAt: now}
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"fails", "window_start", "blocked_until", "known_at", "updated_at"}),
	}).Create(&row).Error
}

// bump adds one failure to key inside a transaction that locks the row, so
// that concurrent failures on several instances all count.
func (s *Service) bump(ctx context.Context, key string, now time.Time, memory time.Duration, backoff bool) error {
	for attempt := 0; ; attempt++ {
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			q := tx
			if sqldb.Dialect(tx) == sqldb.Postgres {
				q = q.Clauses(clause.Locking{Strength: "UPDATE"})
			}
			var row throttleRow
			err := q.Where("key = ?", key).Take(&row).Error
			found := err == nil
			if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
			if !found || now.Sub(row.WindowStart) >= memory {
				row.Fails, row.WindowStart = 0, now
			}
			row.Key = key
			row.Fails++
			row.UpdatedAt = now
			if backoff {
				row.BlockedUntil = now.Add(s.rate.delay(row.Fails))
			}
			if !found {
				return tx.Create(&row).Error
			}
			return tx.Model(&throttleRow{}).Where("key = ?", key).Updates(map[string]any{
				"fails": row.Fails, "window_start": row.WindowStart, "blocked_until": row.BlockedUntil, "updated_at": now,
			}).Error
		})
		// Two instances inserting the first failure at once: one loses
		// the insert and retries as an update.
		if errors.Is(err, gorm.ErrDuplicatedKey) && attempt < 2 {
			continue
		}
		return err
	}
}

// PruneThrottle drops counters that no longer matter; the janitor calls it.
func (s *Service) PruneThrottle(ctx context.Context) (int64, error) {
	cutoff := s.now().UTC().Add(-knownMemory)
	res := s.db.WithContext(ctx).Where("updated_at < ?", cutoff).Delete(&throttleRow{})
	return res.RowsAffected, res.Error
}
