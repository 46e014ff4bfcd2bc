package review_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"testing"

	"github.com/crvault/crvault/configs"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// Expected dates below were counted by hand from configs/calendars/*.json,
// for a case under the 2020 edition (pinned: 45 working days of special
// review); TestDeriveClock2021 covers the other edition.
func TestDeriveClock(t *testing.T) {
	sub := step{on: "2025-09-19", a: review.Submit, edition: "2020"}
	req := step{on: "2025-10-09", a: review.RequireReview}
	ask := step{on: "2025-10-20", a: review.RequestSupplement}
	got := step{on: "2025-10-24", a: review.SupplementReceived}
	ext := step{on: "2025-11-03", a: review.Extend, reason: "complex supply chain"}
	rec := step{on: "2025-11-14", a: review.Recommend}
	agr := step{on: "2025-11-20", a: review.Opinion, actor: "mu1", agree: ptr(true)}
	dis := step{on: "2025-12-10", a: review.Opinion, actor: "mu2", agree: ptr(false)}
	exs := step{on: "2026-02-10", a: review.ExtendSpecial, reason: "hearing", days: 10}
	// The special review's steps (2020 Art. 12) change no date.
	hear := step{on: "2026-02-24", a: review.RecordHearing, reason: "heard MIIT and MPS"}
	rec2 := step{on: "2026-02-25", a: review.Recommend}
	again1 := step{on: "2026-02-26", a: review.Opinion, actor: "mu1", agree: ptr(true)}
	again2 := step{on: "2026-02-26", a: review.Opinion, actor: "mu2", agree: ptr(true)}
	appr := step{on: "2026-02-27", a: review.RecordApproval, ref: "CCAC [2026] 7"}
	end := step{on: "2026-03-02", a: review.Conclude}

	type want struct {
		phase   review.Phase
		start   string
		due     string
		allowed int
		used    int
		paused  bool
		pauses  int
		exts    int
		overdue bool
		flag    review.FlagKind
	}
	tests := []struct {
		name  string
		steps []step
		today string
		want  want
	}{
		{"draft", nil, "2025-09-19", want{phase: review.PhaseNone, flag: review.FlagNone}},
		// 22..26, 28 (Sun makeup), 29, 30, 10-09, 10-10.
		{"determination", []step{sub}, "2025-09-22", want{review.PhaseDetermination, "2025-09-19", "2025-10-10", 10, 1, false, 0, 0, false, review.FlagNone}},
		// (10-01, 10-10] holds 10-09 and 10-10 only.
		{"determination due soon across National Day", []step{sub}, "2025-10-01", want{review.PhaseDetermination, "2025-09-19", "2025-10-10", 10, 8, false, 0, 0, false, review.FlagDueSoon}},
		{"determination overdue", []step{sub}, "2025-10-11", want{review.PhaseDetermination, "2025-09-19", "2025-10-10", 10, 11, false, 0, 0, true, review.FlagOverdue}},
		// 10-10, 10-11 (Sat makeup), 13..17, 20..24, 27..31, 11-03..07, 10..14, 17, 18, 19.
		{"preliminary", []step{sub, req}, "2025-10-09", want{review.PhasePreliminary, "2025-10-09", "2025-11-19", 30, 0, false, 0, 0, false, review.FlagNone}},
		// Paused from 10-21; through today that is 21, 22, 23: due moves 3 days.
		{"open pause", []step{sub, req, ask}, "2025-10-23", want{review.PhasePreliminary, "2025-10-09", "2025-11-24", 30, 8, true, 1, 0, false, review.FlagNone}},
		// Pause 10-21..10-24 (4 working days): 11-19 + 4 = 11-25.
		{"closed pause", []step{sub, req, ask, got}, "2025-10-24", want{review.PhasePreliminary, "2025-10-09", "2025-11-25", 30, 8, false, 1, 0, false, review.FlagNone}},
		// +15 from 11-25: 26, 27, 28, 12-01..05, 08..12, 15, 16. Used: 2+5+1+5+5+1 = 19.
		{"extended", []step{sub, req, ask, got, ext}, "2025-11-10", want{review.PhasePreliminary, "2025-10-09", "2025-12-16", 45, 19, false, 1, 1, false, review.FlagNone}},
		// 11-17..21, 24..28, 12-01..05. (12-02, 12-05] = 3 left.
		{"opinions due soon", []step{sub, req, ask, got, ext, rec, agr}, "2025-12-02", want{review.PhaseOpinions, "2025-11-14", "2025-12-05", 15, 12, false, 0, 0, false, review.FlagDueSoon}},
		{"opinions not yet due soon", []step{sub, req, ask, got, ext, rec, agr}, "2025-12-01", want{review.PhaseOpinions, "2025-11-14", "2025-12-05", 15, 11, false, 0, 0, false, review.FlagNone}},
		// 12-11, 12, 15..19, 22..26, 29..31 (15), 01-01..03 off, 01-04 (Sun makeup) 16,
		// 01-05..09, 12..16, 19..23, 26..30 (36), 02-02..06 (41), 09..12 (45).
		{"special review across New Year", []step{sub, req, ask, got, ext, rec, agr, dis}, "2025-12-10", want{review.PhaseSpecial, "2025-12-10", "2026-02-12", 45, 0, false, 0, 0, false, review.FlagNone}},
		// +10 from 02-12: 13, 14 (Sat makeup), 15..23 off, 24..27, 28 (Sat makeup), 03-02, 03, 04.
		// (02-27, 03-04] = 02-28, 03-02, 03, 04 = 4 left.
		{"special extended across Spring Festival", []step{sub, req, ask, got, ext, rec, agr, dis, exs}, "2026-02-27", want{review.PhaseSpecial, "2025-12-10", "2026-03-04", 55, 51, false, 0, 1, false, review.FlagNone}},
		{"special due soon on make-up Saturday", []step{sub, req, ask, got, ext, rec, agr, dis, exs}, "2026-02-28", want{review.PhaseSpecial, "2025-12-10", "2026-03-04", 55, 52, false, 0, 1, false, review.FlagDueSoon}},
		{"special due today", []step{sub, req, ask, got, ext, rec, agr, dis, exs}, "2026-03-04", want{review.PhaseSpecial, "2025-12-10", "2026-03-04", 55, 55, false, 0, 1, false, review.FlagDueSoon}},
		{"special overdue", []step{sub, req, ask, got, ext, rec, agr, dis, exs}, "2026-03-05", want{review.PhaseSpecial, "2025-12-10", "2026-03-04", 55, 56, false, 0, 1, true, review.FlagOverdue}},
		// Stopped on 03-02: 45 + 13, 14, 24..27, 28, 03-02 = 53.
		{"concluded", []step{sub, req, ask, got, ext, rec, agr, dis, exs, hear, rec2, again1, again2, appr, end}, "2026-06-01", want{review.PhaseClosed, "2025-12-10", "2026-03-04", 55, 53, false, 0, 1, false, review.FlagNone}},
		{"same-day supplement pauses nothing", []step{sub, req, {on: "2025-10-20", a: review.RequestSupplement}, {on: "2025-10-20", a: review.SupplementReceived}}, "2025-10-21",
			want{review.PhasePreliminary, "2025-10-09", "2025-11-19", 30, 9, false, 0, 0, false, review.FlagNone}},
		// Due 11-19 passed before the pause began; waiting does not cure it, and it stays flagged.
		{"paused after overdue", []step{sub, req, {on: "2025-11-21", a: review.RequestSupplement}}, "2025-11-25", want{review.PhasePreliminary, "2025-10-09", "2025-11-19", 30, 32, true, 1, 0, true, review.FlagOverdue}},
		// Due 11-19 and paused from 11-20: the allowance was used up before the stop.
		{"paused on the due day", []step{sub, req, {on: "2025-11-19", a: review.RequestSupplement}}, "2025-11-25", want{review.PhasePreliminary, "2025-10-09", "2025-11-19", 30, 30, true, 1, 0, true, review.FlagOverdue}},
		// Paused from 11-19, the due day itself: the date moves and is not flagged.
		{"paused the day before the due day", []step{sub, req, {on: "2025-11-18", a: review.RequestSupplement}}, "2025-11-25", want{review.PhasePreliminary, "2025-10-09", "2025-11-26", 30, 29, true, 1, 0, false, review.FlagNone}},
	}
	c := cal(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := build(t, tt.steps...)
			today := day(t, tt.today)
			clk, err := review.DeriveClock(c, h, today)
			if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			if clk.Phase != w.phase || fmtDate(clk.StartedOn) != w.start || fmtDate(clk.DueOn) != w.due ||
				clk.AllowedWorkingDays != w.allowed || clk.UsedWorkingDays != w.used || clk.Paused != w.paused ||
				len(clk.Pauses) != w.pauses || len(clk.Extensions) != w.exts || clk.Overdue != w.overdue {
				t.Errorf("clock = %+v\nwant    %+v", clk, w)
			}
			flag, err := review.Flag(clk, c, today)
			if err != nil || flag != w.flag {
				t.Errorf("Flag = %s, %v; want %s", flag, err, w.flag)
			}
		})
	}
}

func fmtDate(d calendar.Date) string {
	if d.IsZero() {
		return ""
	}
	return d.String()
}

func TestClockJSON(t *testing.T) {
	h, _ := build(t,
		step{on: "2025-09-19", a: review.Submit},
		step{on: "2025-10-09", a: review.RequireReview},
		step{on: "2025-10-20", a: review.RequestSupplement},
		step{on: "2025-10-24", a: review.SupplementReceived},
		step{on: "2025-10-27", a: review.Extend, actor: "admin1", reason: "complex"},
		step{on: "2025-10-28", a: review.RequestSupplement},
	)
	clk, err := review.DeriveClock(cal(t), h, day(t, "2025-10-28"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(clk)
	if err != nil {
		t.Fatal(err)
	}
	// 30 + 15 from 10-09 is 12-10; the closed pause adds 4: 12-16. Used: 10-10,
	// 10-11 (makeup), 13..17, 20, then 27, 28 = 10; the open pause starts tomorrow.
	want := `{"phase":"preliminary_review","edition":"2021","started_on":"2025-10-09","due_on":"2025-12-16","due_on_provisional":false,"allowed_working_days":45,` +
		`"used_working_days":10,"paused":true,"materials_incomplete":false,"pauses":[{"from":"2025-10-21","to":"2025-10-24"},{"from":"2025-10-29","to":null}],` +
		`"extensions":[{"on":"2025-10-27","days":15,"reason":"complex","actor":"admin1"}],"overdue":false,` +
		`"supplement_items":[{"no":1,"text":"source code escrow agreement","requested_on":"2025-10-20","received":true,"received_on":"2025-10-24"},` +
		`{"no":2,"text":"source code escrow agreement","requested_on":"2025-10-28","received":false,"received_on":null}],"opinions":[],"missed":[]}`
	if string(b) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", b, want)
	}
	clk, err = review.DeriveClock(cal(t), nil, day(t, "2025-10-28"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(clk)
	if want := `{"phase":"none","started_on":null,"due_on":null,"due_on_provisional":false,"allowed_working_days":0,"used_working_days":0,"paused":false,"materials_incomplete":false,"pauses":[],"extensions":[],"overdue":false,"supplement_items":[],"opinions":[],"missed":[]}`; string(b) != want {
		t.Errorf("draft JSON = %s", b)
	}
}

// withExtraDay returns the embedded file of year with one more holiday.
func withExtraDay(t *testing.T, year, date string) []byte {
	t.Helper()
	b, err := fs.ReadFile(configs.Calendars, "calendars/"+year+".json")
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	f["days"] = append(f["days"].([]any), map[string]any{"name": "correction", "date": date, "isOffDay": true})
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Deadlines are derived, never stored: importing a corrected or a new year
// moves every open deadline the next time it is derived.
func TestRederiveAfterImport(t *testing.T) {
	c := cal(t)

	// A correction of 2025: Monday 2025-10-13 becomes a holiday.
	h, _ := build(t, step{on: "2025-09-26", a: review.Submit})
	before, err := review.DeriveClock(c, h, day(t, "2025-10-09"))
	if err != nil || before.DueOn.String() != "2025-10-16" {
		t.Fatalf("before correction: due %v, %v", before.DueOn, err)
	}
	corrected, err := c.With(withExtraDay(t, "2025", "2025-10-13"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := review.DeriveClock(corrected, h, day(t, "2025-10-09"))
	if err != nil || after.DueOn.String() != "2025-10-17" {
		t.Fatalf("after correction: due %v, %v; want 2025-10-17", after.DueOn, err)
	}

	// A special review opened 2026-12-01 runs into 2027, which is not
	// embedded: the provisional model counts it and marks it. 45 working
	// days after Tuesday 2026-12-01: 12-02..04 (3), 07..11 (8), 14..18 (13),
	// 21..25 (18), 28..31 (22), 2027-01-01 New Year, 01-04..08 (27), 11..15
	// (32), 18..22 (37), 25..29 (42), 02-01..03 (45).
	h, _ = build(t,
		step{on: "2026-11-02", a: review.Submit, edition: "2020"},
		step{on: "2026-11-03", a: review.RequireReview},
		step{on: "2026-11-20", a: review.Recommend},
		step{on: "2026-12-01", a: review.Opinion, actor: "mu1", agree: ptr(false)},
	)
	clk, err := review.DeriveClock(c, h, day(t, "2026-12-01"))
	if err != nil || clk.Phase != review.PhaseSpecial || clk.DueOn.String() != "2027-02-03" || !clk.DueOnProvisional {
		t.Fatalf("without 2027: %+v, %v; want due 2027-02-03, provisional", clk, err)
	}
	// A made-up official 2027 with 01-29 off too: re-derived and final.
	c2027, err := c.With([]byte(`{"year":2027,"papers":[],"days":[{"name":"元旦","date":"2027-01-01","isOffDay":true},{"name":"test","date":"2027-01-29","isOffDay":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	clk, err = review.DeriveClock(c2027, h, day(t, "2026-12-01"))
	if err != nil || clk.DueOn.String() != "2027-02-04" || clk.DueOnProvisional {
		t.Fatalf("with 2027: due %v (provisional %v), %v; want 2027-02-04, final", clk.DueOn, clk.DueOnProvisional, err)
	}
	// A phase due inside 2026 is final even while 2027 is provisional.
	h, _ = build(t, step{on: "2026-11-02", a: review.Submit})
	if clk, err = review.DeriveClock(c, h, day(t, "2026-11-03")); err != nil || clk.DueOnProvisional || clk.DueOn.String() != "2026-11-16" {
		t.Fatalf("determination in 2026: %+v, %v", clk, err)
	}
}

func TestDeriveClockRejects(t *testing.T) {
	c := cal(t)
	h, _ := build(t, step{on: "2025-09-26", a: review.Submit}, step{on: "2025-09-29", a: review.RequireReview})
	h[1].On = day(t, "2025-09-01")
	if _, err := review.DeriveClock(c, h, day(t, "2025-10-01")); !errors.Is(err, review.ErrBadHistory) {
		t.Errorf("backwards history: err = %v", err)
	}
	if _, err := review.DeriveClock(c, nil, calendar.Date{Y: 2025, M: 2, D: 30}); !errors.Is(err, calendar.ErrInvalidDate) {
		t.Errorf("invalid today: err = %v", err)
	}
	if _, err := review.FlagWithin(review.Clock{}, c, day(t, "2025-10-01"), -1); !errors.Is(err, calendar.ErrInvalidDays) {
		t.Errorf("negative window: err = %v", err)
	}
}
