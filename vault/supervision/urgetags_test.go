package supervision

import (
	"strings"
	"testing"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault"
)

// notes are the urge and finding notes of c, one string.
func notes(c Commitment) string {
	var b strings.Builder
	for _, u := range c.Urges {
		b.WriteString(u.Note + "|")
	}
	for _, h := range c.History {
		b.WriteString(h.Note + "|")
	}
	return b.String()
}

// TestUrgeAndFindingEditsAreRefused: a commitment's urges and findings are
// bound to it by their tags. A database administrator who moves the
// operator's urge or the inspector's finding on provider A's commitment
// under provider B's (B would read its note), edits an urge's by_org or a
// finding's status, or copies another row's tag, is refused: the row is
// listed under no commitment, to no viewer, and each refusal is counted
// under its table. Restored, it is back.
func TestUrgeAndFindingEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA, orgB := f.org("Router Maker", access.OrgProvider), f.org("Switch Maker", access.OrgProvider)
			pa, pb := f.user("prova", orgA, access.RoleProvider), f.user("provb", orgB, access.RoleProvider)
			cs, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{orgA.ID, orgB.ID}})
			if err != nil {
				t.Fatal(err)
			}
			ca, err := f.svc.AddCommitment(f.ctx, pa, cs.ID, NewCommitment{Kind: "no_illegal_data", Text: "A: source escrow"})
			if err != nil {
				t.Fatal(err)
			}
			cb, err := f.svc.AddCommitment(f.ctx, pb, cs.ID, NewCommitment{Kind: "supply_continuity", Text: "B: supply"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.UrgeCommitment(f.ctx, f.op, cs.ID, ca.ID, UrgeRequest{Note: "MARKER-URGE-A"}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.SetCommitmentStatus(f.ctx, f.insp, ca.ID, CommitmentStatusRequest{Status: CommitmentKept, Note: "MARKER-FIND-A"}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.UrgeCommitment(f.ctx, f.op, cs.ID, cb.ID, UrgeRequest{Note: "MARKER-URGE-B"}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.SetCommitmentStatus(f.ctx, f.insp, cb.ID, CommitmentStatusRequest{Status: CommitmentBreached, Note: "MARKER-FIND-B"}); err != nil {
				t.Fatal(err)
			}
			var ua, ub urgeRow
			var ha, hb commitmentChangeRow
			for _, r := range []struct {
				row any
				id  string
			}{{&ua, ca.ID}, {&ub, cb.ID}, {&ha, ca.ID}, {&hb, cb.ID}} {
				if err := f.db.Where("commitment_id = ?", r.id).Take(r.row).Error; err != nil {
					t.Fatal(err)
				}
			}
			exec := func(t *testing.T, sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			genuine := func(t *testing.T, svc *Service) {
				t.Helper()
				for _, a := range []vault.Actor{pa, f.op, f.insp} {
					if got := seen(f, svc, a, ca.ID); got != "MARKER-URGE-A|MARKER-FIND-A|" {
						t.Fatalf("%s reads on A's commitment %q", a.P.User.Username, got)
					}
				}
				for _, a := range []vault.Actor{pb, f.op, f.insp} {
					if got := seen(f, svc, a, cb.ID); got != "MARKER-URGE-B|MARKER-FIND-B|" {
						t.Fatalf("%s reads on B's commitment %q", a.P.User.Username, got)
					}
				}
			}
			// refused: the marker is read by nobody, on either commitment,
			// and the refusal is counted under table.
			refused := func(t *testing.T, table, marker string) {
				t.Helper()
				v, svc := f.restart()
				before := refusals(t, v, table)
				for _, a := range []vault.Actor{pa, pb, f.op, f.insp, f.office} {
					for id, c := range f.commitmentsOf(svc, a, CommitmentFilter{}) {
						if strings.Contains(notes(c), marker) {
							t.Fatalf("%s reads %s on commitment %s", a.P.User.Username, marker, id)
						}
					}
				}
				if after := refusals(t, v, table); after <= before {
					t.Fatalf("refusals of %s counted %v, then %v", table, before, after)
				}
			}
			genuine(t, f.svc)

			t.Run("urge moved to another provider's commitment", func(t *testing.T) {
				exec(t, "UPDATE supervision_commitment_urges SET commitment_id = ? WHERE id = ?", cb.ID, ua.ID)
				refused(t, urgesTable, "MARKER-URGE-A")
				exec(t, "UPDATE supervision_commitment_urges SET commitment_id = ? WHERE id = ?", ca.ID, ua.ID)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("finding moved to another provider's commitment", func(t *testing.T) {
				// B's finding out of the way of the (commitment, version)
				// index first, as an administrator would.
				exec(t, "UPDATE supervision_commitment_changes SET version = 7 WHERE id = ?", hb.ID)
				exec(t, "UPDATE supervision_commitment_changes SET commitment_id = ? WHERE id = ?", cb.ID, ha.ID)
				refused(t, changesTable, "MARKER-FIND-A")
				exec(t, "UPDATE supervision_commitment_changes SET commitment_id = ? WHERE id = ?", ca.ID, ha.ID)
				exec(t, "UPDATE supervision_commitment_changes SET version = ? WHERE id = ?", hb.Version, hb.ID)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("urge by_org edited", func(t *testing.T) {
				exec(t, "UPDATE supervision_commitment_urges SET by_org = ? WHERE id = ?", orgB.ID, ua.ID)
				refused(t, urgesTable, "MARKER-URGE-A")
				exec(t, "UPDATE supervision_commitment_urges SET by_org = ? WHERE id = ?", ua.ByOrg, ua.ID)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("finding status edited", func(t *testing.T) {
				exec(t, "UPDATE supervision_commitment_changes SET status = ? WHERE id = ?", CommitmentBreached, ha.ID)
				refused(t, changesTable, "MARKER-FIND-A")
				exec(t, "UPDATE supervision_commitment_changes SET status = ? WHERE id = ?", ha.Status, ha.ID)
				_, svc := f.restart()
				genuine(t, svc)
			})
			t.Run("tags copied from another row", func(t *testing.T) {
				// A's urge and finding given every tagged column of B's but
				// their ids, B's tags with them.
				exec(t, `UPDATE supervision_commitment_urges SET commitment_id = ?, "by" = ?, by_org = ?, "at" = ?, tag = ? WHERE id = ?`,
					ub.CommitmentID, ub.By, ub.ByOrg, ub.At, ub.Tag, ua.ID)
				exec(t, "UPDATE supervision_commitment_changes SET version = 7 WHERE id = ?", hb.ID)
				exec(t, `UPDATE supervision_commitment_changes SET commitment_id = ?, version = ?, status = ?, "by" = ?, "at" = ?, tag = ? WHERE id = ?`,
					hb.CommitmentID, hb.Version, hb.Status, hb.By, hb.At, hb.Tag, ha.ID)
				refused(t, urgesTable, "MARKER-URGE-A")
				refused(t, changesTable, "MARKER-FIND-A")
				exec(t, `UPDATE supervision_commitment_urges SET commitment_id = ?, "by" = ?, by_org = ?, "at" = ?, tag = ? WHERE id = ?`,
					ua.CommitmentID, ua.By, ua.ByOrg, ua.At, ua.Tag, ua.ID)
				exec(t, `UPDATE supervision_commitment_changes SET commitment_id = ?, version = ?, status = ?, "by" = ?, "at" = ?, tag = ? WHERE id = ?`,
					ha.CommitmentID, ha.Version, ha.Status, ha.By, ha.At, ha.Tag, ha.ID)
				exec(t, "UPDATE supervision_commitment_changes SET version = ? WHERE id = ?", hb.Version, hb.ID)
				_, svc := f.restart()
				genuine(t, svc)
			})
		})
	}
}

// TestUrgeAndFindingTagsBackfill: urges and findings written before their
// tags (the column blank, as migration 8 leaves an upgraded database) are
// left out until the start-up backfill tags them, once per table, recorded
// in the audit log; then they are read again, their times tagged as both
// backends read them back. A tag blanked after that stays refused.
func TestUrgeAndFindingTagsBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			orgA := f.org("Router Maker", access.OrgProvider)
			pa := f.user("prova", orgA, access.RoleProvider)
			cs, err := f.v.CreateCase(f.ctx, f.op, vault.NewCase{Title: "Routers", Product: "AR-9000", Providers: []string{orgA.ID}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.svc.AddCommitment(f.ctx, pa, cs.ID, NewCommitment{Kind: "other", Text: "source escrow"})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"urge one", "urge two"} {
				if _, err := f.svc.UrgeCommitment(f.ctx, f.op, cs.ID, c.ID, UrgeRequest{Note: n}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.svc.SetCommitmentStatus(f.ctx, f.insp, c.ID, CommitmentStatusRequest{Status: CommitmentKept, Note: "finding"}); err != nil {
				t.Fatal(err)
			}
			// An upgraded database: the commitment tagged by its own
			// backfill, its urges and findings not yet.
			for _, table := range []string{urgesTable, changesTable} {
				if err := f.db.Exec("UPDATE " + table + " SET tag = ''").Error; err != nil {
					t.Fatal(err)
				}
			}
			want := "urge one|urge two|finding|"
			_, svc := f.restart()
			// Its status rests on an untagged finding: listed to no party,
			// and to inspectors as unverified.
			if got, ok := f.commitmentsOf(svc, pa, CommitmentFilter{})[c.ID]; ok {
				t.Fatalf("the provider lists a commitment whose finding is untagged: %+v", got)
			}
			if got := seen(f, svc, f.insp, c.ID); got != "" {
				t.Fatalf("untagged urges and findings read: %q", got)
			}
			if got := f.commitmentsOf(svc, f.insp, CommitmentFilter{})[c.ID]; got.Status != CommitmentUnverified {
				t.Fatalf("the inspector reads status %q, want %q", got.Status, CommitmentUnverified)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			for _, a := range []vault.Actor{pa, f.op, f.insp} {
				// Urges come in id order, random within a millisecond.
				if got := seen(f, svc, a, c.ID); len(got) != len(want) || !strings.Contains(got, "urge one|") || !strings.Contains(got, "urge two|") || !strings.HasSuffix(got, "finding|") {
					t.Fatalf("%s after the backfill reads %q, want %q", a.P.User.Username, got, want)
				}
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: vault.TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			marks := map[string][]string{}
			for _, e := range evs {
				marks[e.Resource] = append(marks[e.Resource], e.Detail)
			}
			if u, h := marks[urgesTable], marks[changesTable]; len(u) != 1 || u[0] != "tagged 2" || len(h) != 1 || h[0] != "tagged 1" {
				t.Fatalf("backfill events %v", marks)
			}

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE " + urgesTable + " SET tag = '' WHERE id = (SELECT MIN(id) FROM " + urgesTable + ")").Error; err != nil {
				t.Fatal(err)
			}
			_, svc = f.restart()
			if err := svc.TagLegacyRows(f.ctx); err != nil {
				t.Fatal(err)
			}
			if got := seen(f, svc, pa, c.ID); strings.Count(got, "urge") != 1 || !strings.Contains(got, "finding") {
				t.Fatalf("after a blanked tag A reads %q, want one urge and the finding", got)
			}
		})
	}
}

// seen is what a lists of commitment id's urges and findings.
func seen(f *fixture, svc *Service, a vault.Actor, id string) string {
	f.t.Helper()
	c, ok := f.commitmentsOf(svc, a, CommitmentFilter{})[id]
	if !ok {
		f.t.Fatalf("%s does not list commitment %s", a.P.User.Username, id)
	}
	return notes(c)
}
