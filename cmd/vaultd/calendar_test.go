package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/calendar"
)

// holidayFile writes a holiday-cn file for year with the given days off and
// returns its path.
func holidayFile(t *testing.T, dir string, year int, holidays ...string) (string, []byte) {
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
	for _, h := range holidays {
		f.Days = append(f.Days, day{Name: "test holiday", Date: h, IsOffDay: true})
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, strings.Join(append([]string{"cal"}, holidays...), "_")+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestCalendarCLI runs `vaultd calendar` against a fresh data directory:
// answers and exit codes, and an import that later commands see.
func TestCalendarCLI(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	emb, err := calendar.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	wantAfter := func(from string, n int) string {
		d, _ := calendar.ParseDate(from)
		due, err := emb.WorkdaysAfter(d, n)
		if err != nil {
			t.Fatal(err)
		}
		return due.String()
	}
	dir := t.TempDir()
	// 2099 is far beyond any published year: the calendar must refuse it
	// until imported. 2099-01-01 is a Thursday, 2099-01-02 a Friday.
	file2099, _ := holidayFile(t, dir, 2099, "2099-01-01")
	corrected, _ := holidayFile(t, dir, 2099, "2099-01-01", "2099-01-02")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"year":2099,"days":[],"extra":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"national day holiday", []string{"calendar", "is-workday", "2025-10-01"}, 1, "no"},
		{"make-up working Sunday", []string{"calendar", "is-workday", "2025-09-28"}, 0, "yes"},
		{"plain Wednesday", []string{"calendar", "is-workday", "2025-11-26"}, 0, "yes"},
		{"Saturday", []string{"calendar", "is-workday", "2025-11-29"}, 1, "no"},
		{"over National Day", []string{"calendar", "workdays-after", "2025-09-30", "1"}, 0, wantAfter("2025-09-30", 1)},
		{"zero days", []string{"calendar", "workdays-after", "2025-10-01", "0"}, 0, "2025-10-01"},
		{"thirty days", []string{"calendar", "workdays-after", "2025-03-10", "30"}, 0, wantAfter("2025-03-10", 30)},
		{"impossible date", []string{"calendar", "is-workday", "2025-02-29"}, 2, ""},
		{"negative N", []string{"calendar", "workdays-after", "2025-01-02", "-1"}, 2, ""},
		{"absurd N", []string{"calendar", "workdays-after", "2025-01-02", "1001"}, 2, ""},
		{"missing N", []string{"calendar", "workdays-after", "2025-01-02"}, 2, ""},
		{"year the model does not cover", []string{"calendar", "is-workday", "2201-01-02"}, 3, ""},
		{"year before the official ones", []string{"calendar", "is-workday", "2019-06-03"}, 3, ""},
		{"deadline past the model", []string{"calendar", "workdays-after", "2200-12-31", "1"}, 1, ""},
		{"provisional working day", []string{"calendar", "is-workday", "2099-01-02"}, 0, "yes provisional"},
		{"provisional New Year", []string{"calendar", "is-workday", "2099-01-01"}, 1, "no provisional"},
		{"provisional deadline", []string{"calendar", "workdays-after", "2098-12-31", "1"}, 0, "2099-01-02 provisional"},
		// 02-05..08 off, and 02-09, 02-10 given back for its Saturday and Sunday.
		{"provisional Spring Festival 2027", []string{"calendar", "workdays-after", "2027-02-04", "1"}, 0, "2027-02-11 provisional"},
		{"official deadline into 2027 is provisional", []string{"calendar", "workdays-after", "2026-12-01", "30"}, 0, "2027-01-13 provisional"},
		{"status takes no arguments", []string{"calendar", "status", "now"}, 2, ""},
		{"invalid file refused", []string{"calendar", "import", bad}, 1, ""},
		{"missing file", []string{"calendar", "import", filepath.Join(dir, "nope.json")}, 1, ""},
		{"import 2099", []string{"calendar", "import", file2099}, 0, "imported calendar for 2099"},
		{"imported holiday", []string{"calendar", "is-workday", "2099-01-01"}, 1, "no"},
		{"imported working day", []string{"calendar", "is-workday", "2099-01-02"}, 0, "yes"},
		{"imported deadline", []string{"calendar", "workdays-after", "2099-01-01", "1"}, 0, "2099-01-02"},
		{"import corrected 2099", []string{"calendar", "import", corrected}, 0, "imported calendar for 2099"},
		{"corrected holiday", []string{"calendar", "is-workday", "2099-01-02"}, 1, "no"},
		{"corrected deadline", []string{"calendar", "workdays-after", "2099-01-01", "1"}, 0, "2099-01-05"},
	}
	wantStatus := func(years ...int) {
		t.Helper()
		today := calendar.Today(time.Now())
		y := today.Y
		for slices.Contains(years, y) {
			y++
		}
		// The end of the last official year is unsettled until year y's
		// schedule arrives.
		first := fmt.Sprintf("%d-12-%d", y-1, calendar.UnsettledDecemberFrom)
		if y == today.Y || first < today.String() {
			first = today.String()
		}
		ys := fmt.Sprint(years)
		out := s.mustCLI("", "calendar", "status")
		for _, line := range []string{"official years: " + ys[1:len(ys)-1], "first provisional date: " + first} {
			if !strings.Contains(out, line+"\n") {
				t.Errorf("calendar status:\n%s\nlacks %q", out, line)
			}
		}
	}
	wantStatus(2020, 2021, 2022, 2023, 2024, 2025, 2026)
	for _, st := range steps {
		out, errs, code := s.cli("", st.args...)
		if code != st.code || (st.out != "" && out != st.out) {
			t.Errorf("%s: vaultd %v: exit %d out %q (stderr %q), want exit %d out %q", st.name, st.args, code, out, errs, st.code, st.out)
		}
	}
	wantStatus(2020, 2021, 2022, 2023, 2024, 2025, 2026, 2099)
}

// FuzzCalendarImport: whatever file arrives, ImportedYear either names a
// year that With accepts, or refuses it; it never panics.
func FuzzCalendarImport(f *testing.F) {
	f.Add([]byte(`{"year":2099,"days":[{"name":"x","date":"2099-01-01","isOffDay":true}]}`))
	f.Add([]byte(`{"year":2099,"days":[]}`))
	f.Add([]byte(`[]`))
	emb, err := calendar.Embedded()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		y, err := calendar.ImportedYear(b)
		if err != nil {
			return
		}
		c, err := emb.With(b)
		if err != nil {
			t.Fatalf("year %d validated but With refused: %v", y, err)
		}
		if !c.Covers(calendar.Date{Y: y, M: 1, D: 1}) {
			t.Fatalf("imported year %d not covered", y)
		}
	})
}
