package calendar_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/configs"
	"github.com/crvault/crvault/vault/calendar"
)

func embedded(t testing.TB) *calendar.Calendar {
	t.Helper()
	c, err := calendar.Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	return c
}

func date(t testing.TB, s string) calendar.Date {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatalf("ParseDate(%q): %v", s, err)
	}
	return d
}

func TestYears(t *testing.T) {
	got := embedded(t).Years()
	want := []int{2020, 2021, 2022, 2023, 2024, 2025, 2026}
	if !slices.Equal(got, want) {
		t.Fatalf("Years() = %v, want %v", got, want)
	}
}

// Expected dates were worked out by hand from configs/calendars/*.json; the
// comment on each row is the count.
func TestWorkdaysAfter(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		from string
		n    int
		want string
		why  string
	}{
		{"2025-09-26", 10, "2025-10-16", "28(Sun makeup),29,30 | 10-01..08 off | 9,10,11(Sat makeup),13,14,15,16"},
		{"2025-01-24", 5, "2025-02-07", "26(Sun makeup),27 | 01-28..02-04 off | 5,6,7"},
		{"2020-01-17", 3, "2020-01-21", "19(Sun makeup),20,21"},
		{"2020-01-22", 2, "2020-02-03", "23 | 01-24..02-02 off (extended) | 02-03"},
		{"2022-12-30", 1, "2023-01-03", "12-31..01-02 off, from the 2023 file"},
		{"2024-09-27", 3, "2024-10-08", "29(Sun makeup),30 | 10-01..07 off | 8"},
		{"2024-09-27", 10, "2024-10-16", "29,30,8,9,10,11,12(Sat makeup),14,15,16"},
		{"2026-02-06", 10, "2026-02-27", "9..13,14(Sat makeup) | 15..23 off | 24..27"},
		{"2021-09-17", 5, "2021-09-26", "18(Sat makeup) | 19..21 off | 22,23,24,26(Sun makeup)"},
		{"2022-01-28", 3, "2022-02-07", "29,30(makeup) | 01-31..02-06 off | 7"},
		{"2023-09-28", 2, "2023-10-08", "09-29..10-06 off | 7,8 (makeup weekend)"},
		{"2020-09-25", 4, "2020-09-30", "27(Sun makeup),28,29,30"},
		{"2020-09-25", 5, "2020-10-09", "... | 10-01..08 off | 9"},
		{"2020-09-25", 6, "2020-10-10", "... 10(Sat makeup)"},
		{"2025-12-15", 30, "2026-01-27", "16..31 = 12 | 01-01..03 off | 4(Sun makeup)=13 | 5..27 = 30"},
		{"2025-10-01", 0, "2025-10-01", "zero days: the day itself"},
		{"2025-10-03", 1, "2025-10-09", "from inside a holiday"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s+%d", tt.from, tt.n), func(t *testing.T) {
			got, err := c.WorkdaysAfter(date(t, tt.from), tt.n)
			if err != nil {
				t.Fatalf("WorkdaysAfter(%s, %d): %v", tt.from, tt.n, err)
			}
			if got.String() != tt.want {
				t.Errorf("WorkdaysAfter(%s, %d) = %s, want %s (%s)", tt.from, tt.n, got, tt.want, tt.why)
			}
			// Between is the inverse of After when the end is a working day.
			back, err := c.WorkdaysBetween(date(t, tt.from), got)
			if err != nil {
				t.Fatal(err)
			}
			if back != tt.n {
				t.Errorf("WorkdaysBetween(%s, %s) = %d, want %d", tt.from, got, back, tt.n)
			}
		})
	}
}

func TestWorkdaysAfterErrors(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		from string
		n    int
		want error
	}{
		{"2019-12-31", 1, calendar.ErrOutOfRange}, // before the official years, and before the model's rules
		{"2200-12-31", 1, calendar.ErrOutOfRange}, // past the model's last year
		{"2201-01-04", 0, calendar.ErrOutOfRange},
		{"2025-01-01", -1, calendar.ErrInvalidDays},
		{"2025-01-01", calendar.MaxDays + 1, calendar.ErrInvalidDays},
	}
	for _, tt := range tests {
		if _, err := c.WorkdaysAfter(date(t, tt.from), tt.n); !errors.Is(err, tt.want) {
			t.Errorf("WorkdaysAfter(%s, %d) err = %v, want %v", tt.from, tt.n, err, tt.want)
		}
	}
	if _, err := c.WorkdaysAfter(calendar.Date{Y: 2025, M: 2, D: 29}, 1); !errors.Is(err, calendar.ErrInvalidDate) {
		t.Errorf("invalid date: err = %v", err)
	}
}

func TestIsWorkday(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		d    string
		want bool
	}{
		{"2025-09-28", true},  // Sunday, make-up day
		{"2025-10-01", false}, // National Day
		{"2025-10-08", false}, // Wednesday, holiday
		{"2025-10-09", true},  // Thursday
		{"2025-10-11", true},  // Saturday, make-up day
		{"2025-10-12", false}, // Sunday
		{"2026-01-04", true},  // Sunday, make-up day
		{"2026-02-23", false}, // Monday, Spring Festival
		{"2020-02-03", true},  // Monday, listed as a working day
		{"2024-10-12", true},  // Saturday, make-up day
		{"2024-10-13", false}, // Sunday
		{"2023-01-02", false}, // Monday, New Year
		{"2022-12-31", false}, // Saturday, listed in the 2023 file
	}
	for _, tt := range tests {
		got, err := c.IsWorkday(date(t, tt.d))
		if err != nil {
			t.Fatalf("IsWorkday(%s): %v", tt.d, err)
		}
		if got != tt.want {
			t.Errorf("IsWorkday(%s) = %v, want %v", tt.d, got, tt.want)
		}
	}
	for _, s := range []string{"2019-06-03", "2201-06-01"} {
		if _, err := c.IsWorkday(date(t, s)); !errors.Is(err, calendar.ErrOutOfRange) {
			t.Errorf("IsWorkday(%s) err = %v, want ErrOutOfRange", s, err)
		}
	}
}

func TestWorkdaysBetween(t *testing.T) {
	c := embedded(t)
	tests := []struct {
		from, to string
		want     int
	}{
		{"2025-09-30", "2025-10-08", 0},
		{"2025-10-08", "2025-10-08", 0},
		{"2025-09-26", "2025-10-12", 6},
		{"2025-10-12", "2025-09-26", -6},
		{"2025-12-31", "2026-01-05", 2}, // 01-04 make-up Sunday, 01-05
	}
	for _, tt := range tests {
		got, err := c.WorkdaysBetween(date(t, tt.from), date(t, tt.to))
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("WorkdaysBetween(%s, %s) = %d, want %d", tt.from, tt.to, got, tt.want)
		}
	}
	if _, err := c.WorkdaysBetween(date(t, "2019-12-01"), date(t, "2020-01-05")); !errors.Is(err, calendar.ErrOutOfRange) {
		t.Errorf("err = %v, want ErrOutOfRange", err)
	}
	// Into a provisional year: 2027-01-01 (Friday) is New Year's Day.
	if n, err := c.WorkdaysBetween(date(t, "2026-12-30"), date(t, "2027-01-05")); err != nil || n != 3 {
		t.Errorf("WorkdaysBetween into 2027 = %d, %v; want 3 (12-31, 01-04, 01-05)", n, err)
	}
}

// file builds a holiday-cn file; days are "YYYY-MM-DD:off" or "YYYY-MM-DD:work".
func file(t testing.TB, year int, days ...string) []byte {
	t.Helper()
	type day struct {
		Name     string `json:"name"`
		Date     string `json:"date"`
		IsOffDay bool   `json:"isOffDay"`
	}
	f := struct {
		Year int   `json:"year"`
		Days []day `json:"days"`
	}{Year: year}
	for _, d := range days {
		ds, kind, _ := strings.Cut(d, ":")
		f.Days = append(f.Days, day{Name: "test", Date: ds, IsOffDay: kind == "off"})
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMergeByDate(t *testing.T) {
	// 2021-01-01 is a Friday, 2020-12-31 a Thursday, 2021-01-02 a Saturday.
	c, err := calendar.Parse(
		file(t, 2020, "2020-10-01:off"),
		file(t, 2021, "2020-12-31:off", "2021-01-01:off", "2021-01-02:work"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{"2020-12-31": false, "2021-01-01": false, "2021-01-02": true, "2021-01-04": true} {
		got, err := c.IsWorkday(date(t, d))
		if err != nil || got != want {
			t.Errorf("IsWorkday(%s) = %v, %v; want %v", d, got, err, want)
		}
	}
	// A make-up listing wins whichever file holds it.
	c, err = calendar.Parse(file(t, 2021, "2020-12-26:work"), file(t, 2020, "2020-12-26:off"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.IsWorkday(date(t, "2020-12-26")); err != nil || !ok {
		t.Errorf("make-up day lost to holiday: %v, %v", ok, err)
	}
}

func TestParseRejects(t *testing.T) {
	good := file(t, 2027, "2027-01-01:off")
	tests := map[string][]byte{
		"not json":         []byte("{"),
		"trailing":         append(append([]byte{}, good...), []byte(" {}")...),
		"unknown field":    []byte(`{"year":2027,"days":[{"name":"x","date":"2027-01-01","isOffDay":true}],"extra":1}`),
		"no year":          []byte(`{"days":[{"name":"x","date":"2027-01-01","isOffDay":true}]}`),
		"absurd year":      file(t, 99999, "2027-01-01:off"),
		"no days":          []byte(`{"year":2027,"days":[]}`),
		"bad date":         file(t, 2027, "2027-02-30:off"),
		"date of year+1":   file(t, 2027, "2028-01-01:off"),
		"date of year-2":   file(t, 2027, "2025-12-31:off"),
		"no isOffDay":      []byte(`{"year":2027,"days":[{"name":"x","date":"2027-01-01"}]}`),
		"no name":          []byte(`{"year":2027,"days":[{"name":" ","date":"2027-01-01","isOffDay":true}]}`),
		"duplicate date":   file(t, 2027, "2027-01-01:off", "2027-01-01:work"),
		"string isOffDay":  []byte(`{"year":2027,"days":[{"name":"x","date":"2027-01-01","isOffDay":"true"}]}`),
		"array not object": []byte(`[]`),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := calendar.Parse(b); !errors.Is(err, calendar.ErrInvalidFile) {
				t.Errorf("Parse err = %v, want ErrInvalidFile", err)
			}
			if _, err := calendar.ImportedYear(b); !errors.Is(err, calendar.ErrInvalidFile) {
				t.Errorf("ImportedYear err = %v, want ErrInvalidFile", err)
			}
		})
	}
	if _, err := calendar.Parse(good, good); !errors.Is(err, calendar.ErrInvalidFile) {
		t.Errorf("two files for one year: err = %v", err)
	}
	if _, err := calendar.Parse(); !errors.Is(err, calendar.ErrInvalidFile) {
		t.Errorf("no files: err = %v", err)
	}
}

func TestWith(t *testing.T) {
	c := embedded(t)
	// Synthetic 2027: 2027-01-01 (Friday) off.
	extra := file(t, 2027, "2027-01-01:off")
	y, err := calendar.ImportedYear(extra)
	if err != nil || y != 2027 {
		t.Fatalf("ImportedYear = %d, %v", y, err)
	}
	c2, err := c.With(extra)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Provisional(date(t, "2027-01-04")) || c2.Provisional(date(t, "2027-01-04")) {
		t.Errorf("2027 provisional before import %v, after %v", c.Provisional(date(t, "2027-01-04")), c2.Provisional(date(t, "2027-01-04")))
	}
	// 2026-12-31 is a Thursday; 2027-01-01 off; 01-04 Monday.
	got, err := c2.WorkdaysAfter(date(t, "2026-12-31"), 1)
	if err != nil || got.String() != "2027-01-04" {
		t.Errorf("after import: %v, %v; want 2027-01-04", got, err)
	}
	// Replacing a year drops that file's old listings but keeps the others'.
	c3, err := c2.With(file(t, 2025, "2025-10-13:off"))
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{"2025-10-01": true, "2025-10-13": false, "2024-10-01": false} {
		got, err := c3.IsWorkday(date(t, d))
		if err != nil || got != want {
			t.Errorf("replaced 2025: IsWorkday(%s) = %v, %v; want %v", d, got, err, want)
		}
	}
	if _, err := c.With([]byte("{}")); !errors.Is(err, calendar.ErrInvalidFile) {
		t.Errorf("With(bad) err = %v", err)
	}
}

func TestParseDate(t *testing.T) {
	good := map[string]calendar.Date{
		"2025-01-02": {Y: 2025, M: 1, D: 2},
		"2024-02-29": {Y: 2024, M: 2, D: 29},
		"1000-12-31": {Y: 1000, M: 12, D: 31},
	}
	for s, want := range good {
		got, err := calendar.ParseDate(s)
		if err != nil || got != want {
			t.Errorf("ParseDate(%q) = %v, %v; want %v", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("String() = %q, want %q", got.String(), s)
		}
	}
	for _, s := range []string{"", "2025-1-02", "2025-02-29", "2025-13-01", "2025-00-10", "2025-01-00",
		"0999-01-01", "+025-01-01", "2025/01/02", "2025-01-02T00:00:00Z", " 2025-01-02", "2025-01-0x", "２０２５-01-02"} {
		if _, err := calendar.ParseDate(s); !errors.Is(err, calendar.ErrInvalidDate) {
			t.Errorf("ParseDate(%q) err = %v, want ErrInvalidDate", s, err)
		}
	}
}

func TestDateJSON(t *testing.T) {
	type doc struct {
		Due  calendar.Date  `json:"due"`
		None calendar.Date  `json:"none"`
		Ptr  *calendar.Date `json:"ptr,omitempty"`
	}
	in := doc{Due: calendar.Date{Y: 2025, M: 10, D: 16}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"due":"2025-10-16","none":null}` {
		t.Errorf("Marshal = %s", b)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("round trip = %+v, %v", out, err)
	}
	for _, bad := range []string{`{"due":"2025-02-30"}`, `{"due":20251016}`, `{"due":"2025-10-16T00:00:00Z"}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

func TestToday(t *testing.T) {
	tests := []struct {
		utc  string
		want string
	}{
		{"2025-09-30T15:59:59Z", "2025-09-30"},
		{"2025-09-30T16:00:00Z", "2025-10-01"}, // midnight in Beijing
		{"2025-12-31T23:00:00-05:00", "2026-01-01"},
	}
	for _, tt := range tests {
		now, err := time.Parse(time.RFC3339, tt.utc)
		if err != nil {
			t.Fatal(err)
		}
		if got := calendar.Today(now).String(); got != tt.want {
			t.Errorf("Today(%s) = %s, want %s", tt.utc, got, tt.want)
		}
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2025-10-16", "2024-02-29", "2025-02-29", "9999-12-31", "abcd-ef-gh", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := calendar.ParseDate(s)
		if err != nil {
			if !errors.Is(err, calendar.ErrInvalidDate) {
				t.Fatalf("error %v does not wrap ErrInvalidDate", err)
			}
			return
		}
		if !d.Valid() || d.String() != s {
			t.Fatalf("ParseDate(%q) = %v, which formats as %q", s, d, d.String())
		}
		if want, err := time.Parse(time.DateOnly, s); err != nil || want != d.Time() {
			t.Fatalf("ParseDate(%q) = %v, time.Parse = %v, %v", s, d, want, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	names, _ := fs.Glob(configs.Calendars, "calendars/*.json")
	for _, n := range names {
		b, _ := fs.ReadFile(configs.Calendars, n)
		f.Add(b)
	}
	f.Add([]byte(`{"year":2027,"days":[{"name":"x","date":"2026-12-31","isOffDay":false}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := calendar.Parse(b)
		if err != nil {
			if !errors.Is(err, calendar.ErrInvalidFile) {
				t.Fatalf("error %v does not wrap ErrInvalidFile", err)
			}
			return
		}
		ys := c.Years()
		if len(ys) != 1 {
			t.Fatalf("one file gave years %v", ys)
		}
		y, err := calendar.ImportedYear(b)
		if err != nil || y != ys[0] {
			t.Fatalf("ImportedYear = %d, %v; Years = %v", y, err, ys)
		}
		// Every covered date answers; the walk stays inside the year.
		d := calendar.Date{Y: y, M: 1, D: 1}
		if _, err := c.IsWorkday(d); err != nil {
			t.Fatalf("IsWorkday(%s): %v", d, err)
		}
		if _, err := c.WorkdaysBetween(d, calendar.Date{Y: y, M: 12, D: 31}); err != nil {
			t.Fatalf("WorkdaysBetween: %v", err)
		}
	})
}
