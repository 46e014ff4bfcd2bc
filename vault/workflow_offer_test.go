package vault

import (
	"strings"
	"testing"
	"time"
)

// Offered lists exactly the office actions whose case guards hold: every
// action it lists succeeds, and an action held back by a guard appears
// once the guard holds. Others than the office are refused as by
// Transition.
func TestOffered(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	offered := func() string {
		t.Helper()
		acts, err := f.svc.Offered(f.ctx, f.office, id)
		if err != nil {
			t.Fatalf("offered: %v", err)
		}
		return strings.Join(acts, ",")
	}
	if _, err := f.svc.Offered(f.ctx, f.office, id); err == nil {
		t.Fatal("the office was offered actions on a draft it cannot see")
	}
	if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Offered(f.ctx, f.op, id); err == nil {
		t.Fatal("the operator was offered office actions")
	}
	if got := offered(); got != "require_review,not_required" {
		t.Fatalf("submitted: %s", got)
	}
	f.at("2025-06-03")
	f.mustMove(id, "require_review", "", 0)
	// recommend waits for a recommendation material.
	if got := offered(); got != "extend,request_supplement" {
		t.Fatalf("under review without a recommendation: %s", got)
	}
	f.upload(f.office, id, "recommendation")
	if got := offered(); got != "extend,request_supplement,recommend" {
		t.Fatalf("under review with a recommendation: %s", got)
	}
	f.mustMove(id, "extend", "complicated", 0)
	if got := offered(); got != "request_supplement,recommend" {
		t.Fatalf("after the one extension: %s", got)
	}
	f.assign(id, f.u1, "member_unit")
	f.mustMove(id, "recommend", "", 0)
	// conclude waits for every solicited unit's agreement.
	if got := offered(); got != "" {
		t.Fatalf("soliciting, no opinion yet: %q", got)
	}
	yes := true
	if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes, Comment: "agree"}); err != nil {
		t.Fatal(err)
	}
	if got := offered(); got != "conclude" {
		t.Fatalf("all agreed: %s", got)
	}
	for _, a := range strings.Split(offered(), ",") {
		f.mustMove(id, a, "", 0)
	}
}
