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

// TestCommitmentStatusEditsAreRefused: a commitment's status columns are
// proven by its latest finding, a tagged row. A database administrator who
// flips its status (breached to kept), bumps its version, puts back the
// columns of an older finding, deletes the latest finding, or sets it back
// to pending is refused: no party lists or urges it, inspectors and the
// office list it as unverified with no status note or inspector, a finding
// on it answers commitment_status_damaged, and each refusal is counted.
// Restored, it is back; a further finding still applies on its version.
func TestCommitmentStatusEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA := f.org("Router Maker", access.OrgProvider)
			pa := f.user("prova", orgA, access.RoleProvider)
			cs, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{orgA.ID}})
			if err != nil {
				t.Fatal(err)
			}
			// Filed, so that the office lists its commitments too.
			for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
				body := k + " document"
				if _, err := f.v.Upload(f.ctx, f.op, cs.ID, vault.Upload{Kind: k, Filename: k + ".txt", ContentType: "text/plain",
					Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.v.Submit(f.ctx, f.op, cs.ID); err != nil {
				t.Fatal(err)
			}
			c, err := f.svc.AddCommitment(f.ctx, pa, cs.ID, NewCommitment{Kind: "no_illegal_data", Text: "source escrow"})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.commitmentsOf(f.svc, pa, CommitmentFilter{})[c.ID]; got.Status != CommitmentPending || len(got.History) != 0 {
				t.Fatalf("a new commitment reads %q with %d findings", got.Status, len(got.History))
			}
			if _, err := f.svc.SetCommitmentStatus(f.ctx, f.insp, c.ID, CommitmentStatusRequest{Status: CommitmentKept, Note: "first look"}); err != nil {
				t.Fatal(err)
			}
			got, err := f.svc.SetCommitmentStatus(f.ctx, f.insp, c.ID, CommitmentStatusRequest{Status: CommitmentBreached, Note: "MARKER-BREACH"})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != CommitmentBreached || got.StatusNote != "MARKER-BREACH" || got.StatusBy != f.insp.P.User.ID || len(got.History) != 2 {
				t.Fatalf("the second finding answers %+v", got)
			}
			var row commitmentRow
			if err := f.db.Where("id = ?", c.ID).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			var hs []commitmentChangeRow
			if err := f.db.Where("commitment_id = ?", c.ID).Order("version").Find(&hs).Error; err != nil || len(hs) != 2 || row.Version != 2 {
				t.Fatalf("%d findings, version %d (%v)", len(hs), row.Version, err)
			}
			exec := func(t *testing.T, sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			restore := func(t *testing.T) {
				t.Helper()
				exec(t, `UPDATE supervision_commitments SET status = ?, status_by = ?, status_at = ?, version = ? WHERE id = ?`,
					row.Status, row.StatusBy, row.StatusAt, row.Version, row.ID)
			}
			genuine := func(t *testing.T, svc *Service) {
				t.Helper()
				for _, a := range []vault.Actor{pa, f.op, f.insp, f.office} {
					got, ok := f.commitmentsOf(svc, a, CommitmentFilter{})[c.ID]
					if !ok || got.Status != CommitmentBreached || got.StatusNote != "MARKER-BREACH" || len(got.History) != 2 {
						t.Fatalf("%s lists %+v (%v)", a.P.User.Username, got, ok)
					}
				}
				if _, err := svc.UrgeCommitment(f.ctx, f.op, cs.ID, c.ID, UrgeRequest{Note: "keep it"}); err != nil {
					t.Fatalf("urge: %v", err)
				}
			}
			refused := func(t *testing.T) {
				t.Helper()
				v, svc := f.restart()
				before := refusals(t, v, commitmentsTable)
				for _, a := range []vault.Actor{pa, f.op} {
					if got, ok := f.commitmentsOf(svc, a, CommitmentFilter{})[c.ID]; ok {
						t.Fatalf("%s lists the edited commitment as %q", a.P.User.Username, got.Status)
					}
				}
				for _, a := range []vault.Actor{f.insp, f.office} {
					got, ok := f.commitmentsOf(svc, a, CommitmentFilter{})[c.ID]
					if !ok || got.Status != CommitmentUnverified || got.StatusNote != "" || got.StatusBy != "" || got.StatusAt != nil {
						t.Fatalf("%s lists %+v (%v), want it unverified", a.P.User.Username, got, ok)
					}
				}
				if _, err := svc.UrgeCommitment(f.ctx, f.op, cs.ID, c.ID, UrgeRequest{Note: "keep it"}); !errors.Is(err, vault.ErrNotFound) {
					t.Fatalf("urging the edited commitment: %v, want not_found", err)
				}
				_, err := svc.SetCommitmentStatus(f.ctx, f.insp, c.ID, CommitmentStatusRequest{Status: CommitmentKept, Note: "fine"})
				var ve *vault.Error
				if !errors.As(err, &ve) || ve.Code != "commitment_status_damaged" {
					t.Fatalf("a finding on the edited commitment: %v, want commitment_status_damaged", err)
				}
				if after := refusals(t, v, commitmentsTable); after <= before {
					t.Fatalf("refusals counted %v, then %v", before, after)
				}
			}
			genuine(t, f.svc)

			t.Run("status flipped", func(t *testing.T) {
				exec(t, "UPDATE supervision_commitments SET status = ? WHERE id = ?", CommitmentKept, c.ID)
				refused(t)
				restore(t)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("version bumped", func(t *testing.T) {
				exec(t, "UPDATE supervision_commitments SET version = ? WHERE id = ?", row.Version+1, c.ID)
				refused(t)
				restore(t)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("older finding put back", func(t *testing.T) {
				old := hs[0]
				exec(t, `UPDATE supervision_commitments SET status = ?, status_by = ?, status_at = ?, version = ? WHERE id = ?`,
					old.Status, old.By, old.At, old.Version, c.ID)
				refused(t)
				restore(t)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("latest finding deleted", func(t *testing.T) {
				exec(t, "DELETE FROM supervision_commitment_changes WHERE id = ?", hs[1].ID)
				refused(t)
				last := hs[1]
				if err := f.db.Create(&last).Error; err != nil {
					t.Fatal(err)
				}
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("set back to pending", func(t *testing.T) {
				exec(t, `UPDATE supervision_commitments SET status = ?, status_by = '', status_at = NULL, version = 0 WHERE id = ?`, CommitmentPending, c.ID)
				refused(t)
				restore(t)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("inspector edited", func(t *testing.T) {
				exec(t, `UPDATE supervision_commitments SET status_by = ? WHERE id = ?`, f.office.P.User.ID, c.ID)
				refused(t)
				restore(t)
				_, svc := f.restart()
				genuine(t, svc)
			})

			// A third finding applies on version 2.
			_, svc := f.restart()
			got, err = svc.SetCommitmentStatus(f.ctx, f.insp, c.ID, CommitmentStatusRequest{Status: CommitmentUnderInvestigation, Note: "again"})
			if err != nil || got.Status != CommitmentUnderInvestigation || len(got.History) != 3 {
				t.Fatalf("a third finding: %+v, %v", got, err)
			}

			// A row read just before another finding committed is read
			// again, not refused.
			v, svc := f.restart()
			var stale commitmentRow
			if err := f.db.Where("id = ?", c.ID).Take(&stale).Error; err != nil {
				t.Fatal(err)
			}
			if _, err := svc.SetCommitmentStatus(f.ctx, f.insp, c.ID, CommitmentStatusRequest{Status: CommitmentKept, Note: "fourth"}); err != nil {
				t.Fatal(err)
			}
			key, err := v.RowsKey(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			before := refusals(t, v, commitmentsTable)
			hs, proven, err := svc.findings(f.ctx, key, &stale)
			if err != nil || !proven || len(hs) != 4 || stale.Version != 4 || stale.Status != CommitmentKept {
				t.Fatalf("a row read before the fourth finding: %d findings, proven %v, version %d, %v", len(hs), proven, stale.Version, err)
			}
			if after := refusals(t, v, commitmentsTable); after != before {
				t.Fatalf("a finding recorded meanwhile counted as a refusal (%v, then %v)", before, after)
			}
		})
	}
}

// TestLegacyFindingsMovedIntoHistory: a finding recorded before histories
// were kept lives only in the commitment's status columns, at version 0,
// which a commitment's status cannot otherwise be. Until the start-up
// backfill it proves nothing (no party lists it); the backfill makes it
// the first finding of the history, once, recorded in the audit log, and
// the next finding follows it.
func TestLegacyFindingsMovedIntoHistory(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA := f.org("Router Maker", access.OrgProvider)
			pa := f.user("prova", orgA, access.RoleProvider)
			cs, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{orgA.ID}})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, text := range []string{"found before histories", "still pending"} {
				c, err := f.svc.AddCommitment(f.ctx, pa, cs.ID, NewCommitment{Kind: "other", Text: text})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID)
			}
			note, err := f.svc.seal(f.ctx, label(commitmentsTable, "status_note", ids[0]), "MARKER-LEGACY")
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now().UTC().Truncate(time.Microsecond)
			if err := f.db.Exec("UPDATE supervision_commitments SET status = ?, status_note = ?, status_by = ?, status_at = ? WHERE id = ?",
				CommitmentBreached, note, f.insp.P.User.ID, at, ids[0]).Error; err != nil {
				t.Fatal(err)
			}
			_, svc := f.restart()
			if got := f.commitmentsOf(svc, pa, CommitmentFilter{}); len(got) != 1 {
				t.Fatalf("before the backfill the provider lists %d commitments, want the pending one", len(got))
			}
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			got := f.commitmentsOf(svc, pa, CommitmentFilter{})
			c := got[ids[0]]
			if len(got) != 2 || c.Status != CommitmentBreached || c.StatusNote != "MARKER-LEGACY" || len(c.History) != 1 ||
				c.History[0].Note != "MARKER-LEGACY" || !c.StatusAt.Equal(at) || got[ids[1]].Status != CommitmentPending {
				t.Fatalf("after the backfill the provider lists %+v", got)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: vault.TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var marks []string
			for _, e := range evs {
				if e.Resource == legacyStatusMarker {
					marks = append(marks, e.Detail)
				}
			}
			if len(marks) != 1 || marks[0] != "tagged 1" {
				t.Fatalf("backfill events %v", marks)
			}
			next, err := svc.SetCommitmentStatus(f.ctx, f.insp, ids[0], CommitmentStatusRequest{Status: CommitmentKept, Note: "remedied"})
			if err != nil || next.Status != CommitmentKept || len(next.History) != 2 {
				t.Fatalf("a finding after the backfill: %+v, %v", next, err)
			}
		})
	}
}
