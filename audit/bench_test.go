package audit

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

const appenders = 64

// runConcurrent spreads n operations over 64 goroutines and returns the
// throughput and the p99 latency of one operation.
func runConcurrent(b *testing.B, n int, op func(i int) error) (perSec float64, p99 time.Duration) {
	b.Helper()
	lat := make([][]time.Duration, appenders)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += appenders {
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100]
}

// baseline is a plain INSERT of the same rows, one transaction each, into
// an unguarded copy of the table: what the database does with no chain, no
// tree and no group commit.
func baseline(b *testing.B, f *fixture, n int) (float64, time.Duration) {
	b.Helper()
	exec(b, f.db, "CREATE TABLE IF NOT EXISTS bench_plain AS SELECT * FROM audit_events WHERE 1=0")
	exec(b, f.db, "DELETE FROM bench_plain")
	sqlDB, _ := f.db.DB()
	q := "INSERT INTO bench_plain (seq, at_us, actor, actor_org, action, outcome, case_id, resource, purpose, ip, request_id, detail, prev_hash, hash) VALUES (" +
		f.log.ph(1)
	for i := 2; i <= eventCols; i++ {
		q += "," + f.log.ph(i)
	}
	q += ")"
	return runConcurrent(b, n, func(i int) error {
		e := sampleEvent(i)
		_, err := sqlDB.Exec(q, i, time.Now().UnixMicro(), e.Actor, e.ActorOrg, e.Action, string(e.Outcome), e.CaseID,
			e.Resource, e.Purpose, e.IP, e.RequestID, e.Detail, zeroHash, zeroHash)
		return err
	})
}

// BenchmarkAppend: 64 concurrent appenders through the group-commit writer,
// with the baseline measured in the same run for the ratio.
func BenchmarkAppend(b *testing.B) {
	for _, d := range sqldbtest.Backends {
		b.Run(sqldbtest.Name(d), func(b *testing.B) {
			f := newFixture(b, d)
			ctx := context.Background()
			base, _ := baseline(b, f, 2000)
			b.ResetTimer()
			rate, p99 := runConcurrent(b, b.N, func(i int) error {
				_, err := f.log.Append(ctx, sampleEvent(i))
				return err
			})
			b.StopTimer()
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(rate/base, "x-baseline")
			var m dto.Metric
			_ = f.log.m.batch.Write(&m)
			b.ReportMetric(float64(m.GetHistogram().GetSampleSum())/float64(m.GetHistogram().GetSampleCount()), "events/batch")
		})
	}
}

func BenchmarkBaselineInsert(b *testing.B) {
	for _, d := range sqldbtest.Backends {
		b.Run(sqldbtest.Name(d), func(b *testing.B) {
			f := newFixture(b, d)
			b.ResetTimer()
			rate, p99 := baseline(b, f, b.N)
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkVerify verifies a log of AUDIT_VERIFY_N events (default 100000;
// set 1000000 for the stated target) and reports the time a million events
// would take, next to a plain scan of the same rows.
func BenchmarkVerify(b *testing.B) {
	n := 100000
	if s := os.Getenv("AUDIT_VERIFY_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	for _, d := range sqldbtest.Backends {
		b.Run(sqldbtest.Name(d)+fmt.Sprintf("/n=%d", n), func(b *testing.B) {
			f := newFixture(b, d)
			ctx := context.Background()
			// Fill through the writer's own commit path in big batches.
			for done := 0; done < n; {
				k := min(5000, n-done)
				evs := make([]Event, k)
				for i := range evs {
					evs[i], _ = normalize(sampleEvent(done + i))
				}
				if _, err := f.log.commit(ctx, evs); err != nil {
					b.Fatal(err)
				}
				done += k
			}
			scanStart := time.Now()
			var cnt int
			sqlDB, _ := f.db.DB()
			rows, err := sqlDB.QueryContext(ctx, selectEvent+" ORDER BY seq")
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := scanEvents(rows, n); err != nil {
				b.Fatal(err)
			}
			scan := time.Since(scanStart)
			_ = cnt
			// vaultd audit verify runs on a context that a signal cancels,
			// and so does this: the SQLite driver works differently on one.
			vctx, cancel := context.WithCancel(ctx)
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				rep, err := f.log.Verify(vctx)
				if err != nil || rep.TreeSize != int64(n) {
					b.Fatalf("verify: %+v %v", rep, err)
				}
			}
			per := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(n)/per.Seconds(), "events/s")
			b.ReportMetric(per.Seconds()*1e6/float64(n), "s-per-1M")
			b.ReportMetric(float64(per)/float64(scan), "x-plain-scan")
		})
	}
	_ = sqldb.SQLite
}
