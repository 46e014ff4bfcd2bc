package vault

import (
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// caseRefusals is how many rows of cases (parties, status or due tags)
// svc refused.
func caseRefusals(t *testing.T, svc *Service) float64 {
	t.Helper()
	var m dto.Metric
	if err := svc.tagRefusals.WithLabelValues("cases").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// dueFixture is a few cases on and off the clock, on a day when the
// running ones are overdue: a and b (different due dates), paused (open,
// no date while stopped for supplements), closed. a's last decision left
// its written notice pending (a crash).
type dueFixture struct {
	*wfFixture
	a, b, paused, closed string
}

func newDueFixture(t *testing.T, d string) *dueFixture {
	f := &dueFixture{wfFixture: newWF(t, d, time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC), false)}
	f.a, f.b, f.paused, f.closed = f.draft(), f.draft(), f.draft(), f.draft()
	for _, id := range []string{f.a, f.b, f.paused, f.closed} {
		f.submit(id)
	}
	f.at("2025-06-03")
	f.crashAfterDecision(func() { _, _ = f.move(f.a, "require_review", "", 0) })
	f.mustMove(f.paused, "require_review", "", 0)
	f.mustMove(f.paused, "request_supplement", "need the escrow agreement", 0)
	f.mustMove(f.closed, "not_required", "", 0)
	ca, cb := f.clockOf(f.a), f.clockOf(f.b)
	if ca.DueOn == cb.DueOn || ca.DueOn.IsZero() || cb.DueOn.IsZero() {
		t.Fatalf("clocks %+v and %+v", ca, cb)
	}
	last := ca.DueOn
	if cb.DueOn.After(last) {
		last = cb.DueOn
	}
	f.at(last.AddDays(1).String())
	return f
}

// dueSnapshot is every case's due columns and tag as stored.
func (f *dueFixture) dueSnapshot() []caseRow {
	f.t.Helper()
	var rows []caseRow
	if err := f.db.Select("id, due_on, due_on_provisional, due_phase, due_basis, due_tag").Find(&rows).Error; err != nil {
		f.t.Fatal(err)
	}
	return rows
}

// restoreDue puts the due columns and tags of a snapshot back, so that
// each edit starts from the genuine rows whether or not the last was
// repaired.
func (f *dueFixture) restoreDue(rows []caseRow) {
	f.t.Helper()
	for _, r := range rows {
		if err := f.db.Model(&caseRow{}).Where("id = ?", r.ID).Updates(map[string]any{"due_on": r.DueOn, "due_on_provisional": r.DueOnProvisional,
			"due_phase": r.DuePhase, "due_basis": r.DueBasis, "due_tag": r.DueTag}).Error; err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *dueFixture) exec(sql string, args ...any) {
	f.t.Helper()
	if err := f.db.Exec(sql, args...).Error; err != nil {
		f.t.Fatal(err)
	}
}

// list is the office's deadlines list read by svc, one line a case.
func (f *dueFixture) list(svc *Service) string {
	f.t.Helper()
	ds, err := svc.Deadlines(f.ctx, f.office, MaxWithin)
	if err != nil {
		f.t.Fatal(err)
	}
	return deadlineLines(ds)
}

// sweep is what a sweep by svc flags, from no flag raised, one line a flag.
func (f *dueFixture) sweep(svc *Service) string {
	f.t.Helper()
	if err := f.db.Where("1 = 1").Delete(&deadlineFlagRow{}).Error; err != nil {
		f.t.Fatal(err)
	}
	if _, err := svc.SweepDeadlines(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	var rows []deadlineFlagRow
	if err := f.db.Order("case_id, phase, flag").Find(&rows).Error; err != nil {
		f.t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %s %s %s\n", r.CaseID, r.Phase, r.Flag, r.DueOn)
	}
	return b.String()
}

// TestCaseDueEditsAreRefused: a case's stored due columns are bound by its
// due tag. A database administrator who hides a deadline (moved later,
// cleared), invents one (on a closed case, on a paused one), flips its
// provisional flag or swaps two cases' columns with their tags does not
// change what the deadlines list shows nor what the sweeper flags: the
// edit is refused (counted once, by the read that finds it, not again)
// and the columns are derived again from the history. A case whose
// history was edited leaves the list and the sweep, and its pending
// written notice waits without failing the notice sweeper; put back, it
// returns.
func TestCaseDueEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newDueFixture(t, d)
			genuineList, genuineSweep := f.list(f.restart()), f.sweep(f.restart())
			for _, id := range []string{f.a, f.b} {
				if !strings.Contains(genuineList, id) || !strings.Contains(genuineSweep, id) {
					t.Fatalf("case %s neither listed nor flagged:\n%s\n%s", id, genuineList, genuineSweep)
				}
			}
			for _, id := range []string{f.paused, f.closed} {
				if strings.Contains(genuineList+genuineSweep, id) {
					t.Fatalf("case %s listed or flagged:\n%s\n%s", id, genuineList, genuineSweep)
				}
			}
			aDue := f.storedDue(f.a)
			snapshot := f.dueSnapshot()
			for _, tc := range []struct {
				name     string
				edit     func()
				refusals float64
			}{
				{"moved later", func() { f.exec("UPDATE cases SET due_on = '2099-12-31' WHERE id = ?", f.a) }, 1},
				{"cleared", func() { f.exec("UPDATE cases SET due_on = NULL WHERE id = ?", f.a) }, 1},
				{"provisional flag flipped", func() { f.exec("UPDATE cases SET due_on_provisional = ? WHERE id = ?", !aDue.Provisional, f.a) }, 1},
				{"invented on a closed case", func() {
					f.exec("UPDATE cases SET due_on = ?, due_phase = ?, due_basis = ? WHERE id = ?", *aDue.On, aDue.Phase, aDue.Basis, f.closed)
				}, 1},
				{"invented on a paused case", func() {
					f.exec("UPDATE cases SET due_on = ?, due_phase = ?, due_basis = ? WHERE id = ?", *aDue.On, aDue.Phase, aDue.Basis, f.paused)
				}, 1},
				{"swapped with another case's", func() {
					var rows []caseRow
					if err := f.db.Where("id IN ?", []string{f.a, f.b}).Find(&rows).Error; err != nil || len(rows) != 2 {
						t.Fatal(rows, err)
					}
					for i, r := range rows {
						o := rows[1-i]
						if err := f.db.Model(&caseRow{}).Where("id = ?", r.ID).Updates(map[string]any{"due_on": o.DueOn,
							"due_on_provisional": o.DueOnProvisional, "due_phase": o.DuePhase, "due_basis": o.DueBasis, "due_tag": o.DueTag}).Error; err != nil {
							t.Fatal(err)
						}
					}
				}, 2},
			} {
				t.Run(tc.name, func(t *testing.T) {
					for _, via := range []struct {
						name    string
						read    func(*Service) string
						genuine string
					}{{"list", f.list, genuineList}, {"sweep", f.sweep, genuineSweep}} {
						f.restoreDue(snapshot)
						tc.edit()
						svc := f.restart()
						if got := via.read(svc); got != via.genuine {
							t.Errorf("%s after the edit:\n%swant\n%s", via.name, got, via.genuine)
							continue
						}
						if n := caseRefusals(t, svc); n != tc.refusals {
							t.Errorf("%s: %v refusals counted, want %v", via.name, n, tc.refusals)
							continue
						}
						// Derived again with an honest tag: not refused, nor
						// logged, a second time.
						if got := via.read(svc); got != via.genuine || caseRefusals(t, svc) != tc.refusals {
							t.Errorf("%s read again:\n%s%v refusals", via.name, got, caseRefusals(t, svc))
						}
					}
				})
			}

			// A re-derivation that meets a damaged status or history
			// stores no date it would vouch for: an edit made while the
			// row is stale (after a calendar import, or marked so) and
			// then undone does not leave the deadline hidden.
			t.Run("derived while damaged", func(t *testing.T) {
				for _, dmg := range []struct{ name, edit, undo string }{
					{"status", "UPDATE cases SET status = 'not_required' WHERE id = ?", "UPDATE cases SET status = 'under_review' WHERE id = ?"},
					{"history", "UPDATE case_events SET days = 99 WHERE case_id = ? AND seq = 1", "UPDATE case_events SET days = 0 WHERE case_id = ? AND seq = 1"},
				} {
					f.restoreDue(snapshot)
					f.exec(dmg.edit, f.a)
					f.exec("UPDATE cases SET due_basis = '' WHERE id = ?", f.a)
					svc := f.restart()
					if got := f.list(svc); strings.Contains(got, f.a) || !strings.Contains(got, f.b) {
						t.Errorf("%s damaged: list\n%s", dmg.name, got)
					}
					f.exec(dmg.undo, f.a)
					if got := f.list(f.restart()); got != genuineList {
						t.Errorf("%s put back: list\n%swant\n%s", dmg.name, got, genuineList)
					}
				}
			})

			t.Run("history edited", func(t *testing.T) {
				f.restoreDue(snapshot)
				var actor []string
				if err := f.db.Model(&caseEventRow{}).Where("case_id = ? AND seq = 1", f.a).Pluck("actor", &actor).Error; err != nil || len(actor) != 1 {
					t.Fatal(actor, err)
				}
				f.exec("UPDATE case_events SET actor = 'someone-else' WHERE case_id = ? AND seq = 1", f.a)
				svc := f.restart()
				if got := f.list(svc); strings.Contains(got, f.a) || !strings.Contains(got, f.b) {
					t.Errorf("list with a's history edited:\n%s", got)
				}
				if got := f.sweep(svc); strings.Contains(got, f.a) || !strings.Contains(got, f.b) {
					t.Errorf("sweep with a's history edited:\n%s", got)
				}
				if eventRefusals(t, svc) < 2 {
					t.Errorf("%v history refusals counted, want one a read", eventRefusals(t, svc))
				}
				// a's pending notice waits: not written, not a failure of
				// the notice sweeper's run.
				if n, err := svc.WritePendingNotices(f.ctx); err != nil || n != 0 {
					t.Errorf("pending notices with a's history edited: %d, %v", n, err)
				}
				var pending int64
				f.db.Model(&pendingNoticeRow{}).Where("case_id = ?", f.a).Count(&pending)
				if pending != 1 {
					t.Fatalf("%d notices of a pending, want 1", pending)
				}

				f.exec("UPDATE case_events SET actor = ? WHERE case_id = ? AND seq = 1", actor[0], f.a)
				svc = f.restart()
				if got := f.list(svc); got != genuineList {
					t.Fatalf("list put back:\n%swant\n%s", got, genuineList)
				}
				if got := f.sweep(svc); got != genuineSweep {
					t.Fatalf("sweep put back:\n%swant\n%s", got, genuineSweep)
				}
				if n, err := svc.WritePendingNotices(f.ctx); err != nil || n != 1 {
					t.Fatalf("pending notices put back: %d, %v", n, err)
				}
			})
		})
	}
}

// TestCaseDueBackfill: due columns written before their tags are tagged
// once at start-up, recorded under cases.due, and then read without a
// refusal; a tag blanked after that is not tagged again by a later start,
// but refused, and the columns derived again.
func TestCaseDueBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newDueFixture(t, d)
			genuine := f.list(f.restart())
			var cases int64
			f.db.Model(&caseRow{}).Count(&cases)
			// Written by an older binary: no tags.
			f.exec("UPDATE cases SET due_tag = ''")
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			var untagged int64
			f.db.Model(&caseRow{}).Where("length(due_tag) = 0").Count(&untagged)
			if untagged != 0 {
				t.Fatalf("%d cases' due dates left untagged", untagged)
			}
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var evs []audit.Event
			for _, e := range all {
				if e.Resource == dueTagTable {
					evs = append(evs, e)
				}
			}
			if want := fmt.Sprintf("tagged %d", cases); len(evs) != 1 || evs[0].Detail != want {
				t.Fatalf("backfill events %+v, want one %q", evs, want)
			}
			if got := f.list(svc); got != genuine || caseRefusals(t, svc) != 0 {
				t.Fatalf("after the backfill:\n%s%v refusals; want\n%s", got, caseRefusals(t, svc), genuine)
			}

			// Blanked after the backfill: not tagged again as it stands.
			f.exec("UPDATE cases SET due_tag = '', due_on = NULL WHERE id = ?", f.a)
			svc = f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			if got := f.storedDue(f.a); got.On != nil {
				t.Fatalf("blanked row changed by a later start: %+v", got)
			}
			if got := f.list(svc); got != genuine || caseRefusals(t, svc) != 1 {
				t.Fatalf("blanked after the backfill:\n%s%v refusals; want\n%s", got, caseRefusals(t, svc), genuine)
			}
		})
	}
}
