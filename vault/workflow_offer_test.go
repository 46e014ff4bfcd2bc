package vault

import (
	"slices"
	"testing"
	"time"
)

// Offered lists the office actions whose case guards hold: an action held
// back by a guard (a missing recommendation, a used extension, pending
// opinions) is absent and appears once the guard holds, and every action
// offered is one Transition accepts. Others than the office are refused
// as by Transition.
func TestOffered(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	offered := func() []string {
		t.Helper()
		acts, err := f.svc.Offered(f.ctx, f.office, id)
		if err != nil {
			t.Fatalf("offered: %v", err)
		}
		return acts
	}
	want := func(stage string, got []string, in []string, out []string) {
		t.Helper()
		for _, a := range in {
			if !slices.Contains(got, a) {
				t.Errorf("%s: %s not offered (offered %v)", stage, a, got)
			}
		}
		for _, a := range out {
			if slices.Contains(got, a) {
				t.Errorf("%s: %s offered (offered %v)", stage, a, got)
			}
		}
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
	want("submitted", offered(), []string{"require_review", "not_required"}, []string{"extend", "recommend", "conclude"})
	f.at("2025-06-03")
	f.mustMove(id, "require_review", "", 0)
	want("under review without a recommendation", offered(), []string{"extend"}, []string{"recommend", "require_review", "conclude"})
	f.assign(id, f.u1, "member_unit")
	f.upload(f.office, id, "recommendation")
	want("under review with a recommendation", offered(), []string{"extend", "recommend"}, nil)
	f.mustMove(id, "extend", "complicated", 0)
	want("after the one extension", offered(), []string{"recommend"}, []string{"extend"})
	f.mustMove(id, "recommend", "", 0)
	want("soliciting, no opinion yet", offered(), nil, []string{"conclude"})
	yes := true
	if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes, Comment: "agree"}); err != nil {
		t.Fatal(err)
	}
	got := offered()
	want("all agreed", got, []string{"conclude"}, nil)
	if _, err := f.svc.Transition(f.ctx, f.office, id, TransitionRequest{Action: "conclude", Outcome: "passed"}); err != nil {
		t.Fatalf("offered conclude refused: %v", err)
	}
	want("concluded", offered(), nil, got)
}
