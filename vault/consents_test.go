package vault

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestConcurrentConsentsOneTakesEffect: grants of one material to one
// organisation sent at the same moment leave one live consent, the others
// refused as consent_exists, so withdrawing it ends the organisation's
// access. Before, each passed the check, and a withdrawal left the rest in
// force.
func TestConcurrentConsentsOneTakesEffect(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			prov := f.org("Provider", "provider")
			pu := f.user("prov0", prov, "provider")
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{prov.ID}})
			if err != nil {
				t.Fatal(err)
			}
			mat := f.uploadID(pu, c.ID, "other", "quote")
			const n = 8
			var wg sync.WaitGroup
			ids := make([]string, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := f.svc.GrantConsent(f.ctx, pu, mat, NewConsent{Org: f.op.P.User.OrgID, Purpose: "joint answer"})
					ids[i], errs[i] = k.ID, err
				}()
			}
			wg.Wait()
			var granted string
			for i, err := range errs {
				switch {
				case err == nil && granted == "":
					granted = ids[i]
				case err == nil:
					t.Fatalf("two grants took effect: %s and %s", granted, ids[i])
				default:
					wantCode(t, err, ErrConflict, "consent_exists")
				}
			}
			if granted == "" {
				t.Fatal("no grant took effect")
			}
			// Every refusal is in the audit log, whichever check refused it.
			denied, _, err := f.log.Query(f.ctx, audit.Filter{Action: "consent.create", Outcome: audit.Denied, Limit: 100})
			if err != nil || len(denied) != n-1 {
				t.Fatalf("%d denied consent.create events (%v), want %d", len(denied), err, n-1)
			}
			if _, err := f.svc.OpenContent(f.ctx, f.op, mat, nil); err != nil {
				t.Fatalf("the operator under the consent: %v", err)
			}
			if err := f.svc.RevokeConsent(f.ctx, pu, granted); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.OpenContent(f.ctx, f.op, mat, nil); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrForbidden) {
				t.Fatalf("the operator after the withdrawal: %v", err)
			}
		})
	}
}

// TestMigrateLiveConsentsKeepsTheOldest: live duplicates a race left
// behind are withdrawn by migration 11, the oldest kept, and the index then
// refuses a second live consent.
func TestMigrateLiveConsentsKeepsTheOldest(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			db := f.svc.db.WithContext(f.ctx)
			if err := db.Exec("DROP INDEX ux_consent_live").Error; err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			rows := []consentRow{
				{ID: "c1", MaterialID: "m1", CaseID: "k", OrgID: "o1", Purpose: []byte("x"), GrantedBy: "u", GrantedAt: now},
				{ID: "c2", MaterialID: "m1", CaseID: "k", OrgID: "o1", Purpose: []byte("x"), GrantedBy: "u", GrantedAt: now},
				{ID: "c3", MaterialID: "m1", CaseID: "k", OrgID: "o2", Purpose: []byte("x"), GrantedBy: "u", GrantedAt: now},
			}
			for _, r := range rows {
				if err := db.Create(&r).Error; err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Transaction(func(tx *gorm.DB) error { return migrateLiveConsents(tx, d) }); err != nil {
				t.Fatalf("migration 11: %v", err)
			}
			var live []string
			if err := db.Model(&consentRow{}).Where("revoked_at IS NULL").Order("id").Pluck("id", &live).Error; err != nil {
				t.Fatal(err)
			}
			if len(live) != 2 || live[0] != "c1" || live[1] != "c3" {
				t.Fatalf("live after the migration: %v, want [c1 c3]", live)
			}
			dup := consentRow{ID: "c4", MaterialID: "m1", CaseID: "k", OrgID: "o1", Purpose: []byte("x"), GrantedBy: "u", GrantedAt: now}
			if err := db.Create(&dup).Error; !errors.Is(err, gorm.ErrDuplicatedKey) {
				t.Fatalf("a second live consent: %v", err)
			}
		})
	}
}

// TestRefusedAssignmentAuditedAsDenied: an assignment refused because the
// user already holds it, or was recused from the case, reads in the trail
// as one refusal with its code: no write-ahead "allowed" before it, and no
// server fault.
func TestRefusedAssignmentAuditedAsDenied(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(d, func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			id := f.draft()
			f.submit(id)
			in := NewAssignment{User: f.rev.P.User.ID, Role: "reviewer", Purpose: "review"}
			if _, err := f.svc.Assign(f.ctx, f.office, id, in); err != nil {
				t.Fatal(err)
			}
			_, err := f.svc.Assign(f.ctx, f.office, id, in)
			wantCode(t, err, ErrConflict, "conflict")
			if err := f.acc.Recuse(f.ctx, id, f.rev.P.User.ID, "complaint upheld"); err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Assign(f.ctx, f.office, id, in)
			wantCode(t, err, ErrConflict, "assignment_blocked")
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "assignment.create", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, e := range evs {
				outcomes = append(outcomes, string(e.Outcome)+":"+e.Detail)
			}
			want := []string{"allowed:reviewer", "denied:conflict", "denied:assignment_blocked"}
			if !slices.Equal(outcomes, want) {
				t.Fatalf("assignment.create events %v, want %v", outcomes, want)
			}
		})
	}
}
