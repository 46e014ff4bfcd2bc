package vault

import (
	"errors"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// retagParties tags a case's parties as they are stored, as crvault
// would have: for tests that set up providers behind its back.
func (f *wfFixture) retagParties(caseID string) {
	f.t.Helper()
	key, err := f.svc.rowsKey(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var c caseRow
	if err := f.db.Where("id = ?", caseID).Take(&c).Error; err != nil {
		f.t.Fatal(err)
	}
	providers, err := f.svc.providers(f.ctx, caseID)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Model(&caseRow{}).Where("id = ?", caseID).
		UpdateColumn("parties_tag", partiesTag(key, caseID, c.OperatorOrg, c.Origin, providers)).Error; err != nil {
		f.t.Fatal(err)
	}
}

// listed says whether a's case list holds id.
func (f *wfFixture) listed(svc *Service, a Actor, id string) bool {
	f.t.Helper()
	cursor := ""
	for {
		page, err := svc.ListCases(f.ctx, a, "", 100, cursor)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, c := range page.Items {
			if c.ID == id {
				return true
			}
		}
		if page.NextCursor == "" {
			return false
		}
		cursor = page.NextCursor
	}
}

// inVisibleCaseIDs says whether VisibleCaseIDs, as a subquery, names id.
func (f *wfFixture) inVisibleCaseIDs(svc *Service, a Actor, id string) bool {
	f.t.Helper()
	sub, err := svc.VisibleCaseIDs(f.ctx, a)
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	if err := f.db.Model(&caseRow{}).Where("id IN (?)", sub).Pluck("id", &ids).Error; err != nil {
		f.t.Fatal(err)
	}
	return slices.Contains(ids, id)
}

// wantParty fails unless a sees the case as a party does: listed, read,
// its history and materials, and named where pages refer to it.
func (f *wfFixture) wantParty(svc *Service, a Actor, id string) {
	f.t.Helper()
	if !f.listed(svc, a, id) {
		f.t.Fatalf("%s: case %s not listed", a.P.User.Username, id)
	}
	c, err := svc.GetCase(f.ctx, a, id)
	if err != nil || c.Title != "Routers" {
		f.t.Fatalf("%s: case %s: %+v, %v", a.P.User.Username, id, c, err)
	}
	if _, err := svc.History(f.ctx, a, id); err != nil {
		f.t.Fatalf("%s: history of %s: %v", a.P.User.Username, id, err)
	}
	if ok, err := svc.CaseVisible(f.ctx, a, id); err != nil || !ok {
		f.t.Fatalf("%s: CaseVisible(%s) = %v, %v", a.P.User.Username, id, ok, err)
	}
	if !f.inVisibleCaseIDs(svc, a, id) {
		f.t.Fatalf("%s: case %s not in VisibleCaseIDs", a.P.User.Username, id)
	}
	if titles, err := svc.CaseTitles(f.ctx, a, []string{id}); err != nil || titles[id] != "Routers" {
		f.t.Fatalf("%s: titles %v, %v", a.P.User.Username, titles, err)
	}
}

// wantNoParty fails if a sees anything of the case: not listed, 404 on
// it, its history and materials, no names of its materials, no events of
// it in the audit trail.
func (f *wfFixture) wantNoParty(svc *Service, a Actor, id string) {
	f.t.Helper()
	who := a.P.User.Username
	if f.listed(svc, a, id) {
		f.t.Fatalf("%s: case %s listed", who, id)
	}
	if c, err := svc.GetCase(f.ctx, a, id); !errors.Is(err, ErrNotFound) {
		f.t.Fatalf("%s: case %s: %+v, %v, want not_found", who, id, c, err)
	}
	if _, err := svc.History(f.ctx, a, id); !errors.Is(err, ErrNotFound) {
		f.t.Fatalf("%s: history of %s: %v, want not_found", who, id, err)
	}
	ms, err := svc.ListMaterials(f.ctx, a, id)
	if !errors.Is(err, ErrNotFound) {
		f.t.Fatalf("%s: materials of %s: %v, %v, want not_found", who, id, ms, err)
	}
	if ok, err := svc.CaseVisible(f.ctx, a, id); err != nil || ok {
		f.t.Fatalf("%s: CaseVisible(%s) = %v, %v", who, id, ok, err)
	}
	if f.inVisibleCaseIDs(svc, a, id) {
		f.t.Fatalf("%s: case %s in VisibleCaseIDs", who, id)
	}
	if titles, err := svc.CaseTitles(f.ctx, a, []string{id}); err != nil || len(titles) != 0 {
		f.t.Fatalf("%s: titles %v, %v", who, titles, err)
	}
	var mids []string
	if err := f.db.Model(&materialRow{}).Where("case_id = ?", id).Pluck("id", &mids).Error; err != nil {
		f.t.Fatal(err)
	}
	if names, err := svc.MaterialNames(f.ctx, a, mids); err != nil || len(names) != 0 {
		f.t.Fatalf("%s: material names %v, %v", who, names, err)
	}
	for _, mid := range mids {
		c, err := svc.OpenContent(f.ctx, a, mid, nil)
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, ErrNotFound) {
			f.t.Fatalf("%s: material %s of case %s: %v, want not_found", who, mid, id, err)
		}
	}
	if isParty(a.P) {
		evs, _, err := svc.AuditEvents(f.ctx, a, audit.Filter{CaseID: id})
		if err != nil || len(evs) != 0 {
			f.t.Fatalf("%s: %d audit events of %s, %v", who, len(evs), id, err)
		}
	}
}

// TestCasePartiesEditsAreRefused: who the parties of a case are
// (cases.operator_org and origin, case_providers) is bound by the case's
// parties tag. A database administrator who makes a rival organisation
// the operator, adds a provider, removes one or marks a party's draft as
// the office's own (review h29h, F1) is refused: the case has no parties
// until the row is restored, so the rival sees nothing of it, and the
// office sees a submitted case without its parties and no draft.
func TestCasePartiesEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			provOrg := f.org("Router Maker", "provider")
			prov := f.user("prov1", provOrg, "provider")
			rivalOrg := f.org("Rival Grid", "operator")
			rival := f.user("rival1", rivalOrg, "operator")
			rivalProvOrg := f.org("Rival Maker", "provider")
			rivalProv := f.user("rprov1", rivalProvOrg, "provider")
			cs, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{provOrg.ID}})
			if err != nil {
				t.Fatal(err)
			}
			id := cs.ID
			for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
				f.upload(f.op, id, k)
			}
			f.upload(prov, id, "other")
			f.submit(id)
			genuine := func(svc *Service) {
				t.Helper()
				f.wantParty(svc, f.op, id)
				f.wantParty(svc, prov, id)
				f.wantNoParty(svc, rival, id)
				f.wantNoParty(svc, rivalProv, id)
				f.wantParty(svc, f.office, id)
				c, err := svc.GetCase(f.ctx, f.office, id)
				if err != nil || c.OperatorOrg != f.op.P.User.OrgID || !slices.Equal(c.Providers, []string{provOrg.ID}) {
					t.Fatalf("office reads %+v, %v", c, err)
				}
			}
			genuine(f.svc)
			exec := func(sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			// The office still reads a submitted case whose parties fail,
			// shown without them.
			officeSeesNoParties := func(svc *Service) {
				t.Helper()
				c, err := svc.GetCase(f.ctx, f.office, id)
				if err != nil || c.OperatorOrg != "" || len(c.Providers) != 0 || c.Title != "Routers" {
					t.Fatalf("office reads %+v, %v", c, err)
				}
				if !f.listed(svc, f.office, id) || !f.inVisibleCaseIDs(svc, f.office, id) {
					t.Fatal("office lost a submitted case")
				}
			}

			t.Run("operator_org", func(t *testing.T) {
				exec("UPDATE cases SET operator_org = ? WHERE id = ?", rivalOrg.ID, id)
				svc := f.restart()
				f.wantNoParty(svc, rival, id)
				f.wantNoParty(svc, f.op, id)
				f.wantNoParty(svc, prov, id)
				officeSeesNoParties(svc)
				var m dto.Metric
				if err := svc.tagRefusals.WithLabelValues("cases").Write(&m); err != nil || m.GetCounter().GetValue() == 0 {
					t.Fatalf("the refusals are not counted: %v %v", m.GetCounter(), err)
				}
				exec("UPDATE cases SET operator_org = ? WHERE id = ?", f.op.P.User.OrgID, id)
				genuine(f.restart())
			})
			t.Run("provider inserted", func(t *testing.T) {
				exec("INSERT INTO case_providers (case_id, org_id) VALUES (?, ?)", id, rivalProvOrg.ID)
				svc := f.restart()
				f.wantNoParty(svc, rivalProv, id)
				f.wantNoParty(svc, prov, id)
				f.wantNoParty(svc, f.op, id)
				officeSeesNoParties(svc)
				exec("DELETE FROM case_providers WHERE case_id = ? AND org_id = ?", id, rivalProvOrg.ID)
				genuine(f.restart())
			})
			t.Run("provider deleted", func(t *testing.T) {
				exec("DELETE FROM case_providers WHERE case_id = ? AND org_id = ?", id, provOrg.ID)
				svc := f.restart()
				f.wantNoParty(svc, f.op, id)
				officeSeesNoParties(svc)
				// Swapped for a rival: still refused.
				exec("INSERT INTO case_providers (case_id, org_id) VALUES (?, ?)", id, rivalProvOrg.ID)
				f.wantNoParty(f.restart(), rivalProv, id)
				exec("DELETE FROM case_providers WHERE case_id = ? AND org_id = ?", id, rivalProvOrg.ID)
				exec("INSERT INTO case_providers (case_id, org_id) VALUES (?, ?)", id, provOrg.ID)
				genuine(f.restart())
			})
			t.Run("tag copied from another case", func(t *testing.T) {
				other, err := f.svc.CreateCase(f.ctx, rival, NewCase{Title: "Routers", Product: "X"})
				if err != nil {
					t.Fatal(err)
				}
				exec("UPDATE cases SET operator_org = ?, parties_tag = (SELECT parties_tag FROM cases WHERE id = ?) WHERE id = ?", rivalOrg.ID, other.ID, id)
				exec("DELETE FROM case_providers WHERE case_id = ?", id)
				f.wantNoParty(f.restart(), rival, id)
				exec("INSERT INTO case_providers (case_id, org_id) VALUES (?, ?)", id, provOrg.ID)
				exec("UPDATE cases SET operator_org = ? WHERE id = ?", f.op.P.User.OrgID, id)
				f.retagParties(id)
				genuine(f.restart())
			})
			t.Run("origin", func(t *testing.T) {
				// A party's draft marked as one the office opened.
				draft, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
				if err != nil {
					t.Fatal(err)
				}
				f.wantNoParty(f.svc, f.office, draft.ID)
				exec("UPDATE cases SET origin = 'proposal' WHERE id = ?", draft.ID)
				f.wantNoParty(f.restart(), f.office, draft.ID)
				f.wantNoParty(f.restart(), f.op, draft.ID)
				exec("UPDATE cases SET origin = 'application' WHERE id = ?", draft.ID)
				f.wantParty(f.restart(), f.op, draft.ID)
			})
		})
	}
}

// TestCasePartiesBackfill: cases written before parties tags are tagged
// once at start-up, recorded in the audit log; a tag blanked after that
// stays refused, restart and backfill or not.
func TestCasePartiesBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			provOrg := f.org("Router Maker", "provider")
			prov := f.user("prov1", provOrg, "provider")
			cs, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{provOrg.ID}})
			if err != nil {
				t.Fatal(err)
			}
			id := cs.ID
			f.wantParty(f.svc, f.op, id)
			f.wantParty(f.svc, prov, id)

			// Written by an older binary: no tag, refused until the
			// backfill.
			if err := f.db.Exec("UPDATE cases SET parties_tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			f.wantNoParty(f.restart(), f.op, id)
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			f.wantParty(svc, f.op, id)
			f.wantParty(svc, prov, id)
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var evs []audit.Event
			for _, e := range all {
				if e.Resource == "cases" {
					evs = append(evs, e)
				}
			}
			if len(evs) != 1 || evs[0].Detail != "tagged 1" {
				t.Fatalf("backfill events %+v", evs)
			}

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE cases SET parties_tag = '' WHERE id = ?", id).Error; err != nil {
				t.Fatal(err)
			}
			svc = f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			f.wantNoParty(svc, f.op, id)
			f.wantNoParty(svc, prov, id)
		})
	}
}
