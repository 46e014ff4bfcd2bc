package calendar

// The provisional model. The State Council publishes year Y's schedule late
// in year Y-1, so a deadline that runs into an unpublished year cannot be
// final; rather than refusing it (and losing track of the case), crvault
// answers with the statutory rules alone and marks the answer provisional.
//
// The rules are those of the Regulations on National Holidays and Memorial
// Days as revised by the State Council in November 2024, in force from 2025
// (13 days a year):
//
//	元旦   New Year          1 day   1 January
//	春节   Spring Festival   4 days  lunar New Year's Eve to the 3rd day of the 1st month
//	清明节 Qingming          1 day   the day of the Qingming solar term
//	劳动节 Labour Day        2 days  1 and 2 May
//	端午节 Dragon Boat       1 day   5th day of the 5th lunar month
//	中秋节 Mid-Autumn        1 day   15th day of the 8th lunar month
//	国庆节 National Day      3 days  1 to 3 October
//
// Article 6 of the same Regulations gives a holiday of all citizens that
// falls on a Saturday or Sunday back on a working day (补假): the model
// takes the first working days after the holiday for them (SubstituteDays),
// as every official schedule does. Which weekends become working days to
// join the holidays into longer breaks (调休) is what each annual schedule
// decides, and the model does not guess at it. The lunar dates and the
// solar term come from
// github.com/6tail/lunar-go, a maintained implementation of the Chinese
// calendar's astronomical rules, never from a table typed in here.
// TestStatutoryHolidaysMatchOfficial checks the model against the official
// 2025 and 2026 schedules.

import (
	"fmt"
	"sort"
	"sync"
	"time"

	lunar "github.com/6tail/lunar-go/calendar"
)

const (
	// ProvisionalFrom is the first year the model applies to: the rules it
	// encodes are in force from 2025, and earlier years have official files.
	ProvisionalFrom = 2025
	// ProvisionalTo is the last: the last year a calendar file may claim.
	ProvisionalTo = maxYear
)

// Holiday is one statutory holiday day.
type Holiday struct {
	Date Date   `json:"date"`
	Name string `json:"name"` // the Chinese name used by the official schedules, e.g. 春节
}

func provisionalYear(y int) bool { return y >= ProvisionalFrom && y <= ProvisionalTo }

// StatutoryHolidays lists the statutory holiday days of year y under the
// rules in force from 2025, in date order. Days of two holidays that fall
// together (Mid-Autumn on 1-3 October) are listed once per holiday.
func StatutoryHolidays(y int) (_ []Holiday, err error) {
	if !provisionalYear(y) {
		return nil, fmt.Errorf("%w: statutory holidays of %d (the model covers %d-%d)", ErrOutOfRange, y, ProvisionalFrom, ProvisionalTo)
	}
	defer func() {
		// The library panics on impossible lunar dates; ours are always
		// possible, but a defect there must not take the server down.
		if v := recover(); v != nil {
			err = fmt.Errorf("statutory holidays of %d: lunar calendar failed: %v", y, v)
		}
	}()
	ymd := func(s *lunar.Solar) Date { return Date{s.GetYear(), time.Month(s.GetMonth()), s.GetDay()} }
	newYear := ymd(lunar.NewLunarFromYmd(y, 1, 1).GetSolar())
	qingming, ok := lunar.NewLunarFromYmd(y, 1, 1).GetJieQiTable()["清明"]
	if !ok || qingming == nil {
		return nil, fmt.Errorf("statutory holidays of %d: no Qingming solar term", y)
	}
	hs := []Holiday{
		{Date{y, 1, 1}, "元旦"},
		{newYear.AddDays(-1), "春节"}, // New Year's Eve is the last day of the 12th month
		{newYear, "春节"},
		{newYear.AddDays(1), "春节"},
		{newYear.AddDays(2), "春节"},
		{ymd(qingming), "清明节"},
		{Date{y, 5, 1}, "劳动节"},
		{Date{y, 5, 2}, "劳动节"},
		{ymd(lunar.NewLunarFromYmd(y, 5, 5).GetSolar()), "端午节"},
		{ymd(lunar.NewLunarFromYmd(y, 8, 15).GetSolar()), "中秋节"},
		{Date{y, 10, 1}, "国庆节"},
		{Date{y, 10, 2}, "国庆节"},
		{Date{y, 10, 3}, "国庆节"},
	}
	for _, h := range hs {
		if h.Date.Y != y || !h.Date.Valid() {
			// The Spring Festival starts on 20 January at the earliest; a
			// date outside the year means the library answered nonsense.
			return nil, fmt.Errorf("statutory holidays of %d: %s (%s) outside the year", y, h.Date, h.Name)
		}
	}
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].Date.Before(hs[j].Date) })
	return hs, nil
}

// provisionalYears caches each year's holiday set; computing one takes about
// a millisecond of astronomy. A Calendar and every calendar made from it
// with With share one cache: the model does not depend on the files.
type provisionalYears struct {
	mu    sync.Mutex
	years sync.Map // int -> map[Date]bool
}

func newProvisionalYears() *provisionalYears { return &provisionalYears{} }

// year returns the holiday set of y, a provisional year, computing it once.
func (p *provisionalYears) year(y int) (map[Date]bool, error) {
	if m, ok := p.years.Load(y); ok {
		return m.(map[Date]bool), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.years.Load(y); ok {
		return m.(map[Date]bool), nil
	}
	hs, err := StatutoryHolidays(y)
	if err != nil {
		return nil, err
	}
	m := make(map[Date]bool, len(hs))
	for _, h := range hs {
		m[h.Date] = true
	}
	for _, h := range SubstituteDays(hs) {
		m[h.Date] = true
	}
	p.years.Store(y, m)
	return m, nil
}

// SubstituteDays lists, for the statutory holidays hs of one year (as
// StatutoryHolidays gives them), the working days given back for those
// that fall on a Saturday or Sunday (Article 6: 适逢星期六、星期日，应当在
// 工作日补假): for each, in date order, the first weekday after it that
// is neither a holiday nor already given back. A day of two holidays at
// once gives one back at most. Days that would fall in the next year are
// left to that year's schedule.
func SubstituteDays(hs []Holiday) []Holiday {
	off := make(map[Date]bool, len(hs))
	for _, h := range hs {
		off[h.Date] = true
	}
	weekend := func(d Date) bool { wd := d.Weekday(); return wd == time.Saturday || wd == time.Sunday }
	var out []Holiday
	seen := map[Date]bool{}
	for _, h := range hs {
		if !weekend(h.Date) || seen[h.Date] {
			continue
		}
		seen[h.Date] = true
		d := h.Date.AddDays(1)
		for weekend(d) || off[d] {
			d = d.AddDays(1)
		}
		if d.Y != h.Date.Y {
			continue
		}
		off[d] = true
		out = append(out, Holiday{Date: d, Name: h.Name})
	}
	return out
}

// WarnOfficialDaysAhead is how far ahead the official calendar should reach:
// below it, readiness details, a metric and the log warn that deadlines are
// about to become provisional (the next year's schedule is usually out by
// late November).
const WarnOfficialDaysAhead = 60

// Coverage says how far the official schedules reach from a given day.
type Coverage struct {
	OfficialYears []int `json:"official_years"`
	// FirstProvisional is the first date on or after today answered
	// provisionally (Calendar.Provisional): deadlines reaching it are
	// provisional. When the year after the last official one has no file,
	// that is the last official year's UnsettledDecemberFrom December,
	// which the next schedule may still change.
	FirstProvisional Date `json:"first_provisional"`
	// OfficialDaysAhead is how many days after today are still official.
	OfficialDaysAhead int `json:"official_days_ahead"`
	// Warning is set when OfficialDaysAhead < WarnOfficialDaysAhead.
	Warning bool `json:"warning"`
}

// Coverage describes the official schedules as seen on today.
func (c *Calendar) Coverage(today Date) Coverage {
	y := today.Y
	for {
		if _, ok := c.files[y]; !ok {
			break
		}
		y++
	}
	first := Date{y, time.January, 1}
	if y > today.Y && c.unsettled(y-1) {
		first = Date{y - 1, time.December, UnsettledDecemberFrom}
	}
	if first.Before(today) {
		first = today
	}
	ahead := max(today.DaysUntil(first)-1, 0)
	return Coverage{OfficialYears: c.Years(), FirstProvisional: first, OfficialDaysAhead: ahead, Warning: ahead < WarnOfficialDaysAhead}
}
