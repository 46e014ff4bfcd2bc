package review_test

import (
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

// step is one action in a test history.
type step struct {
	on     string
	a      review.Action
	actor  string
	reason string
	days   int
	agree  *bool
}

var facts = review.Facts{
	MaterialKinds:        []string{"declaration", "impact_analysis", "procurement", "recommendation"},
	HasRecommendation:    true,
	SolicitedMemberUnits: []string{"mu1", "mu2"},
}

func roleOf(a review.Action) string {
	switch a {
	case review.Submit:
		return review.RoleOperator
	case review.Opinion:
		return review.RoleMemberUnit
	}
	return review.RoleOfficeAdmin
}

// build applies steps through Apply, failing the test on any refusal, and
// returns the history and status.
func build(t testing.TB, steps ...step) ([]review.Event, review.Status) {
	t.Helper()
	var h []review.Event
	s := review.Draft
	for _, st := range steps {
		actor := st.actor
		if actor == "" {
			actor = "u-" + roleOf(st.a)
		}
		on := day(t, st.on)
		in := review.Input{Actor: actor, On: on, At: on.Time().Add(2 * time.Hour), Reason: st.reason, Days: st.days, Agree: st.agree}
		next, e, err := review.Apply(s, h, st.a, roleOf(st.a), facts, in)
		if err != nil {
			t.Fatalf("step %s on %s: %v", st.a, st.on, err)
		}
		h, s = append(h, e), next
	}
	return h, s
}
