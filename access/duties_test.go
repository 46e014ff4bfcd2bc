package access

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSeparationOfDuties: sysadmin comes alone; content roles a sysadmin
// creates wait for a second person; nobody approves their own or assigns
// themselves.
func TestSeparationOfDuties(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, nil)
		officeOrg := f.org(t, "Review Office", OrgOffice)
		grid := f.org(t, "Grid Co", OrgOperator)
		acme := f.org(t, "Acme", OrgProvider)
		admin := f.user(t, "admin", officeOrg, RoleSysadmin)
		office := f.user(t, "office", officeOrg, RoleOfficeAdmin)
		gridop := f.user(t, "gridop", grid, RoleOperator)
		acmeop := f.user(t, "acmeop", acme, RoleProvider)
		if admin.User.Status != UserActive || gridop.User.Status != UserActive {
			t.Fatal("command-line accounts are not active at once")
		}

		_, err := f.svc.CreateUser(ctx, NewUser{Username: "mallory", Org: grid.ID, Password: testPassword,
			Roles: []Role{RoleOperator, RoleSysadmin}, By: &admin})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Code != "sysadmin_exclusive" {
			t.Fatalf("sysadmin+operator: %v", err)
		}
		mk := func(name string, org Org, r Role) User {
			u, err := f.svc.CreateUser(ctx, NewUser{Username: name, Org: org.ID, Password: testPassword, Roles: []Role{r}, By: &admin})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			return u
		}
		if u := mk("admin2", officeOrg, RoleSysadmin); u.Status != UserActive || u.CreatedBy != admin.User.ID {
			t.Errorf("a sysadmin made by a sysadmin: %+v", u)
		}
		op2 := mk("gridop2", grid, RoleOperator)
		rev := mk("rev9", officeOrg, RoleReviewer)
		for _, u := range []User{op2, rev} {
			if u.Status != UserPendingApproval {
				t.Fatalf("%s: status %q, want pending_approval", u.Username, u.Status)
			}
			if _, err := f.svc.Login(ctx, Credentials{Username: u.Username, Password: testPassword}, "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("pending %s signs in: %v", u.Username, err)
			}
		}
		pending, _, err := f.svc.ListUsers(ctx, UserFilter{Status: UserPendingApproval}, 0, "")
		if err != nil || len(pending) != 2 {
			t.Fatalf("pending list: %v, %v", pending, err)
		}

		for _, tc := range []struct {
			name string
			by   Principal
			id   string
			want error
		}{
			{"creator", admin, op2.ID, ErrSelfApproval},
			{"another sysadmin", Principal{User: User{ID: "x", Roles: []Role{RoleSysadmin}}}, op2.ID, ErrForbidden},
			{"another organisation's operator", acmeop, op2.ID, ErrForbidden},
			{"an operator for a reviewer", gridop, rev.ID, ErrForbidden},
			{"the account itself", Principal{User: op2}, op2.ID, ErrSelfApproval},
			{"unknown account", office, "nobody", ErrNotFound},
		} {
			if _, err := f.svc.ApproveUser(ctx, tc.by, tc.id); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		// The organisation's own account approves an operator; an office
		// admin approves a reviewer.
		got, err := f.svc.ApproveUser(ctx, gridop, op2.ID)
		if err != nil || got.Status != UserActive || got.ApprovedBy != gridop.User.ID || got.ApprovedAt == nil {
			t.Fatalf("approve operator: %+v, %v", got, err)
		}
		if _, err := f.svc.ApproveUser(ctx, office, rev.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.ApproveUser(ctx, office, rev.ID); !isState(err, "not_pending") {
			t.Errorf("approve twice: %v", err)
		}
		if _, err := f.svc.Login(ctx, Credentials{Username: "gridop2", Password: testPassword}, "10.0.0.1"); err != nil {
			t.Fatalf("approved operator: %v", err)
		}

		// Nobody assigns themselves, even holding reviewer beside office_admin.
		both := f.user(t, "both", officeOrg, RoleOfficeAdmin, RoleReviewer)
		if _, err := f.svc.Assign(ctx, both, "case1", both.User.ID, "reviewer", "review", nil); !errors.Is(err, ErrSelfAssignment) {
			t.Fatalf("self assignment: %v", err)
		}
		if _, err := f.svc.Assign(ctx, office, "case1", both.User.ID, "reviewer", "review", nil); err != nil {
			t.Fatalf("assignment by another office admin: %v", err)
		}

		// An older account holding sysadmin and more is a sysadmin only.
		legacy := Principal{User: User{ID: "legacy", OrgID: grid.ID, Roles: []Role{RoleOperator, RoleSysadmin}}}
		d, err := f.svc.Decide(ctx, legacy, CaseFacts{ID: "c1", OperatorOrg: grid.ID, Status: "submitted"}, ActMaterialRead)
		if err != nil || d.Visible || d.Allowed {
			t.Fatalf("sysadmin+operator decides %+v, %v", d, err)
		}
		if f.svc.Can(legacy, "case", "create") {
			t.Error("sysadmin+operator may create cases")
		}
	})
}

func TestDisplayNameFormatCharacters(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	u, err := f.svc.CreateUser(context.Background(), NewUser{Username: "eve", Org: f.org(t, "Grid Co", OrgOperator).ID,
		Password: testPassword, Roles: []Role{RoleOperator}, DisplayName: " Eve\u202e\u200dnimda\u2066\x07 "})
	if err != nil {
		t.Fatal(err)
	}
	if u.DisplayName != "Evenimda" {
		t.Fatalf("display name %q keeps format or control characters", u.DisplayName)
	}
}

func TestChangePassword(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sqlite", nil)
	alice := f.user(t, "alice", f.org(t, "Grid Co", OrgOperator), RoleOperator)
	s1, _ := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.1")
	s2, _ := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.2")
	if err := f.svc.ChangePassword(ctx, alice, "wrong password!", "a brand new passphrase", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, alice, testPassword, "password1234", "10.0.0.1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("listed new password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, alice, testPassword, testPassword, "10.0.0.1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unchanged password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, alice, testPassword, "a brand new passphrase", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Session{s1, s2} {
		if _, err := f.svc.Authenticate(ctx, s.Token); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("session survived the password change: %v", err)
		}
	}
	if _, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: testPassword}, "10.0.0.3"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password: %v", err)
	}
	if _, err := f.svc.Login(ctx, Credentials{Username: "alice", Password: "a brand new passphrase"}, "10.0.0.3"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

// TestNoticesKeepInstancesInStep: two services over one database; a grant,
// a declaration and a revocation made on one reach the other through a
// notice (HandleNotice), and through the periodic catch-up when the notice
// is lost. Listen's wiring to PostgreSQL is tested end to end in cmd/vaultd.
func TestNoticesKeepInstancesInStep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, nil)
		office := f.org(t, "Review Office", OrgOffice)
		boss := f.user(t, "boss", office, RoleOfficeAdmin)
		rev := f.user(t, "rev1", office, RoleReviewer)
		a, b := f.svc, f.restart(t)
		c := CaseFacts{ID: "case-n", Status: "submitted"}
		read := func(s *Service) Decision {
			d, err := s.Decide(ctx, rev, c, ActMaterialRead)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		var got []string
		b.Subscribe(noticeGrant, func(_ context.Context, key string) { got = append(got, key) })

		asg, err := a.Assign(ctx, boss, c.ID, rev.User.ID, "reviewer", "review", nil)
		if err != nil {
			t.Fatal(err)
		}
		if read(b).Visible {
			t.Fatal("b knew of the grant without a notice: the test proves nothing")
		}
		if err := b.HandleNotice(ctx, noticeGrant+":"+c.ID+" "+rev.User.ID); err != nil {
			t.Fatal(err)
		}
		if d := read(b); !d.Visible || d.Code != CodeDeclarationRequired {
			t.Fatalf("after the grant notice: %+v", d)
		}
		if _, err := a.Declare(ctx, rev, c.ID, false, "no conflict"); err != nil {
			t.Fatal(err)
		}
		b.HandleNotice(ctx, noticeGrant+":"+c.ID+" "+rev.User.ID)
		if d := read(b); !d.Allowed {
			t.Fatalf("after the declaration notice: %+v", d)
		}
		if err := a.Revoke(ctx, boss, c.ID, asg.ID); err != nil {
			t.Fatal(err)
		}
		// The notice is lost: the catch-up finds the revocation.
		if err := b.catchUp(ctx, f.clock.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if d := read(b); d.Visible {
			t.Fatalf("after catch-up on the revocation: %+v", d)
		}
		if len(got) != 2 {
			t.Errorf("subscriber saw %v", got)
		}
		if err := b.HandleNotice(ctx, "garbage"); err == nil {
			t.Error("a malformed notice was accepted")
		}
	})
}
