package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

func TestAppendAndQuery(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			evs := f.appendN(t, 12)
			prev := zeroHash
			for i, e := range evs {
				if e.Seq != int64(i+1) {
					t.Fatalf("event %d got seq %d", i, e.Seq)
				}
				if e.Time.Location() != time.UTC || e.Time.IsZero() {
					t.Fatalf("time %v not UTC", e.Time)
				}
				if want := hashHex(Canonical(e, prev)); e.Hash != want {
					t.Fatalf("seq %d hash %s, want %s", e.Seq, e.Hash, want)
				}
				prev = e.Hash
			}
			tests := []struct {
				name string
				f    Filter
				want []int64
			}{
				{"all", Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
				{"case", Filter{CaseID: "case-1"}, []int64{2, 4, 6, 8, 10, 12}},
				{"actor and outcome", Filter{Actor: "user-1", Outcome: Denied}, []int64{2, 5, 8, 11}},
				{"action", Filter{Action: "audit.query"}, []int64{3, 6, 9, 12}},
				{"case set", Filter{CaseIDs: []string{"case-0"}, Action: "material.read"}, []int64{1, 7}},
				{"empty case set", Filter{CaseIDs: []string{}}, nil},
				{"until before all", Filter{Until: evs[0].Time}, nil},
				{"since", Filter{Since: evs[0].Time, Actor: "user-2"}, []int64{3, 6, 9, 12}},
			}
			for _, tc := range tests {
				got, _, err := f.log.Query(ctx, tc.f)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if fmt.Sprint(seqs(got)) != fmt.Sprint(tc.want) {
					t.Errorf("%s: got %v, want %v", tc.name, seqs(got), tc.want)
				}
			}
			// Paging walks every event exactly once.
			var all []int64
			cursor := ""
			for {
				page, next, err := f.log.Query(ctx, Filter{Limit: 5, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, seqs(page)...)
				if next == "" {
					break
				}
				cursor = next
			}
			if len(all) != 12 || all[11] != 12 {
				t.Fatalf("paging got %v", all)
			}
			if _, _, err := f.log.Query(ctx, Filter{Cursor: "garbage!"}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad cursor: %v", err)
			}
			if _, err := f.log.Append(ctx, Event{Action: "x", Outcome: "maybe"}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad outcome: %v", err)
			}
		})
	}
}

func seqs(evs []Event) []int64 {
	var s []int64
	for _, e := range evs {
		s = append(s, e.Seq)
	}
	return s
}

func TestDatabaseRefusesUpdateAndDelete(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			f.appendN(t, 3)
			if _, err := f.log.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				"UPDATE audit_events SET actor = 'x' WHERE seq = 1",
				"DELETE FROM audit_events WHERE seq = 3",
				"UPDATE audit_hashes SET idx = idx + 100",
				"DELETE FROM audit_hashes",
				"UPDATE audit_checkpoints SET note = ''",
				"DELETE FROM audit_checkpoints",
			} {
				err := f.db.Exec(q).Error
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: got %v, want append-only refusal", q, err)
				}
			}
			if d == sqldb.Postgres {
				if err := f.db.Exec("TRUNCATE audit_events").Error; err == nil {
					t.Error("TRUNCATE accepted")
				}
			}
			if _, err := f.log.Verify(context.Background()); err != nil {
				t.Fatalf("verify after refused tampering: %v", err)
			}
		})
	}
}

func TestConcurrentAppendersAndTwoWriters(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			// A second Log on its own pool stands in for a second vaultd.
			db2 := reopen(t, f.db)
			opts2 := f.opts
			opts2.Registerer = nil
			l2 := openLog(t, db2, opts2)
			ctx := context.Background()
			var wg sync.WaitGroup
			var mu sync.Mutex
			seen := map[int64]bool{}
			for g := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := f.log
					if g%2 == 1 {
						l = l2
					}
					for i := range 10 {
						e, err := l.Append(ctx, sampleEvent(g*10+i))
						if err != nil {
							t.Errorf("append: %v", err)
							return
						}
						mu.Lock()
						if seen[e.Seq] {
							t.Errorf("seq %d handed out twice", e.Seq)
						}
						seen[e.Seq] = true
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(seen) != 640 {
				t.Fatalf("got %d distinct seqs", len(seen))
			}
			rep, err := f.log.Verify(ctx)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if rep.TreeSize != 640 {
				t.Fatalf("tree size %d", rep.TreeSize)
			}
		})
	}
}

func TestFailClosedAndRecovery(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 2)
			// The database refuses every insert, as a full disk or a revoked
			// grant would.
			if d == sqldb.Postgres {
				exec(t, f.db, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$`)
				exec(t, f.db, `CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse()`)
			} else {
				exec(t, f.db, `CREATE TRIGGER refuse BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END`)
			}
			for range 2 {
				if _, err := f.log.Append(ctx, sampleEvent(7)); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("append on refusing db: %v, want ErrUnavailable", err)
				}
			}
			if got := counterValue(t, f.log.m.failures); got != 2 {
				t.Fatalf("failure counter %v, want 2", got)
			}
			if err := f.log.Ping(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("ping while failing: %v", err)
			}
			exec(t, f.db, "DROP TRIGGER refuse"+map[string]string{sqldb.Postgres: " ON audit_events", sqldb.SQLite: ""}[d])
			e, err := f.log.Append(ctx, sampleEvent(8))
			if err != nil {
				t.Fatalf("append after recovery: %v", err)
			}
			if e.Seq != 4 {
				t.Fatalf("seq after recovery %d, want 4 (3 is the failure record)", e.Seq)
			}
			got, _, err := f.log.Query(ctx, Filter{Action: "audit.append_failed"})
			if err != nil || len(got) != 1 || got[0].Outcome != Errored || got[0].Resource != "failed_events=2" {
				t.Fatalf("failure record: %+v %v", got, err)
			}
			if err := f.log.Ping(ctx); err != nil {
				t.Fatalf("ping after recovery: %v", err)
			}
			if _, err := f.log.Verify(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseMakesFinalCheckpoint(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 5)
	if err := f.log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, sampleEvent(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append after close: %v", err)
	}
	ck, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCheckpoint(ck, f.log.PublicKey())
	if err != nil || c.Size != 5 {
		t.Fatalf("final checkpoint %+v %v", c, err)
	}
	pub, err := LoadPublicKey(DefaultKeyFile(f.opts.KeyDir), nil)
	if err != nil || pub != f.log.PublicKey() {
		t.Fatalf("LoadPublicKey = %q, %v; want %q", pub, err, f.log.PublicKey())
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestReadOnlyVerifiesWithoutSigning(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 3)
	opts := f.opts
	opts.ReadOnly, opts.Registerer = true, nil
	ro := openLog(t, f.db, opts)
	if _, err := ro.Append(ctx, sampleEvent(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append on read-only log: %v", err)
	}
	if rep, err := ro.Verify(ctx); err != nil || rep.TreeSize != 3 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	if _, err := ro.Checkpoint(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read-only Checkpoint made one: %v", err)
	}
	if err := ro.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := f.db.Raw("SELECT COUNT(*) FROM audit_checkpoints").Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("read-only log signed %d checkpoints (%v)", n, err)
	}
}
