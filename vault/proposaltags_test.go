package vault

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// proposalsOf lists every proposal a sees, by id, with the member unit
// and party each is shown with.
func (f *wfFixture) proposalsOf(svc *Service, a Actor) map[string]Proposal {
	f.t.Helper()
	out := map[string]Proposal{}
	cursor := ""
	for {
		page, err := svc.Proposals(f.ctx, a, "", 2, cursor)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, p := range page.Items {
			out[p.ID] = p
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// TestProposalEditsAreRefused: proposals.member_org decides which member
// unit lists a proposal, and party_org for whom approving it opens a case.
// Both are bound by the proposal's tag under the rows key: a database
// administrator who moves a proposal to another unit, names another
// party, copies another proposal's tag or sets an approved one back to
// proposed is refused. The unit lists nothing of it, the office lists it
// without its member unit and party, and approving it answers not_found.
func TestProposalEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			rivalOrg := f.org("Rival Grid", "operator")
			in := NewProposal{PartyOrg: f.op.P.User.OrgID, Subject: "product", Title: "Ride data", Product: "dispatch platform", Reason: "national security risk"}
			p, err := f.svc.Propose(f.ctx, f.u1, in)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := f.svc.Propose(f.ctx, f.u2, in)
			if err != nil {
				t.Fatal(err)
			}
			u1Org, u2Org := f.u1.P.User.OrgID, f.u2.P.User.OrgID
			exec := func(sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			genuine := func(svc *Service) {
				t.Helper()
				if got := f.proposalsOf(svc, f.u1); len(got) != 1 || got[p.ID].MemberOrg != u1Org || got[p.ID].Title != "Ride data" {
					t.Fatalf("u1 lists %+v, want its one proposal", got)
				}
				if got := f.proposalsOf(svc, f.u2); len(got) != 1 || got[p2.ID].MemberOrg != u2Org {
					t.Fatalf("u2 lists %+v, want its one proposal", got)
				}
				if got := f.proposalsOf(svc, f.office); len(got) != 2 || got[p.ID].MemberOrg != u1Org || got[p.ID].PartyOrg != f.op.P.User.OrgID {
					t.Fatalf("the office lists %+v", got)
				}
			}
			// refused: nobody but the office lists p, shown without its
			// member unit and party, and it cannot be approved.
			refused := func(svc *Service) {
				t.Helper()
				for _, u := range []Actor{f.u1, f.u2, f.unassigned} {
					if got, ok := f.proposalsOf(svc, u)[p.ID]; ok {
						t.Fatalf("%s lists the edited proposal: %+v", u.P.User.Username, got)
					}
				}
				got, ok := f.proposalsOf(svc, f.office)[p.ID]
				if !ok || got.MemberOrg != "" || got.PartyOrg != "" || got.Title != "Ride data" {
					t.Fatalf("the office lists %+v (%v), want it without member unit and party", got, ok)
				}
				var cases int64
				f.db.Model(&caseRow{}).Count(&cases)
				_, err := svc.ApproveProposal(f.ctx, f.office, p.ID, ApprovalRequest{Reference: "CCAC approval [2026] No. 1"})
				wantCode(t, err, ErrNotFound, "not_found")
				var after int64
				f.db.Model(&caseRow{}).Count(&after)
				if after != cases {
					t.Fatalf("a case was opened for an edited proposal")
				}
				var m dto.Metric
				if err := svc.tagRefusals.WithLabelValues("proposals").Write(&m); err != nil || m.GetCounter().GetValue() == 0 {
					t.Fatalf("the refusals are not counted: %v %v", m.GetCounter(), err)
				}
			}
			genuine(f.svc)

			t.Run("member_org", func(t *testing.T) {
				exec("UPDATE proposals SET member_org = ? WHERE id = ?", u2Org, p.ID)
				refused(f.restart())
				exec("UPDATE proposals SET member_org = ? WHERE id = ?", u1Org, p.ID)
				genuine(f.restart())
			})
			t.Run("party_org", func(t *testing.T) {
				exec("UPDATE proposals SET party_org = ? WHERE id = ?", rivalOrg.ID, p.ID)
				refused(f.restart())
				exec("UPDATE proposals SET party_org = ? WHERE id = ?", f.op.P.User.OrgID, p.ID)
				genuine(f.restart())
			})
			t.Run("tag copied from another proposal", func(t *testing.T) {
				tagOf := func(id string) []byte {
					t.Helper()
					var r proposalRow
					if err := f.db.Select("tag").Where("id = ?", id).Take(&r).Error; err != nil {
						t.Fatal(err)
					}
					return r.Tag
				}
				tag, own := tagOf(p2.ID), tagOf(p.ID)
				exec("UPDATE proposals SET member_org = ?, tag = ? WHERE id = ?", u2Org, tag, p.ID)
				refused(f.restart())
				exec("UPDATE proposals SET member_org = ?, tag = ? WHERE id = ?", u1Org, own, p.ID)
				genuine(f.restart())
			})
			t.Run("approval undone", func(t *testing.T) {
				res, err := f.svc.ApproveProposal(f.ctx, f.office, p.ID, ApprovalRequest{Reference: "CCAC approval [2026] No. 1"})
				if err != nil || res.Case.OperatorOrg != f.op.P.User.OrgID {
					t.Fatalf("approve: %+v, %v", res, err)
				}
				// Approved: still listed to its unit, tagged as approved.
				if got := f.proposalsOf(f.restart(), f.u1)[p.ID]; got.Status != ProposalApproved || got.CaseID != res.Case.ID {
					t.Fatalf("u1 lists the approved proposal as %+v", got)
				}
				// Set back to proposed, to be approved (and a case opened)
				// a second time.
				exec("UPDATE proposals SET status = ?, case_id = '' WHERE id = ?", ProposalProposed, p.ID)
				refused(f.restart())
			})
		})
	}
}

// TestProposalTagsBackfill: proposals written before their tags are
// tagged once at start-up, recorded in the audit log, and listed again to
// their unit; a tag blanked after that stays refused.
func TestProposalTagsBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			in := NewProposal{PartyOrg: f.op.P.User.OrgID, Subject: "product", Title: "Ride data", Product: "dispatch platform", Reason: "national security risk"}
			var ids []string
			for range 3 {
				p, err := f.svc.Propose(f.ctx, f.u1, in)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, p.ID)
			}
			// Written by an older binary: no tag, refused until the
			// backfill.
			if err := f.db.Exec("UPDATE proposals SET tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			if got := f.proposalsOf(f.restart(), f.u1); len(got) != 0 {
				t.Fatalf("untagged proposals listed: %+v", got)
			}
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			got := f.proposalsOf(svc, f.u1)
			for _, id := range ids {
				if got[id].Title != "Ride data" || got[id].MemberOrg != f.u1.P.User.OrgID {
					t.Fatalf("after the backfill u1 lists %+v", got)
				}
			}
			if _, err := svc.ApproveProposal(f.ctx, f.office, ids[0], ApprovalRequest{Reference: "CCAC approval [2026] No. 1"}); err != nil {
				t.Fatalf("a backfilled proposal is not approvable: %v", err)
			}
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var evs []audit.Event
			for _, e := range all {
				if e.Resource == "proposals" {
					evs = append(evs, e)
				}
			}
			if len(evs) != 1 || evs[0].Detail != "tagged 3" {
				t.Fatalf("backfill events %+v", evs)
			}

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE proposals SET tag = '' WHERE id = ?", ids[1]).Error; err != nil {
				t.Fatal(err)
			}
			svc = f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			if got := f.proposalsOf(svc, f.u1); len(got) != 2 {
				t.Fatalf("after a blanked tag u1 lists %d proposals, want 2", len(got))
			}
		})
	}
}
