package supervision

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault"
)

// complaintsOf lists every complaint a sees, by id, and the counts of the
// first page.
func (f *fixture) complaintsOf(svc *Service, a vault.Actor) (map[string]Complaint, map[string]int64) {
	f.t.Helper()
	out := map[string]Complaint{}
	flt := ComplaintFilter{Limit: 1}
	var counts map[string]int64
	for {
		page, err := svc.ListComplaints(f.ctx, a, flt)
		if err != nil {
			f.t.Fatalf("%s lists complaints: %v", a.P.User.Username, err)
		}
		if counts == nil {
			counts = page.Counts
		}
		for _, c := range page.Items {
			out[c.ID] = c
		}
		if page.NextCursor == "" {
			return out, counts
		}
		flt.Cursor = page.NextCursor
	}
}

// historyNotes are the notes of c's history, one string.
func historyNotes(c Complaint) string {
	var b strings.Builder
	for _, h := range c.History {
		b.WriteString(h.Status + ":" + h.Note + "|")
	}
	return b.String()
}

// complaintCase is a case with the operator and provider A as parties and
// two reviewers, rev (f.rev) and rev2: op's complaint c1 about rev is
// under investigation, A's complaint c2 about rev2 is open.
type complaintCase struct {
	caseID             string
	pa, rev2           vault.Actor
	c1, c2             Complaint
	orgA               access.Org
	c1Pseudo, c2Pseudo string
	c1Invest           complaintChangeRow
	c1Row, c2Row       complaintRow
}

func (f *fixture) complaintCase(t *testing.T) *complaintCase {
	t.Helper()
	k := &complaintCase{}
	k.orgA = f.org("Router Maker", access.OrgProvider)
	k.pa = f.user("prova", k.orgA, access.RoleProvider)
	k.rev2 = f.user("rev2", access.Org{ID: f.office.P.User.OrgID, Kind: access.OrgOffice}, access.RoleReviewer)
	cs, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Switches", Product: "SW-1", Providers: []string{k.orgA.ID}})
	if err != nil {
		t.Fatal(err)
	}
	k.caseID = cs.ID
	for _, u := range []vault.Actor{f.rev, k.rev2} {
		if _, err := f.acc.Assign(f.ctx, f.office.P, cs.ID, u.P.User.ID, "reviewer", "review", nil); err != nil {
			t.Fatal(err)
		}
	}
	if k.c1Pseudo, err = f.v.Pseudonym(f.ctx, cs.ID, f.op.P.User.OrgID, f.rev.P.User.ID); err != nil {
		t.Fatal(err)
	}
	if k.c2Pseudo, err = f.v.Pseudonym(f.ctx, cs.ID, k.orgA.ID, k.rev2.P.User.ID); err != nil {
		t.Fatal(err)
	}
	if k.c1, err = f.svc.FileComplaint(f.ctx, f.op, NewComplaint{Case: cs.ID, Subject: k.c1Pseudo, Kind: "confidentiality", Description: "MARKER-C1 the design leaked"}); err != nil {
		t.Fatal(err)
	}
	if k.c2, err = f.svc.FileComplaint(f.ctx, k.pa, NewComplaint{Case: cs.ID, Subject: k.c2Pseudo, Kind: "unfair", Description: "MARKER-C2 unfair questions"}); err != nil {
		t.Fatal(err)
	}
	if k.c1, err = f.svc.SetComplaintStatus(f.ctx, f.insp, k.c1.ID, StatusRequest{Status: StatusInvestigating, Note: "MARKER-NOTE-C1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Where("complaint_id = ?", k.c1.ID).Take(&k.c1Invest).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.db.Where("id = ?", k.c1.ID).Take(&k.c1Row).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.db.Where("id = ?", k.c2.ID).Take(&k.c2Row).Error; err != nil {
		t.Fatal(err)
	}
	return k
}

// TestComplaintEditsAreRefused: a complaint's case, filer, subject and
// state, and its change rows, are bound by tags under the rows key. A
// database administrator who moves a complaint to another case, gives it
// to another filer, names another subject, closes it, puts it back to an
// earlier state, or moves, edits or deletes a change row, is refused: no
// party sees the complaint, inspectors and office admins see it marked
// damaged (counted under "damaged"), no action is taken on it
// (complaint_damaged), and each refusal is counted. Restored, it is back,
// and the genuine flow (file, investigate, resolve with recusal) works.
func TestComplaintEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			k := f.complaintCase(t)
			c1, c2 := k.c1.ID, k.c2.ID
			exec := func(t *testing.T, sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			genuine := func(t *testing.T) {
				t.Helper()
				_, svc := f.restart()
				got, counts := f.complaintsOf(svc, f.op)
				if len(got) != 1 || got[c1].Damaged || got[c1].Subject != k.c1Pseudo || got[c1].Description != k.c1.Description ||
					historyNotes(got[c1]) != "investigating:|" || counts[StatusInvestigating] != 1 {
					t.Fatalf("the operator lists %+v, counts %v; want its complaint under investigation", got, counts)
				}
				if got, _ := f.complaintsOf(svc, k.pa); len(got) != 1 || got[c2].Damaged || got[c2].Status != StatusOpen {
					t.Fatalf("A lists %+v, want its open complaint", got)
				}
				got, counts = f.complaintsOf(svc, f.insp)
				if len(got) != 2 || got[c1].Damaged || got[c2].Damaged || got[c1].Subject != f.rev.P.User.ID ||
					historyNotes(got[c1]) != "investigating:MARKER-NOTE-C1|" || counts[StatusInvestigating] != 1 || counts[StatusOpen] != 1 || counts[countDamaged] != 0 {
					t.Fatalf("the inspector lists %+v, counts %v", got, counts)
				}
				w, err := svc.Workload(f.ctx, f.insp)
				if err != nil || w.Complaints.Open != 2 || w.Complaints.ByStatus[countDamaged] != 0 || w.Complaints.OldestOpenAt == nil {
					t.Fatalf("workload %+v, %v", w.Complaints, err)
				}
			}
			// refused: id is seen by no party, listed and read by the
			// inspector and the office as damaged, counted under damaged,
			// and no action is taken on it; refusals counted under table.
			refused := func(t *testing.T, id, table string) {
				t.Helper()
				v, svc := f.restart()
				before := refusals(t, v, table)
				for _, a := range []vault.Actor{f.op, k.pa, f.rev, k.rev2} {
					got, counts := f.complaintsOf(svc, a)
					if c, ok := got[id]; ok {
						t.Fatalf("%s lists the edited complaint: %+v", a.P.User.Username, c)
					}
					if counts[countDamaged] != 0 {
						t.Fatalf("%s counts %v", a.P.User.Username, counts)
					}
					if _, err := svc.GetComplaint(f.ctx, a, id); !errors.Is(err, vault.ErrNotFound) {
						t.Fatalf("%s reads the edited complaint: %v, want not_found", a.P.User.Username, err)
					}
				}
				for _, a := range []vault.Actor{f.insp, f.office} {
					got, counts := f.complaintsOf(svc, a)
					if c, ok := got[id]; ok && (!c.Damaged || counts[countDamaged] != 1) {
						t.Fatalf("%s lists %+v, counts %v; want it damaged", a.P.User.Username, c, counts)
					} else if !ok && a.P.User.ID == f.insp.P.User.ID {
						t.Fatalf("the inspector does not list the edited complaint")
					}
				}
				if c, err := svc.GetComplaint(f.ctx, f.insp, id); err != nil || !c.Damaged {
					t.Fatalf("the inspector reads %+v, %v; want it damaged", c, err)
				}
				w, err := svc.Workload(f.ctx, f.insp)
				if err != nil || w.Complaints.ByStatus[countDamaged] != 1 || w.Complaints.Open != 2 {
					t.Fatalf("workload %+v, %v; want one damaged, two open", w.Complaints, err)
				}
				damaged := func(what string, err error) {
					t.Helper()
					var ve *vault.Error
					if !errors.As(err, &ve) || ve.Code != "complaint_damaged" {
						t.Fatalf("%s on the edited complaint: %v, want complaint_damaged", what, err)
					}
				}
				_, err = svc.SetComplaintStatus(f.ctx, f.insp, id, StatusRequest{Status: StatusInvestigating, Note: "look"})
				damaged("investigating", err)
				_, err = svc.Resolve(f.ctx, f.insp, id, Resolution{Outcome: StatusUpheld, Actions: []string{ActionRecuseSubject}, Note: "recused"})
				damaged("resolving", err)
				_, err = svc.ComplaintEvidence(f.ctx, f.insp, id)
				damaged("the evidence bundle", err)
				if after := refusals(t, v, table); after <= before {
					t.Fatalf("refusals of %s counted %v, then %v", table, before, after)
				}
				if users, err := f.acc.AssignedUsers(f.ctx, k.caseID, "reviewer"); err != nil || len(users) != 2 {
					t.Fatalf("reviewers after refused actions: %v %v, want both", users, err)
				}
			}
			genuine(t)
			// edit makes a change in the database, undone (and the genuine
			// state checked) when the subtest ends, failed or not, so that
			// each subtest starts from the genuine complaints.
			edit := func(t *testing.T, do, undo string, args ...any) {
				t.Helper()
				n := strings.Count(do, "?")
				exec(t, do, args[:n]...)
				t.Cleanup(func() {
					exec(t, undo, args[n:]...)
					genuine(t)
				})
			}

			t.Run("moved to another case", func(t *testing.T) {
				edit(t, "UPDATE supervision_complaints SET case_id = ? WHERE id = ?", "UPDATE supervision_complaints SET case_id = ? WHERE id = ?", f.caseID, c1, k.caseID, c1)
				refused(t, c1, complaintsTable)
			})
			t.Run("filer changed", func(t *testing.T) {
				// A would read the operator's complaint.
				edit(t, "UPDATE supervision_complaints SET filed_by = ?, filed_by_org = ? WHERE id = ?", "UPDATE supervision_complaints SET filed_by = ?, filed_by_org = ? WHERE id = ?", k.pa.P.User.ID, k.orgA.ID, c1, f.op.P.User.ID, f.op.P.User.OrgID, c1)
				refused(t, c1, complaintsTable)
			})
			t.Run("subject changed", func(t *testing.T) {
				// Upheld, rev2 would be recused instead of rev.
				edit(t, "UPDATE supervision_complaints SET subject = ? WHERE id = ?", "UPDATE supervision_complaints SET subject = ? WHERE id = ?", k.rev2.P.User.ID, c1, f.rev.P.User.ID, c1)
				refused(t, c1, complaintsTable)
			})
			t.Run("closed", func(t *testing.T) {
				edit(t, "UPDATE supervision_complaints SET status = ?, outcome = ?, resolved_at = ? WHERE id = ?",
					"UPDATE supervision_complaints SET status = ?, outcome = '', resolved_at = NULL WHERE id = ?",
					StatusDismissed, StatusDismissed, time.Now().UTC(), c1, StatusInvestigating, c1)
				refused(t, c1, complaintsTable)
			})
			t.Run("state tag copied from another complaint", func(t *testing.T) {
				edit(t, "UPDATE supervision_complaints SET status = ?, updated_at = ?, state_tag = ? WHERE id = ?", "UPDATE supervision_complaints SET status = ?, updated_at = ?, state_tag = ? WHERE id = ?", StatusOpen, k.c2Row.UpdatedAt, k.c2Row.StateTag, c1, StatusInvestigating, k.c1Row.UpdatedAt, k.c1Row.StateTag, c1)
				refused(t, c1, complaintsTable)
			})
			t.Run("put back to open with its genuine state", func(t *testing.T) {
				// c1 as it was filed, open, with that state's own tag: its
				// change to investigating is still there.
				var filed complaintRow
				filed = k.c1Row
				filed.Status, filed.UpdatedAt = StatusOpen, k.c1.FiledAt
				key, err := f.v.RowsKey(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				tagComplaint(key, &filed)
				edit(t, "UPDATE supervision_complaints SET status = ?, updated_at = ?, state_tag = ? WHERE id = ?", "UPDATE supervision_complaints SET status = ?, updated_at = ?, state_tag = ? WHERE id = ?", StatusOpen, filed.UpdatedAt, filed.StateTag, c1, StatusInvestigating, k.c1Row.UpdatedAt, k.c1Row.StateTag, c1)
				refused(t, c1, complaintChangesTable)
			})
			t.Run("change row moved to another complaint", func(t *testing.T) {
				// c1's investigation under c2: c1 loses the change to its
				// status, and c2 does not show it.
				edit(t, "UPDATE supervision_complaint_changes SET complaint_id = ? WHERE id = ?", "UPDATE supervision_complaint_changes SET complaint_id = ? WHERE id = ?", c2, k.c1Invest.ID, c1, k.c1Invest.ID)
				refused(t, c1, complaintChangesTable)
				_, svc := f.restart()
				if c, err := svc.GetComplaint(f.ctx, f.insp, c2); err != nil || len(c.History) != 0 || c.Damaged {
					t.Fatalf("the inspector reads c2 as %+v, %v; want it open, no history", c, err)
				}
			})
			t.Run("change row edited", func(t *testing.T) {
				edit(t, `UPDATE supervision_complaint_changes SET "by" = ?, actions = ? WHERE id = ?`, `UPDATE supervision_complaint_changes SET "by" = ?, actions = '' WHERE id = ?`, k.rev2.P.User.ID, ActionRecuseSubject, k.c1Invest.ID, k.c1Invest.By, k.c1Invest.ID)
				refused(t, c1, complaintChangesTable)
			})
			t.Run("change row deleted", func(t *testing.T) {
				exec(t, "DELETE FROM supervision_complaint_changes WHERE id = ?", k.c1Invest.ID)
				t.Cleanup(func() {
					if err := f.db.Create(&k.c1Invest).Error; err != nil {
						t.Fatal(err)
					}
					genuine(t)
				})
				refused(t, c1, complaintChangesTable)
			})

			// The genuine flow: c1 upheld, rev recused, then the DBA
			// clears the recusal flag or puts c1 back under investigation
			// with its state of then.
			_, svc := f.restart()
			up, err := svc.Resolve(f.ctx, f.insp, c1, Resolution{Outcome: StatusUpheld, Actions: []string{ActionRecuseSubject}, Note: "MARKER-RESOLVED"})
			if err != nil || !up.SubjectRecused || up.Damaged {
				t.Fatalf("resolve: %+v, %v", up, err)
			}
			if c, err := svc.GetComplaint(f.ctx, f.op, c1); err != nil || c.Status != StatusUpheld || !c.SubjectRecused ||
				historyNotes(c) != "investigating:|upheld:MARKER-RESOLVED|" {
				t.Fatalf("the operator reads %+v, %v", c, err)
			}
			if users, err := f.acc.AssignedUsers(f.ctx, k.caseID, "reviewer"); err != nil || len(users) != 1 || users[0] != k.rev2.P.User.ID {
				t.Fatalf("reviewers after the recusal: %v %v", users, err)
			}
			t.Run("recusal flag cleared", func(t *testing.T) {
				exec(t, "UPDATE supervision_complaints SET subject_recused = ?, reassignment_requested = ? WHERE id = ?", false, false, c1)
				v, svc := f.restart()
				before := refusals(t, v, complaintsTable)
				if _, err := svc.GetComplaint(f.ctx, f.op, c1); !errors.Is(err, vault.ErrNotFound) {
					t.Fatalf("the operator reads the edited complaint: %v", err)
				}
				if c, err := svc.GetComplaint(f.ctx, f.insp, c1); err != nil || !c.Damaged {
					t.Fatalf("the inspector reads %+v, %v; want it damaged", c, err)
				}
				if after := refusals(t, v, complaintsTable); after <= before {
					t.Fatalf("refusals counted %v, then %v", before, after)
				}
				// Recusal is enforced from access's own records: the
				// cleared flag lets nobody back in.
				if _, err := f.acc.Assign(f.ctx, f.office.P, k.caseID, f.rev.P.User.ID, "reviewer", "again", nil); !errors.Is(err, access.ErrBlocked) {
					t.Fatalf("re-assigning the recused subject: %v, want ErrBlocked", err)
				}
				exec(t, "UPDATE supervision_complaints SET subject_recused = ?, reassignment_requested = ? WHERE id = ?", true, true, c1)
			})
			t.Run("reopened with its earlier state", func(t *testing.T) {
				var resolved complaintRow
				if err := f.db.Where("id = ?", c1).Take(&resolved).Error; err != nil {
					t.Fatal(err)
				}
				exec(t, "UPDATE supervision_complaints SET status = ?, outcome = '', subject_recused = ?, reassignment_requested = ?, resolved_at = NULL, updated_at = ?, state_tag = ? WHERE id = ?",
					StatusInvestigating, false, false, k.c1Row.UpdatedAt, k.c1Row.StateTag, c1)
				v, svc := f.restart()
				before := refusals(t, v, complaintChangesTable)
				if _, err := svc.GetComplaint(f.ctx, f.op, c1); !errors.Is(err, vault.ErrNotFound) {
					t.Fatalf("the operator reads the reopened complaint: %v", err)
				}
				_, err := svc.Resolve(f.ctx, f.insp, c1, Resolution{Outcome: StatusDismissed, Note: "dismissed after all"})
				var ve *vault.Error
				if !errors.As(err, &ve) || ve.Code != "complaint_damaged" {
					t.Fatalf("resolving the reopened complaint: %v, want complaint_damaged", err)
				}
				if after := refusals(t, v, complaintChangesTable); after <= before {
					t.Fatalf("refusals counted %v, then %v", before, after)
				}
				exec(t, "UPDATE supervision_complaints SET status = ?, outcome = ?, subject_recused = ?, reassignment_requested = ?, resolved_at = ?, updated_at = ?, state_tag = ? WHERE id = ?",
					resolved.Status, resolved.Outcome, true, true, resolved.ResolvedAt, resolved.UpdatedAt, resolved.StateTag, c1)
				_, svc = f.restart()
				if c, err := svc.GetComplaint(f.ctx, f.op, c1); err != nil || c.Status != StatusUpheld || c.Damaged {
					t.Fatalf("restored, the operator reads %+v, %v", c, err)
				}
			})
		})
	}
}

// TestComplaintEvidenceEditIsRefused: a complaint's evidence lets
// inspectors read the materials it cites (vault's EvidenceIndex). A
// database administrator who adds a material to a complaint's evidence,
// or moves the complaint to another case, makes it cite nothing.
func TestComplaintEvidenceEditIsRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			id := f.complaintOn(f.caseID)
			key, err := f.v.RowsKey(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var r complaintRow
			if err := f.db.Where("id = ?", id).Take(&r).Error; err != nil {
				t.Fatal(err)
			}
			mat1, mat2 := newID(), newID()
			r.Evidence = mat1
			tagComplaint(key, &r)
			if err := f.db.Model(&r).Select("evidence", "tag").Updates(&r).Error; err != nil {
				t.Fatal(err)
			}
			cited := func(caseID, m string) bool {
				t.Helper()
				_, svc := f.restart()
				ok, err := svc.evidenceCited(f.ctx, caseID, m)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !cited(f.caseID, mat1) || cited(f.caseID, mat2) {
				t.Fatal("the genuine evidence is not what is cited")
			}
			if err := f.db.Exec("UPDATE supervision_complaints SET evidence = ? WHERE id = ?", mat1+","+mat2, id).Error; err != nil {
				t.Fatal(err)
			}
			if cited(f.caseID, mat2) || cited(f.caseID, mat1) {
				t.Fatal("an edited evidence list is cited")
			}
			other := f.newCase()
			if err := f.db.Exec("UPDATE supervision_complaints SET evidence = ?, case_id = ? WHERE id = ?", mat1, other, id).Error; err != nil {
				t.Fatal(err)
			}
			if cited(other, mat1) {
				t.Fatal("a complaint moved to another case cites its evidence there")
			}
		})
	}
}

// TestComplaintTagsBackfill: complaints and changes written before their
// tags (the columns blank, as migration 9 leaves an upgraded database)
// are refused until the start-up backfill tags them, once per table,
// recorded in the audit log; a tag blanked after that stays refused.
func TestComplaintTagsBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			k := f.complaintCase(t)
			for _, q := range []string{"UPDATE supervision_complaints SET tag = '', state_tag = ''", "UPDATE supervision_complaint_changes SET tag = ''"} {
				if err := f.db.Exec(q).Error; err != nil {
					t.Fatal(err)
				}
			}
			_, svc := f.restart()
			if got, _ := f.complaintsOf(svc, f.op); len(got) != 0 {
				t.Fatalf("untagged complaints listed: %+v", got)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyComplaints(f.ctx); err != nil {
				t.Fatal(err)
			}
			got, _ := f.complaintsOf(svc, f.op)
			if c := got[k.c1.ID]; len(got) != 1 || c.Damaged || c.Status != StatusInvestigating || historyNotes(c) != "investigating:|" {
				t.Fatalf("after the backfill the operator lists %+v", got)
			}
			if got, _ := f.complaintsOf(svc, k.pa); len(got) != 1 || got[k.c2.ID].Damaged {
				t.Fatalf("after the backfill A lists %+v", got)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: vault.TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			marks := map[string][]string{}
			for _, e := range evs {
				marks[e.Resource] = append(marks[e.Resource], e.Detail)
			}
			if c, h := marks[complaintsTable], marks[complaintChangesTable]; len(c) != 1 || c[0] != "tagged 2" || len(h) != 1 || h[0] != "tagged 1" {
				t.Fatalf("backfill events %v", marks)
			}
			// The genuine flow goes on from there.
			if _, err := svc.Resolve(f.ctx, f.insp, k.c1.ID, Resolution{Outcome: StatusDismissed, Note: "no leak"}); err != nil {
				t.Fatalf("resolving a backfilled complaint: %v", err)
			}

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE supervision_complaints SET tag = '' WHERE id = ?", k.c2.ID).Error; err != nil {
				t.Fatal(err)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyComplaints(f.ctx); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.complaintsOf(svc, k.pa); len(got) != 0 {
				t.Fatalf("after a blanked tag A lists %+v", got)
			}
		})
	}
}
