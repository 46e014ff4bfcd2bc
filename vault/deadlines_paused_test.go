package vault

import (
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// TestOverdueCaseStaysListedWhilePaused: a stop for supplements keeps later
// days from counting; it does not cure the days the office already overran
// (Art. 14 / 2021 Art. 15). A preliminary review due 2026-11-23 and paused
// on 12-01 stays overdue, on /deadlines and in the sweep, with its date
// stored, while it waits and after the supplement arrives. It used to drop
// out of both as soon as the office asked for supplements.
func TestOverdueCaseStaysListedWhilePaused(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2026, 10, 9, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	f.submit(id)
	f.at("2026-10-12")
	f.mustMove(id, "require_review", "", 0)
	listed := func(when string) {
		t.Helper()
		ds, err := f.svc.Deadlines(f.ctx, f.office, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].CaseID != id || ds[0].DueOn.String() != "2026-11-23" || !ds[0].Overdue || ds[0].Flag != review.FlagOverdue {
			t.Fatalf("%s: /deadlines =\n%s want the case overdue since 2026-11-23", when, deadlineLines(ds))
		}
		if c := f.clockOf(id); !c.Overdue || c.DueOn.String() != "2026-11-23" {
			t.Fatalf("%s: clock due %s overdue %v", when, c.DueOn, c.Overdue)
		}
	}
	f.at("2026-12-01")
	listed("before the stop")
	f.mustMove(id, "request_supplement", "need more", 0)
	if got := f.storedDue(id); got.On == nil || *got.On != "2026-11-23" || got.Phase != string(review.PhasePreliminary) {
		t.Fatalf("stored due columns after the stop: %+v, want 2026-11-23", got)
	}
	seen := false
	for _, m := range f.notices(id) {
		if m.Filename == noticeFilename(review.RequestSupplement, calendar.Today(f.clock())) {
			seen = true
			zh, en := periodLines(t, f.read(f.op, m.ID))
			if zh != "审查期限：初步审查，自2026年10月12日起，30个工作日，现暂停计算，2026年11月23日届满，暂停计算前已届满，不因暂停而顺延" ||
				en != "Review period: preliminary_review, started 2026-10-12, 30 working days, suspended, due 2026-11-23, passed before the suspension began, which does not move it" {
				t.Errorf("the notice of the stop words the passed date as one that moves:\n%s\n%s", zh, en)
			}
		}
	}
	if !seen {
		t.Fatal("no notice of the stop")
	}
	f.at("2026-12-02")
	listed("paused")
	sw, err := f.svc.SweepDeadlines(f.ctx)
	if err != nil || sw.Overdue != 1 {
		t.Fatalf("sweep while paused: %+v, %v; want the case overdue", sw, err)
	}
	f.at("2026-12-08")
	f.upload(f.op, id, "supplementary")
	listed("resumed")
}

// TestSilentUnitOfSpecialRoundListed: the special review's new
// recommendation asks the units again with 15 working days each; a unit
// silent after them puts the case on /deadlines and in the sweep as
// member_unit_opinions overdue, long before the special review's own date.
// Nobody was warned before: only the phase's date was read.
func TestSilentUnitOfSpecialRoundListed(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2026, 10, 9, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	f.submit(id)
	f.at("2026-10-12")
	f.toRecommend(id)
	f.at("2026-10-13")
	no, yes := false, true
	if _, err := f.svc.Opinion(f.ctx, f.u2, id, OpinionRequest{Agree: &no, Comment: "risk"}); err != nil {
		t.Fatal(err)
	}
	f.at("2026-10-14")
	f.mustMove(id, "record_hearing", "heard the departments concerned", 0)
	f.upload(f.rev, id, "recommendation")
	f.mustMove(id, "recommend", "", 0)
	f.at("2026-11-05")
	if _, err := f.svc.Opinion(f.ctx, f.u1, id, OpinionRequest{Agree: &yes}); err != nil {
		t.Fatal(err)
	}
	// 10-15, 16, 19..23, 26..30, 11-02, 03, 04.
	ds, err := f.svc.Deadlines(f.ctx, f.office, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Phase != review.PhaseOpinions || ds[0].Status != string(review.SpecialReview) || ds[0].DueOn.String() != "2026-11-04" || !ds[0].Overdue {
		t.Fatalf("/deadlines =\n%s want the second round overdue since 2026-11-04", deadlineLines(ds))
	}
	if sw, err := f.svc.SweepDeadlines(f.ctx); err != nil || sw.Overdue != 1 || sw.Flagged != 1 {
		t.Fatalf("sweep: %+v, %v; want the round flagged overdue", sw, err)
	}
	if _, err := f.svc.Opinion(f.ctx, f.u2, id, OpinionRequest{Agree: &yes}); err != nil {
		t.Fatal(err)
	}
	if ds, err = f.svc.Deadlines(f.ctx, f.office, 3); err != nil || len(ds) != 0 {
		t.Fatalf("every unit answered: /deadlines =\n%s %v; want none (the special review runs into 2027)", deadlineLines(ds), err)
	}
}
