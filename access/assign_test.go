package access

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestAssignValidation(t *testing.T) {
	w := newWorld(t, "sqlite")
	ctx := context.Background()
	past := w.clock.Now().Add(-time.Minute)
	for _, tc := range []struct {
		name, by, user, role, purpose string
		expires                       *time.Time
		want                          error
	}{
		{"not office admin", "rev", "revNone", "reviewer", "p", nil, ErrForbidden},
		{"no purpose", "admin", "revNone", "reviewer", "  ", nil, ErrInvalid},
		{"expiry in the past", "admin", "revNone", "reviewer", "p", &past, ErrInvalid},
		{"role not held", "admin", "revNone", "member_unit", "p", nil, ErrInvalid},
		{"global role not assignable", "admin", "operA", "operator", "p", nil, ErrInvalid},
		{"unknown user", "admin", "", "reviewer", "p", nil, ErrInvalid},
		{"already active", "admin", "rev", "reviewer", "p", nil, ErrConflict},
		{"declared a conflict", "admin", "revSusp", "reviewer", "p", nil, ErrBlocked},
		{"after expiry", "admin", "revExp", "reviewer", "p", nil, nil},
		{"after revocation", "admin", "revRevoked", "reviewer", "p", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.svc.Assign(ctx, w.p[tc.by], "case-1", w.p[tc.user].User.ID, tc.role, tc.purpose, tc.expires)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Assign = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := w.svc.Declare(ctx, w.p["revNone"], "case-1", false, "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("declare without assignment: %v", err)
	}
	if _, err := w.svc.Declare(ctx, w.p["rev"], "case-1", false, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("declare without statement: %v", err)
	}
}

// decide is Decide for tests that only care about the answer.
func decide(t *testing.T, s *Service, p Principal, c CaseFacts, a Action) Decision {
	t.Helper()
	d, err := s.Decide(context.Background(), p, c, a)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAssignmentLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		w := newWorld(t, dialect)
		admin, bob := w.p["admin"], w.p["revNone"]
		c := w.submitted

		expires := w.clock.Now().Add(time.Hour)
		a, err := w.svc.Assign(ctx, admin, c.ID, bob.User.ID, "reviewer", "review the impact analysis", &expires)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != StatusActive || a.GrantedBy != admin.User.ID || !a.ExpiresAt.Equal(expires) {
			t.Fatalf("assignment = %+v", a)
		}
		if d := decide(t, w.svc, bob, c, ActMaterialRead); d.Code != CodeDeclarationRequired {
			t.Fatalf("before declaring: %+v", d)
		}
		if _, err := w.svc.Declare(ctx, bob, c.ID, false, "No conflict."); err != nil {
			t.Fatal(err)
		}
		if d := decide(t, w.svc, bob, c, ActMaterialRead); !d.Allowed || d.AssignmentID != a.ID {
			t.Fatalf("after declaring: %+v", d)
		}
		if got, _ := w.svc.CasesOf(ctx, bob); !slices.Equal(got, []string{c.ID}) {
			t.Errorf("CasesOf = %v", got)
		}

		t.Run("expiry", func(t *testing.T) {
			w.clock.Advance(time.Hour)
			if d := decide(t, w.svc, bob, c, ActCaseRead); d.Allowed || d.Code != CodeAssignmentExpired {
				t.Fatalf("after expiry: %+v", d)
			}
			if got, _ := w.svc.CasesOf(ctx, bob); len(got) != 0 {
				t.Errorf("CasesOf after expiry = %v", got)
			}
			// A fresh assignment replaces the expired one.
			a, err = w.svc.Assign(ctx, admin, c.ID, bob.User.ID, "reviewer", "second round", nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := decide(t, w.svc, bob, c, ActMaterialRead); d.Code != CodeDeclarationRequired {
				t.Fatalf("new assignment needs its own declaration: %+v", d)
			}
			if _, err := w.svc.Declare(ctx, bob, c.ID, false, "Still none."); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("revocation takes effect on the next decision", func(t *testing.T) {
			if d := decide(t, w.svc, bob, c, ActMaterialRead); !d.Allowed {
				t.Fatalf("before revocation: %+v", d)
			}
			if err := w.svc.Revoke(ctx, admin, c.ID, a.ID); err != nil {
				t.Fatal(err)
			}
			// Only bob's older, expired assignment is left.
			if d := decide(t, w.svc, bob, c, ActMaterialRead); d.Allowed || d.Code != CodeAssignmentExpired || d.AssignmentID == a.ID {
				t.Fatalf("after revocation: %+v", d)
			}
			dave := w.p["revUndecl"]
			if d := decide(t, w.svc, dave, c, ActCaseRead); !d.Allowed {
				t.Fatalf("before revocation: %+v", d)
			}
			as, _ := w.svc.Assignments(ctx, c.ID)
			i := slices.IndexFunc(as, func(a Assignment) bool { return a.UserID == dave.User.ID })
			if err := w.svc.Revoke(ctx, admin, c.ID, as[i].ID); err != nil {
				t.Fatal(err)
			}
			if d := decide(t, w.svc, dave, c, ActCaseRead); d.Visible || d.Code != CodeNotFound {
				t.Fatalf("after revocation: %+v", d)
			}
			if err := w.svc.Revoke(ctx, admin, c.ID, a.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("second revoke: %v", err)
			}
			if err := w.svc.Revoke(ctx, admin, "case-2", a.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("revoke through another case: %v", err)
			}
		})

		t.Run("conflict suspends", func(t *testing.T) {
			carol := w.p["rev"]
			if d := decide(t, w.svc, carol, c, ActMaterialRead); !d.Allowed {
				t.Fatalf("before: %+v", d)
			}
			if _, err := w.svc.Declare(ctx, carol, c.ID, true, "My brother works for Operator A."); err != nil {
				t.Fatal(err)
			}
			for _, act := range []Action{ActMaterialRead, ActCaseRead, ActDeclarationCreate} {
				if d := decide(t, w.svc, carol, c, act); d.Allowed || d.Code != CodeAssignmentSuspended {
					t.Fatalf("%s after conflict: %+v", act, d)
				}
			}
			if _, err := w.svc.Declare(ctx, carol, c.ID, false, "Never mind."); !errors.Is(err, ErrNotFound) {
				t.Errorf("a later conflict:false must not lift the suspension: %v", err)
			}
		})

		t.Run("recusal", func(t *testing.T) {
			mu := w.p["muDecl"]
			if err := w.svc.Recuse(ctx, c.ID, mu.User.ID, "complaint upheld"); err != nil {
				t.Fatal(err)
			}
			if d := decide(t, w.svc, mu, c, ActCaseRead); d.Visible {
				t.Fatalf("after recusal: %+v", d)
			}
			if _, err := w.svc.Assign(ctx, admin, c.ID, mu.User.ID, "member_unit", "again", nil); !errors.Is(err, ErrBlocked) {
				t.Fatalf("re-assign after recusal: %v", err)
			}
			if err := w.svc.Recuse(ctx, c.ID, mu.User.ID, "again"); err != nil {
				t.Errorf("second recusal: %v", err)
			}
		})

		t.Run("listing", func(t *testing.T) {
			as, err := w.svc.Assignments(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			status := map[string][]string{}
			for _, a := range as {
				status[a.UserID] = append(status[a.UserID], a.Status)
			}
			for who, want := range map[string][]string{
				"revNone":    {StatusExpired, StatusRevoked},
				"rev":        {StatusSuspended},
				"revUndecl":  {StatusRevoked},
				"revExp":     {StatusExpired},
				"revRevoked": {StatusRevoked},
				"muDecl":     {StatusRevoked},
				"muUndecl":   {StatusActive},
			} {
				if got := status[w.p[who].User.ID]; !slices.Equal(got, want) {
					t.Errorf("%s statuses = %v, want %v", who, got, want)
				}
			}
			got, _ := w.svc.AssignedUsers(ctx, c.ID, "member_unit")
			if !slices.Equal(got, []string{w.p["muUndecl"].User.ID}) {
				t.Errorf("AssignedUsers(member_unit) = %v", got)
			}
			if none, _ := w.svc.Assignments(ctx, "case-9"); none == nil || len(none) != 0 {
				t.Errorf("Assignments of an unknown case = %#v, want empty", none)
			}
		})

		t.Run("restart keeps every change", func(t *testing.T) {
			s := w.restart(t)
			for _, tc := range []struct {
				who  string
				code string
			}{{"revNone", CodeAssignmentExpired}, {"revUndecl", CodeNotFound}, {"rev", CodeAssignmentSuspended}, {"muDecl", CodeNotFound}, {"revExp", CodeAssignmentExpired}} {
				if d := decide(t, s, w.p[tc.who], c, ActMaterialRead); d.Code != tc.code {
					t.Errorf("%s after restart: %+v, want %s", tc.who, d, tc.code)
				}
			}
		})
	})
}

// TestConcurrentDecideAndChange is for -race: decisions run while grants
// are added, declared and revoked.
func TestConcurrentDecideAndChange(t *testing.T) {
	w := newWorld(t, "sqlite")
	ctx := context.Background()
	bob, admin := w.p["revNone"], w.p["admin"]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			a, err := w.svc.Assign(ctx, admin, "case-1", bob.User.ID, "reviewer", "p", nil)
			if err != nil {
				t.Error(err)
				return
			}
			w.svc.Declare(ctx, bob, "case-1", false, "none")
			if err := w.svc.Revoke(ctx, admin, "case-1", a.ID); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			if d := decide(t, w.svc, bob, w.submitted, ActCaseRead); d.Visible {
				t.Fatalf("after the last revocation: %+v", d)
			}
			return
		default:
			decide(t, w.svc, bob, w.submitted, ActMaterialRead)
		}
	}
}

func TestReloadSeesOtherInstance(t *testing.T) {
	w := newWorld(t, "sqlite")
	ctx := context.Background()
	other := w.restart(t) // a second vaultd over the same database
	dave, admin := w.p["revUndecl"], w.p["admin"]
	as, _ := w.svc.Assignments(ctx, "case-1")
	i := slices.IndexFunc(as, func(a Assignment) bool { return a.UserID == dave.User.ID })
	if err := other.Revoke(ctx, admin, "case-1", as[i].ID); err != nil {
		t.Fatal(err)
	}
	if d := decide(t, w.svc, dave, w.submitted, ActCaseRead); !d.Allowed {
		t.Fatalf("memory is per instance, expected the stale grant: %+v", d)
	}
	if err := w.svc.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if d := decide(t, w.svc, dave, w.submitted, ActCaseRead); d.Visible {
		t.Fatalf("after Reload: %+v", d)
	}
}
