package vault

import (
	"strings"
	"testing"
	"time"
)

// TestParsePeriod: the retention after which cases are destroyed. A bare
// number of minutes is refused, since beside "y" for years an operator
// may well write "6m" for six months, and six minutes would have the next
// retention apply destroy nearly every ended case.
func TestParsePeriod(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		in, want string
		period   Period
	}{
		{"10y", "10y", Period{Years: 10}},
		{" 1y ", "1y", Period{Years: 1}},
		{"180d", "180d", Period{Duration: 180 * day}},
		{"2160h", "90d", Period{Duration: 90 * day}},
		{"36h", "36h0m0s", Period{Duration: 36 * time.Hour}},
		{"1ms", "1ms", Period{Duration: time.Millisecond}},
		{"90m30s", "1h30m30s", Period{Duration: 90*time.Minute + 30*time.Second}},
	} {
		p, err := ParsePeriod(c.in)
		if err != nil || p != c.period || p.String() != c.want {
			t.Errorf("ParsePeriod(%q) = %v (%s), %v; want %v (%s)", c.in, p, p, err, c.period, c.want)
		}
	}
	for in, want := range map[string]string{
		"6m": "not months", "10m": "not months", "0y": "years", "-1d": "days", "1.5d": "days", "d": "days",
		"": "neither", "6M": "neither", "6mo": "neither", "0s": "neither", "-5h": "neither", "1001y": "years",
	} {
		if p, err := ParsePeriod(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePeriod(%q) = %v, %v; want an error saying %q", in, p, err, want)
		}
	}
}
