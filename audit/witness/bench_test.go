package witness

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkS3History reads 300 witnessed checkpoints, as a nightly verify
// of a busy day does, one at a time (the baseline) and with History's
// read-ahead, from the same bucket in the same run: the ratio of the two
// rows' checkpoints/s is the gain. On loopback the store's own work
// dominates; across a network each read waits a round trip, which the
// read-ahead overlaps. Run with
// scripts/bench.sh -bench S3History ./audit/witness/.
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
	for _, fetches := range []int{1, historyFetches} {
		b.Run(fmt.Sprintf("fetches=%d", fetches), func(b *testing.B) {
			w.fetches = fetches
			start := time.Now()
			for b.Loop() {
				got := 0
				if err := w.History(ctx, -1, func(int64, []byte) error { got++; return nil }); err != nil || got != n {
					b.Fatalf("history: %d checkpoints, %v", got, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "checkpoints/s")
		})
	}
}
