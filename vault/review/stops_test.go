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
