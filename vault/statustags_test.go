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

// wantStatusDamaged fails unless every way a sees case id is refused as
// case_status_damaged (to one who may know of the case) and the lists
// leave it out.
func (f *wfFixture) wantStatusDamaged(svc *Service, a Actor, id string) {
	f.t.Helper()
	who := a.P.User.Username
	var ve *Error
	if c, err := svc.GetCase(f.ctx, a, id); !errors.As(err, &ve) || ve.Code != "case_status_damaged" || !errors.Is(err, ErrDamaged) {
		f.t.Fatalf("%s: case %s: %+v, %v, want case_status_damaged", who, id, c, err)
	}
	if _, err := svc.History(f.ctx, a, id); !errors.As(err, &ve) || ve.Code != "case_status_damaged" {
		f.t.Fatalf("%s: history of %s: %v, want case_status_damaged", who, id, err)
	}
	if f.listed(svc, a, id) {
		f.t.Fatalf("%s: case %s listed", who, id)
	}
	if ok, err := svc.CaseVisible(f.ctx, a, id); err != nil || ok {
		f.t.Fatalf("%s: CaseVisible(%s) = %v, %v", who, id, ok, err)
	}
	// The office's filed cases are named by VisibleCaseIDs on their
	// status column, unchecked (too many to check per request).
	if !a.P.Has("office_admin") && f.inVisibleCaseIDs(svc, a, id) {
		f.t.Fatalf("%s: case %s in VisibleCaseIDs", who, id)
	}
	if titles, err := svc.CaseTitles(f.ctx, a, []string{id}); err != nil || len(titles) != 0 {
		f.t.Fatalf("%s: titles %v, %v", who, titles, err)
	}
	// A malformed request on it is answered as a well-formed one is, not
	// with how its form was read.
	if hidden, err := svc.RefuseHiddenCase(f.ctx, a, id, "POST /api/v1/cases/:case/transitions"); hidden || !errors.As(err, &ve) || ve.Code != "case_status_damaged" {
		f.t.Fatalf("%s: RefuseHiddenCase(%s) = %v, %v, want case_status_damaged", who, id, hidden, err)
	}
}

// materialOf is the id of the case's material of kind kind.
func (f *wfFixture) materialOf(caseID, kind string) string {
	f.t.Helper()
	var ids []string
	if err := f.db.Model(&materialRow{}).Where("case_id = ? AND kind = ?", caseID, kind).Pluck("id", &ids).Error; err != nil || len(ids) == 0 {
		f.t.Fatalf("no %s material in case %s: %v", kind, caseID, err)
	}
	return ids[0]
}

// TestCaseStatusEditsAreRefused: a case's workflow status is bound by its
// status tag to the case and to the length of its history. A database
// administrator who moves a concluded case back into the opinion phase
// (so that a member unit whose reads ended reads again), moves a case
// forward, makes a draft look filed to the office, copies another case's
// tag or puts back an older genuine status and tag is refused: nobody
// reads or acts through the case, it is counted, and it is left out of
// every list, until the row is restored. Normal transitions, which write
// the tag with the status, go on working.
func TestCaseStatusEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			exec := func(sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			type pair struct {
				Status    string
				StatusTag []byte
			}
			stored := func(id string) pair {
				t.Helper()
				var p pair
				if err := f.db.Table("cases").Select("status, status_tag").Where("id = ?", id).Take(&p).Error; err != nil {
					t.Fatal(err)
				}
				return p
			}
			put := func(id string, p pair) {
				t.Helper()
				exec("UPDATE cases SET status = ?, status_tag = ? WHERE id = ?", p.Status, p.StatusTag, id)
			}

			// A case through the whole review: its member units' reads
			// end with it.
			id := f.draft()
			f.submit(id)
			f.toRecommend(id)
			soliciting := stored(id)
			if soliciting.Status != "soliciting_opinions" {
				t.Fatalf("status %q", soliciting.Status)
			}
			yes := true
			for _, u := range []Actor{f.u1, f.u2} {
				if _, err := f.svc.Opinion(f.ctx, u, id, OpinionRequest{Agree: &yes}); err != nil {
					t.Fatal(err)
				}
			}
			if r := f.mustMove(id, "conclude", "", 0); r.Status != "concluded" {
				t.Fatalf("conclude %+v", r)
			}
			concluded := stored(id)
			decl := f.materialOf(id, "declaration")
			genuine := func(svc *Service) {
				t.Helper()
				for _, a := range []Actor{f.op, f.office} {
					c, err := svc.GetCase(f.ctx, a, id)
					if err != nil || c.Status != "concluded" || !f.listed(svc, a, id) {
						t.Fatalf("%s reads %+v, %v", a.P.User.Username, c, err)
					}
				}
				c, err := svc.OpenContent(f.ctx, f.u1, decl, nil)
				if err == nil {
					c.Close()
				}
				wantCode(t, err, ErrForbidden, "case_concluded")
			}
			genuine(f.svc)
			refused := func(svc *Service, id string) {
				t.Helper()
				f.wantStatusDamaged(svc, f.op, id)
				f.wantStatusDamaged(svc, f.office, id)
			}

			t.Run("moved back", func(t *testing.T) {
				exec("UPDATE cases SET status = 'soliciting_opinions' WHERE id = ?", id)
				svc := f.restart()
				c, err := svc.OpenContent(f.ctx, f.u1, decl, nil)
				if err == nil {
					c.Close()
				}
				wantCode(t, err, ErrDamaged, "case_status_damaged")
				if _, err := svc.History(f.ctx, f.u1, id); !errors.Is(err, ErrDamaged) {
					t.Fatalf("member unit reads the history: %v", err)
				}
				refused(svc, id)
				var ve *Error
				if hidden, err := svc.RefuseHiddenMaterial(f.ctx, f.op, decl, "GET /api/v1/materials/:id/content"); hidden || !errors.As(err, &ve) || ve.Code != "case_status_damaged" {
					t.Fatalf("RefuseHiddenMaterial(%s) = %v, %v, want case_status_damaged", decl, hidden, err)
				}
				var m dto.Metric
				if err := svc.tagRefusals.WithLabelValues("cases").Write(&m); err != nil || m.GetCounter().GetValue() == 0 {
					t.Fatalf("the refusals are not counted: %v %v", m.GetCounter(), err)
				}
				evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "material.read", Outcome: audit.Denied, Limit: audit.MaxLimit})
				if err != nil || len(evs) == 0 || evs[len(evs)-1].Detail != "case_status_damaged" {
					t.Fatalf("the refusal is not audited: %+v, %v", evs, err)
				}
				put(id, concluded)
				genuine(f.restart())
			})
			t.Run("old pair replayed", func(t *testing.T) {
				// Status and tag as they genuinely were before the
				// opinions and the conclusion: the history has grown.
				put(id, soliciting)
				svc := f.restart()
				c, err := svc.OpenContent(f.ctx, f.u1, decl, nil)
				if err == nil {
					c.Close()
				}
				wantCode(t, err, ErrDamaged, "case_status_damaged")
				refused(svc, id)
				put(id, concluded)
				genuine(f.restart())
			})
			t.Run("moved forward", func(t *testing.T) {
				open := f.draft()
				f.submit(open)
				due := func(svc *Service) bool {
					t.Helper()
					ds, err := svc.Deadlines(f.ctx, f.office, 1000)
					if err != nil {
						t.Fatal(err)
					}
					return slices.ContainsFunc(ds, func(d Deadline) bool { return d.CaseID == open })
				}
				if !due(f.svc) {
					t.Fatal("a filed case is not in the deadlines list")
				}
				exec("UPDATE cases SET status = 'concluded' WHERE id = ?", open)
				svc := f.restart()
				refused(svc, open)
				// Its deadline was derived from what the edit may have
				// made up: it leaves that list too.
				if due(svc) {
					t.Fatal("a case whose status does not check is in the deadlines list")
				}
				_, err := svc.Transition(f.ctx, f.office, open, TransitionRequest{Action: "require_review"})
				wantCode(t, err, ErrDamaged, "case_status_damaged")
				// Restored, the work goes on.
				exec("UPDATE cases SET status = 'submitted' WHERE id = ?", open)
				f.svc = f.restart()
				if r := f.mustMove(open, "require_review", "", 0); r.Status != "under_review" {
					t.Fatalf("require_review %+v", r)
				}
			})
			t.Run("draft made submitted", func(t *testing.T) {
				draft := f.draft()
				f.wantNoParty(f.svc, f.office, draft)
				exec("UPDATE cases SET status = 'submitted' WHERE id = ?", draft)
				svc := f.restart()
				f.wantStatusDamaged(svc, f.op, draft)
				// The office does not list it; asked by id, it hears why
				// nothing can be done with it. (VisibleCaseIDs, which the
				// services beside the vault filter their own rows by,
				// trusts the status column for the office's filed cases.)
				f.wantStatusDamaged(svc, f.office, draft)
				exec("UPDATE cases SET status = 'draft' WHERE id = ?", draft)
				svc = f.restart()
				f.wantNoParty(svc, f.office, draft)
				if c, err := svc.GetCase(f.ctx, f.op, draft); err != nil || c.Status != "draft" {
					t.Fatalf("operator reads %+v, %v", c, err)
				}
			})
			t.Run("tag copied from another case", func(t *testing.T) {
				other := f.draft()
				f.submit(other)
				// Same status, same history length, genuine tag: of the
				// other case.
				exec("UPDATE cases SET status = 'submitted', status_tag = (SELECT status_tag FROM cases WHERE id = ?) WHERE id = ?", other, id)
				svc := f.restart()
				c, err := svc.OpenContent(f.ctx, f.u1, decl, nil)
				if err == nil {
					c.Close()
				}
				wantCode(t, err, ErrDamaged, "case_status_damaged")
				refused(svc, id)
				put(id, concluded)
				genuine(f.restart())
			})
			t.Run("ended by an edit, not shredded", func(t *testing.T) {
				// Forward to concluded, with a forged event to date the
				// end from: retention must not destroy the case. Last: the
				// genuinely concluded case is shredded here.
				open := f.draft()
				f.submit(open)
				exec("UPDATE cases SET status = 'concluded' WHERE id = ?", open)
				if err := f.db.Create(&caseEventRow{CaseID: open, Seq: 2, Action: "conclude", FromStatus: "submitted", ToStatus: "concluded",
					OnDate: "2025-06-03", At: editionStarts["2021"].Add(24 * time.Hour), Actor: f.office.P.User.ID, Role: "office_admin", Reason: []byte{}}).Error; err != nil {
					t.Fatal(err)
				}
				svc := f.restart()
				out, err := svc.ApplyRetention(f.ctx, audit.Event{Actor: "cli"}, editionStarts["2021"].Add(100*365*24*time.Hour), false)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range out {
					if r.CaseID == open {
						t.Fatalf("retention acted on a case a database edit ended: %+v", r)
					}
				}
				refused(svc, open)
			})
		})
	}
}

// TestCaseStatusBackfill: cases written before status tags are tagged once
// at start-up, recorded in the audit log under cases.status; a tag blanked
// after that stays refused, restart and backfill or not.
func TestCaseStatusBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			draft := f.draft()
			filed := f.draft()
			f.submit(filed)
			f.mustMove(filed, "require_review", "", 0)
			// Written by an older binary: no tags, refused until the
			// backfill.
			if err := f.db.Exec("UPDATE cases SET status_tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			f.wantStatusDamaged(f.restart(), f.op, filed)
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{draft, filed} {
				if _, err := svc.GetCase(f.ctx, f.op, id); err != nil {
					t.Fatalf("case %s after the backfill: %v", id, err)
				}
			}
			if c, err := svc.GetCase(f.ctx, f.office, filed); err != nil || c.Status != "under_review" {
				t.Fatalf("office reads %+v, %v", c, err)
			}
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var evs []audit.Event
			for _, e := range all {
				if e.Resource == statusTagTable {
					evs = append(evs, e)
				}
			}
			if len(evs) != 1 || evs[0].Detail != "tagged 2" {
				t.Fatalf("backfill events %+v", evs)
			}
			// The backfilled tag is a transition's: the case moves on.
			f.svc = svc
			f.assign(filed, f.rev, "reviewer")
			f.upload(f.rev, filed, "recommendation")
			f.assign(filed, f.u1, "member_unit")
			f.mustMove(filed, "recommend", "", 0)

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE cases SET status_tag = '' WHERE id = ?", filed).Error; err != nil {
				t.Fatal(err)
			}
			svc = f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			f.wantStatusDamaged(svc, f.op, filed)
			f.wantStatusDamaged(svc, f.office, filed)
		})
	}
}

// TestCaseListsReadAMovingStatusAsMoved: a list reads its page of cases and
// their histories' lengths in two statements. A transition committed
// between the two moves both the status and the history, so the page's row
// fails its tag against the new length; the list reads the case again
// before refusing it, and lists it with the status it now has, not as
// damaged.
func TestCaseListsReadAMovingStatusAsMoved(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			id := f.draft()
			var stale caseRow
			if err := f.db.Where("id = ?", id).Take(&stale).Error; err != nil {
				t.Fatal(err)
			}
			f.submit(id) // between the page and its histories' lengths
			kept, _, err := f.svc.listable(f.ctx, f.op, []caseRow{stale})
			if err != nil {
				t.Fatal(err)
			}
			if len(kept) != 1 || kept[0].ID != id || kept[0].Status != "submitted" || kept[0].statusRefused {
				t.Fatalf("the moving case is listed as %+v, want it submitted", kept)
			}
		})
	}
}
