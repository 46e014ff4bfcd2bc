package review_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// silentRound is a case of edition ed whose first opinion round went out on
// 2026-04-01 to org1 and org2: org1 agreed the next day and org2 said
// nothing. It returns the history, the status and org2's due day.
func silentRound(t *testing.T, ed string) ([]review.Event, review.Status, calendar.Date) {
	t.Helper()
	h, s := build(t,
		step{on: "2026-03-02", a: review.Submit, edition: ed},
		step{on: "2026-03-03", a: review.RequireReview},
		step{on: "2026-04-01", a: review.Recommend},
		step{on: "2026-04-02", a: review.Opinion, actor: "mu1", agree: ptr(true)})
	due, err := cal(t).WorkdaysAfter(day(t, "2026-04-01"), 15)
	if err != nil {
		t.Fatal(err)
	}
	return h, s, due
}

// withCal is the test facts with the calendar record_opinion counts by.
func withCal(t *testing.T) review.Facts {
	f := facts
	f.Calendar = cal(t)
	return f
}

func recordIn(t *testing.T, on calendar.Date, unit string, agree *bool) review.Input {
	return input(t, step{on: on.String(), a: review.RecordOpinion, unit: unit, agree: agree,
		ref: "工信部网安函〔2026〕17号", reason: "the unit's letter arrived by post after its period ran out"})
}

func guardCode(err error) string {
	var g *review.GuardError
	if errors.As(err, &g) {
		return g.Code
	}
	return fmt.Sprint(err)
}

// TestRecordOpinionUnblocksSilentUnit (2020 Art. 11 / 2021 Art. 12): with
// org1 agreeing and org2 silent past its 15 working days, the office could
// neither conclude (silence is not agreement) nor open the special review
// (silence is not disagreement): only org2 could move the case. The office
// now records org2's written answer received outside crvault, once org2 is
// overdue and not before, and the case proceeds: to the conclusion on an
// agreement, to the special review on a disagreement.
func TestRecordOpinionUnblocksSilentUnit(t *testing.T) {
	for _, ed := range review.Editions() {
		t.Run(ed.ID, func(t *testing.T) {
			h, s, due := silentRound(t, ed.ID)
			f := withCal(t)
			late := due.AddDays(1)

			// On its due day org2 may still answer itself.
			_, _, err := review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, due, "org2", ptr(true)))
			if guardCode(err) != review.CodeOpinionNotOverdue {
				t.Fatalf("record_opinion on the due day %s: %v, want %s", due, err, review.CodeOpinionNotOverdue)
			}
			// Overdue: silence still is not agreement.
			_, _, err = review.Apply(s, h, review.Conclude, review.RoleOfficeAdmin, f, input(t, step{on: late.String(), a: review.Conclude}))
			if guardCode(err) != review.CodeOpinionsPending {
				t.Fatalf("conclude with org2 silent: %v", err)
			}
			if !slices.Contains(review.Allowed(s, h, review.RoleOfficeAdmin), review.RecordOpinion) {
				t.Fatalf("record_opinion not offered: %v", review.Allowed(s, h, review.RoleOfficeAdmin))
			}

			// An agreeing letter: the round is unanimous and the case concludes.
			to, ev, err := review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, late, "org2", ptr(true)))
			if err != nil {
				t.Fatal(err)
			}
			if to != review.SolicitingOpinions || ev.Org != "org2" || ev.Actor != "u-office_admin" || ev.Role != review.RoleOfficeAdmin ||
				ev.Agree == nil || !*ev.Agree || ev.Reference != "工信部网安函〔2026〕17号" || ev.Reason == "" {
				t.Fatalf("recorded %+v -> %s", ev, to)
			}
			ha := append(slices.Clone(h), ev)
			clk, err := review.DeriveClock(cal(t), ha, late)
			if err != nil {
				t.Fatal(err)
			}
			if got := opinionsOn(t, ha, late); !slices.Equal(got, []string{"1/org1:agree", "1/org2:agree"}) {
				t.Fatalf("opinions %v", got)
			}
			if m := clk.Opinions[1]; m.Reference != ev.Reference || m.AnsweredOn != late {
				t.Fatalf("clock does not show the recorded letter: %+v", m)
			}
			if review.OpinionDue(to, "org2", ha) {
				t.Fatal("org2 is still offered the opinion form after its answer was recorded")
			}
			if to, _, err := review.Apply(to, ha, review.Conclude, review.RoleOfficeAdmin, f, input(t, step{on: late.String(), a: review.Conclude})); err != nil || to != review.Concluded {
				t.Fatalf("conclude after the recorded answer: %s %v", to, err)
			}

			// A disagreeing letter: the opinions differ, the special review begins.
			to, ev, err = review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, late, "org2", ptr(false)))
			if err != nil || to != review.SpecialReview {
				t.Fatalf("disagreeing letter: %s %v", to, err)
			}
			hd := append(slices.Clone(h), ev)
			if _, err := review.Replay(hd); err != nil {
				t.Fatal(err)
			}
			clk, err = review.DeriveClock(cal(t), hd, late)
			if err != nil {
				t.Fatal(err)
			}
			if clk.Phase != review.PhaseSpecial || clk.StartedOn != late || clk.AllowedWorkingDays != ed.SpecialDays {
				t.Fatalf("special review clock %+v", clk)
			}
		})
	}
}

// TestRecordOpinionRefused: record_opinion is the office's, and needs the
// unit, an answer, the letter's reference and a reason; it is for a unit
// of the latest round that has not answered, while the round is open.
func TestRecordOpinionRefused(t *testing.T) {
	h, s, due := silentRound(t, "2021")
	f := withCal(t)
	late := due.AddDays(3)
	for _, role := range []string{review.RoleMemberUnit, review.RoleOperator, review.RoleProvider} {
		_, _, err := review.Apply(s, h, review.RecordOpinion, role, f, recordIn(t, late, "org2", ptr(true)))
		if !errors.Is(err, review.ErrForbidden) {
			t.Errorf("%s: %v, want forbidden", role, err)
		}
	}
	cases := []struct {
		name string
		in   func(*review.Input)
		code string
	}{
		{"no unit", func(in *review.Input) { in.Unit = " " }, review.CodeOrgRequired},
		{"not asked", func(in *review.Input) { in.Unit = "org3" }, review.CodeNotSolicited},
		{"already answered", func(in *review.Input) { in.Unit = "org1" }, review.CodeOpinionGiven},
		{"no answer", func(in *review.Input) { in.Agree = nil }, review.CodeAgreeRequired},
		{"no reference", func(in *review.Input) { in.Reference = "" }, review.CodeReferenceRequired},
		{"no reason", func(in *review.Input) { in.Reason = "  " }, review.CodeReasonRequired},
	}
	for _, c := range cases {
		in := recordIn(t, late, "org2", ptr(true))
		c.in(&in)
		if _, _, err := review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, f, in); guardCode(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// Without a calendar the guard cannot count: refused, not waved through.
	if _, _, err := review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, facts, recordIn(t, late, "org2", ptr(true))); !errors.Is(err, review.ErrInvalidInput) {
		t.Errorf("no calendar: %v", err)
	}
	// While supplements are awaited the round waits too.
	hs, ss := build(t,
		step{on: "2026-03-02", a: review.Submit},
		step{on: "2026-03-03", a: review.RequireReview},
		step{on: "2026-04-01", a: review.Recommend},
		step{on: "2026-04-02", a: review.Opinion, actor: "mu1", agree: ptr(true)},
		step{on: late.String(), a: review.RequestSupplement})
	var ite *review.IllegalTransitionError
	if _, _, err := review.Apply(ss, hs, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, late, "org2", ptr(true))); !errors.As(err, &ite) {
		t.Errorf("awaiting supplement: %v", err)
	}
	// Before any recommendation there is no round.
	hp, sp := build(t, step{on: "2026-03-02", a: review.Submit}, step{on: "2026-03-03", a: review.RequireReview})
	if _, _, err := review.Apply(sp, hp, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, late, "org2", ptr(true))); !errors.As(err, &ite) {
		t.Errorf("under review: %v", err)
	}
}

// TestRecordOpinionSecondRound: in the special review the second round's
// silent unit, once overdue, is recorded the same way, and the Commission's
// approval can then be recorded without a third recommendation.
func TestRecordOpinionSecondRound(t *testing.T) {
	h, s := build(t,
		step{on: "2026-03-02", a: review.Submit},
		step{on: "2026-03-03", a: review.RequireReview},
		step{on: "2026-04-01", a: review.Recommend},
		step{on: "2026-04-02", a: review.Opinion, actor: "mu1", agree: ptr(false)},
		step{on: "2026-04-08", a: review.RecordHearing},
		step{on: "2026-04-09", a: review.Recommend},
		step{on: "2026-04-10", a: review.Opinion, actor: "mu1", agree: ptr(true)})
	f := withCal(t)
	due, err := cal(t).WorkdaysAfter(day(t, "2026-04-09"), 15)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, due, "org2", ptr(true))); guardCode(err) != review.CodeOpinionNotOverdue {
		t.Fatalf("on the due day: %v", err)
	}
	late := due.AddDays(1)
	to, ev, err := review.Apply(s, h, review.RecordOpinion, review.RoleOfficeAdmin, f, recordIn(t, late, "org2", ptr(true)))
	if err != nil || to != review.SpecialReview {
		t.Fatalf("record: %s %v", to, err)
	}
	h = append(h, ev)
	if _, _, err := review.Apply(to, h, review.RecordApproval, review.RoleOfficeAdmin, f, input(t, step{on: late.String(), a: review.RecordApproval})); err != nil {
		t.Fatalf("approval after the recorded answer: %v", err)
	}
}
