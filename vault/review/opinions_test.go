package review_test

import (
	"fmt"
	"testing"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// opinionsOn is the clock's opinions on today as "round/org:state", state
// one of agree, disagree, overdue, awaiting.
func opinionsOn(t *testing.T, h []review.Event, today calendar.Date) []string {
	t.Helper()
	c, err := review.DeriveClock(cal(t), h, today)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, mo := range c.Opinions {
		out = append(out, fmt.Sprintf("%d/%s:%s", mo.Round, mo.Org, mo.State()))
	}
	return out
}

// TestSpecialReviewListsItsOwnRounds, for each edition: a disagreement
// moves the case to special review; the first round is then over, and the
// special review's clock lists only its own rounds, whichever day the
// disagreement came on (the day of the recommendation, or the round's due
// day). A unit answering on its due day is not overdue; one silent past it
// is; one whose round a later recommendation replaced is not.
func TestSpecialReviewListsItsOwnRounds(t *testing.T) {
	c := cal(t)
	wd := func(from calendar.Date, n int) calendar.Date {
		t.Helper()
		d, err := c.WorkdaysAfter(from, n)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	rec := day(t, "2026-04-01")
	due1 := wd(rec, 15)
	for _, ed := range review.Editions() {
		for _, disagreeOn := range []calendar.Date{rec, due1} {
			t.Run(fmt.Sprintf("%s/disagree-%s", ed.ID, disagreeOn), func(t *testing.T) {
				steps := []step{
					{on: "2026-03-02", a: review.Submit, edition: ed.ID},
					{on: "2026-03-03", a: review.RequireReview},
					{on: rec.String(), a: review.Recommend},
					{on: disagreeOn.String(), a: review.Opinion, actor: "mu1", agree: ptr(false), reason: "supply risk"},
				}
				h, s := build(t, steps...)
				if s != review.SpecialReview {
					t.Fatalf("status %s", s)
				}
				ck, err := review.DeriveClock(c, h, disagreeOn)
				if err != nil {
					t.Fatal(err)
				}
				if ck.Phase != review.PhaseSpecial || ck.StartedOn != disagreeOn || ck.AllowedWorkingDays != ed.SpecialDays ||
					ck.DueOn != wd(disagreeOn, ed.SpecialDays) {
					t.Fatalf("special review clock %+v", ck)
				}
				// org2 never answered the first round, which is over: it is
				// not asked anything now, so it is listed neither as awaiting
				// nor, after the first round's 15 days, as overdue.
				for _, today := range []calendar.Date{due1.AddDays(1), wd(due1, 10), disagreeOn, due1} {
					if got := opinionsOn(t, h, today); len(got) != 0 {
						t.Fatalf("on %s the special review lists the first round: %v", today, got)
					}
				}
				// The second round (2020 Art. 12 / 2021 Art. 13).
				hear := wd(disagreeOn, 3)
				rec2 := wd(hear, 1)
				due2 := wd(rec2, 15)
				steps = append(steps,
					step{on: hear.String(), a: review.RecordHearing},
					step{on: rec2.String(), a: review.Recommend},
				)
				h, _ = build(t, steps...)
				for _, today := range []calendar.Date{rec2, due2} {
					if got := fmt.Sprint(opinionsOn(t, h, today)); got != "[2/org1:awaiting 2/org2:awaiting]" {
						t.Fatalf("on %s: %s", today, got)
					}
				}
				// org1 answers on its due day: not overdue, then or after.
				steps = append(steps, step{on: due2.String(), a: review.Opinion, actor: "mu1", agree: ptr(true)})
				h, _ = build(t, steps...)
				for _, tc := range []struct {
					today calendar.Date
					want  string
				}{
					{due2, "[2/org1:agree 2/org2:awaiting]"},
					{due2.AddDays(1), "[2/org1:agree 2/org2:overdue]"},
				} {
					if got := fmt.Sprint(opinionsOn(t, h, tc.today)); got != tc.want {
						t.Fatalf("on %s: %s, want %s", tc.today, got, tc.want)
					}
				}
				// A third recommendation replaces the second round: org2's
				// silence there is over, its current request is the third.
				hear3 := due2.AddDays(1)
				rec3 := wd(hear3, 1)
				steps = append(steps,
					step{on: hear3.String(), a: review.RecordHearing},
					step{on: rec3.String(), a: review.Recommend},
				)
				h, _ = build(t, steps...)
				want := "[2/org1:agree 2/org2:awaiting 3/org1:awaiting 3/org2:awaiting]"
				if got := fmt.Sprint(opinionsOn(t, h, rec3)); got != want {
					t.Fatalf("after the third recommendation: %s, want %s", got, want)
				}
				if got := fmt.Sprint(opinionsOn(t, h, wd(rec3, 16))); got != "[2/org1:agree 2/org2:awaiting 3/org1:overdue 3/org2:overdue]" {
					t.Fatalf("after the third round's due date: %s", got)
				}
			})
		}
	}
}
