package vault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/vault/calendar"
)

// Calendars is the effective working-day calendar: the built-in years plus
// every file imported into the database, applied in import order. Another
// process (`vaultd calendar import`) may import while a server runs, so
// Current looks at the table on every call; it rebuilds only when the set of
// imports changed, which costs one small aggregate query otherwise.
type Calendars struct {
	db   *gorm.DB
	base *calendar.Calendar

	mu   sync.Mutex
	key  calendarKey
	cur  *calendar.Calendar
	init bool
}

type calendarKey struct {
	Count int64
	MaxID int64
}

// NewCalendars serves base (calendar.Embedded() when nil) with the imports
// stored in db. The database must be migrated.
func NewCalendars(db *gorm.DB, base *calendar.Calendar) *Calendars {
	return &Calendars{db: db, base: base}
}

// Current returns the calendar with every import applied.
func (c *Calendars) Current(ctx context.Context) (*calendar.Calendar, error) {
	var key calendarKey
	if err := c.db.WithContext(ctx).Model(&calendarImportRow{}).Select("COUNT(*) AS count, COALESCE(MAX(id), 0) AS max_id").
		Scan(&key).Error; err != nil {
		return nil, fmt.Errorf("look up imported calendars: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.init && key == c.key {
		return c.cur, nil
	}
	base := c.base
	if base == nil {
		var err error
		if base, err = calendar.Embedded(); err != nil {
			return nil, err
		}
		c.base = base
	}
	var rows []calendarImportRow
	if err := c.db.WithContext(ctx).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load imported calendars: %w", err)
	}
	cal := base
	for _, r := range rows {
		next, err := cal.With(r.Data)
		if err != nil {
			// Import validated it; a bad row now means tampering or corruption.
			return nil, fmt.Errorf("imported calendar %d (year %d): %w", r.ID, r.Year, err)
		}
		cal = next
	}
	c.cur, c.key, c.init = cal, key, true
	return cal, nil
}

// Import validates a holiday-cn file and stores it, adding its year or
// replacing it if the year is already covered. It returns the year.
func (c *Calendars) Import(ctx context.Context, data []byte) (int, error) {
	year, err := calendar.ImportedYear(data)
	if err != nil {
		return 0, err
	}
	cur, err := c.Current(ctx)
	if err != nil {
		return 0, err
	}
	// Applying it now catches a file that conflicts with the calendar as a whole.
	if _, err := cur.With(data); err != nil {
		return 0, err
	}
	row := calendarImportRow{Year: year, Data: data, ImportedAt: time.Now().UTC()}
	if err := c.db.WithContext(ctx).Create(&row).Error; err != nil {
		return 0, fmt.Errorf("store calendar for %d: %w", year, err)
	}
	return year, nil
}

// calendar is the service's current effective calendar.
func (s *Service) calendar(ctx context.Context) (*calendar.Calendar, error) {
	return s.cals.Current(ctx)
}

// DueDate answers GET /calendar/deadline: the date on which n working days
// after from are used up (from itself does not count), marked provisional
// when it rests on a year with no official schedule yet.
func (s *Service) DueDate(ctx context.Context, from calendar.Date, n int) (calendar.Due, error) {
	if n < 0 || n > calendar.MaxDays {
		return calendar.Due{}, invalid("working_days", "invalid_days", fmt.Sprintf("working_days must be an integer from 0 to %d", calendar.MaxDays))
	}
	cal, err := s.calendar(ctx)
	if err != nil {
		return calendar.Due{}, err
	}
	due, err := cal.Deadline(from, n)
	if err != nil {
		return calendar.Due{}, calendarError(err)
	}
	return due, nil
}

// CalendarCoverage says how far ahead the official schedules reach today
// (readiness details, the calendar metric, `vaultd calendar status`).
func (s *Service) CalendarCoverage(ctx context.Context) (calendar.Coverage, error) {
	cal, err := s.calendar(ctx)
	if err != nil {
		return calendar.Coverage{}, err
	}
	return cal.Coverage(calendar.Today(s.now())), nil
}

// calendarError turns the calendar's sentinels into API errors.
func calendarError(err error) error {
	switch {
	case errors.Is(err, calendar.ErrOutOfRange):
		return &Error{Kind: ErrInvalid, Code: "calendar_out_of_range", Detail: fmt.Sprintf(
			"a date falls outside the working-day calendar: official schedules are imported per year, and years %d-%d without one are computed provisionally",
			calendar.ProvisionalFrom, calendar.ProvisionalTo)}
	case errors.Is(err, calendar.ErrInvalidDays):
		return invalid("working_days", "invalid_days", fmt.Sprintf("working_days must be an integer from 0 to %d", calendar.MaxDays))
	case errors.Is(err, calendar.ErrInvalidDate):
		return invalid("from", "invalid_date", "dates are YYYY-MM-DD")
	}
	return err
}
