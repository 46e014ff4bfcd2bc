package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/calendar"
)

// officialAhead is what the server should report on today for these
// official years, worked out here from the definition rather than by
// calendar.Coverage: days after today up to the end of the run of official
// years that starts with today's year.
func officialAhead(today calendar.Date, years []int) (first calendar.Date, ahead int) {
	y := today.Y
	for slices.Contains(years, y) {
		y++
	}
	if y == today.Y {
		return today, 0
	}
	// The end of the last official year stays unsettled until year y's
	// schedule arrives (calendar.UnsettledDecemberFrom).
	first = calendar.Date{Y: y - 1, M: time.December, D: calendar.UnsettledDecemberFrom}
	if first.Before(today) {
		return today, 0
	}
	return first, int(first.Time().Sub(today.Time()).Hours()/24) - 1
}

// TestCalendarCoverageWarns: the server stays ready whatever the calendar,
// but /readyz details, the crvault_calendar_official_days_ahead gauge and
// the log say how far the official calendar reaches, and warn below 60
// days; importing the coming years lifts the warning at once.
func TestCalendarCoverageWarns(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_DEADLINE_INTERVAL=1s")
	s.start()
	today := calendar.Today(time.Now())
	if today != calendar.Today(time.Now().Add(2*time.Minute)) {
		t.Skip("too close to midnight in Shanghai for a stable 'today'")
	}
	years := []int{2020, 2021, 2022, 2023, 2024, 2025, 2026}
	type ready struct {
		Status   string `json:"status"`
		Calendar struct {
			OfficialYears     []int  `json:"official_years"`
			FirstProvisional  string `json:"first_provisional"`
			OfficialDaysAhead int    `json:"official_days_ahead"`
			Warning           bool   `json:"warning"`
		} `json:"calendar"`
	}
	check := func(years []int) {
		t.Helper()
		first, ahead := officialAhead(today, years)
		warn := ahead < 60
		res, err := httpGet(s.base + "/readyz")
		if err != nil || res.status != 200 {
			t.Fatalf("/readyz: %v %+v", err, res)
		}
		var r ready
		if err := json.Unmarshal([]byte(res.body), &r); err != nil {
			t.Fatal(err)
		}
		c := r.Calendar
		if r.Status != "ready" || !slices.Equal(c.OfficialYears, years) || c.FirstProvisional != first.String() ||
			c.OfficialDaysAhead != ahead || c.Warning != warn {
			t.Fatalf("/readyz %s; want years %v, first provisional %s, %d days ahead, warning %v", res.body, years, first, ahead, warn)
		}
		// The watcher refreshes the gauge every second.
		want := fmt.Sprintf("crvault_calendar_official_days_ahead %d\n", ahead)
		var metrics string
		for range 60 {
			m, err := httpGet(s.metricsBase + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if metrics = m.body; strings.Contains(metrics, want) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
	check(years)
	if _, ahead := officialAhead(today, years); ahead < 60 && !strings.Contains(s.log.String(), "official holiday calendar runs out soon") {
		t.Fatalf("no warning in the log with %d official days ahead", ahead)
	}
	// Stand-in official files for today's year and the two after it.
	for _, y := range []int{today.Y, today.Y + 1, today.Y + 2} {
		if slices.Contains(years, y) {
			continue
		}
		path, _ := holidayFile(t, t.TempDir(), y, fmt.Sprintf("%d-01-01", y))
		s.mustCLI("", "calendar", "import", path)
		years = append(years, y)
	}
	check(years)
}
