package access

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
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
	rules := make([][]string, 0, n)
	grants := make(map[caseUser][]*grant, n)
	users := max(n/20, 1)
	for i := range n {
		caseID := fmt.Sprintf("case-%07d", i/10)
		userID := fmt.Sprintf("user-%07d", (i*7919)%users)
		role := "reviewer"
		if i%2 == 1 {
			role = "member_unit"
		}
		k := caseUser{caseID, userID}
		if _, dup := grants[k]; dup {
			continue
		}
		rules = append(rules, []string{userID, role, caseID})
		grants[k] = []*grant{{id: fmt.Sprintf("a%d", i), role: role, purpose: "bench", declared: true}}
	}
	runtime.GC()
	start := time.Now()
	_ = rules
	if err := s.buildEnforcer(grants); err != nil {
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

// BenchmarkNewFromDB measures a start (New) over 100,000 stored assignments
// on SQLite, reading the tables included.
func BenchmarkNewFromDB(b *testing.B) {
	const n = 100_000
	db := sqldbtest.Open(b, sqldb.SQLite)
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	rows := make([]assignmentRow, n)
	for i := range rows {
		rows[i] = assignmentRow{ID: fmt.Sprintf("a%08d", i), CaseID: fmt.Sprintf("case-%07d", i/10),
			UserID: fmt.Sprintf("user-%07d", i%(n/20)), Role: "reviewer", Purpose: "bench", GrantedBy: "admin", GrantedAt: now}
	}
	if err := db.CreateInBatches(rows, 500).Error; err != nil {
		b.Fatal(err)
	}
	opts := Options{Hasher: cheapArgon2id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for b.Loop() {
		if _, err := New(ctx, db, opts); err != nil {
			b.Fatal(err)
		}
	}
}
