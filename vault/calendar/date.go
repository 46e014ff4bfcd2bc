package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidDate reports a date that is not a real calendar date written as YYYY-MM-DD.
var ErrInvalidDate = errors.New("invalid date: want YYYY-MM-DD")

// Date is a civil date with no time of day and no zone. Deadlines are dates in
// Asia/Shanghai; use Today to turn an instant into one.
//
// The zero Date means "no date" and marshals to JSON null.
type Date struct {
	Y int
	M time.Month
	D int
}

// shanghai is China Standard Time. China has had no daylight saving since 1991,
// so a fixed +08:00 is exact for every year the calendar covers and does not
// depend on tzdata being installed.
var shanghai = time.FixedZone("CST", 8*3600)

// Today is the date in Asia/Shanghai at the instant now.
func Today(now time.Time) Date {
	y, m, d := now.In(shanghai).Date()
	return Date{y, m, d}
}

// ParseDate parses exactly "YYYY-MM-DD" (four-digit year 1000-9999) and
// rejects dates that do not exist, such as 2025-02-29.
func ParseDate(s string) (Date, error) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return Date{}, fmt.Errorf("%w: %q", ErrInvalidDate, clip(s))
	}
	num := func(p string) (int, bool) {
		n := 0
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(s[0:4])
	m, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 || y < 1000 || m < 1 || m > 12 || d < 1 || d > daysIn(y, time.Month(m)) {
		return Date{}, fmt.Errorf("%w: %q", ErrInvalidDate, clip(s))
	}
	return Date{y, time.Month(m), d}, nil
}

// clip keeps error messages short when the input is hostile.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Valid reports whether d is a real date of years 1000-9999.
func (d Date) Valid() bool {
	return d.Y >= 1000 && d.Y <= 9999 && d.M >= 1 && d.M <= 12 && d.D >= 1 && d.D <= daysIn(d.Y, d.M)
}

// IsZero reports whether d is the zero Date ("no date").
func (d Date) IsZero() bool { return d == Date{} }

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Y, int(d.M), d.D) }

// Time is midnight UTC of d, a stable instant for arithmetic and storage.
func (d Date) Time() time.Time { return time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, time.UTC) }

// AddDays returns the date n calendar days after d (before, if n < 0).
func (d Date) AddDays(n int) Date {
	y, m, dd := time.Date(d.Y, d.M, d.D+n, 0, 0, 0, 0, time.UTC).Date()
	return Date{y, m, dd}
}

// Weekday is the day of the week of d.
func (d Date) Weekday() time.Weekday { return d.Time().Weekday() }

// Compare returns -1, 0 or +1 as d is before, equal to or after e.
func (d Date) Compare(e Date) int {
	switch {
	case d.Y != e.Y:
		return cmpInt(d.Y, e.Y)
	case d.M != e.M:
		return cmpInt(int(d.M), int(e.M))
	default:
		return cmpInt(d.D, e.D)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Before reports whether d is strictly before e.
func (d Date) Before(e Date) bool { return d.Compare(e) < 0 }

// After reports whether d is strictly after e.
func (d Date) After(e Date) bool { return d.Compare(e) > 0 }

// MarshalJSON writes "YYYY-MM-DD", or null for the zero Date.
func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	if !d.Valid() {
		return nil, fmt.Errorf("marshal %v: %w", d, ErrInvalidDate)
	}
	return []byte(`"` + d.String() + `"`), nil
}

// UnmarshalJSON accepts "YYYY-MM-DD" or null (the zero Date).
func (d *Date) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = Date{}
		return nil
	}
	if len(b) != 12 || b[0] != '"' || b[11] != '"' {
		return fmt.Errorf("%w: %q", ErrInvalidDate, clip(string(b)))
	}
	p, err := ParseDate(string(b[1:11]))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// MarshalText writes YYYY-MM-DD, so a Date works in YAML, map keys and query strings.
func (d Date) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("marshal %v: %w", d, ErrInvalidDate)
	}
	return []byte(d.String()), nil
}

// UnmarshalText parses YYYY-MM-DD.
func (d *Date) UnmarshalText(b []byte) error {
	p, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// DaysUntil is the number of calendar days from d to e, negative if e is
// before d.
func (d Date) DaysUntil(e Date) int { return int(e.Time().Sub(d.Time()) / (24 * time.Hour)) }
