package witness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
)

// BenchmarkS3History passes 300 witnessed checkpoints, as a nightly verify
// of a busy day does, from the same bucket in the same run: reading every
// object one at a time (the baseline, and what names of earlier releases
// cost), reading them with History's read-ahead, and by the roots in their
// names (the newest alone read). The ratio of the rows' checkpoints/s is
// the gain. On loopback the store's own work dominates; across a network
// each read waits a round trip, which the read-ahead overlaps and the
// names spare. Run with scripts/bench.sh -bench S3History ./audit/witness/.
func BenchmarkS3History(b *testing.B) {
	e := newS3Env(b)
	ctx := context.Background()
	g := newSigner(b)
	w, err := NewS3(ctx, e.config(randomBucket("crv-histbench-")))
	if err != nil {
		b.Fatal(err)
	}
	const n = 300
	for size := int64(1); size <= n; size++ {
		if err := w.Store(ctx, size, g.at(b, size), g.accept); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		fetches int
		readAll bool
	}{{"read/fetches=1", 1, true}, {fmt.Sprintf("read/fetches=%d", historyFetches), historyFetches, true}, {"named", historyFetches, false}} {
		b.Run(c.name, func(b *testing.B) {
			w.fetches, w.readAll = c.fetches, c.readAll
			start := time.Now()
			for b.Loop() {
				got := 0
				if err := w.History(ctx, -1, func(audit.Held) error { got++; return nil }); err != nil || got != n {
					b.Fatalf("history: %d checkpoints, %v", got, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "checkpoints/s")
		})
	}
}
