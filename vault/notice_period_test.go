package vault

import (
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
)

// periodLines are the review-period lines of a notice, Chinese and English.
func periodLines(t *testing.T, body string) (zh, en string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(l, "审查期限："):
			zh = l
		case strings.HasPrefix(l, "Review period:"):
			en = l
		}
	}
	if zh == "" || en == "" {
		t.Fatalf("notice without a review period line in both languages:\n%s", body)
	}
	return zh, en
}

// TestIncompleteNoticeGivesNoDateFromFiling: 2021 Art. 9 counts the
// determination from the day the materials are complete, so the notice
// that finds them incomplete names no due date counted from filing (it
// said 2026-11-16, suspended): it says the 10 working days run from
// completion. The clock, waiting on 11-20, projects the date the case is
// then really due on once the last item arrives that day.
func TestIncompleteNoticeGivesNoDateFromFiling(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	f.submit(id)
	f.at("2026-11-04")
	f.mustMove(id, "mark_incomplete", "", 0)
	ns := f.notices(id)
	if len(ns) != 1 {
		t.Fatalf("%d notices, want the incomplete one", len(ns))
	}
	zh, en := periodLines(t, f.read(f.op, ns[0].ID))
	if zh != "审查期限：决定是否审查，10个工作日，自申报材料补齐之日起计算" ||
		en != "Review period: determination, 10 working days from the day the application materials are complete" {
		t.Errorf("incomplete notice's period:\n%s\n%s", zh, en)
	}
	f.at("2026-11-20")
	waiting := f.clockOf(id)
	f.upload(f.op, id, "supplementary") // the only item: receives the request
	done := f.clockOf(id)
	if !waiting.MaterialsIncomplete || waiting.DueOn.String() != "2026-12-04" || done.DueOn.String() != "2026-12-04" || done.Paused {
		t.Errorf("waiting: due %s (incomplete %v); complete the same day: due %s (paused %v); want 2026-12-04 both",
			waiting.DueOn, waiting.MaterialsIncomplete, done.DueOn, done.Paused)
	}
}

// TestSupplementNoticeGivesEarliestDate: the notice of an ordinary request
// for supplements cannot know when they arrive; the date it prints is the
// earliest the period can end, and it says every working day of the stop
// moves it (it printed "due 2026-12-15, suspended" as if it held).
func TestSupplementNoticeGivesEarliestDate(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC), false)
	id := f.draft()
	f.submit(id)
	f.at("2026-11-03")
	f.mustMove(id, "require_review", "", 0)
	f.at("2026-11-10")
	f.mustMove(id, "request_supplement", "need more", 0)
	var body string
	for _, m := range f.notices(id) {
		if strings.HasPrefix(m.Filename, noticeKinds["request_supplement"]) {
			body = f.read(f.op, m.ID)
		}
	}
	zh, en := periodLines(t, body)
	if zh != "审查期限：初步审查，自2026年11月3日起，30个工作日，现暂停计算；最早于2026年12月15日届满，暂停期间每经过一个工作日相应顺延一个工作日" ||
		en != "Review period: preliminary_review, started 2026-11-03, 30 working days, suspended; due at the earliest 2026-12-15, one working day later for each working day the suspension lasts" {
		t.Errorf("supplement notice's period:\n%s\n%s", zh, en)
	}
	f.at("2026-11-20")
	f.upload(f.op, id, "supplementary")
	if c := f.clockOf(id); c.DueOn.String() != "2026-12-25" {
		t.Errorf("received 11-20: due %s, want 2026-12-25 (8 working days after the earliest)", c.DueOn)
	}
}
