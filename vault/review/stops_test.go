package review_test

import (
	"testing"

	"github.com/crvault/crvault/vault/review"
)

// TestIncompleteMaterialsCountFromCompletion: while the stop opened by
// mark_incomplete lasts, the determination is projected as 2021 Art. 9
// counts it, from the day the materials are complete: the whole allowance
// from today, none used before. The projection made on a day is the date
// the clock gives once the last item arrives that day.
func TestIncompleteMaterialsCountFromCompletion(t *testing.T) {
	c := cal(t)
	sub := step{on: "2026-11-02", a: review.Submit, edition: "2021"}
	mark := step{on: "2026-11-04", a: review.MarkIncomplete}
	for _, tt := range []struct {
		today, due string
	}{
		// 11-05, 06, 09..13, 16, 17, 18: the two days used before the
		// notice (11-03, 11-04) are not taken off.
		{"2026-11-04", "2026-11-18"},
		// 11-23..27, 30, 12-01..04.
		{"2026-11-20", "2026-12-04"},
	} {
		h, _ := build(t, sub, mark)
		waiting, err := review.DeriveClock(c, h, day(t, tt.today))
		if err != nil {
			t.Fatal(err)
		}
		if !waiting.Paused || !waiting.MaterialsIncomplete || waiting.DueOn.String() != tt.due || waiting.UsedWorkingDays != 0 ||
			waiting.AllowedWorkingDays != 10 || waiting.Overdue {
			t.Errorf("waiting on %s: due %s used %d/%d paused %v incomplete %v overdue %v; want due %s, none used",
				tt.today, waiting.DueOn, waiting.UsedWorkingDays, waiting.AllowedWorkingDays, waiting.Paused, waiting.MaterialsIncomplete, waiting.Overdue, tt.due)
		}
		h, _ = build(t, sub, mark, step{on: tt.today, a: review.SupplementReceived})
		done, err := review.DeriveClock(c, h, day(t, tt.today))
		if err != nil {
			t.Fatal(err)
		}
		if done.DueOn != waiting.DueOn || done.MaterialsIncomplete || done.Paused {
			t.Errorf("complete on %s: due %s incomplete %v paused %v; the projection said %s", tt.today, done.DueOn, done.MaterialsIncomplete, done.Paused, waiting.DueOn)
		}
	}
	// An ordinary request while the materials are incomplete joins the
	// same stop, which still began with mark_incomplete.
	h, _ := build(t, sub, mark, step{on: "2026-11-06", a: review.RequestSupplement})
	clk, err := review.DeriveClock(c, h, day(t, "2026-11-20"))
	if err != nil {
		t.Fatal(err)
	}
	if !clk.MaterialsIncomplete || clk.DueOn.String() != "2026-12-04" {
		t.Errorf("a request joining the stop: incomplete %v due %s, want true 2026-12-04", clk.MaterialsIncomplete, clk.DueOn)
	}
	// An ordinary stop of the preliminary review keeps what was used.
	h, _ = build(t, sub, step{on: "2026-11-03", a: review.RequireReview}, step{on: "2026-11-10", a: review.RequestSupplement})
	clk, err = review.DeriveClock(c, h, day(t, "2026-11-20"))
	if err != nil {
		t.Fatal(err)
	}
	if clk.MaterialsIncomplete || clk.UsedWorkingDays != 5 {
		t.Errorf("ordinary stop: incomplete %v used %d, want false 5", clk.MaterialsIncomplete, clk.UsedWorkingDays)
	}
}

// TestSpecialReviewRoundFlaggedWhenOverdue: the special review's new
// recommendation asks the units again, each with 15 working days; a unit
// still silent after them is flagged, though the phase's own 90 days run
// to 2027-03-03. Only the phase's date used to be flagged, so nobody was
// warned. Once every unit asked has answered, the phase's date is next.
func TestSpecialReviewRoundFlaggedWhenOverdue(t *testing.T) {
	c := cal(t)
	steps := []step{{on: "2026-10-09", a: review.Submit, edition: "2021"}, {on: "2026-10-12", a: review.RequireReview},
		{on: "2026-10-20", a: review.Recommend}, {on: "2026-10-21", a: review.Opinion, actor: "mu1", agree: ptr(false)},
		{on: "2026-10-22", a: review.RecordHearing}, {on: "2026-10-23", a: review.Recommend}}
	check := func(steps []step, today string, phase review.Phase, due string, flag review.FlagKind) {
		t.Helper()
		h, _ := build(t, steps...)
		clk, err := review.DeriveClock(c, h, day(t, today))
		if err != nil {
			t.Fatal(err)
		}
		n, ok := clk.Next()
		f, err := review.Flag(clk, c, day(t, today))
		if !ok || n.Phase != phase || n.On.String() != due || err != nil || f != flag {
			t.Errorf("on %s after %s: next %+v (%v), flag %s %v; want %s %s %s", today, steps[len(steps)-1].a, n, ok, f, err, phase, due, flag)
		}
	}
	// 10-26..30, 11-02..06, 09..13.
	check(steps, "2026-11-10", review.PhaseOpinions, "2026-11-13", review.FlagDueSoon)
	check(steps, "2027-01-08", review.PhaseOpinions, "2026-11-13", review.FlagOverdue)
	steps = append(steps, step{on: "2027-01-08", a: review.Opinion, actor: "mu1", agree: ptr(true)})
	check(steps, "2027-01-08", review.PhaseOpinions, "2026-11-13", review.FlagOverdue) // org2 is still silent
	steps = append(steps, step{on: "2027-01-08", a: review.Opinion, actor: "mu2", agree: ptr(true)})
	check(steps, "2027-01-08", review.PhaseSpecial, "2027-03-03", review.FlagNone)
}

// TestLateActionKeepsLapse: an office may extend, restart or end a period
// after its due date (a real office sometimes must act late), but doing so
// does not undo the lapse: Missed keeps each period that had run out, with
// the late action, while Overdue speaks of the period running now. An
// action on the due day is in time.
func TestLateActionKeepsLapse(t *testing.T) {
	c := cal(t)
	// dueOf is the due date the clock gave on a day, as the office saw it
	// before it acted.
	derive := func(steps []step, today string) review.Clock {
		t.Helper()
		h, _ := build(t, steps...)
		clk, err := review.DeriveClock(c, h, day(t, today))
		if err != nil {
			t.Fatal(err)
		}
		return clk
	}
	dueOf := func(steps []step, today string) string { return derive(steps, today).DueOn.String() }
	sub := step{on: "2026-09-01", a: review.Submit, edition: "2021"}
	req := step{on: "2026-09-02", a: review.RequireReview}
	rec := step{on: "2026-09-03", a: review.Recommend}
	dis := step{on: "2026-09-04", a: review.Opinion, actor: "mu1", agree: ptr(false)}
	prelim := dueOf([]step{sub, req}, "2026-09-02")
	special := dueOf([]step{sub, req, rec, dis}, "2026-09-04")
	for _, tt := range []struct {
		name  string
		steps []step
		today string
		want  []review.Lapse
		over  bool
	}{
		{"extend after the preliminary review lapsed", []step{sub, req, {on: "2026-11-30", a: review.Extend, reason: "complex"}}, "2026-11-30",
			[]review.Lapse{{Phase: review.PhasePreliminary, DueOn: day(t, prelim), Action: review.Extend, On: day(t, "2026-11-30")}}, true},
		{"extend on the due day", []step{sub, req, {on: prelim, a: review.Extend, reason: "complex"}}, prelim, nil, false},
		{"extend_special twice after the special review lapsed", []step{sub, req, rec, dis,
			{on: "2027-06-01", a: review.ExtendSpecial, reason: "complex", days: 90}, {on: "2027-11-01", a: review.ExtendSpecial, reason: "complex", days: 5}}, "2027-11-01",
			[]review.Lapse{{Phase: review.PhaseSpecial, DueOn: day(t, special), Action: review.ExtendSpecial, On: day(t, "2027-06-01")},
				{Phase: review.PhaseSpecial, DueOn: day(t, dueOf([]step{sub, req, rec, dis, {on: "2027-06-01", a: review.ExtendSpecial, reason: "complex", days: 90}}, "2027-06-01")),
					Action: review.ExtendSpecial, On: day(t, "2027-11-01")}}, true},
		// Filed 11-02, due 11-16: marked incomplete on 11-25 and received
		// that day, the determination restarts (due 12-09) but its lapse stays.
		{"mark_incomplete after the determination lapsed", []step{{on: "2026-11-02", a: review.Submit, edition: "2021"},
			{on: "2026-11-25", a: review.MarkIncomplete}, {on: "2026-11-25", a: review.SupplementReceived}}, "2026-11-25",
			[]review.Lapse{{Phase: review.PhaseDetermination, DueOn: day(t, "2026-11-16"), Action: review.MarkIncomplete, On: day(t, "2026-11-25")}}, false},
		{"a phase ended late", []step{{on: "2026-11-02", a: review.Submit, edition: "2021"}, {on: "2026-11-18", a: review.RequireReview}}, "2026-11-18",
			[]review.Lapse{{Phase: review.PhaseDetermination, DueOn: day(t, "2026-11-16"), Action: review.RequireReview, On: day(t, "2026-11-18")}}, false},
		{"a stop during the period lapses nothing", []step{sub, req, {on: "2026-09-10", a: review.RequestSupplement}, {on: "2026-11-30", a: review.Extend, reason: "complex"}}, "2026-11-30",
			nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := derive(tt.steps, tt.today)
			if len(clk.Missed) != len(tt.want) || clk.Overdue != tt.over {
				t.Fatalf("missed %+v overdue %v; want %+v overdue %v", clk.Missed, clk.Overdue, tt.want, tt.over)
			}
			for i := range tt.want {
				if clk.Missed[i] != tt.want[i] {
					t.Errorf("missed[%d] = %+v, want %+v", i, clk.Missed[i], tt.want[i])
				}
			}
		})
	}
}
