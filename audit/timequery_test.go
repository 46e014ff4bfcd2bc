package audit

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestTimeNeverGoesBackAndRangesQuery: an instance whose clock is behind
// the log's last event appends at that event's time, not before it, so the
// log stays in time order; time-range queries (which rely on that order)
// return exactly the events in range, page by page.
func TestTimeNeverGoesBackAndRangesQuery(t *testing.T) {
	ctx := context.Background()
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			db := sqldbtest.Open(t, d)
			if err := Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := t0
			set := func(tm time.Time) { mu.Lock(); clock = tm; mu.Unlock() }
			opts := Options{KeyDir: t.TempDir(), CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry(),
				now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}
			l := openLog(t, db, opts)
			var times []time.Time
			for i := range 20 {
				switch i {
				case 12:
					set(clock.Add(-time.Hour)) // a second instance, its clock behind
				default:
					set(clock.Add(time.Minute))
				}
				e, err := l.Append(ctx, sampleEvent(i))
				if err != nil {
					t.Fatal(err)
				}
				times = append(times, e.Time)
			}
			for i := 1; i < len(times); i++ {
				if times[i].Before(times[i-1]) {
					t.Fatalf("event %d at %s, before event %d at %s", i+1, times[i], i, times[i-1])
				}
			}
			if !times[12].Equal(times[11]) {
				t.Fatalf("the lagging append got %s, want the last event's %s", times[12], times[11])
			}
			for _, r := range []struct{ since, until time.Time }{
				{times[3], times[9]},
				{times[11], time.Time{}},
				{time.Time{}, times[5]},
				{times[11], times[13]},
				{t0.Add(-time.Hour), t0},                  // before the log: nothing
				{times[19].Add(time.Second), time.Time{}}, // after it: nothing
			} {
				var want []int64
				for i, tm := range times {
					if (r.since.IsZero() || !tm.Before(r.since)) && (r.until.IsZero() || tm.Before(r.until)) {
						want = append(want, int64(i+1))
					}
				}
				var got []int64
				f := Filter{Since: r.since, Until: r.until, Limit: 2}
				for {
					evs, next, err := l.Query(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range evs {
						got = append(got, e.Seq)
					}
					if next == "" {
						break
					}
					f.Cursor = next
				}
				if len(got) != len(want) {
					t.Fatalf("since %s until %s: %v, want %v", r.since, r.until, got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("since %s until %s: %v, want %v", r.since, r.until, got, want)
					}
				}
			}
			// A cursor behind the time range and one inside it: the page
			// starts at whichever is later.
			for _, c := range []struct {
				after int64
				want  []int64
			}{{2, []int64{12, 13, 14}}, {15, []int64{16, 17, 18}}} {
				evs, _, err := l.Query(ctx, Filter{Since: times[11], Cursor: CursorAfter(c.after), Limit: 3})
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, e := range evs {
					got = append(got, e.Seq)
				}
				if !slices.Equal(got, c.want) {
					t.Fatalf("since event 12, after %d: %v, want %v", c.after, got, c.want)
				}
			}
		})
	}
}
