package review_test

import (
	"errors"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/review"
)

// TestSpecialRecommendationIsNewer (review h30d): in the special review,
// recommend needs a recommendation uploaded after the hearing and after the
// round it last sent, compared as instants. By the day alone, the first
// round's recommendation uploaded earlier on the hearing's day passed for
// the new one, and recommend could be sent again on the same material.
func TestSpecialRecommendationIsNewer(t *testing.T) {
	f := facts
	f.Calendar = cal(t)
	f.LatestRecommendation = day(t, "2026-03-04")
	h, s := buildWith(t, f,
		step{on: "2026-03-02", a: review.Submit},
		step{on: "2026-03-03", a: review.RequireReview},
		step{on: "2026-03-04", a: review.Recommend, members: []string{"org1", "org2"}},
		step{on: "2026-03-05", a: review.Opinion, actor: "mu1", agree: ptr(false), reason: "supply continuity"},
		step{on: "2026-03-09", a: review.RecordHearing, reason: "heard MIIT and MPS"},
	)
	if s != review.SpecialReview {
		t.Fatalf("status %s, want special_review", s)
	}
	hearing := h[len(h)-1].At
	recommend := func(on string, uploaded time.Time) error {
		t.Helper()
		f := f
		f.LatestRecommendation, f.LatestRecommendationAt = day(t, uploaded.Format("2006-01-02")), uploaded
		_, err := review.Next(s, h, review.Recommend, review.RoleOfficeAdmin, f, input(t, step{on: on, a: review.Recommend, members: []string{"org1", "org2"}}))
		return err
	}
	wantStale := func(err error, what string) {
		t.Helper()
		var g *review.GuardError
		if !errors.As(err, &g) || g.Code != review.CodeRecommendationRequired {
			t.Fatalf("%s: %v, want %s", what, err, review.CodeRecommendationRequired)
		}
	}
	wantStale(recommend("2026-03-09", hearing.Add(-time.Hour)), "a recommendation uploaded earlier on the hearing's day")
	if err := recommend("2026-03-10", hearing.Add(time.Hour)); err != nil {
		t.Fatalf("a recommendation uploaded after the hearing: %v", err)
	}
	// Sent: a second round needs another recommendation.
	uploaded := hearing.Add(time.Hour)
	f.LatestRecommendation, f.LatestRecommendationAt = day(t, uploaded.Format("2006-01-02")), uploaded
	next, e, err := review.Apply(s, h, review.Recommend, review.RoleOfficeAdmin, f, input(t, step{on: "2026-03-10", a: review.Recommend, members: []string{"org1", "org2"}}))
	if err != nil {
		t.Fatal(err)
	}
	h, s = append(h, e), next
	wantStale(recommend("2026-03-11", uploaded), "the recommendation the last round was sent on")
	if err := recommend("2026-03-11", e.At.Add(time.Hour)); err != nil {
		t.Fatalf("a recommendation uploaded after the last round: %v", err)
	}
}
