package review

import "testing"

// TestOpinionDue follows the review's rule for who may answer now: the
// units the latest recommendation asked, until they answer; in a special
// review only once its own recommendation is out, and not after the
// Commission's approval.
func TestOpinionDue(t *testing.T) {
	yes, no := true, false
	first := Event{Action: Recommend, From: UnderReview, To: SolicitingOpinions, Members: []string{"a", "b"}}
	second := Event{Action: Recommend, From: SpecialReview, To: SpecialReview, Members: []string{"a", "b"}}
	disagree := Event{Action: Opinion, From: SolicitingOpinions, To: SpecialReview, Org: "a", Agree: &no}
	for _, c := range []struct {
		name, status, org string
		h                 []Event
		want              bool
	}{
		{"first round, asked", "soliciting_opinions", "a", []Event{first}, true},
		{"first round, not asked", "soliciting_opinions", "c", []Event{first}, false},
		{"first round, answered", "soliciting_opinions", "b",
			[]Event{first, {Action: Opinion, Org: "b", Agree: &yes}}, false},
		{"special review before its recommendation", "special_review", "b", []Event{first, disagree}, false},
		{"special review, second round", "special_review", "a", []Event{first, disagree, {Action: RecordHearing}, second}, true},
		{"second round, answered", "special_review", "a",
			[]Event{first, disagree, second, {Action: Opinion, Org: "a", Agree: &yes}}, false},
		{"after the approval", "special_review", "b", []Event{first, disagree, second, {Action: RecordApproval}}, false},
		{"a round from before members were named", "soliciting_opinions", "c",
			[]Event{{Action: Recommend, From: UnderReview}}, true},
		{"paused for supplements", "awaiting_supplement", "a", []Event{first}, false},
		{"concluded", "concluded", "a", []Event{first, {Action: Conclude}}, false},
	} {
		if got := OpinionDue(Status(c.status), c.org, c.h); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
