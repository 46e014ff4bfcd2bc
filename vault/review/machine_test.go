package review_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/crvault/crvault/vault/review"
)

// paths reach each status with a realistic history. In soliciting_opinions
// mu1 has agreed and mu2 not yet.
func paths() map[review.Status][]step {
	sub := step{on: "2025-09-19", a: review.Submit}
	req := step{on: "2025-09-22", a: review.RequireReview}
	rec := step{on: "2025-10-20", a: review.Recommend}
	op1 := step{on: "2025-10-21", a: review.Opinion, actor: "mu1", agree: ptr(true)}
	dis := step{on: "2025-10-22", a: review.Opinion, actor: "mu2", agree: ptr(false)}
	return map[review.Status][]step{
		review.Draft:              nil,
		review.Submitted:          {sub},
		review.NotRequired:        {sub, {on: "2025-09-22", a: review.NotRequiredAction}},
		review.UnderReview:        {sub, req},
		review.AwaitingSupplement: {sub, req, {on: "2025-09-23", a: review.RequestSupplement}},
		review.SolicitingOpinions: {sub, req, rec, op1},
		review.SpecialReview:      {sub, req, rec, op1, dis},
		review.Concluded:          {sub, req, rec, op1, dis, {on: "2025-10-23", a: review.Conclude}},
	}
}

// TestEveryStatusAndAction tries every action in every status, as the right
// role with good input, and as every wrong role.
func TestEveryStatusAndAction(t *testing.T) {
	type want struct {
		to    review.Status // legal: the status after
		guard string        // legal in this status, refused by a guard
	}
	legal := map[review.Status]map[review.Action]want{
		review.Draft:       {review.Submit: {to: review.Submitted}},
		review.Submitted:   {review.RequireReview: {to: review.UnderReview}, review.NotRequiredAction: {to: review.NotRequired}},
		review.NotRequired: {},
		review.UnderReview: {
			review.Extend:            {to: review.UnderReview},
			review.RequestSupplement: {to: review.AwaitingSupplement},
			review.Recommend:         {to: review.SolicitingOpinions},
		},
		review.AwaitingSupplement: {
			review.Extend:             {to: review.AwaitingSupplement},
			review.SupplementReceived: {to: review.UnderReview},
		},
		review.SolicitingOpinions: {
			review.Opinion:  {to: review.SolicitingOpinions}, // mu2 agrees
			review.Conclude: {guard: review.CodeOpinionsPending},
		},
		review.SpecialReview: {review.ExtendSpecial: {to: review.SpecialReview}, review.Conclude: {to: review.Concluded}},
		review.Concluded:     {},
	}
	roles := []string{review.RoleOfficeAdmin, review.RoleOperator, review.RoleMemberUnit, "reviewer", ""}
	for status, steps := range paths() {
		h, s := build(t, steps...)
		if s != status {
			t.Fatalf("path to %s reached %s", status, s)
		}
		if got, err := review.Replay(h); err != nil || got != status {
			t.Fatalf("Replay = %s, %v; want %s", got, err, status)
		}
		for _, a := range review.Actions() {
			for _, role := range roles {
				in := review.Input{Actor: "mu2", On: day(t, "2025-10-24"), Reason: "because", Days: 5, Agree: ptr(true)}
				got, err := review.Next(status, h, a, role, facts, in)
				w, isLegal := legal[status][a]
				var ite *review.IllegalTransitionError
				var ge *review.GuardError
				switch {
				case !isLegal:
					if !errors.As(err, &ite) || ite.From != status || ite.Action != a {
						t.Errorf("%s/%s/%s: err = %v, want IllegalTransitionError", status, a, role, err)
					} else if !slices.Equal(ite.Allowed, review.Allowed(status, h, role)) {
						t.Errorf("%s/%s/%s: Allowed in error = %v", status, a, role, ite.Allowed)
					}
				case role != roleOf(a):
					if !errors.Is(err, review.ErrForbidden) {
						t.Errorf("%s/%s/%s: err = %v, want ErrForbidden", status, a, role, err)
					}
				case w.guard != "":
					if !errors.As(err, &ge) || ge.Code != w.guard {
						t.Errorf("%s/%s/%s: err = %v, want guard %s", status, a, role, err, w.guard)
					}
				default:
					if err != nil || got != w.to {
						t.Errorf("%s/%s/%s: Next = %s, %v; want %s", status, a, role, got, err, w.to)
					}
				}
			}
		}
	}
}

func TestAllowed(t *testing.T) {
	p := paths()
	tests := []struct {
		status review.Status
		steps  []step
		role   string
		want   []review.Action
	}{
		{review.Draft, nil, review.RoleOperator, []review.Action{review.Submit}},
		{review.Draft, nil, review.RoleOfficeAdmin, nil},
		{review.Submitted, p[review.Submitted], review.RoleOfficeAdmin, []review.Action{review.RequireReview, review.NotRequiredAction}},
		{review.UnderReview, p[review.UnderReview], review.RoleOfficeAdmin, []review.Action{review.Extend, review.RequestSupplement, review.Recommend}},
		{review.UnderReview, append(p[review.UnderReview], step{on: "2025-09-23", a: review.Extend, reason: "complex"}), review.RoleOfficeAdmin,
			[]review.Action{review.RequestSupplement, review.Recommend}},
		{review.AwaitingSupplement, p[review.AwaitingSupplement], review.RoleOfficeAdmin, []review.Action{review.Extend, review.SupplementReceived}},
		{review.SolicitingOpinions, p[review.SolicitingOpinions], review.RoleMemberUnit, []review.Action{review.Opinion}},
		{review.SolicitingOpinions, p[review.SolicitingOpinions], review.RoleOfficeAdmin, []review.Action{review.Conclude}},
		{review.SpecialReview, p[review.SpecialReview], review.RoleOfficeAdmin, []review.Action{review.Conclude, review.ExtendSpecial}},
		{review.Concluded, p[review.Concluded], review.RoleOfficeAdmin, nil},
		{review.NotRequired, p[review.NotRequired], review.RoleOfficeAdmin, nil},
	}
	for _, tt := range tests {
		h, s := build(t, tt.steps...)
		if s != tt.status {
			t.Fatalf("reached %s, want %s", s, tt.status)
		}
		if got := review.Allowed(tt.status, h, tt.role); !slices.Equal(got, tt.want) {
			t.Errorf("Allowed(%s, %s) = %v, want %v", tt.status, tt.role, got, tt.want)
		}
	}
}

func TestGuards(t *testing.T) {
	p := paths()
	extended := append(slices.Clone(p[review.UnderReview]), step{on: "2025-09-23", a: review.Extend, reason: "complex"})
	allAgreed := append(slices.Clone(p[review.SolicitingOpinions]), step{on: "2025-10-22", a: review.Opinion, actor: "mu2", agree: ptr(true)})
	on := "2025-10-24"
	tests := []struct {
		name  string
		steps []step
		a     review.Action
		f     review.Facts
		in    review.Input
		code  string
		other error
	}{
		{name: "submit without materials", a: review.Submit, f: review.Facts{MaterialKinds: []string{"declaration", "other"}}, code: review.CodeMaterialsIncomplete},
		{name: "extend without reason", steps: p[review.UnderReview], a: review.Extend, in: review.Input{Reason: "  "}, code: review.CodeReasonRequired},
		{name: "extend twice", steps: extended, a: review.Extend, in: review.Input{Reason: "again"}, code: review.CodeAlreadyExtended},
		{name: "extend twice while paused", steps: append(slices.Clone(extended), step{on: "2025-09-24", a: review.RequestSupplement}), a: review.Extend, in: review.Input{Reason: "again"}, code: review.CodeAlreadyExtended},
		{name: "recommend without material", steps: p[review.UnderReview], a: review.Recommend, f: review.Facts{MaterialKinds: []string{"declaration"}}, code: review.CodeRecommendationRequired},
		{name: "opinion without agree", steps: p[review.SolicitingOpinions], a: review.Opinion, f: facts, in: review.Input{Actor: "mu2"}, code: review.CodeAgreeRequired},
		{name: "opinion from unassigned unit", steps: p[review.SolicitingOpinions], a: review.Opinion, f: facts, in: review.Input{Actor: "mu9", Agree: ptr(true)}, code: review.CodeNotSolicited},
		{name: "second opinion", steps: p[review.SolicitingOpinions], a: review.Opinion, f: facts, in: review.Input{Actor: "mu1", Agree: ptr(false)}, code: review.CodeOpinionGiven},
		{name: "conclude with pending unit", steps: p[review.SolicitingOpinions], a: review.Conclude, f: facts, code: review.CodeOpinionsPending},
		{name: "conclude with nobody solicited", steps: allAgreed, a: review.Conclude, f: review.Facts{}, code: review.CodeOpinionsPending},
		{name: "conclude when a new unit was assigned", steps: allAgreed, a: review.Conclude, f: review.Facts{SolicitedMemberUnits: []string{"mu1", "mu2", "mu3"}}, code: review.CodeOpinionsPending},
		{name: "extend_special without reason", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: 10}, code: review.CodeReasonRequired},
		{name: "extend_special 0 days", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: 0, Reason: "x"}, code: review.CodeInvalidDays},
		{name: "extend_special -3 days", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: -3, Reason: "x"}, code: review.CodeInvalidDays},
		{name: "extend_special absurd", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: 10000, Reason: "x"}, code: review.CodeInvalidDays},
		{name: "date before last event", steps: p[review.UnderReview], a: review.RequestSupplement, in: review.Input{On: day(t, "2025-09-01")}, code: review.CodeDateOutOfOrder},
		{name: "reason too long", steps: p[review.UnderReview], a: review.Extend, in: review.Input{Reason: string(make([]byte, review.MaxReasonLen+1))}, code: review.CodeReasonTooLong},
		{name: "no actor", steps: p[review.UnderReview], a: review.RequestSupplement, in: review.Input{Actor: " "}, other: review.ErrInvalidInput},
		{name: "unknown action", steps: p[review.UnderReview], a: "approve", other: review.ErrUnknownAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s := build(t, tt.steps...)
			in := tt.in
			if in.Actor == "" {
				in.Actor = "someone"
			}
			if in.On.IsZero() {
				in.On = day(t, on)
			}
			_, err := review.Next(s, h, tt.a, roleOf(tt.a), tt.f, in)
			if tt.other != nil {
				if !errors.Is(err, tt.other) {
					t.Fatalf("err = %v, want %v", err, tt.other)
				}
				return
			}
			var ge *review.GuardError
			if !errors.As(err, &ge) || ge.Code != tt.code {
				t.Fatalf("err = %v, want guard %s", err, tt.code)
			}
		})
	}
	// With every solicited unit agreeing, conclude goes through.
	h, s := build(t, allAgreed...)
	if got, err := review.Next(s, h, review.Conclude, review.RoleOfficeAdmin, facts, review.Input{Actor: "a", On: day(t, on)}); err != nil || got != review.Concluded {
		t.Errorf("conclude after all agreed = %s, %v", got, err)
	}
	// A unit unassigned after agreeing no longer counts.
	if got, err := review.Next(s, h, review.Conclude, review.RoleOfficeAdmin, review.Facts{SolicitedMemberUnits: []string{"mu2"}}, review.Input{Actor: "a", On: day(t, on)}); err != nil || got != review.Concluded {
		t.Errorf("conclude after unassignment = %s, %v", got, err)
	}
}

func TestApplyRecordsTheEvent(t *testing.T) {
	h, s := build(t, paths()[review.SpecialReview]...)
	to, e, err := review.Apply(s, h, review.ExtendSpecial, review.RoleOfficeAdmin, facts,
		review.Input{Actor: "admin1", On: day(t, "2025-11-03"), Reason: " complex case ", Days: 20, Agree: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	want := review.Event{Seq: len(h) + 1, Action: review.ExtendSpecial, From: review.SpecialReview, To: review.SpecialReview,
		On: day(t, "2025-11-03"), Actor: "admin1", Role: review.RoleOfficeAdmin, Reason: "complex case", Days: 20}
	if to != review.SpecialReview || e != want {
		t.Errorf("Apply = %s, %+v; want %+v", to, e, want)
	}
	// The disagreeing opinion is what moved the case.
	last := h[len(h)-1]
	if last.Action != review.Opinion || last.Agree == nil || *last.Agree || last.To != review.SpecialReview || last.Actor != "mu2" {
		t.Errorf("opinion event = %+v", last)
	}
}

func TestBadHistory(t *testing.T) {
	h, s := build(t, paths()[review.SpecialReview]...)
	tamper := map[string]func([]review.Event) []review.Event{
		"seq gap":         func(h []review.Event) []review.Event { h[2].Seq = 7; return h },
		"date backwards":  func(h []review.Event) []review.Event { h[3].On = h[0].On.AddDays(-1); return h },
		"skipped step":    func(h []review.Event) []review.Event { return append(h[:1:1], renumber(h[2:], 2)...) },
		"wrong to":        func(h []review.Event) []review.Event { h[1].To = review.NotRequired; return h },
		"unknown action":  func(h []review.Event) []review.Event { h[1].Action = "approve"; return h },
		"opinion no vote": func(h []review.Event) []review.Event { h[3].Agree = nil; return h },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			bad := f(slices.Clone(h))
			if _, err := review.Replay(bad); !errors.Is(err, review.ErrBadHistory) {
				t.Errorf("Replay err = %v, want ErrBadHistory", err)
			}
			if _, err := review.Next(s, bad, review.Conclude, review.RoleOfficeAdmin, facts, review.Input{Actor: "a", On: day(t, "2025-11-03")}); !errors.Is(err, review.ErrBadHistory) {
				t.Errorf("Next err = %v, want ErrBadHistory", err)
			}
		})
	}
	// The status the caller holds must be the one the history leads to.
	if _, err := review.Next(review.UnderReview, h, review.Recommend, review.RoleOfficeAdmin, facts, review.Input{Actor: "a", On: day(t, "2025-11-03")}); !errors.Is(err, review.ErrBadHistory) {
		t.Errorf("status mismatch: err = %v", err)
	}
	if _, err := review.Next("archived", h, review.Conclude, review.RoleOfficeAdmin, facts, review.Input{}); !errors.Is(err, review.ErrUnknownStatus) {
		t.Errorf("unknown status: err = %v", err)
	}
}

func renumber(h []review.Event, first int) []review.Event {
	for i := range h {
		h[i].Seq = first + i
	}
	return h
}

// Two transitions computed from the same history get the same Seq, so a
// unique (case, seq) key in storage lets only one of them be appended.
func TestConcurrentTransitionsCollide(t *testing.T) {
	h, s := build(t, paths()[review.UnderReview]...)
	in := review.Input{Actor: "a", On: day(t, "2025-10-01"), Reason: "r"}
	_, e1, err1 := review.Apply(s, h, review.Recommend, review.RoleOfficeAdmin, facts, in)
	_, e2, err2 := review.Apply(s, h, review.RequestSupplement, review.RoleOfficeAdmin, facts, in)
	if err1 != nil || err2 != nil || e1.Seq != e2.Seq {
		t.Fatalf("seqs %d, %d (%v, %v)", e1.Seq, e2.Seq, err1, err2)
	}
}
