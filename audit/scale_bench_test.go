package audit

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// scaleEvents is the log size of BenchmarkScale: CRVAULT_BENCH_EVENTS, or
// 100,000 so a CI-size run stays short (issue 10 asks for 1,000,000 and
// 10,000,000).
func scaleEvents() int64 {
	if v, err := strconv.ParseInt(os.Getenv("CRVAULT_BENCH_EVENTS"), 10, 64); err == nil && v > 0 {
		return v
	}
	return 100_000
}

var scaleActions = []string{"material.read", "material.meta", "case.read", "case.list", "material.list", "audit.query",
	"case.history", "case.clock", "material.upload", "assignment.create", "declaration.create", "case.transition"}

// scaleEvent is event i of a generated log: 10,000 actors, 100,000 cases,
// actions skewed towards reads, 2% denied and 0.5% errors, one event every
// 10 ms from start.
func scaleEvent(i int64, start time.Time) Event {
	a := scaleActions[0]
	switch r := i % 100; {
	case r < 40:
	case r < 70:
		a = scaleActions[1+i%4]
	default:
		a = scaleActions[5+i%int64(len(scaleActions)-5)]
	}
	out := Allowed
	switch {
	case i%50 == 7:
		out = Denied
	case i%200 == 13:
		out = Errored
	}
	return Event{Seq: i, Time: start.Add(time.Duration(i) * 10 * time.Millisecond), Actor: fmt.Sprintf("u%05d", (i*7919)%10_000),
		ActorOrg: fmt.Sprintf("org%03d", i%300), Action: a, Outcome: out, CaseID: fmt.Sprintf("c%06d", (i*104729)%100_000),
		Resource: fmt.Sprintf("material/m%08d", i%1_000_000), Purpose: "preliminary review (Art. 10)", IP: "10.0.0.1",
		RequestID: "r" + strconv.FormatInt(i, 36)}
}

// genLog writes a genuine log of n events (hash chain and tree hashes
// included, so Verify passes) straight into the tables: COPY on
// PostgreSQL, one transaction of prepared inserts on SQLite, in chunks so
// memory stays bounded.
func genLog(tb testing.TB, db *gorm.DB, n int64, start time.Time) {
	tb.Helper()
	ctx := context.Background()
	sqlDB, err := db.DB()
	if err != nil {
		tb.Fatal(err)
	}
	tree := newBuilder(0, nil)
	prev := zeroHash
	const chunk = 50_000
	type evRow struct {
		e    Event
		prev string
	}
	type hRow struct {
		idx int64
		h   tlog.Hash
	}
	pg := sqldb.Dialect(db) == sqldb.Postgres
	var tx *sql.Tx
	var insE, insH *sql.Stmt
	if !pg {
		if tx, err = sqlDB.BeginTx(ctx, nil); err != nil {
			tb.Fatal(err)
		}
		if insE, err = tx.PrepareContext(ctx, "INSERT INTO audit_events (seq, at_us, actor, actor_org, action, outcome, case_id, resource, purpose, ip, request_id, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"); err != nil {
			tb.Fatal(err)
		}
		if insH, err = tx.PrepareContext(ctx, "INSERT INTO audit_hashes (idx, hash) VALUES (?,?)"); err != nil {
			tb.Fatal(err)
		}
	}
	for first := int64(1); first <= n; first += chunk {
		last := min(first+chunk-1, n)
		evs := make([]evRow, 0, last-first+1)
		var hs []hRow
		for i := first; i <= last; i++ {
			e := scaleEvent(i, start)
			e.Time = e.Time.UTC().Truncate(time.Microsecond)
			c := Canonical(e, prev)
			e.Hash = hashHex(c)
			idx := tlog.StoredHashCount(tree.size)
			add, err := tree.add(tlog.RecordHash(c))
			if err != nil {
				tb.Fatal(err)
			}
			for j, h := range add {
				hs = append(hs, hRow{idx + int64(j), h})
			}
			evs = append(evs, evRow{e, prev})
			prev = e.Hash
		}
		if !pg {
			for _, r := range evs {
				e := r.e
				if _, err := insE.ExecContext(ctx, e.Seq, e.Time.UnixMicro(), e.Actor, e.ActorOrg, e.Action, string(e.Outcome), e.CaseID,
					e.Resource, e.Purpose, e.IP, e.RequestID, e.Detail, r.prev, e.Hash); err != nil {
					tb.Fatal(err)
				}
			}
			for _, h := range hs {
				if _, err := insH.ExecContext(ctx, h.idx, h.h[:]); err != nil {
					tb.Fatal(err)
				}
			}
			continue
		}
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		err = conn.Raw(func(dc any) error {
			c := dc.(*stdlib.Conn).Conn()
			i := 0
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"audit_events"}, []string{"seq", "at_us", "actor", "actor_org", "action", "outcome",
				"case_id", "resource", "purpose", "ip", "request_id", "detail", "prev_hash", "hash"}, pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(evs) {
					return nil, nil
				}
				r := evs[i]
				i++
				e := r.e
				return []any{e.Seq, e.Time.UnixMicro(), e.Actor, e.ActorOrg, e.Action, string(e.Outcome), e.CaseID, e.Resource, e.Purpose,
					e.IP, e.RequestID, e.Detail, r.prev, e.Hash}, nil
			})); err != nil {
				return err
			}
			j := 0
			_, err := c.CopyFrom(ctx, pgx.Identifier{"audit_hashes"}, []string{"idx", "hash"}, pgx.CopyFromFunc(func() ([]any, error) {
				if j == len(hs) {
					return nil, nil
				}
				h := hs[j]
				j++
				return []any{h.idx, h.h[:]}, nil
			}))
			return err
		})
		conn.Close()
		if err != nil {
			tb.Fatal(err)
		}
	}
	if !pg {
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
		// One big transaction leaves it all in the WAL, which readers then
		// search page by page: checkpoint it, as a running database would.
		exec(tb, db, "PRAGMA wal_checkpoint(TRUNCATE)")
	} else {
		// A log that grew over years has long been vacuumed; a freshly
		// copied one would be, by autovacuum, in the middle of the
		// append measurement.
		exec(tb, db, "VACUUM ANALYZE audit_events")
		exec(tb, db, "VACUUM ANALYZE audit_hashes")
	}
}

// p99 runs op k times and returns the 99th percentile latency.
func p99(tb testing.TB, k int, op func() error) time.Duration {
	tb.Helper()
	lat := make([]time.Duration, 0, k)
	for range k {
		t0 := time.Now()
		if err := op(); err != nil {
			tb.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}

type scaleQuery struct {
	name string
	f    Filter
}

// scaleQueries are the audit queries of issue 10 on a log of n events
// starting at start: by case, actor, action, outcome and time, each as a
// first page and as a page deep in the log (a cursor at the middle).
func scaleQueries(n int64, start time.Time) []scaleQuery {
	mid := CursorAfter(n / 2)
	end := start.Add(time.Duration(n) * 10 * time.Millisecond)
	qs := []scaleQuery{
		{"case", Filter{CaseID: "c000042"}},
		{"actor", Filter{Actor: "u00042"}},
		{"action-common", Filter{Action: "material.read"}},
		{"action-rare", Filter{Action: "case.transition"}},
		{"outcome-denied", Filter{Outcome: Denied}},
		{"outcome-error", Filter{Outcome: Errored}},
		{"since-last-hour", Filter{Since: end.Add(-time.Hour)}},
		{"time-window", Filter{Since: start.Add(end.Sub(start) / 3), Until: start.Add(end.Sub(start) / 2)}},
		{"case+outcome", Filter{CaseID: "c000042", Outcome: Allowed}},
		{"actor+action", Filter{Actor: "u00042", Action: "material.read"}},
	}
	out := qs
	for _, q := range qs {
		q.f.Cursor = mid
		out = append(out, scaleQuery{q.name + "/later", q.f})
	}
	return out
}

// BenchmarkScale measures, on each backend and a generated log of
// CRVAULT_BENCH_EVENTS events, against baselines in the same run:
//
//   - append throughput (64 concurrent appenders, durable commits) at that
//     size as a ratio to the same on an empty log;
//   - a full Verify in events/s, and an incremental VerifySince over the
//     last 1,000 events as a ratio to the full one;
//   - the p99 latency of audit queries (first and later pages) as a ratio
//     to the same query on a 1,000-event log.
//
// Run it with -benchtime 1x: each figure is measured inside one iteration.
func BenchmarkScale(b *testing.B) {
	n := scaleEvents()
	ctx := context.Background()
	for _, d := range sqldbtest.Backends {
		b.Run(fmt.Sprintf("%s/events=%d", sqldbtest.Name(d), n), func(b *testing.B) {
			for b.Loop() {
				start := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
				open := func(size int64) (*gorm.DB, *Log) {
					db := sqldbtest.Open(b, d)
					if err := Migrate(ctx, db); err != nil {
						b.Fatal(err)
					}
					t0 := time.Now()
					genLog(b, db, size, start)
					if size == n {
						b.ReportMetric(time.Since(t0).Seconds(), "generate-s")
					}
					l, err := Open(ctx, db, Options{KeyDir: b.TempDir(), CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry()})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { l.Close(context.Background()) })
					return db, l
				}
				_, small := open(1_000)
				bigDB, big := open(n)
				emptyDB, empty := open(0)

				// Append: the same work on an empty log and on the big one.
				const appends, rounds = 16_000, 5
				appendRate := func(db *gorm.DB, l *Log) float64 {
					// Each side starts with nothing left to write back: a
					// checkpoint of the database that the last side's
					// writes (or the generation) left due would otherwise
					// land inside one side's measurement.
					if d == sqldb.Postgres {
						exec(b, db, "CHECKPOINT")
					} else {
						exec(b, db, "PRAGMA wal_checkpoint(TRUNCATE)")
					}
					// And with no dirty pages left to the kernel: the
					// gigabytes just generated are written back for
					// minutes, and a commit's fsync on the same file
					// system can wait behind them (ext4's default ordered
					// mode writes data before the journal commit that
					// fsync needs), which a log written over years does
					// not see.
					syscall.Sync()
					r, _ := runConcurrent(b, appends, func(i int) error {
						_, err := l.Append(ctx, sampleEvent(i))
						return err
					})
					return r
				}
				// Alternated, round by round, so a passing disturbance of
				// the shared machine weighs on both sides alike; the median
				// of the rounds' ratios is the figure, the pooled ratio and
				// the spread are reported beside it.
				at0, atN := 0.0, 0.0
				var ratios []float64
				for range rounds {
					r0, rN := appendRate(emptyDB, empty), appendRate(bigDB, big)
					at0, atN = at0+r0/rounds, atN+rN/rounds
					ratios = append(ratios, rN/r0)
				}
				slices.Sort(ratios)
				b.ReportMetric(at0, "append-at-0-ev/s")
				b.ReportMetric(atN/at0, "append-at-N/at-0")
				b.ReportMetric(ratios[rounds/2], "append-median-round-N/0")
				b.ReportMetric(ratios[0], "append-min-round-N/0")
				b.ReportMetric(ratios[rounds-1], "append-max-round-N/0")

				// Verify: the whole log, then only what follows a checkpoint.
				cp, err := big.makeCheckpoint(ctx)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				rep, err := big.Verify(ctx)
				if err != nil {
					b.Fatal(err)
				}
				full := time.Since(t0)
				b.ReportMetric(float64(rep.To)/full.Seconds(), "verify-ev/s")

				// What every start of the access index reads from the trail
				// (vault.GrantEnds): the declared conflicts and the undone
				// declarations among every declaration ever made, one
				// indexed query, against the full verify above.
				t0 = time.Now()
				decls := 0
				sc := ActionScan{Action: "declaration.create", AllowedDetail: "conflict", OtherDetailContains: ";undoes="}
				if err := big.EachOfAction(ctx, sc, func(Event) error { decls++; return nil }); err != nil {
					b.Fatal(err)
				}
				scan := time.Since(t0)
				b.ReportMetric(scan.Seconds(), "declarations-scan-s")
				b.ReportMetric(float64(decls), "declarations")
				b.ReportMetric(scan.Seconds()/full.Seconds(), "declarations-scan/verify")
				for i := range 1_000 {
					if _, err := big.Append(ctx, sampleEvent(i)); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := big.makeCheckpoint(ctx); err != nil {
					b.Fatal(err)
				}
				t0 = time.Now()
				if _, _, err := big.VerifySince(ctx, cp); err != nil {
					b.Fatal(err)
				}
				incr := time.Since(t0)
				b.ReportMetric(float64(incr.Microseconds())/1000, "verify-incr-1k-ms")
				b.ReportMetric(incr.Seconds()/full.Seconds(), "verify-incr/full")

				// Queries: p99 on the big log against the small one.
				worst, worstRatio := 0.0, 0.0
				for _, q := range scaleQueries(n, start) {
					run := func(l *Log, size int64) time.Duration {
						f := q.f
						if f.Cursor != "" {
							f.Cursor = CursorAfter(size / 2)
						}
						return p99(b, 200, func() error { _, _, err := l.Query(ctx, f); return err })
					}
					base, got := run(small, 1_000), run(big, n)
					ratio := float64(got) / float64(max(base, time.Microsecond))
					b.ReportMetric(float64(got.Microseconds())/1000, "q-"+q.name+"-p99-ms")
					b.ReportMetric(ratio, "q-"+q.name+"/small")
					worst = max(worst, float64(got.Microseconds())/1000)
					worstRatio = max(worstRatio, ratio)
				}
				b.ReportMetric(worst, "q-worst-p99-ms")
				b.ReportMetric(worstRatio, "q-worst/small")
			}
		})
	}
}
