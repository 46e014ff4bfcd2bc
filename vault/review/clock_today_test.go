package review_test

import (
	"testing"

	"github.com/crvault/crvault/vault/review"
)

// TestRunningDueIgnoresToday pins what vault stores per case (the due date
// of a running clock, cases.due_on): for every prefix of a full history
// whose clock runs, DueOn, DueOnProvisional and Phase are the same whatever
// today is, from the last event's day to years later, provisional years
// included. A paused clock's DueOn does move with today, which is why it is
// stored as no date.
func TestRunningDueIgnoresToday(t *testing.T) {
	c := cal(t)
	steps := []step{
		{on: "2025-09-19", a: review.Submit, edition: "2021"},
		{on: "2025-09-22", a: review.MarkIncomplete},
		{on: "2025-09-26", a: review.SupplementReceived},
		{on: "2025-10-09", a: review.RequireReview},
		{on: "2025-10-20", a: review.RequestSupplement},
		{on: "2025-10-24", a: review.SupplementReceived},
		{on: "2025-11-03", a: review.Extend, reason: "complex supply chain"},
		{on: "2025-11-14", a: review.Recommend},
		{on: "2025-11-20", a: review.Opinion, actor: "mu1", agree: ptr(true)},
		{on: "2025-12-10", a: review.Opinion, actor: "mu2", agree: ptr(false)},
		{on: "2026-11-10", a: review.ExtendSpecial, reason: "hearing", days: 15},
		{on: "2026-12-21", a: review.RequestSupplement},
		{on: "2026-12-28", a: review.SupplementReceived},
	}
	running, pausedMoved, pausedFixed := 0, 0, 0
	for n := 1; n <= len(steps); n++ {
		h, _ := build(t, steps[:n]...)
		last := h[len(h)-1].On
		ref, err := review.DeriveClock(c, h, last)
		if err != nil {
			t.Fatal(err)
		}
		moved := false
		for _, d := range []int{0, 1, 7, 30, 200, 800, 3000} {
			got, err := review.DeriveClock(c, h, last.AddDays(d))
			if err != nil {
				t.Fatal(err)
			}
			if !ref.DueFixed() {
				moved = moved || got.DueOn != ref.DueOn
				continue
			}
			// Running, or paused after the due date passed (the last
			// step): stored as such, so it must not move either.
			if got.DueOn != ref.DueOn || got.DueOnProvisional != ref.DueOnProvisional || got.Phase != ref.Phase || got.Paused != ref.Paused {
				t.Fatalf("after %s, today +%d: due %s provisional %v phase %s, on the day %s %v %s",
					steps[n-1].a, d, got.DueOn, got.DueOnProvisional, got.Phase, ref.DueOn, ref.DueOnProvisional, ref.Phase)
			}
		}
		switch {
		case !ref.Paused:
			running++
		case ref.DueFixed():
			pausedFixed++
		case moved:
			pausedMoved++
		}
	}
	// The pauses before the due date move it (the last one comes after the
	// special review's due date, and cannot).
	if running < 8 || pausedMoved < 2 || pausedFixed != 1 {
		t.Fatalf("%d running prefixes, %d paused ones whose date moves with today and %d whose date is fixed: the history no longer covers each", running, pausedMoved, pausedFixed)
	}
}
