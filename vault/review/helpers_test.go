package review_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

func cal(t testing.TB) *calendar.Calendar {
	t.Helper()
	c, err := calendar.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func day(t testing.TB, s string) calendar.Date {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ptr[T any](v T) *T { return &v }

// step is one action in a test history. Empty payload fields get a
// sensible default in build, so a test names only what it is about.
type step struct {
	on       string
	a        review.Action
	actor    string // "mu1" and "mu2" are member-unit users of org1 and org2
	org      string // default orgOf(actor)
	role     string // default roleOf(a)
	reason   string
	days     int
	agree    *bool
	edition  string // submit; default: the edition in force on the day
	items    []string
	item     int
	members  []string
	outcome  string
	conds    []string
	factors  []review.FactorFinding
	ref      string
	measures []string
	measure  int
	unit     string // record_opinion: the unit whose written answer is recorded
}

// facts: a case with every material, two registered member units assigned
// (org1: MIIT, org2: MPS), a CSRC unit (org3, 2021 only) and a registered
// department (dept), and a recommendation uploaded long ago and again.
var facts = review.Facts{
	MaterialKinds:        []string{"declaration", "impact_analysis", "procurement", "recommendation"},
	LatestRecommendation: calendar.Date{Y: 2099, M: 1, D: 1},
	AssignedMemberOrgs:   []string{"org1", "org2"},
	MemberUnits:          map[string]string{"org1": "miit", "org2": "mps", "org3": "csrc", "dept": review.DepartmentMember, "nobody": "ministry_of_magic"},
}

func roleOf(a review.Action) string {
	switch a {
	case review.Submit, review.SupplementItem, review.ReportMeasures:
		return review.RoleOperator
	case review.Opinion:
		return review.RoleMemberUnit
	}
	return review.RoleOfficeAdmin
}

// orgOf is the organisation of a test user: "mu1" is in "org1".
func orgOf(actor string) string {
	if n, ok := strings.CutPrefix(actor, "mu"); ok {
		return "org" + n
	}
	return "org-" + actor
}

// input turns a step into the Input Apply receives, with defaults.
func input(t testing.TB, st step) review.Input {
	t.Helper()
	actor := st.actor
	if actor == "" {
		actor = "u-" + roleOf(st.a)
	}
	on := day(t, st.on)
	org := st.org
	if org == "" {
		org = orgOf(actor)
	}
	in := review.Input{Actor: actor, Org: org, On: on, At: on.Time().Add(2 * time.Hour), Reason: st.reason, Days: st.days,
		Agree: st.agree, Edition: st.edition, Items: st.items, Item: st.item, Members: st.members, Outcome: st.outcome, Conditions: st.conds, Factors: st.factors,
		Reference: st.ref, Measures: st.measures, Measure: st.measure, Unit: st.unit}
	switch st.a {
	case review.Submit:
		if in.Edition == "" {
			in.Edition = review.EditionOn(on).ID
		}
	case review.RequestSupplement, review.MarkIncomplete:
		if in.Items == nil {
			in.Items = []string{"source code escrow agreement"}
		}
	case review.SupplementItem:
		in.Material = "m-" + st.on
	case review.SupplementReceived:
		if in.Reason == "" && (st.role == "" || st.role == review.RoleOfficeAdmin) {
			in.Reason = "received on paper"
		}
	case review.Conclude:
		if in.Outcome == "" {
			in.Outcome = review.OutcomePassed
		}
	case review.RecordApproval:
		if in.Reference == "" {
			in.Reference = "CCAC-2026-001"
		}
	case review.RecordHearing, review.ReportMeasures:
		if in.Reason == "" {
			in.Reason = "heard the departments concerned"
		}
	case review.RecordMeasures:
		if in.Measures == nil {
			in.Measures = []string{"keep the data in China"}
		}
	}
	return in
}

// build applies steps through Apply, failing the test on any refusal, and
// returns the history and status.
func build(t testing.TB, steps ...step) ([]review.Event, review.Status) {
	t.Helper()
	return buildWith(t, facts, steps...)
}

func buildWith(t testing.TB, f review.Facts, steps ...step) ([]review.Event, review.Status) {
	t.Helper()
	var h []review.Event
	s := review.Draft
	if f.Calendar == nil {
		f.Calendar = cal(t)
	}
	for _, st := range steps {
		role := st.role
		if role == "" {
			role = roleOf(st.a)
		}
		next, e, err := review.Apply(s, h, st.a, role, f, input(t, st))
		if err != nil {
			t.Fatalf("step %s on %s: %v", st.a, st.on, err)
		}
		h, s = append(h, e), next
	}
	return h, s
}
