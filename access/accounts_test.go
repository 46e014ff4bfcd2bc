package access

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCreateUserValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		op := f.org(t, "Grid Co", OrgOperator)
		office := f.org(t, "Review Office", OrgOffice)
		f.user(t, "taken", op, RoleOperator)

		if _, err := f.svc.CreateOrg(ctx, "Grid Co", OrgProvider); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate org name: %v, want ErrConflict", err)
		}
		// Format characters cannot make a second "Grid Co", nor survive in a name.
		if _, err := f.svc.CreateOrg(ctx, "Grid\u200b Co\u202e", OrgProvider); !errors.Is(err, ErrConflict) {
			t.Errorf("org name differing by format characters only: %v, want ErrConflict", err)
		}
		if o, err := f.svc.CreateOrg(ctx, "\u2066Wind\u2069 Co\u0007", OrgProvider); err != nil || o.Name != "Wind Co" {
			t.Errorf("org name with format characters: %+v %v, want Wind Co", o, err)
		}
		if _, err := f.svc.CreateOrg(ctx, "X", "ministry"); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown kind: %v, want ErrInvalid", err)
		}
		ok := NewUser{Username: "alice", Org: op.Name, Password: testPassword, Roles: []Role{RoleOperator}}
		for _, tc := range []struct {
			name  string
			edit  func(u *NewUser)
			want  error
			field string
		}{
			{"uppercase username", func(u *NewUser) { u.Username = "Alice" }, ErrInvalid, "username"},
			{"short username", func(u *NewUser) { u.Username = "al" }, ErrInvalid, "username"},
			{"long username", func(u *NewUser) { u.Username = strings.Repeat("a", 65) }, ErrInvalid, "username"},
			{"short password", func(u *NewUser) { u.Password = "elevenchars" }, ErrInvalid, "password"},
			{"unknown role", func(u *NewUser) { u.Roles = []Role{"root"} }, ErrInvalid, "roles"},
			{"no role", func(u *NewUser) { u.Roles = nil }, ErrInvalid, "roles"},
			{"reviewer in operator org", func(u *NewUser) { u.Roles = []Role{RoleReviewer} }, ErrInvalid, "roles"},
			{"operator in office", func(u *NewUser) { u.Org = office.ID }, ErrInvalid, "roles"},
			{"unknown org", func(u *NewUser) { u.Org = "nowhere" }, ErrInvalid, "org"},
			{"duplicate username", func(u *NewUser) { u.Username = "taken" }, ErrConflict, ""},
			{"sysadmin anywhere", func(u *NewUser) { u.Username = "root1"; u.Roles = []Role{RoleSysadmin} }, nil, ""},
			{"org by name", func(u *NewUser) {}, nil, ""},
			{"org by id", func(u *NewUser) { u.Username = "bob"; u.Org = op.ID }, nil, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := ok
				tc.edit(&u)
				got, err := f.svc.CreateUser(ctx, u)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				var fe *FieldError
				if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
					t.Fatalf("err = %#v, want field %s", err, tc.field)
				}
				if err == nil && (got.OrgID != op.ID || got.ID == "") {
					t.Fatalf("user = %+v", got)
				}
			})
		}
	})
}

func TestListAndDisableUsers(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	ctx := context.Background()
	op := f.org(t, "Grid Co", OrgOperator)
	var ids []string
	for _, n := range []string{"u1x", "u2x", "u3x"} {
		ids = append(ids, f.user(t, n, op, RoleOperator).User.ID)
		f.clock.Advance(time.Second)
	}
	page, next, err := f.svc.ListUsers(ctx, UserFilter{}, 2, "")
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("page 1 = %v, %q, %v", page, next, err)
	}
	page2, next2, err := f.svc.ListUsers(ctx, UserFilter{}, 2, next)
	if err != nil || len(page2) != 1 || next2 != "" || page2[0].ID != ids[2] {
		t.Fatalf("page 2 = %v, %q, %v", page2, next2, err)
	}
	if err := f.svc.DisableUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("disable unknown: %v", err)
	}
	if err := f.svc.DisableUser(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if u, _ := f.svc.User(ctx, ids[0]); !u.Disabled {
		t.Error("user not disabled")
	}
}

// TestOrgNameWrittenAnotherWay: a name typed with half-width brackets,
// full-width letters, other spacing or case finds the organisation
// registered with the other forms, and cannot register a second one; two
// organisations that already share a key are not guessed between.
func TestOrgNameWrittenAnotherWay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		hw := f.org(t, "华为技术（深圳）有限公司", OrgProvider)
		acme := f.org(t, "Acme Routers Ltd", OrgProvider)
		f.org(t, "华为技术有限公司", OrgProvider) // a different name

		for typed, want := range map[string]Org{
			"华为技术（深圳）有限公司":        hw, // exact
			"华为技术(深圳)有限公司":        hw,
			" 华为技术（深圳）有限公司\u3000": hw,
			"ＡＣＭＥ　Routers  ltd":   acme,
			"acme routers ltd":    acme,
		} {
			got, err := f.svc.OrgByName(ctx, typed)
			if err != nil || got.ID != want.ID {
				t.Errorf("OrgByName(%q) = %+v, %v; want %s", typed, got, err, want.Name)
			}
		}
		for _, typed := range []string{"华为技术(深圳)", "Acme Routers", "AcmeRouters Ltd"} {
			if got, err := f.svc.OrgByName(ctx, typed); !errors.Is(err, ErrNotFound) {
				t.Errorf("OrgByName(%q) = %+v, %v; want ErrNotFound", typed, got, err)
			}
		}
		for _, name := range []string{"华为技术(深圳)有限公司", "ACME ROUTERS LTD", "Acme　Routers Ｌｔｄ"} {
			if o, err := f.svc.CreateOrg(ctx, name, OrgOperator); !errors.Is(err, ErrConflict) {
				t.Errorf("CreateOrg(%q) = %+v, %v; want ErrConflict", name, o, err)
			}
		}
		// Accounts name their organisation the same way.
		u, err := f.svc.CreateUser(ctx, NewUser{Username: "lin", Org: "华为技术(深圳)有限公司", Password: testPassword, Roles: []Role{RoleProvider}})
		if err != nil || u.OrgID != hw.ID {
			t.Fatalf("user of 华为技术(深圳)有限公司: %+v, %v", u, err)
		}

		// Two organisations stored before names were compared this way.
		for _, name := range []string{"Wind Co (North)", "Wind Co （North）"} {
			if err := f.svc.db.Create(&orgRow{ID: newID(time.Now()), Name: name, Kind: string(OrgProvider), CreatedAt: time.Now()}).Error; err != nil {
				t.Fatal(err)
			}
		}
		if got, err := f.svc.OrgByName(ctx, "Wind Co （North）"); err != nil || got.Name != "Wind Co （North）" {
			t.Errorf("exact name among two variants: %+v, %v", got, err)
		}
		if got, err := f.svc.OrgByName(ctx, "wind co (north)"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a variant of two organisations' names = %+v, %v; want ErrNotFound", got, err)
		}
	})
}
