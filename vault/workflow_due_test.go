package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// replayDeadlines is the deadlines list as it was computed before due dates
// were stored: every open case's history replayed with today's date, kept
// here as the oracle the stored dates must agree with.
func replayDeadlines(t testing.TB, f *wfFixture, within int) []Deadline {
	t.Helper()
	today := calendar.Today(f.svc.now())
	cal, err := f.svc.calendar(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rows []caseRow
	if err := f.svc.db.Where("status IN ?", openStatuses).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	hs, _, err := f.svc.histories(f.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	out := []Deadline{}
	for _, r := range rows {
		c, err := review.DeriveClock(cal, hs[r.ID], today)
		if err != nil {
			continue
		}
		fl, err := review.FlagWithin(c, cal, today, within)
		if err != nil || fl == review.FlagNone {
			continue
		}
		std, _ := review.Flag(c, cal, today)
		n, _ := c.Next()
		out = append(out, Deadline{CaseID: r.ID, Title: "Routers", Status: r.Status, Phase: n.Phase, DueOn: n.On,
			DueOnProvisional: n.Provisional, Overdue: today.After(n.On), Flag: std})
	}
	slices.SortFunc(out, func(a, b Deadline) int {
		if c := a.DueOn.Compare(b.DueOn); c != 0 {
			return c
		}
		return strings.Compare(a.CaseID, b.CaseID)
	})
	return out
}

// pagedDeadlines walks GET /deadlines page by page.
func pagedDeadlines(t *testing.T, f *wfFixture, within, limit int) []Deadline {
	t.Helper()
	var out []Deadline
	cursor := ""
	for n := 0; ; n++ {
		p, err := f.svc.DeadlinesPage(f.ctx, f.office, within, limit, cursor)
		if err != nil {
			t.Fatalf("within %d page %d: %v", within, n, err)
		}
		if len(p.Items) > limit || (p.NextCursor != "" && len(p.Items) != limit) {
			t.Fatalf("within %d page %d: %d items, limit %d, next %q", within, n, len(p.Items), limit, p.NextCursor)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
		if n > 100 {
			t.Fatal("deadlines pages do not end")
		}
	}
}

func deadlineLines(ds []Deadline) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s %s %s %s prov=%v overdue=%v %s %q\n", d.DueOn, d.CaseID, d.Status, d.Phase, d.DueOnProvisional, d.Overdue, d.Flag, d.Title)
	}
	return b.String()
}

// dueMix files cases in every state a clock can be in, from September 2026
// to late December 2026, so some deadlines run into 2027, a year with no
// official schedule in the embedded calendar (provisional). It returns
// them by name.
func dueMix(t *testing.T, f *wfFixture) map[string]string {
	t.Helper()
	ids := map[string]string{}
	submit := func(name, day string) string {
		f.at(day)
		id := f.draft()
		if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
			t.Fatal(err)
		}
		ids[name] = id
		return id
	}
	submit("determination", "2026-09-01")
	submit("determination-twin", "2026-09-01") // same due date: ordered by id
	f.mustMove(submit("preliminary", "2026-09-01"), "require_review", "", 0)
	id := submit("paused", "2026-09-01")
	f.mustMove(id, "require_review", "", 0)
	f.mustMove(id, "request_supplement", "need the escrow agreement", 0)
	id = submit("resumed", "2026-09-01")
	f.mustMove(id, "require_review", "", 0)
	f.mustMove(id, "request_supplement", "need the escrow agreement", 0)
	f.at("2026-09-15")
	f.mustMove(id, "supplement_received", "closed early by the office", 0)
	id = submit("incomplete-restarted", "2026-09-01")
	f.mustMove(id, "mark_incomplete", "the declaration is unsigned", 0)
	f.at("2026-09-08")
	f.mustMove(id, "supplement_received", "closed early by the office", 0)
	id = submit("extended", "2026-09-01")
	f.mustMove(id, "require_review", "", 0)
	f.mustMove(id, "extend", "complex supply chain", 0)
	f.toRecommend(submit("opinions", "2026-10-08"))
	id = submit("special", "2026-10-08")
	f.mustMove(id, "require_review", "", 0)
	f.assign(id, f.rev, "reviewer")
	f.upload(f.rev, id, "recommendation")
	f.assign(id, f.u1, "member_unit")
	f.mustMove(id, "recommend", "", 0)
	no := false
	if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &no, Comment: "risk"}); err != nil {
		t.Fatal(err)
	}
	f.mustMove(id, "extend_special", "complex", 10)
	f.mustMove(submit("not-required", "2026-09-01"), "not_required", "", 0)
	id = submit("concluded", "2026-09-01")
	f.toRecommend(id)
	yes := true
	for _, u := range []Actor{f.u1, f.u2} {
		if _, err := f.svc.Opinion(f.ctx, u, id, OpinionRequest{Agree: &yes}); err != nil {
			t.Fatal(err)
		}
	}
	f.mustMove(id, "conclude", "", 0)
	f.at("2026-09-01")
	ids["draft"] = f.draft()
	f.mustMove(submit("provisional-preliminary", "2026-12-01"), "require_review", "", 0)
	submit("determination-december", "2026-12-15")
	id = submit("extended-december", "2026-12-15")
	f.mustMove(id, "require_review", "", 0)
	f.mustMove(id, "extend", "complex", 0)
	submit("provisional-determination", "2026-12-21")
	return ids
}

// dueDays are the todays the equivalence is checked on: all after the last
// event of dueMix, across the turn of the year and into the provisional one.
var dueDays = []string{"2026-12-21", "2026-12-31", "2027-01-08", "2027-01-14", "2027-03-01"}

// TestDeadlinesFromStoredDueDates: the deadlines list read from the stored
// due dates, page by page, equals item by item the list derived by
// replaying every open case, for cases in every state and several todays
// and windows; and after a calendar import makes the provisional 2027
// official (with a week off in January), it follows.
func TestDeadlinesFromStoredDueDates(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 9, 1, 2, 0, 0, 0, time.UTC), false)
			ids := dueMix(t, f)
			check := func(stage string) (listed int, provisional int) {
				t.Helper()
				for _, day := range dueDays {
					f.at(day)
					for _, within := range []int{0, 3, 10, 40, MaxWithin} {
						want := replayDeadlines(t, f, within)
						for _, limit := range []int{2, 3, 500} {
							got := pagedDeadlines(t, f, within, limit)
							if g, w := deadlineLines(got), deadlineLines(want); g != w {
								t.Fatalf("%s, %s, within %d, limit %d:\ngot\n%swant\n%s", stage, day, within, limit, g, w)
							}
						}
						whole, err := f.svc.Deadlines(f.ctx, f.office, within)
						if err != nil || deadlineLines(whole) != deadlineLines(want) {
							t.Fatalf("%s, %s, within %d: Deadlines\n%s%v, want\n%s", stage, day, within, deadlineLines(whole), err, deadlineLines(want))
						}
						listed += len(want)
						for _, w := range want {
							if w.DueOnProvisional {
								provisional++
							}
						}
					}
				}
				return listed, provisional
			}
			listed, prov := check("embedded calendar")
			// The list must have had something to agree on, provisional
			// dates among it.
			if listed < 20 || prov == 0 {
				t.Fatalf("the mix lists %d deadlines, %d provisional: too few to compare", listed, prov)
			}
			before := f.storedDue(ids["provisional-preliminary"])
			if before.On == nil || !before.Provisional {
				t.Fatalf("provisional case stored %+v", before)
			}
			// 2027 becomes official, with the first week of January off,
			// imported the way `vaultd calendar import` does from another
			// process: through its own Calendars over the database, with
			// no keys and no word to this service.
			year := calendarFile(t, 2027, "2027-01-01", "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07", "2027-01-08")
			if _, err := NewCalendars(f.svc.db, nil).Import(f.ctx, year); err != nil {
				t.Fatal(err)
			}
			if _, prov := check("2027 imported"); prov != 0 {
				t.Fatalf("%d provisional deadlines after 2027 was imported", prov)
			}
			after := f.storedDue(ids["provisional-preliminary"])
			if after.On == nil || after.Provisional || *after.On == *before.On {
				t.Fatalf("after the import the case is stored %+v (before %+v)", after, before)
			}
		})
	}
}

// storedDue reads a case's due columns as stored.
func (f *wfFixture) storedDue(id string) dueColumns {
	f.t.Helper()
	var r caseRow
	if err := f.svc.db.Where("id = ?", id).Take(&r).Error; err != nil {
		f.t.Fatal(err)
	}
	return dueColumns{On: r.DueOn, Provisional: r.DueOnProvisional, Phase: r.DuePhase, Basis: r.DueBasis}
}

// wantStoredDue checks, without any read that would re-derive them, that a
// case's stored due columns are what its clock says now and carry the
// current calendar's basis: written by the transition itself.
func (f *wfFixture) wantStoredDue(id string, running bool) {
	f.t.Helper()
	got := f.storedDue(id)
	c := f.clockOf(id)
	cal, err := f.svc.calendar(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	n, fixed := c.Next()
	if running != (fixed && c.Phase != review.PhaseNone && c.Phase != review.PhaseClosed) {
		f.t.Fatalf("case %s: clock %+v, want running %v", id, c, running)
	}
	if !running {
		if got.On != nil || got.Basis != basisNone {
			f.t.Fatalf("case %s (%s, paused %v): stored %+v, want no due date", id, c.Phase, c.Paused, got)
		}
		return
	}
	if got.On == nil || *got.On != n.On.String() || got.Provisional != n.Provisional || got.Phase != string(n.Phase) || got.Basis != dueBasis(cal) {
		f.t.Fatalf("case %s: stored %+v, clock's next due %s provisional %v phase %s", id, got, n.On, n.Provisional, n.Phase)
	}
}

// TestStoredDueFollowsTransitions: every kind of transition stores the due
// date the clock derives, in its own write: starts, extensions, pauses and
// their end, the 2021 restart of the determination, opinions, special
// review, conclusion.
func TestStoredDueFollowsTransitions(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			id := f.draft()
			f.wantStoredDue(id, false)
			if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
				t.Fatal(err)
			}
			f.wantStoredDue(id, true)
			det := *f.storedDue(id).On
			f.at("2025-03-05")
			f.mustMove(id, "mark_incomplete", "unsigned", 0)
			f.wantStoredDue(id, false)
			f.at("2025-03-12")
			f.mustMove(id, "supplement_received", "closed early by the office", 0)
			f.wantStoredDue(id, true)
			if *f.storedDue(id).On == det {
				t.Fatal("the determination did not restart from complete materials")
			}
			f.at("2025-03-14")
			f.mustMove(id, "require_review", "", 0)
			f.wantStoredDue(id, true)
			prelim := *f.storedDue(id).On
			f.mustMove(id, "extend", "complex", 0)
			f.wantStoredDue(id, true)
			if *f.storedDue(id).On <= prelim {
				t.Fatal("the extension did not move the due date")
			}
			f.at("2025-03-20")
			f.mustAct(id, TransitionRequest{Action: "request_supplement", Items: []string{"escrow", "pentest"}})
			f.wantStoredDue(id, false)
			f.at("2025-04-08")
			// The party brings the first item (2: the request of
			// mark_incomplete was item 1): still waiting for the second.
			if _, err := f.svc.Upload(f.ctx, f.op, id, Upload{Kind: "supplementary", Filename: "escrow.txt", Body: strings.NewReader("x"), Size: 1, Item: 2}); err != nil {
				t.Fatal(err)
			}
			f.wantStoredDue(id, false)
			// The last item received restarts the clock (supplement_item,
			// then supplement_received in the same transaction).
			if _, err := f.svc.Upload(f.ctx, f.op, id, Upload{Kind: "supplementary", Filename: "pentest.txt", Body: strings.NewReader("y"), Size: 1, Item: 3}); err != nil {
				t.Fatal(err)
			}
			f.wantStoredDue(id, true)
			f.assign(id, f.rev, "reviewer")
			f.upload(f.rev, id, "recommendation")
			f.assign(id, f.u1, "member_unit")
			f.assign(id, f.u2, "member_unit")
			f.mustMove(id, "recommend", "", 0)
			f.wantStoredDue(id, true)
			yes, no := true, false
			f.at("2025-04-10")
			if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes}); err != nil {
				t.Fatal(err)
			}
			f.wantStoredDue(id, true)
			if _, err := f.svc.Opinion(f.ctx, f.u2, id, OpinionRequest{Agree: &no, Comment: "risk"}); err != nil {
				t.Fatal(err)
			}
			f.wantStoredDue(id, true)
			if f.storedDue(id).Phase != string(review.PhaseSpecial) {
				t.Fatalf("stored %+v, want special review", f.storedDue(id))
			}
			f.mustMove(id, "extend_special", "complex", 5)
			f.wantStoredDue(id, true)
			f.mustMove(id, "record_hearing", "heard the departments concerned", 0)
			f.wantStoredDue(id, true)
			f.at("2025-04-14")
			f.upload(f.rev, id, "recommendation")
			f.mustMove(id, "recommend", "", 0)
			f.wantStoredDue(id, true)
			// The second round's 15 days end first: its date is stored
			// until every unit asked has answered.
			if f.storedDue(id).Phase != string(review.PhaseOpinions) {
				t.Fatalf("stored %+v, want the second round's opinions", f.storedDue(id))
			}
			for _, u := range []Actor{f.u1, f.u2} {
				if _, err := f.svc.Opinion(f.ctx, u, id, OpinionRequest{Agree: &yes}); err != nil {
					t.Fatal(err)
				}
				f.wantStoredDue(id, true)
			}
			if f.storedDue(id).Phase != string(review.PhaseSpecial) {
				t.Fatalf("stored %+v after every answer, want the special review", f.storedDue(id))
			}
			f.mustAct(id, TransitionRequest{Action: "record_approval", Reference: "CAC approval 2025-17"})
			f.wantStoredDue(id, true)
			f.mustMove(id, "conclude", "", 0)
			f.wantStoredDue(id, false)
		})
	}
}

// TestMigrateDueFillsOpenCases: on a database from before migration 8 (no
// due columns), the migration leaves every open case to be derived and the
// first deadlines read lists exactly what replaying them gives, and stores
// each case's date.
func TestMigrateDueFillsOpenCases(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 9, 1, 2, 0, 0, 0, time.UTC), false)
			ids := dueMix(t, f)
			f.at("2026-12-31")
			want := replayDeadlines(t, f, MaxWithin)
			if len(want) < 8 {
				t.Fatalf("only %d deadlines to migrate", len(want))
			}
			db := f.svc.db
			m := db.Migrator()
			for _, idx := range []string{"idx_cases_due", "idx_cases_due_basis"} {
				if err := db.Exec("DROP INDEX " + idx).Error; err != nil {
					t.Fatal(err)
				}
			}
			for _, col := range []string{"DueOn", "DueOnProvisional", "DuePhase", "DueBasis"} {
				if err := m.DropColumn(&caseRow{}, col); err != nil {
					t.Fatal(err)
				}
			}
			if m.HasColumn(&caseRow{}, "DueOn") {
				t.Fatal("due_on still there")
			}
			if err := db.Transaction(func(tx *gorm.DB) error { return migrateDue(tx, d) }); err != nil {
				t.Fatalf("migration 8 on a populated database: %v", err)
			}
			// Statements prepared before the schema changed stay cached on
			// the pool's idle connections (PostgreSQL: "cached plan must
			// not change result type"; SQLite: a "cases.*" prepared before
			// the columns moved scans a tag into due_on_provisional, seen
			// once); a real upgrade migrates before any is prepared, so
			// the test drops them.
			if sqlDB, err := db.DB(); err == nil {
				sqlDB.SetMaxIdleConns(0)
				if sqldb.Dialect(db) == sqldb.Postgres {
					sqlDB.SetMaxIdleConns(32) // as sqldb.Open sets it
				} else {
					sqlDB.SetMaxIdleConns(8)
				}
			}
			var stale int64
			if err := db.Model(&caseRow{}).Where("due_basis = ''").Count(&stale).Error; err != nil {
				t.Fatal(err)
			}
			if wantStale := len(ids) - 3; stale != int64(wantStale) { // all but the draft and the two closed ones
				t.Fatalf("%d cases left to derive, want %d", stale, wantStale)
			}
			got, err := f.svc.Deadlines(f.ctx, f.office, MaxWithin)
			if err != nil && strings.Contains(err.Error(), "cached plan must not change result type") {
				// As in TestMigrateEditionsBackfill: statements prepared
				// before the schema changed; a real upgrade migrates first.
				got, err = f.svc.Deadlines(f.ctx, f.office, MaxWithin)
			}
			if err != nil || deadlineLines(got) != deadlineLines(want) {
				t.Fatalf("after migration:\n%s%v\nwant\n%s", deadlineLines(got), err, deadlineLines(want))
			}
			for name, id := range ids {
				running := !slices.Contains([]string{"draft", "not-required", "concluded", "paused"}, name)
				f.wantStoredDue(id, running)
			}
		})
	}
}

// TestSweepFromStoredDueDates: on each day, the sweep flags exactly the
// cases, phases and flags that evaluating every open case's replayed clock
// flags, and counts them alike.
func TestSweepFromStoredDueDates(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 9, 1, 2, 0, 0, 0, time.UTC), false)
			dueMix(t, f)
			total := 0
			for _, day := range append([]string{"2026-12-24"}, dueDays...) {
				f.at(day)
				var want []string
				soon, overdue := 0, 0
				for _, dl := range replayDeadlines(t, f, review.DueSoonWorkingDays) {
					want = append(want, fmt.Sprintf("%s %s %s %s", dl.CaseID, dl.Phase, dl.Flag, dl.DueOn))
					if dl.Flag == review.FlagOverdue {
						overdue++
					} else {
						soon++
					}
				}
				slices.Sort(want)
				if err := f.svc.db.Where("1 = 1").Delete(&deadlineFlagRow{}).Error; err != nil {
					t.Fatal(err)
				}
				sw, err := f.svc.SweepDeadlines(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				var rows []deadlineFlagRow
				if err := f.svc.db.Find(&rows).Error; err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range rows {
					got = append(got, fmt.Sprintf("%s %s %s %s", r.CaseID, r.Phase, r.Flag, r.DueOn))
				}
				slices.Sort(got)
				if !slices.Equal(got, want) || sw.DueSoon != soon || sw.Overdue != overdue || sw.Flagged != len(want) {
					t.Fatalf("%s: sweep %+v flagged\n%s\nwant (%d due soon, %d overdue)\n%s", day, sw, strings.Join(got, "\n"), soon, overdue, strings.Join(want, "\n"))
				}
				total += len(want)
			}
			if total < 10 {
				t.Fatalf("only %d flags over the days: too few to compare", total)
			}
		})
	}
}

// TestDueCutoff: the cutoff is the last day FlagWithin still flags,
// checked against FlagWithin itself day by day, over holidays and into
// the provisional years.
func TestDueCutoff(t *testing.T) {
	cal := embedded(t)
	for _, today := range []string{"2025-01-24", "2025-09-30", "2026-12-28", "2026-12-31", "2027-02-05"} {
		for _, within := range []int{0, 1, 3, 10, 45} {
			td := date(t, today)
			cut, ok, err := dueCutoff(cal, td, within)
			if err != nil || !ok {
				t.Fatalf("%s within %d: %v %v", today, within, ok, err)
			}
			for d := td.AddDays(-3); !d.After(cut.AddDays(20)); d = d.AddDays(1) {
				fl, err := review.FlagWithin(review.Clock{Phase: review.PhasePreliminary, DueOn: d}, cal, td, within)
				if err != nil {
					t.Fatal(err)
				}
				if flagged := fl != review.FlagNone; flagged != !d.After(cut) {
					t.Fatalf("%s within %d: cutoff %s, but %s is flagged %v", today, within, cut, d, fl)
				}
			}
		}
	}
}

// TestDueRefreshWaitEndsWithItsRequest: a deadlines request that finds
// stale due dates while another refresh holds the turn gives up when its
// context ends, instead of waiting the refresh out; once the turn is free
// it refreshes and answers as the replay does.
func TestDueRefreshWaitEndsWithItsRequest(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2026, 9, 1, 2, 0, 0, 0, time.UTC), false)
	dueMix(t, f)
	f.at("2026-12-31")
	want := replayDeadlines(t, f, MaxWithin)
	if err := f.svc.db.Exec("UPDATE cases SET due_basis = 'stale' WHERE due_on IS NOT NULL").Error; err != nil {
		t.Fatal(err)
	}
	f.svc.dueTurn <- struct{}{} // another request's refresh
	// Long enough for the request's own audit record on a loaded machine
	// (200 ms ran out there, before the wait for the turn began): the
	// deadline must be met in that wait, not before it.
	ctx, cancel := context.WithTimeout(f.ctx, 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := f.svc.Deadlines(ctx, f.office, MaxWithin); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting for the turn: %v, want the request's deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request kept waiting after its context ended")
	}
	<-f.svc.dueTurn
	got, err := f.svc.Deadlines(f.ctx, f.office, MaxWithin)
	if err != nil || deadlineLines(got) != deadlineLines(want) {
		t.Fatalf("after the turn was freed:\n%s%v\nwant\n%s", deadlineLines(got), err, deadlineLines(want))
	}
	var stale int64
	if err := f.svc.db.Model(&caseRow{}).Where("due_basis = 'stale'").Count(&stale).Error; err != nil || stale != 0 {
		t.Fatalf("%d stale rows left (%v)", stale, err)
	}
}

// TestDeadlineFlaggedAgainWhenItMoves: a case warned of as due soon and
// then extended has a new statutory date; the office must be warned of
// that one too, not only when it has passed.
func TestDeadlineFlaggedAgainWhenItMoves(t *testing.T) {
	f := newWF(t, sqldbtest.Backends[0], time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC), true)
	id := f.draft()
	f.submit(id)
	f.at("2025-06-03")
	f.mustMove(id, "require_review", "", 0)
	first, err := f.svc.Clock(f.ctx, f.office, id)
	if err != nil {
		t.Fatal(err)
	}
	sweep := func(day string, wantFlagged int) {
		t.Helper()
		f.at(day)
		sw, err := f.svc.SweepDeadlines(f.ctx)
		if err != nil || sw.Flagged != wantFlagged {
			t.Fatalf("sweep on %s: %+v, %v; want %d flagged", day, sw, err, wantFlagged)
		}
	}
	sweep(first.DueOn.AddDays(-1).String(), 1)
	f.mustMove(id, "extend", "complex", 0)
	extended, err := f.svc.Clock(f.ctx, f.office, id)
	if err != nil || !extended.DueOn.After(first.DueOn) {
		t.Fatalf("extended clock: %+v, %v", extended, err)
	}
	sweep(extended.DueOn.AddDays(-1).String(), 1) // due soon again, for the new date
	sweep(extended.DueOn.String(), 0)             // and once only
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	if len(f.hooks) != 2 || f.hooks[0].DueOn != first.DueOn.String() || f.hooks[1].DueOn != extended.DueOn.String() || f.hooks[1].Flag != "due_soon" {
		t.Fatalf("webhooks %+v; want due_soon for %s, then for %s", f.hooks, first.DueOn, extended.DueOn)
	}
}
