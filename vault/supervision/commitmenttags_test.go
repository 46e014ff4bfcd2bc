package supervision

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault"
)

// commitmentsOf lists every commitment a sees, by id.
func (f *fixture) commitmentsOf(svc *Service, a vault.Actor, flt CommitmentFilter) map[string]Commitment {
	f.t.Helper()
	out := map[string]Commitment{}
	flt.Limit = 1
	for {
		page, err := svc.ListCommitments(f.ctx, a, flt)
		if err != nil {
			f.t.Fatalf("%s lists commitments: %v", a.P.User.Username, err)
		}
		for _, c := range page.Items {
			out[c.ID] = c
		}
		if page.NextCursor == "" {
			return out
		}
		flt.Cursor = page.NextCursor
	}
}

// refusals reads crvault_vault_row_tag_refusals_total{table} of v.
func refusals(t *testing.T, v *vault.Service, table string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range v.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "crvault_vault_row_tag_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestCommitmentPartiesEditsAreRefused: a commitment's case, provider and
// operator are bound by its tag under the rows key. A database
// administrator who swaps provider_org between the two providers of a
// case (each would read the other's commitment), points it at an
// unrelated provider, copies another commitment's tag, or moves it to
// another case of the same operator is refused: no party lists or urges
// it, inspectors list it without its provider and operator and record no
// finding on it, and each refusal is counted. Restored, it is back.
func TestCommitmentPartiesEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA, orgB := f.org("Router Maker", access.OrgProvider), f.org("Switch Maker", access.OrgProvider)
			pa, pb := f.user("prova", orgA, access.RoleProvider), f.user("provb", orgB, access.RoleProvider)
			stranger := f.user("provc", f.org("Unrelated Maker", access.OrgProvider), access.RoleProvider)
			cs, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{orgA.ID, orgB.ID}})
			if err != nil {
				t.Fatal(err)
			}
			ca, err := f.svc.AddCommitment(f.ctx, pa, cs.ID, NewCommitment{Kind: "no_illegal_data", Text: "A: MARKER-A source escrow"})
			if err != nil {
				t.Fatal(err)
			}
			cb, err := f.svc.AddCommitment(f.ctx, pb, cs.ID, NewCommitment{Kind: "supply_continuity", Text: "B: MARKER-B supply"})
			if err != nil {
				t.Fatal(err)
			}
			exec := func(sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			only := func(got map[string]Commitment, ids ...string) bool {
				if len(got) != len(ids) {
					return false
				}
				for _, id := range ids {
					if _, ok := got[id]; !ok {
						return false
					}
				}
				return true
			}
			genuine := func(svc *Service) {
				t.Helper()
				if got := f.commitmentsOf(svc, pa, CommitmentFilter{}); !only(got, ca.ID) || got[ca.ID].Text != ca.Text || got[ca.ID].ProviderOrg != orgA.ID {
					t.Fatalf("A lists %+v, want its own", got)
				}
				if got := f.commitmentsOf(svc, pb, CommitmentFilter{}); !only(got, cb.ID) {
					t.Fatalf("B lists %+v, want its own", got)
				}
				if got := f.commitmentsOf(svc, f.op, CommitmentFilter{}); !only(got, ca.ID, cb.ID) {
					t.Fatalf("the operator lists %+v, want both", got)
				}
				if got := f.commitmentsOf(svc, f.insp, CommitmentFilter{}); !only(got, ca.ID, cb.ID) || got[ca.ID].ProviderOrg != orgA.ID || got[ca.ID].OperatorOrg != f.op.P.User.OrgID {
					t.Fatalf("the inspector lists %+v", got)
				}
				if _, err := svc.UrgeCommitment(f.ctx, f.op, cs.ID, ca.ID, UrgeRequest{Note: "keep it"}); err != nil {
					t.Fatalf("urge: %v", err)
				}
			}
			// refused: the commitment id is seen by no party, listed to the
			// inspector without parties, and neither urged nor found on.
			refused := func(v *vault.Service, svc *Service, caseID, id string) {
				t.Helper()
				before := refusals(t, v, commitmentsTable)
				for _, a := range []vault.Actor{pa, pb, stranger, f.op} {
					if c, ok := f.commitmentsOf(svc, a, CommitmentFilter{})[id]; ok {
						t.Fatalf("%s lists the edited commitment: %q", a.P.User.Username, c.Text)
					}
				}
				if c, ok := f.commitmentsOf(svc, pb, CommitmentFilter{Provider: orgB.ID})[id]; ok {
					t.Fatalf("B lists the edited commitment by provider: %q", c.Text)
				}
				c, ok := f.commitmentsOf(svc, f.insp, CommitmentFilter{})[id]
				if !ok || c.ProviderOrg != "" || c.OperatorOrg != "" {
					t.Fatalf("the inspector lists %+v (%v), want it without parties", c, ok)
				}
				if _, err := svc.UrgeCommitment(f.ctx, f.op, caseID, id, UrgeRequest{Note: "keep it"}); !errors.Is(err, vault.ErrNotFound) {
					t.Fatalf("urging the edited commitment: %v, want not_found", err)
				}
				if _, err := svc.SetCommitmentStatus(f.ctx, f.insp, id, CommitmentStatusRequest{Status: CommitmentKept, Note: "fine"}); !errors.Is(err, vault.ErrNotFound) {
					t.Fatalf("a finding on the edited commitment: %v, want not_found", err)
				}
				if after := refusals(t, v, commitmentsTable); after <= before {
					t.Fatalf("refusals counted %v, then %v", before, after)
				}
			}
			genuine(f.svc)

			t.Run("provider_org swapped", func(t *testing.T) {
				exec("UPDATE supervision_commitments SET provider_org = ? WHERE id = ?", orgB.ID, ca.ID)
				exec("UPDATE supervision_commitments SET provider_org = ? WHERE id = ?", orgA.ID, cb.ID)
				v, svc := f.restart()
				refused(v, svc, cs.ID, ca.ID)
				refused(v, svc, cs.ID, cb.ID)
				exec("UPDATE supervision_commitments SET provider_org = ? WHERE id = ?", orgA.ID, ca.ID)
				exec("UPDATE supervision_commitments SET provider_org = ? WHERE id = ?", orgB.ID, cb.ID)
				_, svc = f.restart()
				genuine(svc)
			})
			t.Run("provider_org unrelated", func(t *testing.T) {
				exec("UPDATE supervision_commitments SET provider_org = ? WHERE id = ?", stranger.P.User.OrgID, ca.ID)
				v, svc := f.restart()
				refused(v, svc, cs.ID, ca.ID)
				exec("UPDATE supervision_commitments SET provider_org = ? WHERE id = ?", orgA.ID, ca.ID)
				_, svc = f.restart()
				genuine(svc)
			})
			t.Run("tag copied from another commitment", func(t *testing.T) {
				var rb, ra commitmentRow
				if err := f.db.Where("id = ?", cb.ID).Take(&rb).Error; err != nil {
					t.Fatal(err)
				}
				if err := f.db.Where("id = ?", ca.ID).Take(&ra).Error; err != nil {
					t.Fatal(err)
				}
				exec("UPDATE supervision_commitments SET provider_org = ?, kind = ?, created_by = ?, tag = ? WHERE id = ?", orgB.ID, rb.Kind, rb.CreatedBy, rb.Tag, ca.ID)
				v, svc := f.restart()
				refused(v, svc, cs.ID, ca.ID)
				exec("UPDATE supervision_commitments SET provider_org = ?, kind = ?, created_by = ?, tag = ? WHERE id = ?", orgA.ID, ra.Kind, ra.CreatedBy, ra.Tag, ca.ID)
				_, svc = f.restart()
				genuine(svc)
			})
			t.Run("moved to another case", func(t *testing.T) {
				// The operator's other case, where B is no provider: the
				// operator would urge it there.
				exec("UPDATE supervision_commitments SET case_id = ? WHERE id = ?", f.caseID, ca.ID)
				v, svc := f.restart()
				refused(v, svc, f.caseID, ca.ID)
				exec("UPDATE supervision_commitments SET case_id = ? WHERE id = ?", cs.ID, ca.ID)
				_, svc = f.restart()
				genuine(svc)
			})
			t.Run("operator_org", func(t *testing.T) {
				rival := f.user("operator2", f.org("Rival Grid", access.OrgOperator), access.RoleOperator)
				exec("UPDATE supervision_commitments SET operator_org = ? WHERE id = ?", rival.P.User.OrgID, ca.ID)
				v, svc := f.restart()
				refused(v, svc, cs.ID, ca.ID)
				if c, ok := f.commitmentsOf(svc, rival, CommitmentFilter{})[ca.ID]; ok {
					t.Fatalf("the rival operator lists %q", c.Text)
				}
				exec("UPDATE supervision_commitments SET operator_org = ? WHERE id = ?", f.op.P.User.OrgID, ca.ID)
				_, svc = f.restart()
				genuine(svc)
			})
		})
	}
}

// TestCommitmentTagsBackfill: commitments written before their tags (the
// column blank, as migration 7 leaves an upgraded database) are refused
// until the start-up backfill tags them, once, recorded in the audit log;
// then their parties read them again. A tag blanked after that stays
// refused, backfill or not.
func TestCommitmentTagsBackfill(t *testing.T) {
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
			for _, text := range []string{"source escrow", "no remote access"} {
				c, err := f.svc.AddCommitment(f.ctx, pa, cs.ID, NewCommitment{Kind: "other", Text: text})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID)
			}
			if err := f.db.Exec("UPDATE supervision_commitments SET tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			_, svc := f.restart()
			if got := f.commitmentsOf(svc, pa, CommitmentFilter{}); len(got) != 0 {
				t.Fatalf("untagged commitments listed: %+v", got)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			for _, a := range []vault.Actor{pa, f.op} {
				if got := f.commitmentsOf(svc, a, CommitmentFilter{}); len(got) != 2 || got[ids[0]].Text != "source escrow" {
					t.Fatalf("%s after the backfill lists %+v", a.P.User.Username, got)
				}
			}
			if _, err := svc.UrgeCommitment(f.ctx, f.op, cs.ID, ids[0], UrgeRequest{Note: "keep it"}); err != nil {
				t.Fatalf("urge after the backfill: %v", err)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: vault.TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var marks []string
			for _, e := range evs {
				if e.Resource == commitmentsTable {
					marks = append(marks, e.Detail)
				}
			}
			if len(marks) != 1 || marks[0] != "tagged 2" {
				t.Fatalf("backfill events %v", marks)
			}

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE supervision_commitments SET tag = '' WHERE id = ?", ids[1]).Error; err != nil {
				t.Fatal(err)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			if got := f.commitmentsOf(svc, pa, CommitmentFilter{}); len(got) != 1 {
				t.Fatalf("after a blanked tag A lists %d commitments, want 1", len(got))
			}
		})
	}
}
