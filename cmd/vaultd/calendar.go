package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
)

// Exit codes of the calendar commands: 0 yes/done, 1 no (is-workday) or a
// failure, 2 a usage error, 3 is-workday cannot answer (a year neither an
// official schedule nor the provisional model covers: never a guess).
// An answer that rests on the provisional model (a year with no official
// schedule yet) is followed by " provisional" on the same line, with the
// exit code of the answer itself.
const exitOutOfRange = 3

// maxCalendarFile bounds what `calendar import` reads; real files are ~3 KiB.
const maxCalendarFile = 1 << 20

func cmdCalendar(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, fs, err := parse(cmd, args, stderr, getenv, nil)
	if err != nil {
		return err
	}
	pos := fs.Args()
	// Validate the arguments before touching the database.
	var date calendar.Date
	var n int
	switch cmd {
	case "calendar workdays-after":
		if len(pos) != 2 {
			return usageError{"usage: vaultd calendar workdays-after DATE N"}
		}
		if date, err = calendar.ParseDate(pos[0]); err != nil {
			return usageError{fmt.Sprintf("DATE %q: want YYYY-MM-DD", clipArg(pos[0]))}
		}
		if n, err = strconv.Atoi(pos[1]); err != nil || n < 0 || n > calendar.MaxDays {
			return usageError{fmt.Sprintf("N %q: want an integer from 0 to %d", clipArg(pos[1]), calendar.MaxDays)}
		}
	case "calendar is-workday":
		if len(pos) != 1 {
			return usageError{"usage: vaultd calendar is-workday DATE"}
		}
		if date, err = calendar.ParseDate(pos[0]); err != nil {
			return usageError{fmt.Sprintf("DATE %q: want YYYY-MM-DD", clipArg(pos[0]))}
		}
	case "calendar import":
		if len(pos) != 1 {
			return usageError{"usage: vaultd calendar import FILE.json"}
		}
	case "calendar status":
		if len(pos) != 0 {
			return usageError{"usage: vaultd calendar status"}
		}
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, "warn"), withDB)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	cals := vault.NewCalendars(a.db, nil)
	if cmd == "calendar import" {
		return calendarImport(ctx, a, cals, pos[0], stdout)
	}
	cal, err := cals.Current(ctx)
	if err != nil {
		return err
	}
	switch cmd {
	case "calendar workdays-after":
		due, err := cal.Deadline(date, n)
		if err != nil {
			return fmt.Errorf("workdays-after: %w", err)
		}
		fmt.Fprintln(stdout, due.On.String()+provisionalMark(due.Provisional))
		return nil
	case "calendar status":
		return calendarStatus(cal, calendar.Today(time.Now()), stdout)
	default:
		ok, err := cal.IsWorkday(date)
		if err != nil {
			return exitError{exitOutOfRange, fmt.Sprintf("is-workday: %v", err)}
		}
		mark := provisionalMark(cal.Provisional(date))
		if !ok {
			fmt.Fprintln(stdout, "no"+mark)
			return exitError{1, date.String() + " is not a working day" + mark}
		}
		fmt.Fprintln(stdout, "yes"+mark)
		return nil
	}
}

func provisionalMark(p bool) string {
	if p {
		return " provisional"
	}
	return ""
}

// calendarStatus prints, one fact a line, the official years, the first
// provisional date and how far ahead the official schedules reach.
func calendarStatus(cal *calendar.Calendar, today calendar.Date, stdout io.Writer) error {
	cov := cal.Coverage(today)
	years := make([]string, len(cov.OfficialYears))
	for i, y := range cov.OfficialYears {
		years[i] = strconv.Itoa(y)
	}
	fmt.Fprintf(stdout, "official years: %s\n", strings.Join(years, " "))
	fmt.Fprintf(stdout, "first provisional date: %s\n", cov.FirstProvisional)
	fmt.Fprintf(stdout, "official days ahead: %d\n", cov.OfficialDaysAhead)
	if cov.Warning {
		// The first provisional date may be the unsettled end of the last
		// official year: the schedule that settles it is the next year's.
		missing := cov.FirstProvisional.Y
		if slices.Contains(cov.OfficialYears, missing) {
			missing++
		}
		fmt.Fprintf(stdout, "warning: the official calendar covers fewer than %d days ahead; deadlines from %s are provisional until `vaultd calendar import` adds the %d schedule\n",
			calendar.WarnOfficialDaysAhead, cov.FirstProvisional, missing)
	}
	return nil
}

func calendarImport(ctx context.Context, a *app, cals *vault.Calendars, path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("calendar import: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCalendarFile+1))
	if err != nil {
		return fmt.Errorf("calendar import: read %s: %w", path, err)
	}
	year, err := calendar.ImportedYear(data)
	if err != nil {
		return fmt.Errorf("calendar import: %w", err)
	}
	e := actorCLI()
	e.Action, e.Outcome, e.Resource = "calendar.import", audit.Allowed, "calendar/"+strconv.Itoa(year)
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record in audit log: %w", err)
	}
	if _, err := cals.Import(ctx, data); err != nil {
		if errors.Is(err, calendar.ErrInvalidFile) {
			return fmt.Errorf("calendar import: %w", err)
		}
		return fmt.Errorf("calendar import %d: %w", year, err)
	}
	fmt.Fprintf(stdout, "imported calendar for %d\n", year)
	return nil
}

func clipArg(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// deadlineJob registers the deadline gauges and returns the deadline
// watcher's sweep (run by the leader, see jobs.go): it flags cases due soon
// or overdue (audit event, webhook) and sets the gauges
// crvault_cases_due_soon and crvault_cases_overdue. It also sets
// crvault_calendar_official_days_ahead and logs a warning while the
// official calendar reaches fewer than calendar.WarnOfficialDaysAhead days
// ahead.
func (a *app) deadlineJob() func(context.Context) error {
	dueSoon := prometheus.NewGauge(prometheus.GaugeOpts{Name: "crvault_cases_due_soon",
		Help: "Open, running review cases due within 3 working days (set by the instance leading the background jobs)."})
	overdue := prometheus.NewGauge(prometheus.GaugeOpts{Name: "crvault_cases_overdue",
		Help: "Open, running review cases past their statutory due date (set by the instance leading the background jobs)."})
	calAhead := prometheus.NewGauge(prometheus.GaugeOpts{Name: "crvault_calendar_official_days_ahead",
		Help: "Days after today covered by an official holiday schedule; deadlines past them are provisional."})
	for _, g := range []prometheus.Collector{dueSoon, overdue, calAhead} {
		if err := a.reg.Register(g); err != nil {
			a.log.Error("register deadline gauges", "err", err)
		}
	}
	return func(ctx context.Context) error {
		a.checkCalendar(ctx, calAhead)
		sw, err := a.vault.SweepDeadlines(ctx)
		if err != nil {
			return fmt.Errorf("deadline sweep: %w", err)
		}
		dueSoon.Set(float64(sw.DueSoon))
		overdue.Set(float64(sw.Overdue))
		if sw.Flagged > 0 || sw.Failed > 0 {
			a.log.Info("deadline sweep", "due_soon", sw.DueSoon, "overdue", sw.Overdue, "flagged", sw.Flagged,
				"notified", sw.Notified, "webhook_failures", sw.Failed)
		}
		return nil
	}
}

// checkCalendar sets the coverage gauge and warns while the official
// calendar runs out soon.
func (a *app) checkCalendar(ctx context.Context, gauge prometheus.Gauge) {
	cov, err := a.vault.CalendarCoverage(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("calendar coverage unknown", "err", err)
		}
		return
	}
	gauge.Set(float64(cov.OfficialDaysAhead))
	if cov.Warning {
		a.log.Warn("official holiday calendar runs out soon; later deadlines are provisional until the next year is imported",
			"official_days_ahead", cov.OfficialDaysAhead, "first_provisional", cov.FirstProvisional.String(),
			"import", "vaultd calendar import FILE.json")
	}
}
