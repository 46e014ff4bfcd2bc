package supervision

import (
	"errors"
	"slices"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestUpheldRecusalIsAtomicWithTheResolution: when the recusal of an
// upheld complaint fails, nothing of the resolution stands (the complaint
// is still under investigation, the subject keeps the assignment, the
// trail follows each allowed event with an error), and the inspector's
// retry, once the fault is gone, upholds and recuses in one go.
func TestUpheldRecusalIsAtomicWithTheResolution(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(d, func(t *testing.T) {
			f := newFixture(t, d)
			id := f.investigatedComplaint()
			uphold := Resolution{Outcome: StatusUpheld, Actions: []string{ActionRecuseSubject}, Note: "the design was leaked"}

			f.failRecusals(true)
			if _, err := f.svc.Resolve(f.ctx, f.insp, id, uphold); err == nil {
				t.Fatal("resolved although the recusal failed")
			}
			var row complaintRow
			if err := f.db.Where("id = ?", id).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if row.Status != StatusInvestigating || row.Outcome != "" || row.SubjectRecused || row.ReassignmentRequested || row.ResolvedAt != nil {
				t.Fatalf("after a failed recusal the complaint is %s (outcome %q, recused %v, reassignment %v, resolved %v); want it untouched",
					row.Status, row.Outcome, row.SubjectRecused, row.ReassignmentRequested, row.ResolvedAt)
			}
			var changes int64
			if err := f.db.Model(&complaintChangeRow{}).Where("complaint_id = ?", id).Count(&changes).Error; err != nil {
				t.Fatal(err)
			}
			if changes != 1 {
				t.Fatalf("%d status changes besides the investigation recorded for a resolution that failed", changes-1)
			}
			if users, err := f.acc.AssignedUsers(f.ctx, f.caseID, "reviewer"); err != nil || !slices.Contains(users, f.rev.P.User.ID) {
				t.Fatalf("the subject lost the assignment although nothing was resolved: %v %v", users, err)
			}
			for action, want := range map[string][]string{
				"complaint.resolve":           {"allowed:upheld", "error:internal;undoes=allowed"},
				"assignment.recuse":           {"allowed:complaint_upheld", "error:internal;undoes=allowed"},
				"case.reassignment_requested": {"allowed:subject_recused", "error:internal;undoes=allowed"},
			} {
				if got := f.trail(action); !slices.Equal(got, want) {
					t.Fatalf("%s events %v, want %v", action, got, want)
				}
			}

			f.failRecusals(false)
			c, err := f.svc.Resolve(f.ctx, f.insp, id, uphold)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if c.Status != StatusUpheld || !c.SubjectRecused || !c.ReassignmentRequested || len(c.History) != 2 {
				t.Fatalf("after the retry: %s, recused %v, reassignment %v, %d changes; want upheld, recused, 2 changes (investigation, resolution)",
					c.Status, c.SubjectRecused, c.ReassignmentRequested, len(c.History))
			}
			if users, err := f.acc.AssignedUsers(f.ctx, f.caseID, ""); err != nil || len(users) != 0 {
				t.Fatalf("assigned after the recusal: %v %v", users, err)
			}
			if _, err := f.acc.Assign(f.ctx, f.office.P, f.caseID, f.rev.P.User.ID, "reviewer", "again", nil); !errors.Is(err, access.ErrBlocked) {
				t.Fatalf("re-assigning the recused subject: %v, want ErrBlocked", err)
			}
			if got, want := f.trail("complaint.resolve"), []string{"allowed:upheld", "error:internal;undoes=allowed", "allowed:upheld"}; !slices.Equal(got, want) {
				t.Fatalf("complaint.resolve events %v, want %v", got, want)
			}
		})
	}
}
