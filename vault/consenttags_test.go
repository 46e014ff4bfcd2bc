package vault

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// wantHidden fails unless a reads id as not_found and the listing of its
// case leaves it out.
func (f *wfFixture) wantHidden(svc *Service, a Actor, caseID, id string) {
	f.t.Helper()
	c, err := svc.OpenContent(f.ctx, a, id, nil)
	if err == nil {
		c.Close()
		f.t.Fatalf("material %s was served", id)
	}
	if !errors.Is(err, ErrNotFound) {
		f.t.Fatalf("material %s: %v, want not_found", id, err)
	}
	ms, err := svc.ListMaterials(f.ctx, a, caseID)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID == id {
			f.t.Fatalf("material %s listed", id)
		}
	}
}

// TestForgedConsentIsRefused: a database administrator inserts a consent
// row giving a provider the operator's document (review h29h, F1), or sets
// a revoked consent's revoked_at back to NULL. Neither row's tag checks
// (the first has none, the second is tagged as revoked), so the provider
// is not shown the document. A consent granted through crvault works, and
// a consent written by an older binary is tagged once by the backfill.
func TestForgedConsentIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			provOrg := f.org("Router Maker", "provider")
			prov := f.user("prov1", provOrg, "provider")
			cs, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{provOrg.ID}})
			if err != nil {
				t.Fatal(err)
			}
			c := cs.ID
			secret := f.uploadID(f.op, c, "other", "operator only")
			f.wantHidden(f.svc, prov, c, secret)

			// Forged: one row inserted, no tag, and with a tag copied from
			// a genuine consent of another material.
			other := f.uploadID(f.op, c, "other", "shared")
			genuine, err := f.svc.GrantConsent(f.ctx, f.op, other, NewConsent{Org: provOrg.ID, Purpose: "review"})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.db.Exec(`INSERT INTO material_consents (id, material_id, case_id, org_id, purpose, granted_by, granted_at, revoked_by)
				VALUES (?, ?, ?, ?, ?, ?, ?, '')`, "forgedconsent0000000000000000003", secret, c, provOrg.ID, []byte("x"), f.op.P.User.ID, time.Now().UTC()).Error; err != nil {
				t.Fatal(err)
			}
			f.wantHidden(f.restart(), prov, c, secret)
			if err := f.db.Exec("UPDATE material_consents SET tag = (SELECT tag FROM material_consents WHERE id = ?) WHERE id = ?", genuine.ID, "forgedconsent0000000000000000003").Error; err != nil {
				t.Fatal(err)
			}
			f.wantHidden(f.restart(), prov, c, secret)
			if err := f.db.Exec("DELETE FROM material_consents WHERE id = ?", "forgedconsent0000000000000000003").Error; err != nil {
				t.Fatal(err)
			}

			// Genuine: granted through crvault, it works.
			if got := f.readWith(f.restart(), prov, other); got != "shared document" {
				t.Fatalf("under a genuine consent: %q", got)
			}
			granted, err := f.svc.GrantConsent(f.ctx, f.op, secret, NewConsent{Org: provOrg.ID, Purpose: "review"})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.readWith(f.restart(), prov, secret); got != "operator only document" {
				t.Fatalf("under a genuine consent: %q", got)
			}
			page, err := f.svc.Consents(f.ctx, f.op, secret, 0, "")
			if err != nil || len(page.Items) != 1 || page.Items[0].ID != granted.ID {
				t.Fatalf("consents %+v, %v", page, err)
			}

			// Revoked, then un-revoked outside crvault: still refused.
			if err := f.svc.RevokeConsent(f.ctx, f.op, granted.ID); err != nil {
				t.Fatal(err)
			}
			f.wantHidden(f.restart(), prov, c, secret)
			if err := f.db.Exec("UPDATE material_consents SET revoked_at = NULL, revoked_by = '' WHERE id = ?", granted.ID).Error; err != nil {
				t.Fatal(err)
			}
			f.wantHidden(f.restart(), prov, c, secret)
			if page, err := f.restart().Consents(f.ctx, f.op, secret, 0, ""); err != nil || len(page.Items) != 0 {
				t.Fatalf("un-revoked consent listed: %+v, %v", page, err)
			}

			// Written by an older binary (no tag): refused until the
			// one-time backfill tags it, and never re-tagged after.
			if err := f.db.Exec("UPDATE material_consents SET tag = '' WHERE id = ?", genuine.ID).Error; err != nil {
				t.Fatal(err)
			}
			f.wantHidden(f.restart(), prov, c, other)
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			if got := f.readWith(svc, prov, other); got != "shared document" {
				t.Fatalf("after the backfill: %q", got)
			}
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var evs []audit.Event
			for _, e := range all {
				if e.Resource == "material_consents" {
					evs = append(evs, e)
				}
			}
			// Only the blanked genuine row: the un-revoked one carries its
			// revoked tag, which the backfill leaves alone.
			if len(evs) != 1 || evs[0].Detail != fmt.Sprintf("tagged %d", 1) {
				t.Fatalf("backfill events %+v", evs)
			}
			f.wantHidden(svc, prov, c, secret)
			if err := f.db.Exec("UPDATE material_consents SET tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			if err := f.restart().keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			f.wantHidden(f.restart(), prov, c, other)
		})
	}
}
