package supervision

import (
	"errors"
	"strings"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault"
)

// TestReportEditsAreRefused: a report's links, what its reporter named and
// its status are bound by its tag. A database administrator who relinks a
// report about a party's draft to one of the office's cases (or to a
// commitment on one), points it at another provider, or closes or reopens
// it, is refused: the office does not list it, inspectors see it as
// unverified without its links, nobody moves its status or writes on it
// (report_damaged), and each refusal is counted. So is one whose receipt
// hash was replaced by that of the administrator's own secret, which
// would open the conversation to them. Restored, it is back, and
// an inspector still links and closes it.
func TestReportEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA, orgB := f.org("Router Maker", access.OrgProvider), f.org("Switch Maker", access.OrgProvider)
			pa := f.user("prova", orgA, access.RoleProvider)
			newCase := func() string {
				t.Helper()
				c, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{orgA.ID}})
				if err != nil {
					t.Fatal(err)
				}
				return c.ID
			}
			draft, filed := newCase(), newCase()
			for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
				body := k + " document"
				if _, err := f.v.Upload(f.ctx, f.op, filed, vault.Upload{Kind: k, Filename: k + ".txt", ContentType: "text/plain",
					Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.v.Submit(f.ctx, f.op, filed); err != nil {
				t.Fatal(err)
			}
			onDraft, err := f.svc.AddCommitment(f.ctx, pa, draft, NewCommitment{Kind: "other", Text: "on the draft"})
			if err != nil {
				t.Fatal(err)
			}
			onFiled, err := f.svc.AddCommitment(f.ctx, pa, filed, NewCommitment{Kind: "other", Text: "on the filed case"})
			if err != nil {
				t.Fatal(err)
			}
			cl := Client{Addr: "192.0.2.1", RequestID: "test-reporter"}
			filedRep, err := f.svc.FileReport(f.ctx, cl, NewReport{Commitment: onDraft.ID, Description: "they broke it"})
			if err != nil {
				t.Fatal(err)
			}
			id := filedRep.ID
			// Linked by an inspector to the draft: not the office's.
			link := Link{Provider: orgA.ID, Commitment: onDraft.ID, Case: draft}
			if _, err := f.svc.SetReportStatus(f.ctx, f.insp, id, ReportStatusChange{Status: ReportTriaged, Link: &link}); err != nil {
				t.Fatal(err)
			}
			var row reportRow
			if err := f.db.Where("id = ?", id).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			exec := func(t *testing.T, sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			restore := func(t *testing.T) {
				t.Helper()
				exec(t, "UPDATE supervision_reports SET subject_org = ?, commitment = ?, status = ?, link_provider = ?, link_commitment = ?, link_case = ? WHERE id = ?",
					row.SubjectOrg, row.Commitment, row.Status, row.LinkProvider, row.LinkCommitment, row.LinkCase, id)
			}
			listed := func(svc *Service, a vault.Actor) map[string]Report {
				t.Helper()
				out := map[string]Report{}
				page, err := svc.ListReports(f.ctx, a, ReportFilter{})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Items {
					out[r.ID] = r
				}
				return out
			}
			genuine := func(t *testing.T, svc *Service) {
				t.Helper()
				if got, ok := listed(svc, f.office)[id]; ok {
					t.Fatalf("the office lists a report about the draft: %+v", got.Link)
				}
				if got := listed(svc, f.insp)[id]; got.Status != ReportTriaged || got.Link != link || got.Commitment != onDraft.ID {
					t.Fatalf("the inspector lists %+v", got)
				}
				if got, err := svc.GetReport(f.ctx, f.insp, id); err != nil || got.Link != link {
					t.Fatalf("the inspector reads %+v, %v", got, err)
				}
				if got, err := svc.ReporterStatus(f.ctx, cl, filedRep.Receipt); err != nil || got.Status != ReportTriaged {
					t.Fatalf("the reporter reads %+v, %v", got, err)
				}
			}
			damaged := func(t *testing.T, err error, what string) {
				t.Helper()
				var ve *vault.Error
				if !errors.As(err, &ve) || ve.Code != "report_damaged" {
					t.Fatalf("%s: %v, want report_damaged", what, err)
				}
			}
			refused := func(t *testing.T) {
				t.Helper()
				v, svc := f.restart()
				before := refusals(t, v, reportsTable)
				if got, ok := listed(svc, f.office)[id]; ok {
					t.Fatalf("the office lists the edited report: %+v", got.Link)
				}
				if got, ok := listed(svc, f.insp)[id]; !ok || got.Status != ReportUnverified || got.Link != (Link{}) || got.Commitment != "" {
					t.Fatalf("the inspector lists %+v (%v), want it unverified", got, ok)
				}
				if got, err := svc.GetReport(f.ctx, f.insp, id); err != nil || got.Status != ReportUnverified || got.Link != (Link{}) {
					t.Fatalf("the inspector reads %+v, %v", got, err)
				}
				_, err := svc.SetReportStatus(f.ctx, f.insp, id, ReportStatusChange{Status: ReportInvestigating})
				damaged(t, err, "moving its status")
				_, err = svc.InspectorMessage(f.ctx, f.insp, id, MessageRequest{Text: "hello"})
				damaged(t, err, "the inspector's message")
				_, err = svc.ReporterMessage(f.ctx, cl, filedRep.Receipt, MessageRequest{Text: "hello"})
				damaged(t, err, "the reporter's message")
				_, err = svc.ReporterStatus(f.ctx, cl, filedRep.Receipt)
				damaged(t, err, "the reporter's status")
				if after := refusals(t, v, reportsTable); after <= before {
					t.Fatalf("refusals counted %v, then %v", before, after)
				}
			}
			genuine(t, f.svc)

			for _, c := range []struct{ name, sql, arg string }{
				{"relinked to the office's case", "link_case", filed},
				{"relinked to a commitment on the office's case", "link_commitment", onFiled.ID},
				{"named commitment edited", "commitment", onFiled.ID},
				{"relinked to another provider", "link_provider", orgB.ID},
				{"named organisation edited", "subject_org", orgB.ID},
				{"closed", "status", ReportClosed},
				{"moved back to received", "status", ReportReceived},
			} {
				t.Run(c.name, func(t *testing.T) {
					exec(t, "UPDATE supervision_reports SET "+c.sql+" = ? WHERE id = ?", c.arg, id)
					refused(t)
					restore(t)
					_, svc := f.restart()
					genuine(t, svc)
				})
			}
			t.Run("receipt hash replaced", func(t *testing.T) {
				// The administrator's own secret, hashed as crvault does.
				secret := newSecret()
				hash, err := f.svc.cfg.Hasher.Hash(secret)
				if err != nil {
					t.Fatal(err)
				}
				exec(t, "UPDATE supervision_reports SET receipt_hash = ? WHERE id = ?", hash, id)
				v, svc := f.restart()
				before := refusals(t, v, reportsTable)
				admin := Client{Addr: "192.0.2.9"}
				_, err = svc.ReporterStatus(f.ctx, admin, id+"."+secret)
				damaged(t, err, "following it up with the administrator's receipt")
				_, err = svc.ReporterMessage(f.ctx, admin, id+"."+secret, MessageRequest{Text: "hello"})
				damaged(t, err, "writing with the administrator's receipt")
				if got := listed(svc, f.insp)[id]; got.Status != ReportUnverified {
					t.Fatalf("the inspector lists it as %q", got.Status)
				}
				if after := refusals(t, v, reportsTable); after <= before {
					t.Fatalf("refusals counted %v, then %v", before, after)
				}
				exec(t, "UPDATE supervision_reports SET receipt_hash = ? WHERE id = ?", row.ReceiptHash, id)
				_, svc = f.restart()
				genuine(t, svc)
			})
			t.Run("tag copied from another report", func(t *testing.T) {
				other, err := f.svc.FileReport(f.ctx, Client{Addr: "192.0.2.2"}, NewReport{Description: "another"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.SetReportStatus(f.ctx, f.insp, other.ID, ReportStatusChange{Status: ReportTriaged, Link: &Link{Case: filed}}); err != nil {
					t.Fatal(err)
				}
				var o reportRow
				if err := f.db.Where("id = ?", other.ID).Take(&o).Error; err != nil {
					t.Fatal(err)
				}
				exec(t, "UPDATE supervision_reports SET commitment = '', link_provider = '', link_commitment = '', link_case = ?, tag = ? WHERE id = ?", filed, o.Tag, id)
				refused(t)
				restore(t)
				exec(t, "UPDATE supervision_reports SET tag = ? WHERE id = ?", row.Tag, id)
				_, svc := f.restart()
				genuine(t, svc)
			})

			// An inspector relinks it to the filed case and closes it: the
			// office lists it, the reporter reads it closed.
			_, svc := f.restart()
			if _, err := svc.SetReportStatus(f.ctx, f.insp, id, ReportStatusChange{Status: ReportInvestigating, Link: &Link{Case: filed}}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.InspectorMessage(f.ctx, f.insp, id, MessageRequest{Text: "looking"}); err != nil {
				t.Fatal(err)
			}
			closed, err := svc.SetReportStatus(f.ctx, f.insp, id, ReportStatusChange{Status: ReportClosed, Outcome: "settled"})
			if err != nil || closed.Status != ReportClosed || closed.Link.Case != filed || closed.Link.Provider != orgA.ID {
				t.Fatalf("closing: %+v, %v", closed, err)
			}
			_, svc = f.restart()
			if got, ok := listed(svc, f.office)[id]; !ok || got.Status != ReportClosed {
				t.Fatalf("the office lists %+v (%v), want it closed", got, ok)
			}
			if got, err := svc.ReporterStatus(f.ctx, cl, filedRep.Receipt); err != nil || got.Status != ReportClosed || got.Outcome != "settled" {
				t.Fatalf("the reporter reads %+v, %v", got, err)
			}
			_, err = svc.ReporterMessage(f.ctx, cl, filedRep.Receipt, MessageRequest{Text: "thanks"})
			var ve *vault.Error
			if !errors.As(err, &ve) || ve.Code != "report_closed" {
				t.Fatalf("a message on the closed report: %v, want report_closed", err)
			}
		})
	}
}

// TestReportTagsBackfill: reports written before their tags (the column
// blank, as migration 9 leaves an upgraded database) are unverified until
// the start-up backfill tags them, once, recorded in the audit log; then
// they are whole again. A tag blanked after that stays refused.
func TestReportTagsBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			var ids []string
			for i, addr := range []string{"192.0.2.1", "192.0.2.2"} {
				r, err := f.svc.FileReport(f.ctx, Client{Addr: addr}, NewReport{Description: "report"})
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					if _, err := f.svc.SetReportStatus(f.ctx, f.insp, r.ID, ReportStatusChange{Status: ReportTriaged, Link: &Link{Case: f.caseID}}); err != nil {
						t.Fatal(err)
					}
				}
				ids = append(ids, r.ID)
			}
			if err := f.db.Exec("UPDATE supervision_reports SET tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			statuses := func(svc *Service) map[string]string {
				t.Helper()
				page, err := svc.ListReports(f.ctx, f.insp, ReportFilter{})
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]string{}
				for _, r := range page.Items {
					out[r.ID] = r.Status
				}
				return out
			}
			_, svc := f.restart()
			if got := statuses(svc); got[ids[0]] != ReportUnverified || got[ids[1]] != ReportUnverified {
				t.Fatalf("untagged reports listed as %v", got)
			}
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			_, svc = f.restart()
			if got := statuses(svc); got[ids[0]] != ReportTriaged || got[ids[1]] != ReportReceived {
				t.Fatalf("after the backfill reports listed as %v", got)
			}
			if r, err := svc.GetReport(f.ctx, f.insp, ids[0]); err != nil || r.Link.Case != f.caseID {
				t.Fatalf("after the backfill the linked report reads %+v, %v", r, err)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: vault.TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var marks []string
			for _, e := range evs {
				if e.Resource == reportsTable {
					marks = append(marks, e.Detail)
				}
			}
			if len(marks) != 1 || marks[0] != "tagged 2" {
				t.Fatalf("backfill events %v", marks)
			}
			if err := f.db.Exec("UPDATE supervision_reports SET tag = '' WHERE id = ?", ids[1]).Error; err != nil {
				t.Fatal(err)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			if got := statuses(svc); got[ids[1]] != ReportUnverified {
				t.Fatalf("after a blanked tag the report is listed as %q", got[ids[1]])
			}
		})
	}
}
