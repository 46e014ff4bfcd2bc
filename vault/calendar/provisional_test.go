package calendar_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/crvault/crvault/configs"
	"github.com/crvault/crvault/vault/calendar"
)

// officialDays reads an embedded holiday-cn file: date -> (name, isOffDay).
func officialDays(t *testing.T, year int) map[string]struct {
	name string
	off  bool
} {
	t.Helper()
	b, err := fs.ReadFile(configs.Calendars, fmt.Sprintf("calendars/%d.json", year))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Days []struct {
			Name     string `json:"name"`
			Date     string `json:"date"`
			IsOffDay bool   `json:"isOffDay"`
		} `json:"days"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		name string
		off  bool
	}{}
	for _, d := range f.Days {
		out[d.Date] = struct {
			name string
			off  bool
		}{d.Name, d.IsOffDay}
	}
	return out
}

// TestStatutoryHolidaysMatchOfficial checks the provisional model against
// the official schedules of the first two years under the 2025 rules: every
// day the model calls a statutory holiday is a day off in the official file,
// in the block of the same holiday (2025 merged Mid-Autumn into National
// Day, so the name is matched by containment), and each holiday has its
// statutory number of days.
func TestStatutoryHolidaysMatchOfficial(t *testing.T) {
	want := map[string]int{"元旦": 1, "春节": 4, "清明节": 1, "劳动节": 2, "端午节": 1, "中秋节": 1, "国庆节": 3}
	for _, year := range []int{2025, 2026} {
		t.Run(fmt.Sprint(year), func(t *testing.T) {
			official := officialDays(t, year)
			hs, err := calendar.StatutoryHolidays(year)
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, h := range hs {
				count[h.Name]++
				o, listed := official[h.Date.String()]
				if !listed || !o.off {
					t.Errorf("%s %s: not a day off in the official %d schedule", h.Date, h.Name, year)
					continue
				}
				if !strings.Contains(o.name, strings.TrimSuffix(h.Name, "节")) {
					t.Errorf("%s: model says %s, official block is %s", h.Date, h.Name, o.name)
				}
			}
			for name, n := range want {
				if count[name] != n {
					t.Errorf("%s: %d days, want %d", name, count[name], n)
				}
			}
		})
	}
}

// TestSubstituteDays: a holiday of all citizens that falls on a weekend is
// given back on the next working day (Art. 6). In the official 2025 and
// 2026 schedules every day the model gives back is off, and for 2027 and
// 2028, which have none yet, the model gives back exactly these.
func TestSubstituteDays(t *testing.T) {
	for _, year := range []int{2025, 2026} {
		official := officialDays(t, year)
		hs, err := calendar.StatutoryHolidays(year)
		if err != nil {
			t.Fatal(err)
		}
		subs := calendar.SubstituteDays(hs)
		if len(subs) == 0 {
			t.Fatalf("%d: no day given back, though holidays fell on weekends", year)
		}
		for _, h := range subs {
			if o, listed := official[h.Date.String()]; !listed || !o.off {
				t.Errorf("%d: %s given back for %s, not a day off in the official schedule", year, h.Date, h.Name)
			}
		}
	}
	want := map[int]string{
		2027: "02-09 春节, 02-10 春节, 05-03 劳动节, 05-04 劳动节, 10-04 国庆节, 10-05 国庆节",
		2028: "01-03 元旦, 05-29 端午节, 10-04 国庆节",
	}
	for year, w := range want {
		hs, err := calendar.StatutoryHolidays(year)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range calendar.SubstituteDays(hs) {
			got = append(got, fmt.Sprintf("%02d-%02d %s", h.Date.M, h.Date.D, h.Name))
		}
		if g := strings.Join(got, ", "); g != w {
			t.Errorf("%d: %s\nwant %s", year, g, w)
		}
	}
}

// TestStatutoryHolidays2027and2028 checks the model's dates for the first
// years without an official schedule against the published Chinese calendar
// (Spring Festival 2027-02-06 and 2028-01-26, and so on).
func TestStatutoryHolidays2027and2028(t *testing.T) {
	want := map[int]string{
		2027: "01-01 元旦, 02-05 春节, 02-06 春节, 02-07 春节, 02-08 春节, 04-05 清明节, 05-01 劳动节, 05-02 劳动节, " +
			"06-09 端午节, 09-15 中秋节, 10-01 国庆节, 10-02 国庆节, 10-03 国庆节",
		2028: "01-01 元旦, 01-25 春节, 01-26 春节, 01-27 春节, 01-28 春节, 04-04 清明节, 05-01 劳动节, 05-02 劳动节, " +
			"05-28 端午节, 10-01 国庆节, 10-02 国庆节, 10-03 中秋节, 10-03 国庆节",
	}
	for year, w := range want {
		hs, err := calendar.StatutoryHolidays(year)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hs {
			got = append(got, h.Date.String()[5:]+" "+h.Name)
		}
		slices.Sort(got)
		if g := strings.Join(got, ", "); g != w {
			t.Errorf("%d: %s\nwant %s", year, g, w)
		}
	}
	c := embedded(t)
	for d, work := range map[string]bool{
		"2027-01-01": false, // Friday, New Year
		"2027-02-05": false, // Friday, New Year's Eve
		"2027-02-08": false, // Monday, 3rd day of the first month
		"2027-02-09": false, // Tuesday: given back for Saturday 02-06 of the Spring Festival (Art. 6)
		"2027-02-10": false, // Wednesday: given back for Sunday 02-07
		"2027-02-11": true,  // Thursday: the model adds no bridging days
		"2027-02-20": false, // Saturday: no make-up working days either
		"2027-04-05": false, // Monday, Qingming
		"2027-05-03": false, // Monday: given back for Labour Day on Saturday 05-01
		"2027-05-04": false, // Tuesday: given back for Sunday 05-02
		"2027-05-05": true,  // Wednesday
		"2028-01-03": false, // Monday: given back for New Year on Saturday 01-01
		"2028-01-25": false, // Tuesday, New Year's Eve
		"2028-01-31": true,  // Monday
		"2028-10-04": false, // Wednesday: given back for National Day on Sunday 10-01
		"2028-10-05": true,  // Thursday: Mid-Autumn coincides with National Day, on a weekday
	} {
		got, err := c.IsWorkday(date(t, d))
		if err != nil || got != work {
			t.Errorf("IsWorkday(%s) = %v, %v; want %v", d, got, err, work)
		}
		if !c.Provisional(date(t, d)) {
			t.Errorf("%s not marked provisional", d)
		}
	}
	if c.Provisional(date(t, "2026-12-19")) || c.Provisional(date(t, "2025-12-31")) || c.Provisional(date(t, "2019-12-31")) || c.Provisional(date(t, "2201-01-01")) {
		t.Error("an official or uncovered date marked provisional")
	}
}

// TestStatutoryHolidaysEveryYear: the model answers for every year it
// covers, with 13 days inside the year, and refuses the others.
func TestStatutoryHolidaysEveryYear(t *testing.T) {
	for y := calendar.ProvisionalFrom; y <= calendar.ProvisionalTo; y++ {
		hs, err := calendar.StatutoryHolidays(y)
		if err != nil || len(hs) != 13 {
			t.Fatalf("%d: %d days, %v", y, len(hs), err)
		}
		for i, h := range hs {
			if h.Date.Y != y || (i > 0 && h.Date.Before(hs[i-1].Date)) {
				t.Fatalf("%d: %v out of order or outside the year", y, h)
			}
		}
		if ny := hs[1].Date; ny.M != 1 && ny.M != 2 || hs[4].Date != ny.AddDays(3) {
			t.Fatalf("%d: Spring Festival %v", y, hs[1:5])
		}
	}
	for _, y := range []int{calendar.ProvisionalFrom - 1, calendar.ProvisionalTo + 1} {
		if _, err := calendar.StatutoryHolidays(y); !errors.Is(err, calendar.ErrOutOfRange) {
			t.Errorf("%d: err = %v, want ErrOutOfRange", y, err)
		}
	}
}

// TestDeadlineProvisional: deadlines into 2027 and 2028 are computed by the
// model and marked; importing an official 2027 re-derives them, unmarked.
func TestDeadlineProvisional(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		from string
		n    int
		want string
		prov bool
		why  string
	}{
		{"2026-03-02", 10, "2026-03-16", false, "inside 2026"},
		{"2026-12-01", 30, "2027-01-13", true, "22 in December | 01-01 off | 4..8, 11..13"},
		{"2027-12-15", 30, "2028-02-02", true, "12 in December | 01-03 given back | 4..7, 10..14, 17..21, 24 | 25..28 off | 31, 02-01, 02-02"},
		{"2027-02-04", 1, "2027-02-11", true, "02-05..08 Spring Festival (Fri-Mon), 02-09 and 02-10 given back for its weekend"},
		{"2027-03-01", 0, "2027-03-01", true, "zero days, but the date itself is provisional"},
		{"2026-12-18", 0, "2026-12-18", false, "zero days in an official year"},
		{"2026-12-10", 5, "2026-12-17", false, "11, 14..17: before the unsettled end of 2026"},
		{"2026-12-17", 2, "2026-12-21", true, "18, 21: 12-20 on is unsettled until 2027's schedule"},
		{"2026-12-31", 0, "2026-12-31", true, "zero days, but 2027's schedule may still change the date"},
	}
	for _, tt := range tests {
		got, err := c.Deadline(date(t, tt.from), tt.n)
		if err != nil || got.On.String() != tt.want || got.Provisional != tt.prov {
			t.Errorf("Deadline(%s, %d) = %+v, %v; want %s provisional=%v (%s)", tt.from, tt.n, got, err, tt.want, tt.prov, tt.why)
		}
	}
	// A made-up official 2027: 1 January is a working day in it, and the
	// week of 4 January is off.
	c2, err := c.With(file(t, 2027, "2027-01-04:off", "2027-01-05:off", "2027-01-06:off", "2027-01-07:off", "2027-01-08:off"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c2.Deadline(date(t, "2026-12-01"), 30)
	if err != nil || got.On.String() != "2027-01-19" || got.Provisional {
		t.Errorf("after import: %+v, %v; want 2027-01-19, not provisional", got, err)
	}
	// 2028 is still provisional after 2027 is imported.
	got, err = c2.Deadline(date(t, "2027-12-15"), 30)
	if err != nil || got.On.String() != "2028-02-02" || !got.Provisional {
		t.Errorf("into 2028 after importing 2027: %+v, %v", got, err)
	}
	if _, err := c.Deadline(date(t, "2019-12-01"), 30); !errors.Is(err, calendar.ErrOutOfRange) {
		t.Errorf("before the official years: %v", err)
	}
}

func TestCoverage(t *testing.T) {
	c := embedded(t)
	with2027, err := c.With(file(t, 2027, "2027-01-01:off"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cal   *calendar.Calendar
		today string
		first string
		ahead int
		warn  bool
	}{
		// 2027's schedule may still change the end of 2026 (UnsettledDecemberFrom).
		{c, "2026-11-30", "2026-12-20", 19, true},
		{c, "2026-10-20", "2026-12-20", 60, false},
		{c, "2026-10-21", "2026-12-20", 59, true},
		{c, "2026-12-25", "2026-12-25", 0, true},
		{c, "2027-03-01", "2027-03-01", 0, true},
		{with2027, "2026-11-30", "2027-12-20", 384, false},
	}
	for _, tt := range tests {
		got := tt.cal.Coverage(date(t, tt.today))
		if got.FirstProvisional.String() != tt.first || got.OfficialDaysAhead != tt.ahead || got.Warning != tt.warn {
			t.Errorf("Coverage(%s) = %+v; want first %s, %d days ahead, warning %v", tt.today, got, tt.first, tt.ahead, tt.warn)
		}
	}
	if ys := c.Coverage(date(t, "2026-11-30")).OfficialYears; !slices.Equal(ys, []int{2020, 2021, 2022, 2023, 2024, 2025, 2026}) {
		t.Errorf("official years %v", ys)
	}
}

// TestUnsettledDecemberIsProvisional: a year's schedule may change the last
// days of the December before it (the 2012 one made Saturday 2011-12-31 a
// working day; the 2023 file lists 2022-12-31). Until year Y+1's file is
// imported, a date from UnsettledDecemberFrom December of the last official
// year is provisional, and re-derived when the file arrives: it used to be
// answered as final.
func TestUnsettledDecemberIsProvisional(t *testing.T) {
	c := embedded(t)
	from := date(t, "2026-12-25")
	before, err := c.Deadline(from, 1)
	if err != nil || before.On.String() != "2026-12-28" || !before.Provisional || !c.Provisional(date(t, "2026-12-26")) {
		t.Errorf("2026-12-25 +1 before the 2027 file: %+v, %v; want 2026-12-28, provisional", before, err)
	}
	with2027, err := c.With(file(t, 2027, "2026-12-26:on", "2027-01-01:off"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := with2027.Deadline(from, 1)
	if err != nil || after.On.String() != "2026-12-26" || after.Provisional || with2027.Provisional(date(t, "2026-12-26")) {
		t.Errorf("with a 2027 file making 2026-12-26 a working day: %+v, %v; want 2026-12-26, final", after, err)
	}
}
