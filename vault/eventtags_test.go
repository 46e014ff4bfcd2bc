package vault

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// eventRefusals is how many case_events refusals svc counted.
func eventRefusals(t *testing.T, svc *Service) float64 {
	t.Helper()
	var m dto.Metric
	if err := svc.tagRefusals.WithLabelValues(eventTagTable).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// wantHistoryDamaged fails t unless the office's read of case id's history
// answers case_status_damaged.
func (f *wfFixture) wantHistoryDamaged(t *testing.T, svc *Service, id string) {
	t.Helper()
	var ve *Error
	if h, err := svc.History(f.ctx, f.office, id); !errors.As(err, &ve) || ve.Code != "case_status_damaged" || !errors.Is(err, ErrDamaged) {
		t.Fatalf("history of %s: %d events, %v, want case_status_damaged", id, len(h), err)
	}
}

// TestCaseEventEditsAreRefused: a case's history is bound by its events'
// tags. A database administrator who moves the concluding event's date
// years back does not get the case shredded (nor listed by a dry run); one
// who moves the filing date does not move the deadline the list shows; an
// edited status, an event copied from another case or one deleted from the
// middle make the history answer case_status_damaged. Put back, the
// genuine history passes again.
func TestCaseEventEditsAreRefused(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			exec := func(sql string, args ...any) {
				t.Helper()
				if err := f.db.Exec(sql, args...).Error; err != nil {
					t.Fatal(err)
				}
			}
			ended := f.draft()
			f.submit(ended)
			f.mustMove(ended, "not_required", "", 0)
			open := f.draft()
			f.submit(open)
			f.mustMove(open, "require_review", "", 0)
			if h, err := f.svc.History(f.ctx, f.office, ended); err != nil || len(h) != 2 {
				t.Fatalf("genuine history: %+v, %v", h, err)
			}
			now := f.clock()

			t.Run("end moved back", func(t *testing.T) {
				var ats []time.Time
				if err := f.db.Model(&caseEventRow{}).Where("case_id = ? AND seq = 2", ended).Pluck("at", &ats).Error; err != nil || len(ats) != 1 {
					t.Fatal(ats, err)
				}
				at := ats[0].UTC()
				exec("UPDATE case_events SET at = ? WHERE case_id = ? AND seq = 2", at.AddDate(-20, 0, 0), ended)
				svc := f.restart()
				for _, dry := range []bool{true, false} {
					out, err := svc.ApplyRetention(f.ctx, audit.Event{Actor: "cli"}, now, dry)
					if err != nil {
						t.Fatal(err)
					}
					if len(out) != 0 {
						t.Fatalf("retention (dry run %v) acted on an end a database edit moved: %+v", dry, out)
					}
				}
				var keys int64
				f.db.Table("case_keys").Where("case_id = ?", ended).Count(&keys)
				if keys != 1 {
					t.Fatal("the case's key was destroyed")
				}
				if n := eventRefusals(t, svc); n == 0 {
					t.Fatal("the refusal is not counted")
				}
				f.wantHistoryDamaged(t, svc, ended)
				// Put back: the genuine end is not yet ten years old.
				exec("UPDATE case_events SET at = ? WHERE case_id = ? AND seq = 2", at, ended)
				svc = f.restart()
				if out, err := svc.ApplyRetention(f.ctx, audit.Event{Actor: "cli"}, now, true); err != nil || len(out) != 0 {
					t.Fatalf("retention of the genuine end: %+v, %v", out, err)
				}
				if out, err := svc.ApplyRetention(f.ctx, audit.Event{Actor: "cli"}, at.AddDate(11, 0, 0), true); err != nil || len(out) != 1 || !out[0].EndedAt.Equal(at) {
					t.Fatalf("retention eleven years on: %+v, %v", out, err)
				}
			})
			t.Run("filing date moved back", func(t *testing.T) {
				svc := f.restart()
				due := func() []Deadline {
					t.Helper()
					ds, err := svc.Deadlines(f.ctx, f.office, MaxWithin)
					if err != nil {
						t.Fatal(err)
					}
					var mine []Deadline
					for _, d := range ds {
						if d.CaseID == open {
							mine = append(mine, d)
						}
					}
					return mine
				}
				genuine := due()
				if len(genuine) != 1 || genuine[0].Overdue {
					t.Fatalf("genuine deadline %+v", genuine)
				}
				// A calendar change re-derives the stored date from the
				// history (marked stale, as an import leaves it).
				var dates []string
				if err := f.db.Model(&caseEventRow{}).Where("case_id = ?", open).Order("seq").Pluck("on_date", &dates).Error; err != nil || len(dates) != 2 {
					t.Fatal(dates, err)
				}
				// The filing and the review's start a year back, in order.
				exec("UPDATE case_events SET on_date = '2024-06-03' WHERE case_id = ?", open)
				exec("UPDATE cases SET due_basis = 'zz' WHERE id = ?", open)
				before := eventRefusals(t, svc)
				if got := due(); len(got) != 0 {
					t.Fatalf("deadline re-derived from an edited history: %+v (genuine %+v)", got, genuine)
				}
				if eventRefusals(t, svc) == before {
					t.Fatal("the refusal is not counted")
				}
				f.wantHistoryDamaged(t, svc, open)
				if _, err := svc.Clock(f.ctx, f.office, open); !errors.Is(err, ErrDamaged) {
					t.Fatalf("clock of an edited history: %v", err)
				}
				for i, on := range dates {
					exec("UPDATE case_events SET on_date = ? WHERE case_id = ? AND seq = ?", on, open, i+1)
				}
				exec("UPDATE cases SET due_basis = 'zz' WHERE id = ?", open)
				if got := due(); fmt.Sprint(got) != fmt.Sprint(genuine) {
					t.Fatalf("deadline put back: %+v, want %+v", got, genuine)
				}
			})
			t.Run("status edited", func(t *testing.T) {
				exec("UPDATE case_events SET to_status = 'under_review' WHERE case_id = ? AND seq = 1", open)
				f.wantHistoryDamaged(t, f.restart(), open)
				_, err := f.restart().Transition(f.ctx, f.office, open, TransitionRequest{Action: "extend", Reason: "complex"})
				wantCode(t, err, ErrDamaged, "case_status_damaged")
				evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "case.transition", Outcome: audit.Denied, Limit: audit.MaxLimit})
				if err != nil || len(evs) == 0 || evs[len(evs)-1].Detail != "case_status_damaged" {
					t.Fatalf("the refusal is not audited: %+v, %v", evs, err)
				}
				exec("UPDATE case_events SET to_status = 'submitted' WHERE case_id = ? AND seq = 1", open)
				if h, err := f.restart().History(f.ctx, f.office, open); err != nil || len(h) != 2 {
					t.Fatalf("put back: %+v, %v", h, err)
				}
			})
			t.Run("copied from another case", func(t *testing.T) {
				// The other case's second event, tag and all, in place of
				// this one's: same number, so the status tag still checks.
				var orig caseEventRow
				if err := f.db.Where("case_id = ? AND seq = 2", open).Take(&orig).Error; err != nil {
					t.Fatal(err)
				}
				exec("DELETE FROM case_events WHERE case_id = ? AND seq = 2", open)
				exec(`INSERT INTO case_events (case_id, seq, action, from_status, to_status, on_date, at, actor, role, reason, days, agree, payload, tag)
					SELECT ?, seq, action, from_status, to_status, on_date, at, actor, role, reason, days, agree, payload, tag
					FROM case_events WHERE case_id = ? AND seq = 2`, open, ended)
				f.wantHistoryDamaged(t, f.restart(), open)
				exec("DELETE FROM case_events WHERE case_id = ? AND seq = 2", open)
				if err := f.db.Create(&orig).Error; err != nil {
					t.Fatal(err)
				}
				if _, err := f.restart().History(f.ctx, f.office, open); err != nil {
					t.Fatalf("put back: %v", err)
				}
			})
			t.Run("texts blanked", func(t *testing.T) {
				// The extension's reason, and the filing's payload (the
				// edition the case is reviewed under), read as absent when
				// blanked: the tag says they are there.
				texts := f.draft()
				f.submit(texts)
				f.mustMove(texts, "require_review", "", 0)
				f.mustMove(texts, "extend", "complex", 0)
				for _, c := range []struct {
					col string
					seq int
				}{{"reason", 3}, {"payload", 1}} {
					var orig caseEventRow
					if err := f.db.Where("case_id = ? AND seq = ?", texts, c.seq).Take(&orig).Error; err != nil {
						t.Fatal(err)
					}
					was := orig.Reason
					if c.col == "payload" {
						was = orig.Payload
					}
					if len(was) == 0 {
						t.Fatalf("event %d has no %s to blank", c.seq, c.col)
					}
					exec("UPDATE case_events SET "+c.col+" = ? WHERE case_id = ? AND seq = ?", []byte{}, texts, c.seq)
					f.wantHistoryDamaged(t, f.restart(), texts)
					if _, err := f.restart().Clock(f.ctx, f.office, texts); !errors.Is(err, ErrDamaged) {
						t.Fatalf("clock with the %s of event %d blanked: %v", c.col, c.seq, err)
					}
					exec("UPDATE case_events SET "+c.col+" = ? WHERE case_id = ? AND seq = ?", was, texts, c.seq)
					if h, err := f.restart().History(f.ctx, f.office, texts); err != nil || len(h) != 3 {
						t.Fatalf("%s put back: %+v, %v", c.col, h, err)
					}
				}
			})
			t.Run("deleted from the middle", func(t *testing.T) {
				// The last event stays, so the status tag still checks.
				exec("DELETE FROM case_events WHERE case_id = ? AND seq = 1", ended)
				f.wantHistoryDamaged(t, f.restart(), ended)
			})
		})
	}
}

// TestCaseEventsBackfill: events written before their tags are tagged once
// at start-up, in batches (past a batch boundary), recorded under
// case_events; the tagged history reads and moves on; a tag blanked after
// that stays refused.
func TestCaseEventsBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			id := f.draft()
			f.submit(id)
			f.mustMove(id, "require_review", "", 0)
			// A long history of another case, more than one batch.
			bulk := make([]caseEventRow, TagBatch+10)
			for i := range bulk {
				bulk[i] = caseEventRow{CaseID: "bulk", Seq: i + 1, Action: "extend", FromStatus: "under_review", ToStatus: "under_review",
					OnDate: "2025-06-02", At: editionStarts["2021"], Actor: "u", Role: "office_admin", Reason: []byte{}, Payload: []byte{}}
			}
			if err := f.db.CreateInBatches(bulk, 200).Error; err != nil {
				t.Fatal(err)
			}
			// Written by an older binary: no tags, refused until the
			// backfill.
			if err := f.db.Exec("UPDATE case_events SET tag = ''").Error; err != nil {
				t.Fatal(err)
			}
			f.wantHistoryDamaged(t, f.restart(), id)
			svc := f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			var untagged int64
			f.db.Table("case_events").Where("length(tag) = 0").Count(&untagged)
			if untagged != 0 {
				t.Fatalf("%d events left untagged", untagged)
			}
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var evs []audit.Event
			for _, e := range all {
				if e.Resource == eventTagTable {
					evs = append(evs, e)
				}
			}
			if want := fmt.Sprintf("tagged %d", len(bulk)+2); len(evs) != 1 || evs[0].Detail != want {
				t.Fatalf("backfill events %+v, want one %q", evs, want)
			}
			f.svc = svc
			if h, err := svc.History(f.ctx, f.office, id); err != nil || len(h) != 2 {
				t.Fatalf("history after the backfill: %+v, %v", h, err)
			}
			f.mustMove(id, "extend", "complex", 0)

			// Blanked after the backfill: refused, and never re-tagged.
			if err := f.db.Exec("UPDATE case_events SET tag = '' WHERE case_id = ? AND seq = 1", id).Error; err != nil {
				t.Fatal(err)
			}
			svc = f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			f.wantHistoryDamaged(t, svc, id)
		})
	}
}

// TestEventTextsRetagged: histories tagged before the tags bound their
// texts' presence (eventFieldsV1) are tagged again once at start-up, if
// their first tags authenticate them whole; one edited before that stays
// refused, and the rewrite is recorded once.
func TestEventTextsRetagged(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, editionStarts["2021"], false)
			genuine, edited := f.draft(), f.draft()
			for _, id := range []string{genuine, edited} {
				f.submit(id)
				f.mustMove(id, "require_review", "", 0)
				f.mustMove(id, "extend", "complex", 0)
			}
			// As the previous binary tagged them.
			key, err := f.svc.rowsKey(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var rows []caseEventRow
			if err := f.db.Order("case_id, seq").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			chk := key.NewRowTagChecker(eventTagTable)
			for i := range rows {
				eventFieldsV1(chk, &rows[i])
				if err := f.db.Model(&caseEventRow{}).Where("case_id = ? AND seq = ?", rows[i].CaseID, rows[i].Seq).
					UpdateColumn("tag", chk.Tag(nil)).Error; err != nil {
					t.Fatal(err)
				}
			}
			// Edited under the first tags, before the upgrade: the
			// extension's days. (A text blanked then is taken as it
			// stands, as every backfill takes its rows: the first tags
			// cannot tell.)
			if err := f.db.Exec("UPDATE case_events SET days = 30 WHERE case_id = ? AND seq = 3", edited).Error; err != nil {
				t.Fatal(err)
			}
			svc := f.restart()
			f.wantHistoryDamaged(t, svc, genuine)
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			if h, err := svc.History(f.ctx, f.office, genuine); err != nil || len(h) != 3 || h[2].Reason != "complex" {
				t.Fatalf("history retagged: %+v, %v", h, err)
			}
			// The edit was not laundered.
			f.wantHistoryDamaged(t, svc, edited)
			all, _, err := f.log.Query(f.ctx, audit.Filter{Action: TagBackfillAction, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			var marks []audit.Event
			for _, e := range all {
				if e.Resource == eventTextsMarker {
					marks = append(marks, e)
				}
			}
			if len(marks) != 1 || marks[0].Detail != "tagged 3" {
				t.Fatalf("retag records %+v, want one \"tagged 3\"", marks)
			}
			// Once: a history put back under first tags later stays
			// refused.
			first := rows[slices.IndexFunc(rows, func(r caseEventRow) bool { return r.CaseID == genuine })]
			eventFieldsV1(chk, &first)
			if err := f.db.Model(&caseEventRow{}).Where("case_id = ? AND seq = ?", first.CaseID, first.Seq).
				UpdateColumn("tag", chk.Tag(nil)).Error; err != nil {
				t.Fatal(err)
			}
			svc = f.restart()
			if err := svc.keys.TagLegacyRows(f.ctx, f.log); err != nil {
				t.Fatal(err)
			}
			f.wantHistoryDamaged(t, svc, first.CaseID)
		})
	}
}
