package access

import (
	"context"
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
