package supervision

import (
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestCommitmentOrgColumnsGrantNothing (review h30h F3): a commitment's
// operator_org is a copy of the case's operator that no tag binds. A
// database administrator who set it to a rival operator made the rival
// read the commitment, text and all; the list now also needs the case to
// be the caller's by its parties tag. The genuine operator still lists it.
func TestCommitmentOrgColumnsGrantNothing(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			rival := f.user("operator2", f.org("Rival Grid", access.OrgOperator), access.RoleOperator)
			now := time.Now().UTC().Truncate(time.Microsecond)
			row := commitmentRow{ID: newID(), CaseID: f.caseID, ProviderOrg: "p", OperatorOrg: f.op.P.User.OrgID, Kind: "escrow",
				StatusNote: []byte{}, CreatedBy: f.op.P.User.ID, CreatedAt: now, Status: CommitmentPending}
			var err error
			if row.Text, err = f.svc.seal(f.ctx, label("supervision_commitments", "text", row.ID), "source code escrow with the bank"); err != nil {
				t.Fatal(err)
			}
			row = f.tagged(row)
			if err := f.db.Create(&row).Error; err != nil {
				t.Fatal(err)
			}
			if err := f.db.Exec("UPDATE supervision_commitments SET operator_org = ? WHERE id = ?", rival.P.User.OrgID, row.ID).Error; err != nil {
				t.Fatal(err)
			}
			page, err := f.svc.ListCommitments(f.ctx, rival, CommitmentFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page.Items {
				t.Errorf("the rival operator reads commitment %s on case %s: %q", c.ID, c.CaseID, c.Text)
			}
			if err := f.db.Exec("UPDATE supervision_commitments SET operator_org = ? WHERE id = ?", f.op.P.User.OrgID, row.ID).Error; err != nil {
				t.Fatal(err)
			}
			page, err = f.svc.ListCommitments(f.ctx, f.op, CommitmentFilter{})
			if err != nil || len(page.Items) != 1 {
				t.Fatalf("the genuine operator lists %d commitments, %v; want its one", len(page.Items), err)
			}
		})
	}
}
