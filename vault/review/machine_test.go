package review_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/review"
)

// paths reach each status with a realistic 2021 history. In
// soliciting_opinions org1 has agreed and org2 not yet.
func paths() map[review.Status][]step {
	sub := step{on: "2025-09-19", a: review.Submit}
	req := step{on: "2025-09-22", a: review.RequireReview}
	rec := step{on: "2025-10-20", a: review.Recommend}
	op1 := step{on: "2025-10-21", a: review.Opinion, actor: "mu1", agree: ptr(true)}
	op2 := step{on: "2025-10-22", a: review.Opinion, actor: "mu2", agree: ptr(true)}
	dis := step{on: "2025-10-22", a: review.Opinion, actor: "mu2", agree: ptr(false)}
	return map[review.Status][]step{
		review.Draft:              nil,
		review.Submitted:          {sub},
		review.NotRequired:        {sub, {on: "2025-09-22", a: review.NotRequiredAction}},
		review.UnderReview:        {sub, req},
		review.AwaitingSupplement: {sub, req, {on: "2025-09-23", a: review.RequestSupplement}},
		review.SolicitingOpinions: {sub, req, rec, op1},
		review.SpecialReview:      {sub, req, rec, op1, dis},
		review.Concluded:          {sub, req, rec, op1, op2, {on: "2025-10-23", a: review.Conclude}},
	}
}

// TestEveryStatusAndAction tries every action in every status, as every
// role, with one generic input.
func TestEveryStatusAndAction(t *testing.T) {
	type want struct {
		to    review.Status // legal: the status after
		guard string        // legal in this status, refused by a guard
	}
	office := review.RoleOfficeAdmin
	// legal[status][action][role]; a role not listed for a legal action is forbidden.
	legal := map[review.Status]map[review.Action]map[string]want{
		review.Draft: {review.Submit: {review.RoleOperator: {to: review.Submitted}}},
		review.Submitted: {
			review.MarkIncomplete:    {office: {to: review.AwaitingSupplement}},
			review.RequireReview:     {office: {to: review.UnderReview}},
			review.NotRequiredAction: {office: {to: review.NotRequired}},
			review.RequestSupplement: {office: {to: review.AwaitingSupplement}},
			review.RecordMeasures:    {office: {guard: review.CodeMeasuresNotApplicable}},
		},
		review.NotRequired: {},
		review.UnderReview: {
			review.Extend:            {office: {to: review.UnderReview}},
			review.RequestSupplement: {office: {to: review.AwaitingSupplement}},
			review.Recommend:         {office: {to: review.SolicitingOpinions}},
			review.RecordMeasures:    {office: {guard: review.CodeMeasuresNotApplicable}},
		},
		review.AwaitingSupplement: {
			review.Extend:             {office: {to: review.AwaitingSupplement}},
			review.RequestSupplement:  {office: {to: review.AwaitingSupplement}},
			review.SupplementItem:     {review.RoleOperator: {guard: review.CodeUnknownItem}, review.RoleProvider: {guard: review.CodeUnknownItem}},
			review.SupplementReceived: {office: {to: review.UnderReview}, review.RoleOperator: {guard: review.CodeItemsOutstanding}, review.RoleProvider: {guard: review.CodeItemsOutstanding}},
			review.RecordMeasures:     {office: {guard: review.CodeMeasuresNotApplicable}},
		},
		review.SolicitingOpinions: {
			review.Opinion:           {review.RoleMemberUnit: {to: review.SolicitingOpinions}}, // org2 agrees
			review.Conclude:          {office: {guard: review.CodeOpinionsPending}},
			review.RecordOpinion:     {office: {guard: review.CodeOrgRequired}}, // the generic input names no unit
			review.RequestSupplement: {office: {to: review.AwaitingSupplement}},
			review.RecordMeasures:    {office: {guard: review.CodeMeasuresNotApplicable}},
		},
		review.SpecialReview: {
			review.ExtendSpecial:     {office: {to: review.SpecialReview}},
			review.RequestSupplement: {office: {to: review.AwaitingSupplement}},
			review.RecordHearing:     {office: {to: review.SpecialReview}},
			review.Recommend:         {office: {guard: review.CodeStepMissingHearing}},
			review.RecordApproval:    {office: {guard: review.CodeStepMissingHearing}},
			review.Conclude:          {office: {guard: review.CodeStepMissingHearing}},
			review.RecordMeasures:    {office: {guard: review.CodeMeasuresNotApplicable}},
		},
		review.Concluded: {},
	}
	roles := []string{review.RoleOfficeAdmin, review.RoleOperator, review.RoleProvider, review.RoleMemberUnit, "reviewer", ""}
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
				in := review.Input{Actor: "mu2", Org: "org2", On: day(t, "2025-10-24"), Reason: "because", Days: 5, Agree: ptr(true),
					Items: []string{"x"}, Outcome: review.OutcomePassed, Edition: "2021"}
				got, err := review.Next(status, h, a, role, facts, in)
				byRole, isLegal := legal[status][a]
				w, roleOK := byRole[role]
				var ite *review.IllegalTransitionError
				var ge *review.GuardError
				switch {
				case !isLegal:
					if !errors.As(err, &ite) || ite.From != status || ite.Action != a {
						t.Errorf("%s/%s/%s: err = %v, want IllegalTransitionError", status, a, role, err)
					} else if want := slices.DeleteFunc(review.Allowed(status, h, role), func(x review.Action) bool {
						// facts is an application: a 409 leaves out risk measures.
						return x == review.RecordMeasures
					}); !slices.Equal(ite.Allowed, want) {
						t.Errorf("%s/%s/%s: Allowed in error = %v", status, a, role, ite.Allowed)
					}
				case !roleOK:
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
	office := review.RoleOfficeAdmin
	tests := []struct {
		status review.Status
		steps  []step
		role   string
		want   []review.Action
	}{
		{review.Draft, nil, review.RoleOperator, []review.Action{review.Submit}},
		{review.Draft, nil, office, nil},
		{review.Submitted, p[review.Submitted], office, []review.Action{review.MarkIncomplete, review.RequireReview, review.NotRequiredAction, review.RequestSupplement, review.RecordMeasures}},
		// 2020 has no mark_incomplete and no risk measures.
		{review.Submitted, []step{{on: "2025-09-19", a: review.Submit, edition: "2020"}}, office, []review.Action{review.RequireReview, review.NotRequiredAction, review.RequestSupplement}},
		{review.UnderReview, p[review.UnderReview], office, []review.Action{review.Extend, review.RequestSupplement, review.Recommend, review.RecordMeasures}},
		{review.UnderReview, append(p[review.UnderReview], step{on: "2025-09-23", a: review.Extend, reason: "complex"}), office,
			[]review.Action{review.RequestSupplement, review.Recommend, review.RecordMeasures}},
		{review.AwaitingSupplement, p[review.AwaitingSupplement], office, []review.Action{review.Extend, review.RequestSupplement, review.SupplementReceived, review.RecordMeasures}},
		// The party's part in a supplement happens through its uploads.
		{review.AwaitingSupplement, p[review.AwaitingSupplement], review.RoleOperator, nil},
		{review.SolicitingOpinions, p[review.SolicitingOpinions], review.RoleMemberUnit, []review.Action{review.Opinion}},
		{review.SolicitingOpinions, p[review.SolicitingOpinions], office, []review.Action{review.RequestSupplement, review.RecordOpinion, review.Conclude, review.RecordMeasures}},
		{review.SpecialReview, p[review.SpecialReview], office, []review.Action{review.RequestSupplement, review.Recommend, review.RecordHearing, review.RecordApproval, review.Conclude, review.ExtendSpecial, review.RecordMeasures}},
		{review.SpecialReview, p[review.SpecialReview], review.RoleMemberUnit, nil},
		{review.Concluded, p[review.Concluded], office, nil},
		{review.NotRequired, p[review.NotRequired], office, nil},
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
	listing := facts
	listing.Case = review.CaseInfo{Type: review.TypeListingAbroad, UsersWithPersonalInfo: 1_000_001}
	proposed := facts
	proposed.Case.Origin = review.OriginProposal
	atThreshold := facts
	atThreshold.Case = review.CaseInfo{Type: review.TypeListingAbroad, UsersWithPersonalInfo: 1_000_000}
	listingNoDocs := listing
	listingNoDocs.MaterialKinds = []string{"declaration", "impact_analysis"}
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
		{name: "submit without materials", a: review.Submit, f: review.Facts{MaterialKinds: []string{"declaration", "other"}}, in: review.Input{Edition: "2021"}, code: review.CodeMaterialsIncomplete},
		{name: "listing without listing documents", a: review.Submit, f: listingNoDocs, in: review.Input{Edition: "2021"}, code: review.CodeMaterialsIncomplete},
		{name: "listing case under 2020", a: review.Submit, f: listing, in: review.Input{Edition: "2020"}, code: review.CodeTypeNotInEdition},
		{name: "submit without edition", a: review.Submit, f: facts, other: review.ErrInvalidInput},
		{name: "listing above the threshold not required", steps: p[review.Submitted], a: review.NotRequiredAction, f: listing, code: review.CodeFilingMandatory},
		{name: "Commission-approved review not required", steps: p[review.Submitted], a: review.NotRequiredAction, f: proposed, code: review.CodeCommissionApproved},
		{name: "supplement without items", steps: p[review.UnderReview], a: review.RequestSupplement, in: review.Input{Items: []string{" "}}, code: review.CodeItemsRequired},
		{name: "mark incomplete without items", steps: p[review.Submitted], a: review.MarkIncomplete, code: review.CodeItemsRequired},
		{name: "upload for an item never requested", steps: p[review.AwaitingSupplement], a: review.SupplementItem, in: review.Input{Item: 2, Material: "m"}, code: review.CodeUnknownItem},
		{name: "close early without reason", steps: p[review.AwaitingSupplement], a: review.SupplementReceived, code: review.CodeReasonRequired},
		{name: "extend without reason", steps: p[review.UnderReview], a: review.Extend, in: review.Input{Reason: "  "}, code: review.CodeReasonRequired},
		{name: "extend twice", steps: extended, a: review.Extend, in: review.Input{Reason: "again"}, code: review.CodeAlreadyExtended},
		{name: "extend twice while paused", steps: append(slices.Clone(extended), step{on: "2025-09-24", a: review.RequestSupplement}), a: review.Extend, in: review.Input{Reason: "again"}, code: review.CodeAlreadyExtended},
		{name: "recommend without material", steps: p[review.UnderReview], a: review.Recommend, f: review.Facts{MaterialKinds: []string{"declaration"}, AssignedMemberOrgs: []string{"org1"}, MemberUnits: facts.MemberUnits}, code: review.CodeRecommendationRequired},
		{name: "recommend to nobody", steps: p[review.UnderReview], a: review.Recommend, f: review.Facts{LatestRecommendation: facts.LatestRecommendation, MemberUnits: facts.MemberUnits}, code: review.CodeMembersRequired},
		{name: "recommend to an unregistered organisation", steps: p[review.UnderReview], a: review.Recommend, f: facts, in: review.Input{Members: []string{"org1", "org9"}}, code: review.CodeNotAMember},
		{name: "recommend to a unit of no edition's list", steps: p[review.UnderReview], a: review.Recommend, f: facts, in: review.Input{Members: []string{"nobody"}}, code: review.CodeNotAMember},
		{name: "recommend to CSRC under 2020", steps: []step{{on: "2025-09-19", a: review.Submit, edition: "2020"}, {on: "2025-09-22", a: review.RequireReview}}, a: review.Recommend, f: facts, in: review.Input{Members: []string{"org3"}}, code: review.CodeNotAMember},
		{name: "opinion without agree", steps: p[review.SolicitingOpinions], a: review.Opinion, f: facts, in: review.Input{Actor: "mu2", Org: "org2"}, code: review.CodeAgreeRequired},
		{name: "opinion from a unit not asked", steps: p[review.SolicitingOpinions], a: review.Opinion, f: facts, in: review.Input{Actor: "mu9", Org: "org9", Agree: ptr(true)}, code: review.CodeNotSolicited},
		{name: "second opinion of an organisation", steps: p[review.SolicitingOpinions], a: review.Opinion, f: facts, in: review.Input{Actor: "mu1b", Org: "org1", Agree: ptr(false)}, code: review.CodeOpinionGiven},
		{name: "conclude with a silent unit", steps: p[review.SolicitingOpinions], a: review.Conclude, f: facts, in: review.Input{Outcome: review.OutcomePassed}, code: review.CodeOpinionsPending},
		// The round was fixed when the recommendation went out: the silent
		// unit blocks even when no one of it is assigned any more.
		{name: "conclude after the silent unit's assignment is gone", steps: p[review.SolicitingOpinions], a: review.Conclude, f: review.Facts{AssignedMemberOrgs: []string{"org1"}, MemberUnits: facts.MemberUnits}, in: review.Input{Outcome: review.OutcomePassed}, code: review.CodeOpinionsPending},
		{name: "conclude without outcome", steps: allAgreed, a: review.Conclude, f: facts, code: review.CodeOutcomeRequired},
		{name: "conditions without conditions", steps: allAgreed, a: review.Conclude, f: facts, in: review.Input{Outcome: review.OutcomePassedWithConditions}, code: review.CodeConditionsRequired},
		{name: "conditions on a pass", steps: allAgreed, a: review.Conclude, f: facts, in: review.Input{Outcome: review.OutcomePassed, Conditions: []string{"x"}}, code: review.CodeConditionsNotAllowed},
		{name: "a 2021 factor in a 2020 case", steps: []step{{on: "2025-09-19", a: review.Submit, edition: "2020"}, {on: "2025-09-22", a: review.RequireReview}, {on: "2025-10-20", a: review.Recommend}, {on: "2025-10-21", a: review.Opinion, actor: "mu1", agree: ptr(true)}, {on: "2025-10-21", a: review.Opinion, actor: "mu2", agree: ptr(true)}},
			a: review.Conclude, f: facts, in: review.Input{Outcome: review.OutcomePassed, Factors: []review.FactorFinding{{Factor: "data_security", Finding: "x"}}}, code: review.CodeUnknownFactor},
		{name: "factor without finding", steps: allAgreed, a: review.Conclude, f: facts, in: review.Input{Outcome: review.OutcomePassed, Factors: []review.FactorFinding{{Factor: "data_security"}}}, code: review.CodeFindingRequired},
		{name: "factor twice", steps: allAgreed, a: review.Conclude, f: facts, in: review.Input{Outcome: review.OutcomePassed, Factors: []review.FactorFinding{{Factor: "other", Finding: "a"}, {Factor: "other", Finding: "b"}}}, code: review.CodeDuplicateFactor},
		{name: "extend_special without reason", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: 10}, code: review.CodeReasonRequired},
		{name: "extend_special 0 days", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: 0, Reason: "x"}, code: review.CodeInvalidDays},
		{name: "extend_special -3 days", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: -3, Reason: "x"}, code: review.CodeInvalidDays},
		{name: "extend_special absurd", steps: p[review.SpecialReview], a: review.ExtendSpecial, in: review.Input{Days: 10000, Reason: "x"}, code: review.CodeInvalidDays},
		{name: "hearing without summary", steps: p[review.SpecialReview], a: review.RecordHearing, code: review.CodeReasonRequired},
		{name: "measures on an application", steps: p[review.UnderReview], a: review.RecordMeasures, f: facts, in: review.Input{Measures: []string{"x"}}, code: review.CodeMeasuresNotApplicable},
		{name: "date before last event", steps: p[review.UnderReview], a: review.RequestSupplement, in: review.Input{On: day(t, "2025-09-01"), Items: []string{"x"}}, code: review.CodeDateOutOfOrder},
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
	// At the threshold exactly, filing is not mandatory (more than 1,000,000).
	h, s := build(t, p[review.Submitted]...)
	if got, err := review.Next(s, h, review.NotRequiredAction, review.RoleOfficeAdmin, atThreshold, review.Input{Actor: "a", On: day(t, on)}); err != nil || got != review.NotRequired {
		t.Errorf("not_required at the threshold = %s, %v", got, err)
	}
	// Under 2020 there is no mandatory filing: the rule is 2021 Art. 7.
	h, s = buildWith(t, review.Facts{MaterialKinds: facts.MaterialKinds}, step{on: "2025-09-19", a: review.Submit, edition: "2020"})
	if got, err := review.Next(s, h, review.NotRequiredAction, review.RoleOfficeAdmin, listing, review.Input{Actor: "a", On: day(t, on)}); err != nil || got != review.NotRequired {
		t.Errorf("2020 not_required of a listing = %s, %v", got, err)
	}
	// With every organisation asked agreeing, conclude goes through, even
	// when their users' assignments are gone.
	h, s = build(t, allAgreed...)
	if got, err := review.Next(s, h, review.Conclude, review.RoleOfficeAdmin, review.Facts{}, review.Input{Actor: "a", On: day(t, on), Outcome: review.OutcomePassed}); err != nil || got != review.Concluded {
		t.Errorf("conclude after all agreed = %s, %v", got, err)
	}
}

func TestApplyRecordsTheEvent(t *testing.T) {
	h, s := build(t, paths()[review.SpecialReview]...)
	to, e, err := review.Apply(s, h, review.ExtendSpecial, review.RoleOfficeAdmin, facts,
		review.Input{Actor: "admin1", On: day(t, "2025-11-03"), Reason: " complex case ", Days: 20, Agree: ptr(true), Items: []string{"ignored"}})
	if err != nil {
		t.Fatal(err)
	}
	want := review.Event{Seq: len(h) + 1, Action: review.ExtendSpecial, From: review.SpecialReview, To: review.SpecialReview,
		On: day(t, "2025-11-03"), Actor: "admin1", Role: review.RoleOfficeAdmin, Reason: "complex case", Days: 20}
	if to != review.SpecialReview || !reflect.DeepEqual(e, want) {
		t.Errorf("Apply = %s, %+v; want %+v", to, e, want)
	}
	// The disagreeing opinion is what moved the case; it names the organisation.
	last := h[len(h)-1]
	if last.Action != review.Opinion || last.Agree == nil || *last.Agree || last.To != review.SpecialReview || last.Actor != "mu2" || last.Org != "org2" {
		t.Errorf("opinion event = %+v", last)
	}
	// The recommendation fixed its members; the submission its edition.
	if h[2].Action != review.Recommend || !slices.Equal(h[2].Members, []string{"org1", "org2"}) || h[0].Edition != "2021" {
		t.Errorf("recommend %+v, submit %+v", h[2], h[0])
	}
	// A conclusion carries its structure, cleaned.
	h, s = build(t, paths()[review.SolicitingOpinions]...)
	h, s = build(t, append(paths()[review.SolicitingOpinions], step{on: "2025-10-22", a: review.Opinion, actor: "mu2", agree: ptr(true)})...)
	_, e, err = review.Apply(s, h, review.Conclude, review.RoleOfficeAdmin, facts, review.Input{Actor: "a", On: day(t, "2025-10-24"),
		Outcome: review.OutcomePassedWithConditions, Conditions: []string{" keep logs in China ", ""},
		Factors: []review.FactorFinding{{Factor: "data_security", Finding: " low "}}})
	if err != nil || e.Outcome != review.OutcomePassedWithConditions || !slices.Equal(e.Conditions, []string{"keep logs in China"}) ||
		len(e.Factors) != 1 || e.Factors[0] != (review.FactorFinding{Factor: "data_security", Finding: "low"}) {
		t.Errorf("conclusion %+v, %v", e, err)
	}
}

func TestBadHistory(t *testing.T) {
	h, s := build(t, paths()[review.SpecialReview]...)
	tamper := map[string]func([]review.Event) []review.Event{
		"seq gap":               func(h []review.Event) []review.Event { h[2].Seq = 7; return h },
		"date backwards":        func(h []review.Event) []review.Event { h[3].On = h[0].On.AddDays(-1); return h },
		"skipped step":          func(h []review.Event) []review.Event { return append(h[:1:1], renumber(h[2:], 2)...) },
		"wrong to":              func(h []review.Event) []review.Event { h[1].To = review.NotRequired; return h },
		"unknown action":        func(h []review.Event) []review.Event { h[1].Action = "approve"; return h },
		"opinion no vote":       func(h []review.Event) []review.Event { h[3].Agree = nil; return h },
		"opinion of a stranger": func(h []review.Event) []review.Event { h[3].Org = "org9"; return h },
		"unknown edition":       func(h []review.Event) []review.Event { h[0].Edition = "2019"; return h },
		"two opinions of one":   func(h []review.Event) []review.Event { h[4].Org = "org1"; return h },
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

// TestLegacyHistory: histories stored before editions, items and rounds
// were recorded still replay: the edition by the filing date, a round's
// members from who answered.
func TestLegacyHistory(t *testing.T) {
	yes := true
	d := func(s string) review.Event { return review.Event{On: day(t, s)} }
	h := []review.Event{d("2021-09-01"), d("2021-09-02"), d("2021-09-03"), d("2021-09-06"), d("2021-09-07")}
	for i, a := range []review.Action{review.Submit, review.RequireReview, review.RequestSupplement, review.SupplementReceived, review.Recommend} {
		h[i].Seq, h[i].Action, h[i].Role = i+1, a, review.RoleOfficeAdmin
	}
	h = append(h, review.Event{Seq: 6, Action: review.Opinion, On: day(t, "2021-09-08"), Actor: "user-1", Agree: &yes})
	ed, err := review.EditionOf(h)
	if err != nil || ed.ID != "2020" {
		t.Fatalf("edition %v, %v", ed, err)
	}
	got, err := review.Next(review.SolicitingOpinions, h, review.Conclude, review.RoleOfficeAdmin, review.Facts{}, review.Input{Actor: "a", On: day(t, "2021-09-09"), Outcome: review.OutcomePassed})
	if err != nil || got != review.Concluded {
		t.Fatalf("legacy conclude: %s, %v", got, err)
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
	in := review.Input{Actor: "a", On: day(t, "2025-10-01"), Reason: "r", Items: []string{"x"}}
	_, e1, err1 := review.Apply(s, h, review.Recommend, review.RoleOfficeAdmin, facts, in)
	_, e2, err2 := review.Apply(s, h, review.RequestSupplement, review.RoleOfficeAdmin, facts, in)
	if err1 != nil || err2 != nil || e1.Seq != e2.Seq {
		t.Fatalf("seqs %d, %d (%v, %v)", e1.Seq, e2.Seq, err1, err2)
	}
}

// A 409 names only actions the case's kind allows: risk measures belong to
// reviews a member unit proposed, so an application's 409 does not offer them.
func TestIllegalTransitionAllowedFollowsOrigin(t *testing.T) {
	h, s := build(t, paths()[review.UnderReview]...)
	in := review.Input{Actor: "office", At: time.Date(2025, 9, 23, 2, 0, 0, 0, time.UTC), On: day(t, "2025-09-23")}
	for _, tt := range []struct {
		origin string
		want   bool
	}{{review.OriginApplication, false}, {"", false}, {review.OriginProposal, true}} {
		f := facts
		f.Case.Origin = tt.origin
		_, err := review.Next(s, h, review.RecordApproval, review.RoleOfficeAdmin, f, in)
		var ite *review.IllegalTransitionError
		if !errors.As(err, &ite) {
			t.Fatalf("origin %q: record_approval in preliminary review = %v, want an illegal transition", tt.origin, err)
		}
		if got := slices.Contains(ite.Allowed, review.RecordMeasures); got != tt.want {
			t.Errorf("origin %q: allowed %v, record_measures listed = %v, want %v", tt.origin, ite.Allowed, got, tt.want)
		}
		if !slices.Contains(ite.Allowed, review.Recommend) {
			t.Errorf("origin %q: allowed %v lacks recommend", tt.origin, ite.Allowed)
		}
	}
}

// A case that must be reviewed whatever the office finds (a listing above
// the threshold, a review the Commission approved) is not offered
// not_required in a 409 either; an ordinary application is.
func TestIllegalTransitionAllowedOmitsNotRequired(t *testing.T) {
	h, s := build(t, paths()[review.Submitted]...)
	in := review.Input{Actor: "office", At: time.Date(2025, 9, 3, 2, 0, 0, 0, time.UTC), On: day(t, "2025-09-03")}
	proposed := facts
	proposed.Case.Origin = review.OriginProposal
	listing := facts
	listing.Case = review.CaseInfo{Type: review.TypeListingAbroad, UsersWithPersonalInfo: 1_000_001}
	listing.MaterialKinds = append(slices.Clone(facts.MaterialKinds), review.MaterialListingApplication)
	for _, tt := range []struct {
		name string
		f    review.Facts
		want bool
	}{{"application", facts, true}, {"proposal", proposed, false}, {"listing", listing, false}} {
		_, err := review.Next(s, h, review.Recommend, review.RoleOfficeAdmin, tt.f, in)
		var ite *review.IllegalTransitionError
		if !errors.As(err, &ite) {
			t.Fatalf("%s: recommend while submitted = %v, want an illegal transition", tt.name, err)
		}
		if got := slices.Contains(ite.Allowed, review.NotRequiredAction); got != tt.want {
			t.Errorf("%s: allowed %v, not_required listed = %v, want %v", tt.name, ite.Allowed, got, tt.want)
		}
		if !slices.Contains(ite.Allowed, review.RequireReview) {
			t.Errorf("%s: allowed %v lacks require_review", tt.name, ite.Allowed)
		}
	}
}
