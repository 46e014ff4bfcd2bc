package access

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// noticesLiveMetric reads crvault_access_notices_live from reg.
func noticesLiveMetric(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "crvault_access_notices_live" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("crvault_access_notices_live not registered")
	return 0
}

// TestDecideFailsClosedWithoutProvenNotices (review h28d, finding 1): on
// PostgreSQL an instance trusts its grant index only while its notice
// listener has proven its connection within noticeTrust; otherwise a
// reviewer's grants are read from the database, so a revocation made on
// another instance holds even when its notice never comes. SQLite (one
// process) never switches.
func TestDecideFailsClosedWithoutProvenNotices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		f := newFixture(t, dialect, func(o *Options) { o.trustNotices = false })
		office := f.org(t, "Review Office", OrgOffice)
		boss := f.user(t, "boss", office, RoleOfficeAdmin)
		rev := f.user(t, "rev1", office, RoleReviewer)
		a := f.svc
		f.opts.Registerer = reg
		b := f.restart(t) // another instance, which hears no notice
		c := CaseFacts{ID: "case-s", Status: "submitted"}
		if _, err := a.Assign(ctx, boss, c.ID, rev.User.ID, "reviewer", "review", nil); err != nil {
			t.Fatal(err)
		}
		if dialect == sqldb.SQLite {
			f.clock.Advance(time.Hour)
			if d := decide(t, b, rev, c, ActCaseRead); d.Visible {
				t.Fatalf("SQLite: a second service read the database: %+v", d)
			}
			if v := noticesLiveMetric(t, reg); v != 1 {
				t.Errorf("SQLite: notices_live %v", v)
			}
			return
		}

		// Never proven (Listen not connected yet): the database decides.
		if d := decide(t, b, rev, c, ActCaseRead); !d.Visible {
			t.Fatalf("before any proof, the grant made on a: %+v", d)
		}
		if v := noticesLiveMetric(t, reg); v != 0 {
			t.Errorf("before any proof: notices_live %v", v)
		}
		// Proven: the index decides (it never heard of the grant, which
		// shows which of the two answered).
		b.noticesProven(b.sinceEpoch())
		if d := decide(t, b, rev, c, ActCaseRead); d.Visible {
			t.Fatalf("proven: the index should answer, got %+v", d)
		}
		if v := noticesLiveMetric(t, reg); v != 1 {
			t.Errorf("proven: notices_live %v", v)
		}
		f.clock.Advance(b.noticeTrust() - time.Millisecond)
		if d := decide(t, b, rev, c, ActCaseRead); d.Visible {
			t.Fatalf("just before the proof lapses: %+v", d)
		}
		f.clock.Advance(time.Millisecond)
		if d := decide(t, b, rev, c, ActCaseRead); !d.Visible {
			t.Fatalf("the proof lapsed: the database should answer, got %+v", d)
		}
		if v := noticesLiveMetric(t, reg); v != 0 {
			t.Errorf("lapsed: notices_live %v", v)
		}

		// A revocation whose notice never comes: refused once the proof
		// lapses, and at once when the listener reports the loss.
		if err := b.HandleNotice(ctx, noticeGrant+":"+c.ID+" "+rev.User.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Declare(ctx, rev, c.ID, false, "no conflict"); err != nil {
			t.Fatal(err)
		}
		if err := b.HandleNotice(ctx, noticeGrant+":"+c.ID+" "+rev.User.ID); err != nil {
			t.Fatal(err)
		}
		b.noticesProven(b.sinceEpoch())
		if d := decide(t, b, rev, c, ActMaterialRead); !d.Allowed {
			t.Fatalf("declared: %+v", d)
		}
		as, err := a.Assignments(ctx, c.ID)
		if err != nil || len(as) != 1 {
			t.Fatalf("assignments: %v %v", as, err)
		}
		if err := a.Revoke(ctx, boss, c.ID, as[0].ID); err != nil {
			t.Fatal(err)
		}
		if d := decide(t, b, rev, c, ActMaterialRead); !d.Allowed {
			t.Fatalf("the index should still answer (the test proves nothing): %+v", d)
		}
		f.clock.Advance(b.noticeTrust())
		if d := decide(t, b, rev, c, ActMaterialRead); d.Visible {
			t.Fatalf("revoked on a, proof lapsed: %+v", d)
		}
		b.noticesProven(b.sinceEpoch())
		b.noticesLost()
		if d := decide(t, b, rev, c, ActMaterialRead); d.Visible {
			t.Fatalf("revoked on a, listener lost: %+v", d)
		}
	})
}

// stallProxy forwards TCP connections to target until stalled: then it
// stops forwarding on every connection open at that moment, without closing
// them, as a NAT or firewall does to an idle flow it forgets. Connections
// made later work.
type stallProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*proxied
}

type proxied struct {
	mu      sync.Mutex
	stalled bool
	c, u    net.Conn
}

func (p *proxied) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		stalled := p.stalled
		p.mu.Unlock()
		if n > 0 && !stalled {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxied{c: c, u: u}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			go pc.pipe(u, c)
			go pc.pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, pc := range p.conns {
			pc.c.Close()
			pc.u.Close()
		}
	})
	return p
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.mu.Lock()
		pc.stalled = true
		pc.mu.Unlock()
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestListenFindsSilentlyDroppedConnection (review h28d, finding 1): when
// the network silently stops carrying the LISTEN connection, Listen finds
// out within about two ping intervals, says so, decisions read the
// database meanwhile, and it reconnects and catches up.
func TestListenFindsSilentlyDroppedConnection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := sqldbtest.URL(t, sqldb.Postgres)
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close(db) })
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newStallProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()

	var logs syncBuffer
	const ping = 200 * time.Millisecond
	opts := Options{Hasher: cheapArgon2id, noticePing: ping, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	a, err := New(ctx, db, Options{Hasher: cheapArgon2id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); b.Listen(ctx, u.String()) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > limit {
				t.Fatalf("%s: not within %v; log:\n%s", what, limit, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("first proof", 10*time.Second, func() bool { return !b.noticesStale() })
	// Stay proven across several quiet ping intervals.
	for range 10 {
		time.Sleep(ping / 2)
		if b.noticesStale() {
			t.Fatalf("a live, quiet connection lost its proof; log:\n%s", logs.String())
		}
	}

	proxy.stall()
	took := waitFor("the dropped connection noticed", 5*ping+time.Second, b.noticesStale)
	t.Logf("stale %v after the drop (ping %v, trust %v)", took.Round(time.Millisecond), ping, b.noticeTrust())
	if !strings.Contains(logs.String(), "notice listener lost its connection") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}

	// Reconnected (a new flow passes), it hears notices again.
	waitFor("reconnected", 10*time.Second, func() bool { return !b.noticesStale() })
	office, err := a.CreateOrg(ctx, "Office", OrgOffice)
	if err != nil {
		t.Fatal(err)
	}
	boss, err := a.CreateUser(ctx, NewUser{Username: "boss", Org: office.ID, Password: testPassword, Roles: []Role{RoleOfficeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := a.CreateUser(ctx, NewUser{Username: "rev", Org: office.ID, Password: testPassword, Roles: []Role{RoleReviewer}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Assign(ctx, Principal{User: boss, OrgKind: OrgOffice}, "case-l", rev.ID, "reviewer", "review", nil); err != nil {
		t.Fatal(err)
	}
	waitFor("the notice after reconnecting", 5*time.Second, func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return len(b.grants.get("case-l", rev.ID)) == 1
	})
}
