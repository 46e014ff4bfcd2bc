package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Credentials are what a sign-in presents.
type Credentials struct {
	Username string
	Password string
	// TOTP is a current code or a recovery code; needed once the user has
	// TOTP.
	TOTP string
}

// typedUsername is the username someone meant: usernames are lower case
// ASCII, while phones capitalise the first letter of a field and
// autofill leaves spaces, so an upper-case ASCII letter and surrounding
// space cannot name another account. Other characters are left alone (and
// fail the username pattern): Unicode case folding would let look-alikes
// such as the Kelvin sign stand for a "k".
func typedUsername(s string) string {
	b := []byte(strings.TrimSpace(s))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Login checks the credentials and opens a session.
//
// Unknown users, wrong passwords, disabled accounts, accounts awaiting
// approval and malformed input all answer ErrBadCredentials after the same
// password-hashing work, and all count as failures for the throttle (see
// LoginRate), which answers a *ThrottledError without checking the
// password. Once a username's failures from all clients reach the limit, a
// client that never signed in as the user needs a TOTP code to try at all.
// With the right password, a user who has TOTP gets ErrTOTPRequired
// without a code and ErrTOTPInvalid (a failure too) with a
// wrong or spent one. A user whose roles require TOTP but who has none gets
// a session limited to enrolment (Session.TOTPEnrolmentRequired). The
// username is taken as typedUsername reads it.
func (s *Service) Login(ctx context.Context, cred Credentials, ip string) (Session, error) {
	now := s.now().UTC()
	username, password := typedUsername(cred.Username), cred.Password
	keys := s.throttleKeys(username, ip)
	release, err := s.attempts.take(ctx, keys.pair)
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	defer release()
	st, err := s.loadThrottle(ctx, keys)
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	throttled := func(wait time.Duration) (Session, error) {
		s.logins.WithLabelValues("throttled").Inc()
		s.log.WarnContext(ctx, "login throttled", "ip", ip)
		return Session{}, &ThrottledError{RetryAfter: wait}
	}
	if wait := st.pairWait(now); wait > 0 {
		return throttled(wait)
	}
	fail := func(outcome string, err error) (Session, error) {
		if terr := s.recordFailure(ctx, keys, now); terr != nil {
			return Session{}, fmt.Errorf("login: count failure: %w", terr)
		}
		s.logins.WithLabelValues(outcome).Inc()
		s.log.InfoContext(ctx, "login failed", "ip", ip, "reason", outcome)
		return Session{}, err
	}

	hash := s.dummyHash
	var row userRow
	found := false
	// A name that CreateUser would refuse cannot exist; skipping the
	// lookup also keeps NUL bytes and bad UTF-8 away from the database.
	if usernameRE.MatchString(username) && len(password) <= maxPasswordLen {
		r, err := s.userRow(ctx, "username = ?", username)
		switch {
		case err == nil:
			row, hash, found = r, r.PasswordHash, true
		case !errors.Is(err, ErrNotFound):
			return Session{}, fmt.Errorf("login: %w", err)
		}
	}
	// Under a distributed guess at this username, a client that never
	// signed in as the user must bring a TOTP code. Without one it waits,
	// whatever the name, and before the password is checked. With one the
	// password is checked as always, but only a user with TOTP can get
	// through; anyone else gets the answer of a wrong password. So neither
	// the answer nor the work says whether the name exists or has TOTP
	// (staff, who all have it, were told apart before), or whether the
	// password was right, and staff can still sign in during the guess.
	needTOTP := false
	if hit, wait := st.userLimit(s.rate, now); hit && !st.known(now) {
		if strings.TrimSpace(cred.TOTP) == "" {
			return throttled(wait)
		}
		needTOTP = true
	}
	ok, err := s.hasher.Verify(truncate(password, maxPasswordLen), hash)
	if err != nil && found && hash != noPasswordHash {
		// A corrupt stored hash: refuse like a wrong password, but say so.
		s.log.ErrorContext(ctx, "stored password hash unusable", "user", row.ID, "err", err)
	}
	if !found || !ok || err != nil {
		return fail("bad_credentials", ErrBadCredentials)
	}
	if !row.active() {
		// Exactly the answer, work and count of a wrong password.
		return fail("inactive", ErrBadCredentials)
	}
	if needTOTP && row.TOTPSecret == nil {
		return fail("throttled", ErrBadCredentials)
	}
	if row.TOTPSecret != nil {
		if strings.TrimSpace(cred.TOTP) == "" {
			s.logins.WithLabelValues("totp_required").Inc()
			return Session{}, ErrTOTPRequired
		}
		ok, err := s.secondFactor(ctx, row, cred.TOTP)
		if err != nil {
			return Session{}, fmt.Errorf("login: %w", err)
		}
		if !ok && needTOTP {
			// Under the limit a wrong code answers as a wrong password
			// does: totp_invalid would confirm the password to the guess.
			return fail("totp_invalid", ErrBadCredentials)
		}
		if !ok {
			return fail("totp_invalid", ErrTOTPInvalid)
		}
	}
	if err := s.recordSuccess(ctx, keys, now); err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}

	token, tokenHash, err := newToken()
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	sess := sessionRow{ID: newID(now), TokenHash: tokenHash, UserID: row.ID, CreatedAt: now, LastSeenAt: now,
		AbsoluteEnd: microTime(now.Add(s.abs))}
	sess.RowTag = s.tag(tagSessions, sess.tagFields()...)
	if err := s.db.WithContext(ctx).Create(&sess).Error; err != nil {
		return Session{}, fmt.Errorf("login: store session: %w", err)
	}
	s.logins.WithLabelValues("ok").Inc()
	u := row.user()
	limited := row.TOTPSecret == nil && s.totpRequired(u.Roles)
	s.log.InfoContext(ctx, "login", "user", row.ID, "session", sess.ID, "ip", ip, "totp_enrolment_required", limited)
	return Session{ID: sess.ID, Token: token, ExpiresAt: s.expiry(sess), User: u, TOTPEnrolmentRequired: limited}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// newToken returns a random 256-bit bearer token and the hex SHA-256 that is
// all the database ever sees of it.
func newToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token), nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *Service) expiry(r sessionRow) time.Time {
	idle := r.LastSeenAt.UTC().Add(s.idle)
	if abs := r.AbsoluteEnd.UTC(); abs.Before(idle) {
		return abs
	}
	return idle
}

// Authenticate resolves a bearer token to its caller and slides the idle
// expiry. ErrUnauthenticated for an unknown, expired or revoked token or a
// disabled account.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" || len(token) > 128 {
		return Principal{}, ErrUnauthenticated
	}
	now := s.now().UTC()
	db := s.db.WithContext(ctx)
	sess, err := s.sessions.byTokenHash(ctx, hashToken(token))
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if sess.RevokedAt != nil || !now.Before(s.expiry(sess)) {
		return Principal{}, ErrUnauthenticated
	}
	// A session row the database administrator inserted or edited (its
	// user, end, second factor, or revoked_at back to NULL) is no session.
	if !s.tagOK(ctx, tagSessions, sess.ID, sess.RowTag, sess.tagFields()...) {
		return Principal{}, ErrUnauthenticated
	}
	acct, err := s.account(ctx, sess.UserID, now)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	row := acct.user
	if !row.active() {
		return Principal{}, ErrUnauthenticated
	}
	// Sliding costs a write; a minute (or a tenth of a short idle timeout)
	// of slack keeps that to at most one per session per minute.
	if now.Sub(sess.LastSeenAt) >= min(time.Minute, s.idle/10) {
		if err := db.Model(&sessionRow{}).Where("id = ?", sess.ID).Update("last_seen_at", now).Error; err != nil {
			return Principal{}, fmt.Errorf("authenticate: slide session: %w", err)
		}
	}
	u := row.user()
	return Principal{User: u, SessionID: sess.ID, OrgKind: acct.org.Kind,
		TOTPEnrolmentRequired: row.TOTPSecret == nil && s.totpRequired(u.Roles) && sess.SecondFactor == ""}, nil
}

// account returns the user's row and organisation, from the cache when it
// is fresh (accountcache.go).
func (s *Service) account(ctx context.Context, userID string, now time.Time) (cachedAccount, error) {
	if a, ok := s.accounts.get(userID, now); ok {
		return a, nil
	}
	gen := s.accounts.generation()
	row, err := s.userRow(ctx, "id = ?", userID)
	if err != nil {
		return cachedAccount{}, err
	}
	org, err := s.Org(ctx, row.OrgID)
	if err != nil {
		return cachedAccount{}, err
	}
	a := cachedAccount{user: row, org: org, at: now}
	s.accounts.put(userID, a, gen)
	return a, nil
}

// Logout revokes the session. ErrNotFound if there is no such session.
func (s *Service) Logout(ctx context.Context, sessionID string) error {
	now := s.now().UTC()
	db := s.db.WithContext(ctx)
	var sess sessionRow
	err := db.Where("id = ?", sessionID).Take(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("logout: session: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if err := db.Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", sessionID).
		Updates(revokedSession(now)).Error; err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	s.log.InfoContext(ctx, "logout", "user", sess.UserID, "session", sessionID)
	return nil
}

// revokedSession is the update that revokes a session: its tag goes with
// it, so that setting revoked_at back to NULL gives no session.
func revokedSession(now time.Time) map[string]any {
	return map[string]any{"revoked_at": now, "row_tag": nil}
}
