package access

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// Several vaultd instances may share one PostgreSQL database. Decide reads
// grants from memory, so every change to them is announced with NOTIFY in
// the transaction that makes it (PostgreSQL delivers it at commit, and only
// then), and every instance LISTENs and re-reads just the (case, user) pair
// named. A periodic re-read of recent changes backs the notifications up.
// Accounts are cached for a few seconds (accountcache.go): a change to one
// publishes a user notice, which flushes it. Everything else (sessions,
// throttles, sign-in state) is read from the database each time.

// NoticeChannel is the PostgreSQL channel the notices travel on.
const NoticeChannel = "crvault_access"

// Notice topics of this package; other packages pick their own (Publish).
const (
	noticeGrant = "grant" // key: case id + " " + user id
	noticeUser  = "user"  // key: user id (disabled, approved)
)

// maxNoticeKey keeps a payload well under PostgreSQL's 8000-byte limit.
const maxNoticeKey = 1000

// publish announces a change inside tx (nothing on SQLite, which one
// process owns).
func (s *Service) publish(tx *gorm.DB, topic, key string) error {
	if sqldb.Dialect(tx) != sqldb.Postgres {
		return nil
	}
	if strings.ContainsAny(topic, ":") || len(key) > maxNoticeKey {
		return fmt.Errorf("notice %q: bad topic or key", topic)
	}
	return tx.Exec("SELECT pg_notify(?, ?)", NoticeChannel, topic+":"+key).Error
}

// Publish announces to every instance sharing the database (this one
// included) that what key names under topic changed, so that anything they
// hold in memory about it is re-read; Subscribe receives it. A package that
// keeps such state (consents, say) publishes after committing its change.
// topic must not contain ':'; key is at most 1000 bytes.
func (s *Service) Publish(ctx context.Context, topic, key string) error {
	if sqldb.Dialect(s.db) != sqldb.Postgres {
		// One process: deliver at once.
		s.deliver(ctx, topic, key)
		return nil
	}
	if err := s.publish(s.db.WithContext(ctx), topic, key); err != nil {
		return fmt.Errorf("publish %s notice: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn for every notice on topic, from any instance (this one
// included). fn runs on the listener's goroutine: keep it short.
func (s *Service) Subscribe(topic string, fn func(ctx context.Context, key string)) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subs[topic] = append(s.subs[topic], fn)
}

func (s *Service) deliver(ctx context.Context, topic, key string) {
	s.subMu.RLock()
	fns := s.subs[topic]
	s.subMu.RUnlock()
	for _, fn := range fns {
		fn(ctx, key)
	}
}

// HandleNotice applies one notice payload ("topic:key").
func (s *Service) HandleNotice(ctx context.Context, payload string) error {
	topic, key, ok := strings.Cut(payload, ":")
	if !ok {
		return fmt.Errorf("malformed notice %q", truncate(payload, 80))
	}
	if topic == noticeUser {
		s.accounts.flushUser(key)
	}
	if topic == noticeGrant {
		caseID, userID, ok := strings.Cut(key, " ")
		if !ok {
			return fmt.Errorf("malformed grant notice %q", truncate(payload, 80))
		}
		// What the trail ended since the last read first: the notice may
		// be of an end whose rows the database administrator kept out of
		// the tables (review h30h F7). Failing, the pair keeps what it had.
		if err := s.refreshTrail(ctx); err != nil {
			return fmt.Errorf("refresh grants: %w", err)
		}
		if err := s.refreshGrants(ctx, caseID, userID); err != nil {
			return err
		}
	}
	s.deliver(ctx, topic, key)
	return nil
}

// refreshGrants re-reads one user's unrevoked assignments on one case and
// replaces the in-memory view of them. Its callers read the trail first
// (refreshTrail), once for however many pairs they refresh.
func (s *Service) refreshGrants(ctx context.Context, caseID, userID string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	gs, err := s.readGrants(ctx, caseID, userID)
	if err != nil {
		return fmt.Errorf("refresh grants: %w", err)
	}
	k := caseUser{caseID, userID}
	s.touched(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants.set(caseID, userID, gs)
	return nil
}

// readGrants reads one user's unrevoked assignments on one case with their
// declarations from the tables, in one indexed query
// (idx_access_assign_case_user): what the in-memory index holds for the
// pair, or what Decide reads while the index is still loading. Rows whose
// tags do not check are left out (rowtags.go): a notice or a resync the
// database administrator pokes reads them too. The revocations and the
// conflicts it reads join what this process knows the office ended, and
// those ends prevail over the rows (trailends.go): a revocation another
// instance made is learnt here from its notice, so a row put back later is
// refused.
func (s *Service) readGrants(ctx context.Context, caseID, userID string) ([]grant, error) {
	rows, err := s.db.WithContext(ctx).Raw(`SELECT a.id, a.case_id, a.user_id, a.role, a.purpose, a.granted_by, a.expires_at, a.row_tag,
		d.id, d.case_id, d.user_id, d.conflict, d.row_tag,
		CASE WHEN EXISTS (SELECT 1 FROM access_assignment_revocations r WHERE r.assignment_id = a.id) THEN 1 ELSE 0 END
		FROM access_assignments a LEFT JOIN access_declarations d ON d.assignment_id = a.id
		WHERE a.case_id = ? AND a.user_id = ?
		ORDER BY a.id`, caseID, userID).Rows()
	if err != nil {
		return nil, fmt.Errorf("read grants of user %s on case %s: %w", userID, caseID, err)
	}
	defer rows.Close()
	var as []assignmentRow
	flags := map[string][2]bool{}
	for rows.Next() {
		var r assignmentRow
		var expires sql.NullTime
		var dID, dCase, dUser sql.NullString
		var dConflict sql.NullBool
		var dTag []byte
		var revoked int
		if err := rows.Scan(&r.ID, &r.CaseID, &r.UserID, &r.Role, &r.Purpose, &r.GrantedBy, &expires, &r.RowTag,
			&dID, &dCase, &dUser, &dConflict, &dTag, &revoked); err != nil {
			return nil, fmt.Errorf("read grants of user %s on case %s: %w", userID, caseID, err)
		}
		if revoked != 0 {
			s.ends.revoke(r.CaseID, r.ID)
			continue
		}
		if expires.Valid {
			r.ExpiresAt = &expires.Time
		}
		if len(as) == 0 || as[len(as)-1].ID != r.ID {
			as = append(as, r)
		}
		if dID.Valid && s.tagOK(ctx, tagDeclarations, dID.String, dTag,
			declarationTagFields(dID.String, r.ID, dCase.String, dUser.String, dConflict.Bool)...) {
			f := flags[r.ID]
			if dConflict.Bool {
				f[1] = true
				s.ends.conflict(caseUser{caseID, userID})
			} else {
				f[0] = true
			}
			flags[r.ID] = f
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read grants of user %s on case %s: %w", userID, caseID, err)
	}
	var gs []grant
	for _, r := range as {
		f := flags[r.ID]
		if !s.tagOK(ctx, tagAssignments, r.ID, r.RowTag, r.tagFields(assignmentState(false, f[1]))...) {
			continue
		}
		if ended, suspend := s.trailOfRow(ctx, r, f[1]); ended {
			continue
		} else if suspend {
			f[1] = true
		}
		gs = append(gs, rowGrant(r, f))
	}
	return gs, nil
}

// catchUp refreshes every (case, user) pair whose grants changed since t:
// the safety net for a missed notice (a dropped connection, say).
func (s *Service) catchUp(ctx context.Context, since time.Time) error {
	if err := s.refreshTrail(ctx); err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	db := s.db.WithContext(ctx)
	type pair struct{ CaseID, UserID string }
	var pairs []pair
	queries := []*gorm.DB{
		db.Model(&assignmentRow{}).Select("case_id, user_id").Where("granted_at >= ?", since),
		db.Model(&assignmentRow{}).Select("case_id, user_id").
			Where("id IN (?)", db.Model(&revocationRow{}).Select("assignment_id").Where("revoked_at >= ?", since)),
		db.Model(&declarationRow{}).Select("case_id, user_id").Where("created_at >= ?", since),
		db.Model(&recusalRow{}).Select("case_id, user_id").Where("created_at >= ?", since),
	}
	seen := map[pair]bool{}
	for _, q := range queries {
		var got []pair
		if err := q.Distinct().Scan(&got).Error; err != nil {
			return fmt.Errorf("catch up on grants: %w", err)
		}
		for _, p := range got {
			if !seen[p] {
				seen[p] = true
				pairs = append(pairs, p)
			}
		}
	}
	for _, p := range pairs {
		if err := s.refreshGrants(ctx, p.CaseID, p.UserID); err != nil {
			return err
		}
	}
	return nil
}

// resyncSlack covers clock differences between instances and transactions
// that committed after the changes they hold were stamped.
const resyncSlack = 2 * time.Minute

// A LISTEN connection carries nothing while no grant changes, and a NAT,
// firewall or load balancer may drop such an idle flow without a word:
// notices then stop arriving and nothing fails. So Listen proves its own
// connection alive every noticePingInterval it has been quiet (a query on
// it, answered within the interval), and Decide trusts the index for other
// instances' changes only until noticeTrust after the last proof (a ping
// sent, or a notice received), reading the caller's grants from the
// database after that. A change made on another instance thus stops
// counting on B within noticeTrust at worst, about two intervals when the
// connection is lost (the ping that fails ends the trust at once).
const (
	noticePingInterval = time.Second
	noticeTrustFactor  = 3 // noticeTrust = 3 * the ping interval
)

// noticeTrust is how long one proof that notices arrive is trusted.
func (s *Service) noticeTrust() time.Duration { return noticeTrustFactor * s.noticePing }

// sinceEpoch is the time since New by s's clock, in nanoseconds.
func (s *Service) sinceEpoch() int64 { return int64(s.now().Sub(s.epoch)) }

// noticesStale reports that changes made by other instances may not have
// reached the index: the database is shared and the notice connection was
// not proven alive recently. One atomic load and a clock read: Decide asks
// on every call.
func (s *Service) noticesStale() bool {
	return s.shared && s.sinceEpoch() >= s.trustUntil.Load()
}

// noticesProven records that every notice sent before at (nanoseconds since
// epoch) has been received.
func (s *Service) noticesProven(at int64) {
	s.trustUntil.Store(at + int64(s.noticeTrust()))
}

// noticesLost withdraws the last proof: decisions read the database until
// the listener proves a connection again.
func (s *Service) noticesLost() { s.trustUntil.Store(0) }

// Listen keeps this instance in step with the others sharing a PostgreSQL
// database (dsn, a postgres:// URL): it LISTENs on NoticeChannel, applies
// each notice, proves its connection alive every second it is quiet,
// re-reads recent grant changes every ResyncInterval, and after a lost
// connection re-reads what changed while it was gone. Until it has a
// proven connection, decisions read grants from the database. It returns
// when ctx ends. On SQLite it returns at once: one process owns the file.
func (s *Service) Listen(ctx context.Context, dsn string) {
	if sqldb.Dialect(s.db) != sqldb.Postgres {
		return
	}
	// Everything committed before New's bulk load read the tables is in
	// it; a load still running notes what changes later and re-reads it.
	synced := s.now().Add(-resyncSlack)
	backoff := time.Second
	for ctx.Err() == nil {
		start := s.now()
		err := s.listenOnce(ctx, dsn, &synced)
		s.noticesLost()
		if ctx.Err() != nil {
			return
		}
		s.log.WarnContext(ctx, "access: notice listener lost its connection; reviewers' and member units' decisions read grants from the database until it reconnects",
			"err", err, "retry_in", backoff.String())
		if s.now().Sub(start) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// listenerKeepalive makes the kernel (on both ends: the server would
// otherwise keep a dead listener's backend) give up on a vanished peer
// within idle+interval*count seconds, as the leader's connection does
// (sqldb.Leader). The pings find a dropped connection sooner; these also
// cover a peer that stops acknowledging.
var listenerKeepalive = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3}

func (s *Service) listenOnce(ctx context.Context, dsn string, synced *time.Time) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	dialer := &net.Dialer{KeepAliveConfig: listenerKeepalive}
	cfg.DialFunc = dialer.DialContext
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	// Every exchange on conn is bounded: a dropped connection would hold
	// an unbounded one for good.
	exec := func(timeout time.Duration, sql string) error {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := conn.Exec(qctx, sql)
		return err
	}
	if err := exec(5*time.Second, fmt.Sprintf("SET tcp_keepalives_idle = %d; SET tcp_keepalives_interval = %d; SET tcp_keepalives_count = %d",
		int(listenerKeepalive.Idle.Seconds()), int(listenerKeepalive.Interval.Seconds()), listenerKeepalive.Count)); err != nil {
		return fmt.Errorf("keepalives: %w", err)
	}
	if err := exec(5*time.Second, "LISTEN "+pgx.Identifier{NoticeChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Listening now; whatever changed before is read from the tables, and
	// sessions are read afresh (a notice may have been missed meanwhile).
	listening := s.sinceEpoch()
	s.accounts.flushUser("")
	resync := func() error {
		next := s.now().Add(-resyncSlack)
		if err := s.catchUp(ctx, *synced); err != nil {
			return err
		}
		*synced = next
		return nil
	}
	if err := resync(); err != nil {
		return err
	}
	// Every notice sent since LISTEN will arrive on conn, and the tables
	// held everything before it.
	s.noticesProven(listening)
	nextResync := time.Now().Add(s.resync)
	for {
		if !time.Now().Before(nextResync) {
			// The safety net behind the notices.
			if err := resync(); err != nil {
				return err
			}
			nextResync = time.Now().Add(s.resync)
		}
		wctx, cancel := context.WithTimeout(ctx, min(s.noticePing, time.Until(nextResync)))
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			s.noticesProven(s.sinceEpoch())
			if err := s.HandleNotice(ctx, n.Payload); err != nil {
				// The index may now miss a change: read the database until
				// a resync, at once, has caught up on it.
				s.noticesLost()
				nextResync = time.Now()
				s.log.ErrorContext(ctx, "access: notice not applied; catching up", "err", err)
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() == nil:
			return fmt.Errorf("wait for notices: %w", err)
		}
		// Quiet for a while: prove the connection alive. Its answer comes
		// after every notice the server sent before it.
		at := s.sinceEpoch()
		if err := exec(s.noticePing, "SELECT 1"); err != nil {
			return fmt.Errorf("no answer on the notice connection within %v: %w", s.noticePing, err)
		}
		s.noticesProven(at)
	}
}
