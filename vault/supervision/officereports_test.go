package supervision

import (
	"strings"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault"
)

// TestOfficeReportsFollowCheckedCommitments: the office lists the reports
// about commitments on the cases it may list, not those about a commitment
// on a party's draft. A database administrator who moves such a commitment
// onto a submitted case (its case_id) shows the office nothing more: the
// commitment's tag binds its case, the reports naming it (filed about it,
// or linked to it by an inspector) stay out of the office's list, and the
// refusal is counted. Moved back, the list is as before.
func TestOfficeReportsFollowCheckedCommitments(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA := f.org("Router Maker", access.OrgProvider)
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
			report := func(addr, commitment string) string {
				t.Helper()
				r, err := f.svc.FileReport(f.ctx, Client{Addr: addr, RequestID: "test-" + addr}, NewReport{Commitment: commitment, Description: "they broke it"})
				if err != nil {
					t.Fatal(err)
				}
				return r.ID
			}
			aboutDraft, aboutFiled := report("192.0.2.1", onDraft.ID), report("192.0.2.2", onFiled.ID)
			linked := report("192.0.2.3", "")
			if _, err := f.svc.SetReportStatus(f.ctx, f.insp, linked, ReportStatusChange{Status: ReportTriaged, Link: &Link{Commitment: onDraft.ID}}); err != nil {
				t.Fatal(err)
			}
			// Linked to the filed case by an inspector: the office's by its
			// case, whatever its commitment.
			onCase := report("192.0.2.4", onDraft.ID)
			if _, err := f.svc.SetReportStatus(f.ctx, f.insp, onCase, ReportStatusChange{Status: ReportTriaged, Link: &Link{Case: filed}}); err != nil {
				t.Fatal(err)
			}
			want := aboutFiled + "," + onCase
			officeLists := func(svc *Service) string {
				t.Helper()
				var ids []string
				flt := ReportFilter{Limit: 1}
				for {
					page, err := svc.ListReports(f.ctx, f.office, flt)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range page.Items {
						ids = append(ids, r.ID)
					}
					if page.NextCursor == "" {
						return strings.Join(ids, ",")
					}
					flt.Cursor = page.NextCursor
				}
			}
			if got := officeLists(f.svc); got != want {
				t.Fatalf("the office lists %s, want %s", got, want)
			}
			move := func(caseID string) {
				t.Helper()
				if err := f.db.Exec("UPDATE supervision_commitments SET case_id = ? WHERE id = ?", caseID, onDraft.ID).Error; err != nil {
					t.Fatal(err)
				}
			}
			move(filed)
			v, svc := f.restart()
			if got := officeLists(svc); got != want {
				t.Fatalf("after the draft's commitment was moved onto the filed case, the office lists %s, want %s (%s and %s are about the draft's)",
					got, want, aboutDraft, linked)
			}
			if n := refusals(t, v, commitmentsTable); n == 0 {
				t.Fatal("the moved commitment's refusal is not counted")
			}
			move(draft)
			_, svc = f.restart()
			if got := officeLists(svc); got != want {
				t.Fatalf("moved back, the office lists %s", got)
			}
			// The inspectors list every report, the moved one's too.
			page, err := svc.ListReports(f.ctx, f.insp, ReportFilter{})
			if err != nil || len(page.Items) != 4 {
				t.Fatalf("the inspector lists %d reports (%v), want 4", len(page.Items), err)
			}
		})
	}
}
