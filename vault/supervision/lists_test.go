package supervision

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestListsAuditWhatTheyReturned: a list of complaints, commitments or
// reports leaves in the audit log the ids of exactly the records it
// returned, under the case each is on, in events of bounded size; an empty
// page leaves one event without ids.
func TestListsAuditWhatTheyReturned(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(d, func(t *testing.T) {
			f := newFixture(t, d)
			other := f.newCase()
			// Enough on one case that its ids need more than one event.
			for i := range 100 {
				if i%10 == 3 {
					f.complaintOn(other)
				} else {
					f.complaintOn(f.caseID)
				}
			}
			now := time.Now().UTC()
			for i, c := range []string{f.caseID, other, f.caseID} {
				row := commitmentRow{ID: newID(), CaseID: c, ProviderOrg: "p", OperatorOrg: f.op.P.User.OrgID, Kind: "escrow",
					Text: []byte{}, StatusNote: []byte{}, CreatedBy: f.op.P.User.ID, CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}
				row = f.tagged(row)
				if err := f.db.Create(&row).Error; err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				row := reportRow{ID: newID(), ReceiptHash: "x", Description: []byte{}, Outcome: []byte{}, Status: ReportReceived, CreatedAt: now, UpdatedAt: now}
				row = f.taggedReport(row)
				if err := f.db.Create(&row).Error; err != nil {
					t.Fatal(err)
				}
			}

			as := func(rid string) { f.insp.RequestID = rid }
			as("list-complaints")
			cs, err := f.svc.ListComplaints(f.ctx, f.insp, ComplaintFilter{Limit: 95})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, c := range cs.Items {
				got[c.ID] = c.CaseID
			}
			if len(got) != 95 || cs.NextCursor == "" {
				t.Fatalf("%d complaints listed (next %q), want 95 and more", len(got), cs.NextCursor)
			}
			if n := f.listAudited("complaint.list", "list-complaints", got); n < 3 {
				t.Fatalf("%d complaint.list events for 95 ids on two cases, want them split", n)
			}

			as("list-commitments")
			ms, err := f.svc.ListCommitments(f.ctx, f.insp, CommitmentFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got = map[string]string{}
			for _, c := range ms.Items {
				got[c.ID] = c.CaseID
			}
			if len(got) != 3 {
				t.Fatalf("%d commitments listed, want 3", len(got))
			}
			if n := f.listAudited("commitment.list", "list-commitments", got); n != 2 {
				t.Fatalf("%d commitment.list events for two cases, want 2", n)
			}

			as("list-reports")
			rs, err := f.svc.ListReports(f.ctx, f.insp, ReportFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got = map[string]string{}
			for _, r := range rs.Items {
				got[r.ID] = ""
			}
			if len(got) != 2 {
				t.Fatalf("%d reports listed, want 2", len(got))
			}
			if n := f.listAudited("report.list", "list-reports", got); n != 1 {
				t.Fatalf("%d report.list events, want 1", n)
			}

			as("list-none")
			if cs, err = f.svc.ListComplaints(f.ctx, f.insp, ComplaintFilter{Status: StatusUpheld, CaseID: other}); err != nil || len(cs.Items) != 0 {
				t.Fatalf("upheld complaints: %v %v", cs.Items, err)
			}
			evs := f.requestEvents("complaint.list", "list-none")
			if len(evs) != 1 || evs[0].Detail != "" || evs[0].CaseID != other {
				t.Fatalf("an empty page's events: %+v, want one on the case filtered by, without ids", evs)
			}
		})
	}
}

// requestEvents are the events of action made by the request rid.
func (f *fixture) requestEvents(action, rid string) []audit.Event {
	f.t.Helper()
	evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: action, Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range evs {
		if e.RequestID == rid {
			out = append(out, e)
		}
	}
	return out
}

// listAudited checks that the request rid's events of action name exactly
// the ids of returned (id -> case), each under its case, every detail
// within the audit log's bound; it returns how many events there were.
func (f *fixture) listAudited(action, rid string, returned map[string]string) int {
	f.t.Helper()
	evs := f.requestEvents(action, rid)
	named := map[string]string{}
	for _, e := range evs {
		ids, ok := strings.CutPrefix(e.Detail, "ids=")
		if !ok || len(e.Detail) > 2048 || e.Outcome != audit.Allowed {
			f.t.Fatalf("%s event %d: %s, detail of %d bytes %.40q", action, e.Seq, e.Outcome, len(e.Detail), e.Detail)
		}
		for _, id := range strings.Split(ids, ",") {
			if _, dup := named[id]; dup || returned[id] != e.CaseID {
				f.t.Fatalf("%s: id %s named twice, or under case %q (it is on %q)", action, id, e.CaseID, returned[id])
			}
			named[id] = e.CaseID
		}
	}
	if !maps.Equal(named, returned) {
		f.t.Fatalf("%s events name %v, the page returned %v", action, slices.Sorted(maps.Keys(named)), slices.Sorted(maps.Keys(returned)))
	}
	return len(evs)
}
