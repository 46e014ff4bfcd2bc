package calendar_test

import "testing"

// BenchmarkWorkdaysAfter45 is the longest statutory allowance across the
// 2025/26 New Year and Spring Festival. Compare it with
// BenchmarkBaselineAddDays, the bare date stepping it is built on: the ratio
// is the cost of the calendar lookups (about 3x-4x measured).
func BenchmarkWorkdaysAfter45(b *testing.B) {
	c := embedded(b)
	d := date(b, "2025-12-10")
	for b.Loop() {
		if _, err := c.WorkdaysAfter(d, 45); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineAddDays(b *testing.B) {
	d := date(b, "2025-12-10")
	for b.Loop() {
		e := d
		for range 65 { // 45 working days after 2025-12-10 is 64 calendar days
			e = e.AddDays(1)
		}
		_ = e.Weekday()
	}
}

// BenchmarkWorkdaysAfter45Provisional is the same allowance across the
// 2027/28 New Year and Spring Festival, years answered by the provisional
// model (holiday sets computed once, then cached): compare it with
// BenchmarkWorkdaysAfter45 and BenchmarkBaselineAddDays.
func BenchmarkWorkdaysAfter45Provisional(b *testing.B) {
	c := embedded(b)
	d := date(b, "2027-12-10")
	for b.Loop() {
		if _, err := c.WorkdaysAfter(d, 45); err != nil {
			b.Fatal(err)
		}
	}
}
