package sqldb

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeaderLockClass is the first half of the PostgreSQL advisory lock whose
// holder runs the background jobs of a deployment (deadline watcher,
// janitor, audit checkpoints); the second half is the hash of the schema,
// since advisory locks are per database and deployments (or tests) may
// share one database in separate schemas.
const LeaderLockClass = 0x63727601 // "crv" 1

// LeaderPoll is how often a follower tries to take the lock and the leader
// proves its session alive: a leader that dies is replaced within about
// this long (at once when its process dies, since PostgreSQL then drops the
// session; within the keepalive bound when its host vanishes).
const LeaderPoll = time.Second

// Leader elects one process among those sharing a database to run the
// deployment's periodic jobs. On PostgreSQL it holds a session advisory
// lock on a dedicated connection: PostgreSQL releases it the moment that
// session ends (the process died, or its connection broke), and another
// process takes it at its next poll. On SQLite one process owns the file,
// so it always leads. Safe for concurrent use.
type Leader struct {
	dsn  string
	log  *slog.Logger
	poll time.Duration

	mu      sync.Mutex
	leading bool
	changed chan struct{} // closed and replaced on every change
	// OnChange, when set before Run, is called with each new state.
	OnChange func(leading bool)
}

// NewLeader elects over the database at url (as given to Open). Call Run.
func NewLeader(url string, log *slog.Logger) *Leader {
	if log == nil {
		log = slog.Default()
	}
	l := &Leader{log: log, poll: LeaderPoll, changed: make(chan struct{})}
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		l.dsn = url
	}
	return l
}

// Leading reports whether this process leads now.
func (l *Leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// state returns the current state and a channel closed at the next change.
func (l *Leader) state() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading, l.changed
}

func (l *Leader) set(leading bool) {
	l.mu.Lock()
	if l.leading == leading {
		l.mu.Unlock()
		return
	}
	l.leading = leading
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	if l.OnChange != nil {
		l.OnChange(leading)
	}
}

// Run campaigns until ctx ends, then gives the lead up.
func (l *Leader) Run(ctx context.Context) {
	if l.dsn == "" {
		l.set(true)
		<-ctx.Done()
		l.set(false)
		return
	}
	for ctx.Err() == nil {
		err := l.campaign(ctx)
		l.set(false)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("leader election: connection lost; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.poll):
		}
	}
}

// campaign holds one dedicated connection: it polls for the lock, then
// proves the session alive at every poll while it leads. Any error ends the
// lead (the caller marks it so before anything else runs as leader).
func (l *Leader) campaign(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := pgx.Connect(cctx, l.dsn)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Closing the session releases the lock at once.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	// If this host vanishes without closing its connection, PostgreSQL
	// notices within idle+interval*count seconds and frees the lock.
	if _, err := conn.Exec(ctx, "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"); err != nil {
		return fmt.Errorf("keepalives: %w", err)
	}
	t := time.NewTicker(l.poll)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if l.Leading() {
			// Still our session, and so still our lock.
			_, err = conn.Exec(qctx, "SELECT 1")
		} else {
			var got bool
			err = conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", int32(LeaderLockClass)).Scan(&got)
			if err == nil && got {
				l.log.Info("leader election: this instance now runs the background jobs")
				l.set(true)
			}
		}
		cancel()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Every runs job while this process leads: at once when it takes the lead,
// then every interval, until ctx ends. A job already running when the lead
// is lost finishes (jobs are idempotent and safe to overlap with the next
// leader's first run); none starts after.
func (l *Leader) Every(ctx context.Context, interval time.Duration, job func(context.Context)) {
	for {
		leading, changed := l.state()
		if !leading {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				continue
			}
		}
		job(ctx)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-changed:
			t.Stop()
		}
	}
}
