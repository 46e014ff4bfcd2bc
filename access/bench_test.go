package access

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// benchService builds a Service holding n assignments (10 per case, each
// user on 20 cases) straight from memory, as New does after reading the
// tables, and reports how long the Casbin load took.
func benchService(tb testing.TB, n int) (*Service, time.Duration) {
	tb.Helper()
	s := &Service{now: time.Now, decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"outcome"})}
	b := newIndexBuilder(n)
	seen := make(map[caseUser]bool, n)
	users := max(n/20, 1)
	for i := range n {
		caseID := fmt.Sprintf("case-%07d", i/10)
		userID := fmt.Sprintf("user-%07d", (i*7919)%users)
		role := "reviewer"
		if i%2 == 1 {
			role = "member_unit"
		}
		k := caseUser{caseID, userID}
		if seen[k] {
			continue
		}
		seen[k] = true
		b.add(grantRow{caseID: []byte(caseID), userID: []byte(userID), id: fmt.Appendf(nil, "a%d", i), role: []byte(role), purpose: []byte("bench"), declared: true})
	}
	grants := buildIndex(b)
	runtime.GC()
	start := time.Now()
	if err := s.buildEnforcer(grants, true); err != nil {
		tb.Fatal(err)
	}
	return s, time.Since(start)
}

var (
	benchOnce  sync.Once
	bench1M    *Service
	bench1MDur time.Duration
)

// BenchmarkDecide measures one decision with 1,000 and with 1,000,000
// assignments loaded; compare the two (the baseline is the small load in the
// same process) rather than the absolute figures. The 1M sub-benchmark also
// reports the bulk load time.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("assignments=%d", n), func(b *testing.B) {
			var s *Service
			var load time.Duration
			if n == 1_000_000 {
				benchOnce.Do(func() { bench1M, bench1MDur = benchService(b, n) })
				s, load = bench1M, bench1MDur
			} else {
				s, load = benchService(b, n)
			}
			// user-0000000 holds the assignment on case-0000000 (i = 0).
			rev := Principal{User: User{ID: "user-0000000", Roles: []Role{RoleReviewer}}}
			op := Principal{User: User{ID: "op", OrgID: "org-a", Roles: []Role{RoleOperator}}}
			c := CaseFacts{ID: "case-0000000", OperatorOrg: "org-a", Status: "under_review"}
			for _, tc := range []struct {
				name string
				p    Principal
				a    Action
			}{
				{"assignee-read", rev, ActMaterialRead},
				{"operator-read", op, ActMaterialRead},
				{"assignee-denied", rev, ActCaseSubmit},
			} {
				if d, err := s.Decide(ctx, tc.p, c, tc.a); err != nil || d.Allowed != (tc.name != "assignee-denied") {
					b.Fatalf("%s: %+v, %v", tc.name, d, err)
				}
			}
			for i := 0; b.Loop(); i++ {
				d, _ := s.Decide(ctx, rev, c, ActMaterialRead)
				if !d.Allowed {
					b.Fatal("denied")
				}
			}
			b.ReportMetric(load.Seconds(), "load-s")
		})
	}
}

// BenchmarkDecideParallel shows the enforcer's read lock does not serialise
// decisions.
func BenchmarkDecideParallel(b *testing.B) {
	s, _ := benchService(b, 10_000)
	rev := Principal{User: User{ID: "user-0000000", Roles: []Role{RoleReviewer}}}
	c := CaseFacts{ID: "case-0000000", Status: "under_review"}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, _ := s.Decide(context.Background(), rev, c, ActMaterialRead); !d.Allowed {
				b.Error("denied")
				return
			}
		}
	})
}

// BenchmarkNewFromDB measures a start (New: reading the tables and building
// the in-memory grants) over CRVAULT_BENCH_ASSIGNMENTS stored assignments
// (default 100,000; issue 10 asks for 1,000,000 under 2 s), one in ten with
// a declaration, on each backend. The baseline in the same run is a start
// over no assignments; compare the two. ns/op, cpu-s/op and allocs/row are
// a start that loads everything before it returns; answer-ms (wall) and
// answer-cpu-ms are vaultd's start (LoadInBackground) to its first
// decision, indexed-s to its complete index, decide-loading-ns a decision
// read from the tables meanwhile. CRVAULT_BENCH_PROFILE=dir writes
// profiles of the loading start (see startProfile). Rows are generated in one
// transaction of prepared inserts, not checked in.
func BenchmarkNewFromDB(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CRVAULT_BENCH_ASSIGNMENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	for _, d := range sqldbtest.Backends {
		for _, size := range []int{0, n} {
			b.Run(fmt.Sprintf("%s/assignments=%d", sqldbtest.Name(d), size), func(b *testing.B) {
				db := sqldbtest.Open(b, d)
				if err := Migrate(ctx, db); err != nil {
					b.Fatal(err)
				}
				sqlDB, err := db.DB()
				if err != nil {
					b.Fatal(err)
				}
				ph := func(i int) string { return "?" }
				if d == sqldb.Postgres {
					ph = func(i int) string { return "$" + strconv.Itoa(i) }
				}
				tx, err := sqlDB.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				// Tagged as vaultd tags them, and loaded with the tags
				// checked, as vaultd loads them (one HMAC a row), by
				// vaultd's own tagger.
				tags := newCaseKeyTagger(b)
				ins, err := tx.PrepareContext(ctx, "INSERT INTO access_assignments (id, case_id, user_id, role, purpose, granted_by, granted_at, row_tag) VALUES ("+
					ph(1)+","+ph(2)+","+ph(3)+","+ph(4)+","+ph(5)+","+ph(6)+","+ph(7)+","+ph(8)+")")
				if err != nil {
					b.Fatal(err)
				}
				decl, err := tx.PrepareContext(ctx, "INSERT INTO access_declarations (id, case_id, user_id, assignment_id, conflict, statement, created_at, row_tag) VALUES ("+
					ph(1)+","+ph(2)+","+ph(3)+","+ph(4)+","+ph(5)+","+ph(6)+","+ph(7)+","+ph(8)+")")
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now().UTC()
				users := max(size/20, 1)
				for i := range size {
					id, caseID, user := fmt.Sprintf("a%08d", i), fmt.Sprintf("case-%07d", i/10), fmt.Sprintf("user-%07d", (i*7919)%users)
					const purpose = "preliminary review (Art. 10)"
					tag := tags.RowTag(tagAssignments, assignmentTagFields(id, caseID, user, "reviewer", purpose, "admin", nil, stateOpen)...)
					if _, err := ins.ExecContext(ctx, id, caseID, user, "reviewer", purpose, "admin", now, tag); err != nil {
						b.Fatal(err)
					}
					if i%10 == 0 {
						dtag := tags.RowTag(tagDeclarations, declarationTagFields("d"+id, id, caseID, user, false)...)
						if _, err := decl.ExecContext(ctx, "d"+id, caseID, user, id, false, []byte("none"), now, dtag); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				if d == sqldb.SQLite {
					// One big transaction leaves it all in the WAL, which
					// readers then search page by page: checkpoint it, as
					// a running database would have.
					if _, err := sqlDB.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
						b.Fatal(err)
					}
				}
				opts := Options{Hasher: cheapArgon2id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), trustNotices: true, RowTagger: tags}
				var s *Service
				var cpu time.Duration
				stop := startProfile(b, fmt.Sprintf("newfromdb-%s-%d", sqldbtest.Name(d), size))
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				for b.Loop() {
					c0 := cpuTime()
					if s, err = New(ctx, db, opts); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime() - c0
				}
				runtime.ReadMemStats(&m1)
				stop()
				b.ReportMetric(float64(m1.NumGC-m0.NumGC)/float64(b.N), "gc/op")
				if size > 0 {
					b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N)/float64(size), "allocs/row")
				}
				// The machine is shared: CPU time says what a start costs
				// when the wall clock is inflated by other work.
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
				rev := Principal{User: User{ID: "user-0000000", Roles: []Role{RoleReviewer}}}
				c := CaseFacts{ID: "case-0000000", Status: "under_review"}
				if size > 0 {
					// Decisions on the service just started, at this size.
					const k = 100_000
					start := time.Now()
					for range k {
						if d, _ := s.Decide(ctx, rev, c, ActCaseRead); !d.Allowed {
							b.Fatalf("denied: %+v", d)
						}
					}
					b.ReportMetric(float64(time.Since(start).Nanoseconds())/k, "decide-ns")
				}

				// The start vaultd makes (LoadInBackground): from New to
				// the first decision answered, then to the complete index.
				// vaultd holds one index, not two: the one loaded above
				// would be traced by every collection of this load.
				s = nil
				stop = startProfile(b, fmt.Sprintf("newfromdb-background-%s-%d", sqldbtest.Name(d), size))
				opts.LoadInBackground = true
				t0, c0 := time.Now(), cpuTime()
				bg, err := New(ctx, db, opts)
				if err != nil {
					b.Fatal(err)
				}
				d, err := bg.Decide(ctx, rev, c, ActCaseRead)
				if err != nil || d.Allowed != (size > 0) {
					b.Fatalf("first decision: %+v, %v", d, err)
				}
				b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "answer-ms")
				b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000, "answer-cpu-ms")
				if size > 0 && !bg.isReady() {
					// Decisions read from the tables while the index loads.
					const k = 200
					start := time.Now()
					for range k {
						if d, err := bg.Decide(ctx, rev, c, ActCaseRead); err != nil || !d.Allowed {
							b.Fatalf("while loading: %+v, %v", d, err)
						}
					}
					b.ReportMetric(float64(time.Since(start).Nanoseconds())/k, "decide-loading-ns")
				}
				<-bg.Loaded()
				b.ReportMetric(time.Since(t0).Seconds(), "indexed-s")
				stop()
				if err := bg.Close(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// startProfile writes a CPU profile and the allocations (as two heap
// profiles, before and after, to compare with pprof -base) of what runs
// until the returned function is called, to CRVAULT_BENCH_PROFILE/name-*,
// when that variable names a directory: go test's own -cpuprofile would
// mostly show the generation of the rows.
func startProfile(tb testing.TB, name string) (stop func()) {
	dir := os.Getenv("CRVAULT_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	write := func(suffix string, fn func(*os.File) error) {
		f, err := os.Create(filepath.Join(dir, name+suffix))
		if err != nil {
			tb.Fatal(err)
		}
		if err := fn(f); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	write("-allocs0.pprof", func(f *os.File) error { defer f.Close(); return pprof.Lookup("allocs").WriteTo(f, 0) })
	var cpu *os.File
	write("-cpu.pprof", func(f *os.File) error { cpu = f; return pprof.StartCPUProfile(f) })
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		write("-allocs1.pprof", func(f *os.File) error { defer f.Close(); return pprof.Lookup("allocs").WriteTo(f, 0) })
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAuthenticate measures Authenticate's session read, on both
// backends: gorm is the statement Authenticate used to build per request,
// prepared the lookup it makes now, and authenticate the whole call (the
// account from its cache). Compare prepared with gorm, measured in the
// same run.
func BenchmarkAuthenticate(b *testing.B) {
	for _, d := range sqldbtest.Backends {
		b.Run(sqldbtest.Name(d), func(b *testing.B) {
			ctx := context.Background()
			db := sqldbtest.Open(b, d)
			if err := Migrate(ctx, db); err != nil {
				b.Fatal(err)
			}
			s, err := New(ctx, db, Options{Hasher: Argon2id{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			org, err := s.CreateOrg(ctx, "Grid Co", OrgOperator)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.CreateUser(ctx, NewUser{Username: "alice", Org: org.ID, Password: "correct horse battery", Roles: []Role{RoleOperator}}); err != nil {
				b.Fatal(err)
			}
			sess, err := s.Login(ctx, Credentials{Username: "alice", Password: "correct horse battery"}, "10.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			hash := hashToken(sess.Token)
			// A request's context is cancellable: the server cancels it
			// when the client goes away.
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			b.Run("gorm", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var r sessionRow
					if err := db.WithContext(rctx).Where("token_hash = ?", hash).Take(&r).Error; err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("prepared", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.sessions.byTokenHash(rctx, hash); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("authenticate", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Authenticate(rctx, sess.Token); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkTagUntaggedRows measures the one-time tagging of an upgraded
// database holding CRVAULT_BENCH_ASSIGNMENTS untagged assignments (default
// 100,000), one in ten with a declaration and one in ten revoked, on each
// backend: a report of the first start after the upgrade. ns/op is the
// tagging alone.
func BenchmarkTagUntaggedRows(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CRVAULT_BENCH_ASSIGNMENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	for _, d := range sqldbtest.Backends {
		b.Run(fmt.Sprintf("%s/assignments=%d", sqldbtest.Name(d), n), func(b *testing.B) {
			db := sqldbtest.Open(b, d)
			if err := Migrate(ctx, db); err != nil {
				b.Fatal(err)
			}
			sqlDB, err := db.DB()
			if err != nil {
				b.Fatal(err)
			}
			ph := func(k int) string {
				s := make([]string, k)
				for i := range s {
					s[i] = "?"
					if d == sqldb.Postgres {
						s[i] = "$" + strconv.Itoa(i+1)
					}
				}
				return "(" + strings.Join(s, ",") + ")"
			}
			tags := testTagger{key: []byte("access benchmarks' row key")}
			fill := func() {
				tx, err := sqlDB.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for _, q := range []string{"DELETE FROM access_assignment_revocations", "DELETE FROM access_declarations", "DELETE FROM access_assignments"} {
					if _, err := tx.ExecContext(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				ins, err := tx.PrepareContext(ctx, "INSERT INTO access_assignments (id, case_id, user_id, role, purpose, granted_by, granted_at) VALUES "+ph(7))
				if err != nil {
					b.Fatal(err)
				}
				decl, err := tx.PrepareContext(ctx, "INSERT INTO access_declarations (id, case_id, user_id, assignment_id, conflict, statement, created_at) VALUES "+ph(7))
				if err != nil {
					b.Fatal(err)
				}
				rev, err := tx.PrepareContext(ctx, "INSERT INTO access_assignment_revocations (assignment_id, revoked_by, revoked_at, reason) VALUES "+ph(4))
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now().UTC()
				users := max(n/20, 1)
				for i := range n {
					id, caseID, user := fmt.Sprintf("a%08d", i), fmt.Sprintf("case-%07d", i/10), fmt.Sprintf("user-%07d", (i*7919)%users)
					if _, err := ins.ExecContext(ctx, id, caseID, user, "reviewer", "preliminary review (Art. 10)", "admin", now); err != nil {
						b.Fatal(err)
					}
					if i%10 == 0 {
						if _, err := decl.ExecContext(ctx, "d"+id, caseID, user, id, i%20 == 0, []byte("none"), now); err != nil {
							b.Fatal(err)
						}
					}
					if i%10 == 5 {
						if _, err := rev.ExecContext(ctx, id, "admin", now, "r"); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				if d == sqldb.SQLite {
					if _, err := sqlDB.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
						b.Fatal(err)
					}
				} else if _, err := sqlDB.ExecContext(ctx, "ANALYZE"); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				b.StopTimer()
				fill()
				b.StartTimer()
				c, err := TagUntaggedRows(ctx, db, tags)
				if err != nil {
					b.Fatal(err)
				}
				if c.Assignments != n {
					b.Fatalf("tagged %s", c)
				}
			}
		})
	}
}
