package vault

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestResolvePseudonymAsTyped: a party names a reader by the pseudonym it
// was shown, typed in either case, with spaces, or in full-width
// characters from an input method; text no stored pseudonym can be, NUL
// included, resolves to nobody without an error on either database.
func TestResolvePseudonymAsTyped(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(dialect), func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
			if err != nil {
				t.Fatal(err)
			}
			org := f.op.P.User.OrgID
			p, err := f.svc.Pseudonym(f.ctx, c.ID, org, f.rev.P.User.ID)
			if err != nil || p != "R1" {
				t.Fatalf("pseudonym %q, %v; want R1", p, err)
			}
			for _, typed := range []string{"R1", "r1", " R1\t", "Ｒ１", "ｒ1"} {
				if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, org, typed); err != nil || !ok || uid != f.rev.P.User.ID {
					t.Errorf("ResolvePseudonym(%q) = %q, %v, %v", typed, uid, ok, err)
				}
			}
			for _, typed := range []string{"R2", "R 1", "ʀ1", "R1\x00", "\xffR1", ""} {
				if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, org, typed); err != nil || ok {
					t.Errorf("ResolvePseudonym(%q) = %q, %v, %v; want nobody", typed, uid, ok, err)
				}
			}
			// Padding is trimmed before anything is bounded; a megabyte
			// of full-width letters is nobody, and is not normalised.
			if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, org, strings.Repeat(" ", 1<<20)+"R1\u3000"); err != nil || !ok || uid != f.rev.P.User.ID {
				t.Errorf("padded R1 = %q, %v, %v", uid, ok, err)
			}
			long := strings.Repeat("Ｒ", 1<<20)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, org, long)
			runtime.ReadMemStats(&after)
			if err != nil || ok {
				t.Errorf("a megabyte of Ｒ = %q, %v, %v; want nobody", uid, ok, err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
				t.Errorf("resolving a megabyte of Ｒ allocated %d bytes", n)
			}
		})
	}
}

// TestPseudonymsNumberedPerParty: each party of a case numbers the people
// it is shown on its own, and resolves only the names it was shown. Shared
// numbers let a party tell from "R3", or from trying "R2" as a complaint's
// subject, that other parties had been shown reviewers it had not.
func TestPseudonymsNumberedPerParty(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(dialect), func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			operator, provider := f.op.P.User.OrgID, NewID()
			first, second := NewID(), NewID()
			name := func(org, user string) string {
				t.Helper()
				p, err := f.svc.pseudonym(f.ctx, caseID, org, user, "R")
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			if got := name(provider, first); got != "R1" {
				t.Fatalf("provider's first reviewer %s", got)
			}
			// The operator was shown nobody yet: its first is R1 too.
			if a, b := name(operator, second), name(operator, first); a != "R1" || b != "R2" {
				t.Fatalf("operator's reviewers %s, %s; want R1, R2", a, b)
			}
			if name(provider, first) != "R1" || name(operator, second) != "R1" {
				t.Fatal("a pseudonym changed")
			}
			for _, tc := range []struct{ org, typed, want string }{
				{operator, "R1", second}, {operator, "R2", first}, {provider, "R1", first}, {provider, "R2", ""},
			} {
				uid, ok, err := f.svc.ResolvePseudonym(f.ctx, caseID, tc.org, tc.typed)
				if err != nil || ok != (tc.want != "") || uid != tc.want {
					t.Errorf("party %s resolving %s: %q, %v, %v; want %q", tc.org, tc.typed, uid, ok, err, tc.want)
				}
			}
		})
	}
}

// TestMigratePartyPseudonymsKeepsNamesShown: a name shown before numbering
// per party stays the same name of the same person to every party of the
// case, and each party's next number comes after it.
func TestMigratePartyPseudonymsKeepsNamesShown(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(dialect), func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			caseID, otherCase := f.draft(), f.draft()
			operator, provider := f.op.P.User.OrgID, NewID()
			db := f.svc.db.WithContext(f.ctx)
			if err := db.Create(&caseProviderRow{CaseID: caseID, OrgID: provider}).Error; err != nil {
				t.Fatal(err)
			}
			rev, unit, elsewhere := NewID(), NewID(), NewID()
			now := time.Now().UTC()
			for _, r := range []pseudonymRow{{caseID, rev, "R2", now}, {caseID, unit, "M1", now}, {otherCase, elsewhere, "R1", now}} {
				if err := db.Create(&r).Error; err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Migrator().DropTable(&partyPseudonymRow{}); err != nil {
				t.Fatal(err)
			}
			if err := db.Transaction(func(tx *gorm.DB) error { return migratePartyPseudonyms(tx, dialect) }); err != nil {
				t.Fatalf("migration 9: %v", err)
			}
			for _, org := range []string{operator, provider} {
				for typed, want := range map[string]string{"R2": rev, "M1": unit, "R1": ""} {
					uid, ok, err := f.svc.ResolvePseudonym(f.ctx, caseID, org, typed)
					if err != nil || ok != (want != "") || uid != want {
						t.Errorf("party %s resolving %s after the migration: %q, %v, %v; want %q", org, typed, uid, ok, err, want)
					}
				}
				if p, err := f.svc.pseudonym(f.ctx, caseID, org, NewID(), "R"); err != nil || p != "R3" {
					t.Errorf("party %s's next reviewer: %q, %v; want R3", org, p, err)
				}
			}
			if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, otherCase, operator, "R1"); err != nil || !ok || uid != elsewhere {
				t.Errorf("the other case's R1: %q, %v, %v", uid, ok, err)
			}
		})
	}
}
