package sqldb_test

import (
	"context"
	neturl "net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// eventually polls cond for up to d (a bound on the contract: a dead
// leader is replaced within seconds), failing with what.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLeaderElection: of two campaigners on one PostgreSQL schema exactly
// one leads and runs the job; when the leader's session is killed from the
// server side (as when its process dies) it steps down and the other takes
// over and runs the job at once; a campaigner on another schema leads on
// its own.
func TestLeaderElection(t *testing.T) {
	url := sqldbtest.URL(t, sqldb.Postgres)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type node struct {
		l    *sqldb.Leader
		runs atomic.Int64
		stop context.CancelFunc
	}
	start := func(url string) *node {
		n := &node{l: sqldb.NewLeader(url, nil)}
		nctx, stop := context.WithCancel(ctx)
		n.stop = stop
		go n.l.Run(nctx)
		go n.l.Every(nctx, time.Hour, func(context.Context) { n.runs.Add(1) })
		return n
	}
	a, b := start(url), start(url)
	eventually(t, 10*time.Second, "a leader", func() bool { return a.l.Leading() || b.l.Leading() })
	// Both have polled at least twice since: still exactly one.
	time.Sleep(3 * sqldb.LeaderPoll)
	if a.l.Leading() == b.l.Leading() {
		t.Fatalf("leading: a=%v b=%v, want exactly one", a.l.Leading(), b.l.Leading())
	}
	lead, follow := a, b
	if b.l.Leading() {
		lead, follow = b, a
	}
	if lead.runs.Load() != 1 || follow.runs.Load() != 0 {
		t.Fatalf("job runs: leader %d, follower %d; want 1 and 0", lead.runs.Load(), follow.runs.Load())
	}

	// Another schema is another deployment: its campaigner leads too.
	other := start(sqldbtest.URL(t, sqldb.Postgres))
	eventually(t, 10*time.Second, "leader of the other schema", other.l.Leading)

	// The server ends the leader's session, as it does when the process
	// dies: the leader notices, the follower takes the lock and runs.
	admin := sqldbtest.Open(t, sqldb.Postgres)
	var killed int
	if err := admin.Raw(`SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = ? AND granted AND objid = (SELECT hashtext(?)::oid)`,
		sqldb.LeaderLockClass, schemaOf(t, url)).Scan(&killed).Error; err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("sessions holding the lock: %d, want 1", killed)
	}
	eventually(t, 10*time.Second, "the old leader stepping down", func() bool { return !lead.l.Leading() })
	eventually(t, 10*time.Second, "the follower taking over", follow.l.Leading)
	eventually(t, 5*time.Second, "the job on the new leader", func() bool { return follow.runs.Load() == 1 })
	if !other.l.Leading() {
		t.Fatal("the other schema's leader lost its lead")
	}

	// A leader that stops gives the lead up at once.
	follow.stop()
	eventually(t, 10*time.Second, "the first leader back", lead.l.Leading)
	eventually(t, 5*time.Second, "the job run again", func() bool { return lead.runs.Load() == 2 })
}

// TestLeaderSQLite: one process owns a SQLite file, so it always leads.
func TestLeaderSQLite(t *testing.T) {
	l := sqldb.NewLeader(sqldbtest.URL(t, sqldb.SQLite), nil)
	if l.Leading() {
		t.Fatal("leading before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	eventually(t, 5*time.Second, "lead on SQLite", l.Leading)
	cancel()
	<-done
	if l.Leading() {
		t.Fatal("still leading after Run returned")
	}
}

func schemaOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("search_path")
}
