package access

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// Two sysadmins adding variants of one name at the same instant: the
// database's unique key lets exactly one through, and the other is a
// conflict, not a second organisation.
func TestOrgNameVariantsAddedAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, nil)
		ctx := context.Background()
		names := []string{"华为技术（深圳）有限公司", "华为技术(深圳)有限公司", "华为技术(深圳)有限公司\u3000", "华为技术（深圳）有限公司 "}
		for round := range 5 {
			suffix := strings.Repeat("甲", round)
			start := make(chan struct{})
			errs := make(chan error, len(names))
			for _, n := range names {
				go func() {
					<-start
					_, err := f.svc.CreateOrg(ctx, suffix+n, OrgProvider)
					errs <- err
				}()
			}
			close(start)
			created := 0
			for range names {
				switch err := <-errs; {
				case err == nil:
					created++
				case !errors.Is(err, ErrConflict):
					t.Fatalf("round %d: %v, want ErrConflict", round, err)
				}
			}
			if created != 1 {
				t.Fatalf("round %d: %d organisations added for one name", round, created)
			}
		}
		// The check before the insert is not what holds: a row that skips
		// it is refused by the index.
		digest := keyDigest(nameKey("华为技术(深圳)有限公司"))
		if err := f.svc.db.Create(&orgRow{ID: newID(time.Now()), Name: "华为技术（深圳）有限公司　", NameKey: &digest,
			Kind: string(OrgProvider), CreatedAt: time.Now()}).Error; err == nil {
			t.Fatal("a second row with the same name key was stored")
		}
	})
}

// Migration 6 keys the organisations added before names were keyed: the
// oldest of two that share a key holds it, the younger stays findable by
// its exact name, and neither variant can be added again.
func TestOrgNameKeysMigrated(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		db := sqldbtest.Open(t, dialect)
		if err := sqldb.Migrate(ctx, db, "access", migrations[:5]); err != nil {
			t.Fatal(err)
		}
		// Version 1 creates the table from today's struct; take the key
		// away to get the table as version 5 left it.
		m := db.Migrator()
		if err := m.DropIndex(&orgRow{}, "NameKey"); err != nil {
			t.Fatal(err)
		}
		if err := m.DropColumn(&orgRow{}, "NameKey"); err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		legacy := []struct{ id, name string }{
			{"0001", "Wind Co (North)"}, {"0002", "Grid Co"}, {"0003", "Wind Co （North）"}, {"0004", "ＧＲＩＤ　ｃｏ"},
		}
		for i, o := range legacy {
			if err := db.Exec("INSERT INTO access_orgs (id, name, kind, created_at) VALUES (?, ?, ?, ?)",
				o.id, o.name, string(OrgProvider), t0.Add(time.Duration(i)*time.Hour)).Error; err != nil {
				t.Fatal(err)
			}
		}
		if err := Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		var rows []orgRow
		if err := db.Order("id").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			older := r.ID == "0001" || r.ID == "0002"
			if older != (r.NameKey != nil) || (older && *r.NameKey != keyDigest(nameKey(r.Name))) {
				t.Errorf("%s %q: key %v after the migration", r.ID, r.Name, r.NameKey)
			}
		}
		svc, err := New(ctx, db, Options{Hasher: cheapArgon2id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		for typed, want := range map[string]string{"Wind Co （North）": "0003", "Wind Co (North)": "0001", "ＧＲＩＤ　ｃｏ": "0004"} {
			if got, err := svc.OrgByName(ctx, typed); err != nil || got.ID != want {
				t.Errorf("OrgByName(%q) = %+v, %v; want %s", typed, got, err, want)
			}
		}
		if got, err := svc.OrgByName(ctx, "grid co"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a variant of two organisations' names = %+v, %v; want ErrNotFound", got, err)
		}
		for _, name := range []string{"wind co (north)", "GRID CO"} {
			if o, err := svc.CreateOrg(ctx, name, OrgOperator); !errors.Is(err, ErrConflict) {
				t.Errorf("CreateOrg(%q) = %+v, %v; want ErrConflict", name, o, err)
			}
		}
		if o, err := svc.CreateOrg(ctx, "Wind Co (South)", OrgOperator); err != nil || o.Name != "Wind Co (South)" {
			t.Errorf("a new name after the migration: %+v, %v", o, err)
		}
	})
}

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
		// And tagged by the upgrade that brought row tags.
		if _, err := TagUntaggedRows(ctx, f.db, f.opts.RowTagger); err != nil {
			t.Fatal(err)
		}
		if got, err := f.svc.OrgByName(ctx, "Wind Co （North）"); err != nil || got.Name != "Wind Co （North）" {
			t.Errorf("exact name among two variants: %+v, %v", got, err)
		}
		if got, err := f.svc.OrgByName(ctx, "wind co (north)"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a variant of two organisations' names = %+v, %v; want ErrNotFound", got, err)
		}
	})
}

// An organisation's stored name key is outside its row tag: a database
// administrator who swaps two organisations' keys must not send a name
// typed another way (the single sign-on org claim, the case form's
// provider lines) to the other organisation.
func TestOrgNameKeySwapFindsNoOtherOrg(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newFixture(t, dialect, nil)
		acme := f.org(t, "Acme Routers Ltd", OrgProvider)
		evil := f.org(t, "Evil Corp", OrgProvider)
		for _, typed := range []string{"acme routers ltd", "ＡＣＭＥ Routers  Ltd"} {
			if o, err := f.svc.OrgByRef(ctx, typed); err != nil || o.ID != acme.ID {
				t.Fatalf("before the swap, %q: %+v, %v", typed, o, err)
			}
		}
		var keys []orgRow
		if err := f.db.Select("id", "name_key").Find(&keys).Error; err != nil || len(keys) != 2 {
			t.Fatalf("%+v, %v", keys, err)
		}
		// Through a third value: the keys are unique.
		dbaExec(t, f, `UPDATE access_orgs SET name_key = 'x' WHERE id = ?`, keys[0].ID)
		dbaExec(t, f, `UPDATE access_orgs SET name_key = ? WHERE id = ?`, *keys[0].NameKey, keys[1].ID)
		dbaExec(t, f, `UPDATE access_orgs SET name_key = ? WHERE id = ?`, *keys[1].NameKey, keys[0].ID)
		for _, typed := range []string{"acme routers ltd", "ＡＣＭＥ Routers  Ltd", "evil corp"} {
			o, err := f.svc.OrgByRef(ctx, typed)
			if err == nil {
				t.Errorf("after the swap, %q found %q (%s)", typed, o.Name, o.ID)
			} else if !errors.Is(err, ErrNotFound) {
				t.Errorf("after the swap, %q: %v, want ErrNotFound", typed, err)
			}
		}
		// Exact names are the names tagged: they still find their own.
		for _, want := range []Org{acme, evil} {
			if o, err := f.svc.OrgByName(ctx, want.Name); err != nil || o.ID != want.ID {
				t.Errorf("%q after the swap: %+v, %v", want.Name, o, err)
			}
		}
	})
}
