package access

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestReloadRebuildsEveryGrant: a start (Reload) reads back, straight from
// the tables, an expiring grant with its expiry, a declared one, a
// suspended one (conflict declared) and no revoked one, and decides on them
// as the running service did.
func TestReloadRebuildsEveryGrant(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		w := newWorld(t, dialect)
		admin, bob, carol := w.p["admin"], w.p["revNone"], w.p["revUndecl"]
		c := w.submitted
		expires := w.clock.Now().Add(time.Hour).Truncate(time.Second)
		a, err := w.svc.Assign(ctx, admin, c.ID, bob.User.ID, "reviewer", "expiring review", &expires)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Declare(ctx, bob, c.ID, false, "No conflict."); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Declare(ctx, carol, c.ID, true, "My brother works there."); err != nil {
			t.Fatal(err)
		}
		before := map[string]Decision{}
		for name, p := range w.p {
			before[name] = decide(t, w.svc, p, c, ActMaterialRead)
		}
		if err := w.svc.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		for name, p := range w.p {
			if got := decide(t, w.svc, p, c, ActMaterialRead); got != before[name] {
				t.Errorf("%s after reload: %+v, before %+v", name, got, before[name])
			}
		}
		if d := decide(t, w.svc, bob, c, ActMaterialRead); !d.Allowed || d.AssignmentID != a.ID {
			t.Fatalf("bob after reload: %+v", d)
		}
		if d := decide(t, w.svc, carol, c, ActMaterialRead); d.Code != CodeAssignmentSuspended {
			t.Fatalf("carol after reload: %+v", d)
		}
		w.clock.Advance(time.Hour)
		if d := decide(t, w.svc, bob, c, ActMaterialRead); d.Code != CodeAssignmentExpired {
			t.Fatalf("bob after the reloaded expiry: %+v", d)
		}
		if err := w.svc.Revoke(ctx, admin, c.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if d := decide(t, w.svc, bob, c, ActCaseRead); d.Visible {
			t.Fatalf("a revoked grant came back on reload: %+v", d)
		}
	})
}

// loadingService starts a Service over w's database that loads its grants
// in the background and stops once it has read the tables, before it
// catches up on changes made meanwhile; release lets it finish.
func loadingService(t *testing.T, w *world) (s *Service, release func()) {
	t.Helper()
	snapshot, gate := make(chan struct{}), make(chan struct{})
	opts := w.opts
	opts.LoadInBackground = true
	opts.afterLoad = func() { close(snapshot); <-gate }
	s, err := New(context.Background(), w.db, opts)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() {
		release()
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-snapshot:
	case <-time.After(time.Minute):
		t.Fatal("the background load never read the tables")
	}
	if s.isReady() {
		t.Fatal("the index is ready before the load was let finish: the test would prove nothing")
	}
	return s, release
}

// TestBackgroundLoadDecidesAsLoaded: while a start still loads the grants,
// every decision of the matrix is the one a fully loaded service gives (the
// caller's grants are read from the tables), and so is it once loaded.
func TestBackgroundLoadDecidesAsLoaded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		w := newWorld(t, dialect)
		s, release := loadingService(t, w)
		checkMatrix(t, w, s)
		if d := decide(t, s, w.p["rev"], w.submitted, ActMaterialRead); d.Purpose != "Art. 16 review of rev" || d.AssignmentID == "" {
			t.Errorf("decision while loading = %+v, want the assignment's purpose and id", d)
		}
		release()
		<-s.Loaded()
		if !s.isReady() {
			t.Fatal("Loaded closed before the index was ready")
		}
		checkMatrix(t, w, s)
	})
}

// TestChangesDuringBackgroundLoadSurvive: changes made after the load read
// its snapshot, on another instance (revocation, announced by a notice) or
// on the loading one itself (grant, declaration, recusal), hold both while
// it loads and after the index it loaded is installed: a revoked grant
// never comes back from the stale snapshot.
func TestChangesDuringBackgroundLoadSurvive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		w := newWorld(t, dialect)
		s, release := loadingService(t, w)
		admin, rev, mu, bob := w.p["admin"], w.p["rev"], w.p["muDecl"], w.p["revNone"]
		c := w.submitted
		if d := decide(t, s, rev, c, ActMaterialRead); !d.Allowed {
			t.Fatalf("rev before the revocation: %+v", d)
		}

		// Another instance (w.svc) revokes rev's assignment.
		as, err := w.svc.Assignments(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(as, func(a Assignment) bool { return a.UserID == rev.User.ID && a.Status == StatusActive })
		if err := w.svc.Revoke(ctx, admin, c.ID, as[i].ID); err != nil {
			t.Fatal(err)
		}
		if d := decide(t, s, rev, c, ActCaseRead); d.Visible {
			t.Fatalf("revoked on another instance, still visible while loading: %+v", d)
		}
		// Its notice arrives (Listen), while the index is still loading.
		if err := s.HandleNotice(ctx, noticeGrant+":"+c.ID+" "+rev.User.ID); err != nil {
			t.Fatal(err)
		}

		// Changes on the loading instance itself.
		a, err := s.Assign(ctx, admin, c.ID, bob.User.ID, "reviewer", "late review", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Declare(ctx, bob, c.ID, false, "No conflict."); err != nil {
			t.Fatal(err)
		}
		if err := s.Recuse(ctx, c.ID, mu.User.ID, "complaint upheld"); err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			if d := decide(t, s, rev, c, ActCaseRead); d.Visible {
				t.Errorf("%s: the revoked grant is visible: %+v", when, d)
			}
			if d := decide(t, s, bob, c, ActMaterialRead); !d.Allowed || d.AssignmentID != a.ID {
				t.Errorf("%s: the grant made while loading: %+v", when, d)
			}
			if d := decide(t, s, mu, c, ActCaseRead); d.Visible {
				t.Errorf("%s: the recused member unit: %+v", when, d)
			}
		}
		check("while loading")
		release()
		<-s.Loaded()
		check("once loaded")
	})
}

// TestBackgroundLoadFailsClosed: while the index loads, a decision that
// cannot read the tables is an error, never a grant.
func TestBackgroundLoadFailsClosed(t *testing.T) {
	w := newWorld(t, "sqlite")
	s, _ := loadingService(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := s.Decide(ctx, w.p["rev"], w.submitted, ActMaterialRead); err == nil || d.Allowed {
		t.Fatalf("a decision without the database: %+v, %v", d, err)
	}
	// Relations that need no assignment do not read the tables.
	if d, err := s.Decide(ctx, w.p["operA"], w.submitted, ActMaterialRead); err != nil || !d.Allowed {
		t.Fatalf("operator while loading: %+v, %v", d, err)
	}
}

// TestSplitLoadReadsEveryGrant: a start that reads the assignments in two
// halves at once (by the last character of their ids) builds the
// same index as one that reads them in one scan: every unrevoked grant once,
// with its expiry, declarations and purpose (one holding the separator the
// load joins columns with), in the same order.
func TestSplitLoadReadsEveryGrant(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, nil)
		now := f.clock.Now().UTC().Truncate(time.Second)
		expires := now.Add(36 * time.Hour)
		var as []assignmentRow
		var ds []declarationRow
		var rs []revocationRow
		for i := range 600 {
			a := assignmentRow{ID: fmt.Sprintf("a%05d", i), CaseID: fmt.Sprintf("case-%03d", i%37), UserID: fmt.Sprintf("user-%03d", (i*7)%53),
				Role: []string{"reviewer", "member_unit"}[i%2], Purpose: fmt.Sprintf("review %d, Art. 16", i%5), GrantedBy: "admin", GrantedAt: now}
			switch {
			case i%11 == 0:
				a.ExpiresAt = &expires
			case i%13 == 0:
				a.Purpose = "joined\x1fby the separator"
			}
			as = append(as, a)
			if i%3 == 0 {
				ds = append(ds, declarationRow{ID: "d" + a.ID, AssignmentID: a.ID, CaseID: a.CaseID, UserID: a.UserID, Conflict: i%2 == 0, Statement: []byte("s"), CreatedAt: now})
			}
			if i%17 == 0 {
				rs = append(rs, revocationRow{AssignmentID: a.ID, RevokedBy: "admin", RevokedAt: now, Reason: "r"})
			}
		}
		for _, rows := range []any{as, ds, rs} {
			if err := f.db.WithContext(ctx).CreateInBatches(rows, 100).Error; err != nil {
				t.Fatal(err)
			}
		}
		// Rows as an upgrade finds them: tagged once, as they stand.
		if _, err := TagUntaggedRows(ctx, f.db, f.opts.RowTagger); err != nil {
			t.Fatal(err)
		}

		split, whole := f.opts, f.opts
		split.splitLoadAt, whole.splitLoadAt = 1, 1<<30
		load := func(opts Options) *Service {
			s, err := New(ctx, f.db, opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		halves, one := load(split), load(whole)
		sqlDB, err := f.db.DB()
		if err != nil {
			t.Fatal(err)
		}
		_, ranges := halves.assignmentRanges(ctx, sqlDB)
		if len(ranges) != 2 {
			t.Fatalf("the test table was read in one scan (%v): the test proves nothing", ranges)
		}
		for _, where := range ranges {
			var n int
			if err := sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM access_assignments a WHERE "+where).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("half %q holds no assignment: the test proves nothing", where)
			}
		}
		if !reflect.DeepEqual(halves.grants, one.grants) {
			t.Fatal("the two halves built another index than one scan")
		}

		want := 0
		for i, a := range as {
			if i%17 == 0 {
				continue
			}
			want++
			gs := one.grants.get(a.CaseID, a.UserID)
			k := slices.IndexFunc(gs, func(g grant) bool { return g.id == a.ID })
			if k < 0 {
				t.Fatalf("assignment %s is not indexed", a.ID)
			}
			g := gs[k]
			if g.role != a.Role || g.purpose != a.Purpose || g.declared != (i%3 == 0 && i%2 == 1) || g.suspended != (i%3 == 0 && i%2 == 0) {
				t.Errorf("assignment %s indexed as %+v", a.ID, g)
			}
			if (a.ExpiresAt == nil) != g.expiresAt.IsZero() || (a.ExpiresAt != nil && !g.expiresAt.Equal(*a.ExpiresAt)) {
				t.Errorf("assignment %s expires %v, indexed %v", a.ID, a.ExpiresAt, g.expiresAt)
			}
		}
		got := 0
		for _, gs := range one.grants {
			got += len(gs)
		}
		if got != want {
			t.Errorf("%d grants indexed, want %d (the revoked ones left out)", got, want)
		}
	})
}
