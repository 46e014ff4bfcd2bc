// Package calendar is China's official working-day calendar: public holidays
// and make-up working days (调休) as published by the State Council, from the
// holiday-cn data embedded in configs/calendars, plus years imported at run time.
//
// Promises:
//   - A date is a working day if any file lists it as a make-up day
//     (isOffDay false); otherwise it is not a working day if any file lists it
//     as a holiday; otherwise it is one exactly when it is Monday to Friday.
//     Files are merged by date because a year's file may hold dates of the
//     year before (the New Year holiday can start on 31 December).
//   - A date of a year no file covers, from ProvisionalFrom to the last year
//     a file may claim, is answered by the provisional model (provisional.go):
//     weekends and that year's statutory holidays off, lunar dates computed,
//     no make-up days. Such answers are marked: Provisional, ProvisionalIn and
//     Deadline say so, and every caller that shows a date passes the mark on.
//     Importing the year's official file replaces the model at once.
//   - Any other uncovered date is an error (ErrOutOfRange), never a
//     weekday-only guess. "Covered" (officially) means some file's "year" is
//     that year.
//   - A Calendar is immutable and safe for concurrent use; With returns a new
//     one, so a corrected or added year never changes deadlines under a
//     running computation, and re-deriving with the new Calendar moves them.
//   - "n working days after d" never counts d itself: WorkdaysAfter(d, n) is
//     the date on which the n-th working day after d ends.
package calendar

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/crvault/crvault/configs"
)

var (
	// ErrOutOfRange reports a date in a year the calendar does not cover
	// (API: 422 calendar_out_of_range).
	ErrOutOfRange = errors.New("date outside the calendar's years")
	// ErrInvalidDays reports a negative or absurd number of working days.
	ErrInvalidDays = errors.New("invalid number of working days")
	// ErrInvalidFile reports a calendar file that is not strict holiday-cn JSON.
	ErrInvalidFile = errors.New("invalid calendar file")
)

const (
	// MaxDays bounds n in WorkdaysAfter: about four years of working days,
	// far beyond any statutory allowance, so bigger numbers are input errors.
	MaxDays = 1000
	// maxFileSize bounds one calendar file; real ones are about 3 KiB.
	maxFileSize = 1 << 20
	// minYear and maxYear bound the years a file may claim.
	minYear, maxYear = 1990, 2200
)

// Calendar answers working-day questions for the years it covers.
type Calendar struct {
	files map[int]map[Date]bool // file year -> date -> isOffDay, as parsed
	off   map[Date]bool         // merged: true holiday, false make-up working day
	prov  *provisionalYears     // computed statutory holidays, shared by With
	fp    string                // Fingerprint, computed once: a calendar never changes
}

// Embedded is the calendar built from configs.Calendars (2020 onwards).
func Embedded() (*Calendar, error) {
	names, err := fs.Glob(configs.Calendars, "calendars/*.json")
	if err != nil {
		return nil, fmt.Errorf("list embedded calendars: %w", err)
	}
	files := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(configs.Calendars, n)
		if err != nil {
			return nil, fmt.Errorf("read embedded calendar %s: %w", path.Base(n), err)
		}
		files = append(files, b)
	}
	c, err := Parse(files...)
	if err != nil {
		return nil, fmt.Errorf("embedded calendars: %w", err)
	}
	return c, nil
}

// Parse builds a calendar from holiday-cn JSON files, one per year. Two files
// for the same year are an error: which one is right is not for us to guess.
func Parse(files ...[]byte) (*Calendar, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no files", ErrInvalidFile)
	}
	byYear := make(map[int]map[Date]bool, len(files))
	for i, b := range files {
		y, days, err := parseFile(b)
		if err != nil {
			return nil, fmt.Errorf("calendar file %d: %w", i+1, err)
		}
		if _, dup := byYear[y]; dup {
			return nil, fmt.Errorf("%w: two files for year %d", ErrInvalidFile, y)
		}
		byYear[y] = days
	}
	return build(byYear, newProvisionalYears()), nil
}

// ImportedYear validates one holiday-cn file, as `vaultd calendar import`
// receives it, and returns the year it covers.
func ImportedYear(data []byte) (int, error) {
	y, _, err := parseFile(data)
	return y, err
}

// With returns a new calendar with the year in extra added, or replacing the
// file of that year if there is one (a corrected announcement). c is unchanged.
func (c *Calendar) With(extra []byte) (*Calendar, error) {
	y, days, err := parseFile(extra)
	if err != nil {
		return nil, fmt.Errorf("import calendar: %w", err)
	}
	byYear := maps.Clone(c.files)
	byYear[y] = days
	return build(byYear, c.prov), nil
}

func build(byYear map[int]map[Date]bool, prov *provisionalYears) *Calendar {
	c := &Calendar{files: byYear, off: map[Date]bool{}, prov: prov}
	for _, days := range byYear {
		for d, off := range days {
			// A make-up day wins over a holiday listing, whichever file says it.
			if prev, seen := c.off[d]; seen && !prev {
				continue
			}
			c.off[d] = off
		}
	}
	c.fp = c.fingerprint()
	return c
}

// fileJSON is the holiday-cn format. Unknown fields are refused so a file of
// some other format cannot pass for an empty year.
type fileJSON struct {
	Schema string    `json:"$schema"`
	ID     string    `json:"$id"`
	Year   *int      `json:"year"`
	Papers []string  `json:"papers"`
	Days   []dayJSON `json:"days"`
}

type dayJSON struct {
	Name     string `json:"name"`
	Date     string `json:"date"`
	IsOffDay *bool  `json:"isOffDay"`
}

func parseFile(b []byte) (int, map[Date]bool, error) {
	if len(b) > maxFileSize {
		return 0, nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidFile, maxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f fileJSON
	if err := dec.Decode(&f); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	if dec.More() {
		return 0, nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidFile)
	}
	if f.Year == nil {
		return 0, nil, fmt.Errorf("%w: missing year", ErrInvalidFile)
	}
	y := *f.Year
	if y < minYear || y > maxYear {
		return 0, nil, fmt.Errorf("%w: year %d outside %d-%d", ErrInvalidFile, y, minYear, maxYear)
	}
	// Every year since 1999 has holidays; an empty list is a broken or
	// premature file, and accepting it would turn the year into a weekday guess.
	if len(f.Days) == 0 {
		return 0, nil, fmt.Errorf("%w: year %d lists no days", ErrInvalidFile, y)
	}
	days := make(map[Date]bool, len(f.Days))
	for i, d := range f.Days {
		date, err := ParseDate(d.Date)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: day %d: %v", ErrInvalidFile, i+1, err)
		}
		if date.Y != y && date.Y != y-1 {
			return 0, nil, fmt.Errorf("%w: day %d: %s is not in year %d or the year before", ErrInvalidFile, i+1, date, y)
		}
		if d.IsOffDay == nil {
			return 0, nil, fmt.Errorf("%w: day %d (%s): missing isOffDay", ErrInvalidFile, i+1, date)
		}
		if strings.TrimSpace(d.Name) == "" {
			return 0, nil, fmt.Errorf("%w: day %d (%s): missing name", ErrInvalidFile, i+1, date)
		}
		if _, dup := days[date]; dup {
			return 0, nil, fmt.Errorf("%w: %s listed twice", ErrInvalidFile, date)
		}
		days[date] = *d.IsOffDay
	}
	return y, days, nil
}

// Years lists the officially covered years in ascending order.
func (c *Calendar) Years() []int {
	return slices.Sorted(maps.Keys(c.files))
}

// Covers reports whether d is a valid date of an officially covered year.
func (c *Calendar) Covers(d Date) bool {
	_, ok := c.files[d.Y]
	return ok && d.Valid()
}

func (c *Calendar) check(d Date) error {
	if !d.Valid() {
		return fmt.Errorf("%w: %v", ErrInvalidDate, d)
	}
	return c.covered(d)
}

// covered is check for dates made by AddDays from a valid one, which are valid.
func (c *Calendar) covered(d Date) error {
	if _, ok := c.files[d.Y]; ok {
		return nil
	}
	if provisionalYear(d.Y) {
		if _, err := c.prov.year(d.Y); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrOutOfRange, d, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s (official years %s; provisional %d-%d)", ErrOutOfRange, d, c.yearsText(), ProvisionalFrom, ProvisionalTo)
}

func (c *Calendar) yearsText() string {
	ys := c.Years()
	var b strings.Builder
	for i, y := range ys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprint(&b, y)
	}
	return b.String()
}

// UnsettledDecemberFrom is the first day of December that, in the last
// year with an official file, is still unsettled: year Y+1's schedule may
// move the last days of Y, as the 2008 schedule made Saturday 2007-12-29 a
// working day and Sunday 12-30 and Monday 12-31 days off, the 2012 one
// Saturday 2011-12-31 a working day, the 2019 one Saturday 2018-12-29 a
// working day, and the 2023 file lists 2022-12-31 off. A New Year break
// joins at most the weekend before 1 January, so no schedule has reached
// further back than 12-29; the 20th leaves a week of margin.
const UnsettledDecemberFrom = 20

// Provisional reports whether d is answered by the provisional model (a
// valid date of a year with no official file, within the model's years),
// or is one of the last days of December (from UnsettledDecemberFrom) of an
// official year whose next year has no file yet: that year's schedule may
// still change it.
func (c *Calendar) Provisional(d Date) bool {
	if !d.Valid() {
		return false
	}
	if _, official := c.files[d.Y]; !official {
		return provisionalYear(d.Y)
	}
	return c.unsettled(d.Y) && d.M == time.December && d.D >= UnsettledDecemberFrom
}

// unsettled reports whether the end of official year y may still change:
// year y+1, which the model answers, has no file.
func (c *Calendar) unsettled(y int) bool {
	_, next := c.files[y+1]
	return !next && provisionalYear(y+1)
}

// ProvisionalIn reports whether any date in (from, to] is provisional, that
// is whether a count of working days over that span rests on the model or
// on an unsettled end of December.
func (c *Calendar) ProvisionalIn(from, to Date) bool {
	start := from.AddDays(1)
	if to.Before(start) {
		return false
	}
	for y := start.Y; y <= to.Y; y++ {
		_, official := c.files[y]
		if !official && provisionalYear(y) {
			return true
		}
		if official && c.unsettled(y) && !to.Before(Date{y, time.December, UnsettledDecemberFrom}) {
			return true // start is at most 31 December of y
		}
	}
	return false
}

// IsWorkday reports whether d is a working day.
func (c *Calendar) IsWorkday(d Date) (bool, error) {
	if err := c.check(d); err != nil {
		return false, err
	}
	return c.workday(d), nil
}

// workday assumes d has been checked. An official listing wins even in a
// provisional year: a file may list the last days of the year before.
func (c *Calendar) workday(d Date) bool {
	if off, listed := c.off[d]; listed {
		return !off
	}
	wd := d.Weekday()
	if wd == 0 || wd == 6 {
		return false
	}
	if _, official := c.files[d.Y]; official {
		return true
	}
	m, _ := c.prov.year(d.Y) // computed by covered before any walk reaches d
	return !m[d]
}

// WorkdaysAfter returns the date on which n working days after d are used up;
// d itself does not count, and n = 0 gives d. A deadline running into a year
// with no official file is computed by the provisional model: use Deadline
// to learn whether it did.
func (c *Calendar) WorkdaysAfter(d Date, n int) (Date, error) {
	if n < 0 || n > MaxDays {
		return Date{}, fmt.Errorf("%w: %d (want 0-%d)", ErrInvalidDays, n, MaxDays)
	}
	if err := c.check(d); err != nil {
		return Date{}, err
	}
	for n > 0 {
		d = d.AddDays(1)
		if err := c.covered(d); err != nil {
			return Date{}, err
		}
		if c.workday(d) {
			n--
		}
	}
	return d, nil
}

// Due is a deadline and whether it rests on the provisional model.
type Due struct {
	On          Date `json:"due_on"`
	Provisional bool `json:"provisional"`
}

// Deadline is WorkdaysAfter with the mark: Provisional is true when a day
// counted, or the due date itself, lies in a provisional year.
func (c *Calendar) Deadline(d Date, n int) (Due, error) {
	on, err := c.WorkdaysAfter(d, n)
	if err != nil {
		return Due{}, err
	}
	return Due{On: on, Provisional: c.ProvisionalIn(d, on) || c.Provisional(on)}, nil
}

// WorkdaysBetween counts the working days in (from, to]. If to is before
// from the answer is minus the count in (to, from].
func (c *Calendar) WorkdaysBetween(from, to Date) (int, error) {
	if err := c.check(from); err != nil {
		return 0, err
	}
	if err := c.check(to); err != nil {
		return 0, err
	}
	sign := 1
	if to.Before(from) {
		from, to, sign = to, from, -1
	}
	n := 0
	for d := from.AddDays(1); !d.After(to); d = d.AddDays(1) {
		// Years between two covered ones may be missing.
		if err := c.covered(d); err != nil {
			return 0, err
		}
		if c.workday(d) {
			n++
		}
	}
	return sign * n, nil
}

// Fingerprint identifies what the calendar answers: two calendars with the
// same official files (merged as they are applied) have the same one, and
// any imported, corrected or newly embedded year changes it. Values derived
// from a calendar and stored (a case's due date) carry it, so a reader can
// tell they were derived with another calendar.
func (c *Calendar) Fingerprint() string { return c.fp }

func (c *Calendar) fingerprint() string {
	h := sha256.New()
	for _, y := range c.Years() {
		fmt.Fprintf(h, "y%d;", y)
	}
	days := slices.SortedFunc(maps.Keys(c.off), func(a, b Date) int { return a.Compare(b) })
	for _, d := range days {
		fmt.Fprintf(h, "%s=%t;", d, c.off[d])
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
