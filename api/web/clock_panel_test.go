package web

import (
	"strings"
	"testing"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/review"
)

// clockPanel renders the case page for an operator and hands each
// language's clock section to check.
func clockPanel(t *testing.T, clk *review.Clock, check func(L *Locale, clock string)) {
	t.Helper()
	v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "awaiting_supplement"}, Clock: clk}
	renderCasePage(t, []string{"operator"}, v, func(L *Locale, html string) {
		_, clock, _ := strings.Cut(html, `id="clock-h"`)
		clock, _, _ = strings.Cut(clock, "</section>")
		check(L, clock)
	})
}

// TestClockPanelPausedOverdue: a case paused after its due date passed is
// shown overdue with its fixed date, not a projection said to move with
// the stop (it moves no more).
func TestClockPanelPausedOverdue(t *testing.T) {
	clk := &review.Clock{Phase: review.PhasePreliminary, DueOn: day(t, "2026-11-23"), AllowedWorkingDays: 30, UsedWorkingDays: 30, Paused: true,
		Overdue: true, Pauses: []review.Pause{{From: day(t, "2026-12-02")}}}
	clockPanel(t, clk, func(L *Locale, clock string) {
		for _, want := range []string{`id="clock-paused-overdue"`, L.T("clock.overdue"), L.T("clock.paused_overdue"), L.Date("2026-11-23")} {
			if !strings.Contains(clock, want) {
				t.Errorf("%s: the overdue paused clock lacks %q", L.Lang(), want)
			}
		}
		for _, not := range []string{L.T("clock.projected"), L.T("clock.projected_help")} {
			if strings.Contains(clock, not) {
				t.Errorf("%s: the overdue paused clock shows %q", L.Lang(), not)
			}
		}
	})
}

// TestClockPanelIncompleteAndMissed: while the materials are incomplete
// the projection says the period runs from their completion; the periods
// that ran out before the office acted are listed.
func TestClockPanelIncompleteAndMissed(t *testing.T) {
	clk := &review.Clock{Phase: review.PhaseDetermination, DueOn: day(t, "2026-12-04"), AllowedWorkingDays: 10, Paused: true, MaterialsIncomplete: true,
		Pauses: []review.Pause{{From: day(t, "2026-11-26")}},
		Missed: []review.Lapse{{Phase: review.PhaseDetermination, DueOn: day(t, "2026-11-16"), Action: review.MarkIncomplete, On: day(t, "2026-11-25")}}}
	clockPanel(t, clk, func(L *Locale, clock string) {
		item := L.T("clock.missed_item", "Phase", L.Phase(review.PhaseDetermination), "Due", L.Date("2026-11-16"),
			"Action", L.Enum("action", review.MarkIncomplete), "On", L.Date("2026-11-25"))
		for _, want := range []string{L.T("clock.incomplete_help"), `id="clock-missed"`, item} {
			if !strings.Contains(clock, want) {
				t.Errorf("%s: the clock lacks %q", L.Lang(), want)
			}
		}
		if strings.Contains(clock, L.T("clock.projected_help")) {
			t.Errorf("%s: the incomplete clock says the stop's own help", L.Lang())
		}
	})
}
