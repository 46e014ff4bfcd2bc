package vault

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/calendar"
)

func benchSize(env string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		return v
	}
	return def
}

// fillCases bulk-loads n cases of another operator and m materials spread
// over them (rows only: sealed fields are filler bytes, no blobs; the
// status and due tags genuine, for a history of no event), COPY on
// PostgreSQL and one transaction of prepared inserts on SQLite. They are
// invisible to the probe operator, and there to make the tables the size
// issue 10 names. Each is open, with a stored due date (no history: the
// date is set directly, with the current basis so nothing re-derives it)
// from 30 days to about three years ahead, after every case the
// fixture filed, so the deadlines index holds n rows more.
func fillCases(tb testing.TB, f *wfFixture, n, m int) {
	tb.Helper()
	ctx := context.Background()
	sqlDB, err := f.svc.db.DB()
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	caseID := func(i int) string { return fmt.Sprintf("fill%022d", i) }
	filler := []byte("sealed filler, never opened")
	cal, err := f.svc.calendar(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	basis, today := dueBasis(cal), calendar.Today(now)
	rowsKey, err := f.svc.rowsKey(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	caseCols := []string{"id", "title", "product", "operator_org", "status", "created_by", "created_at", "updated_at",
		"due_on", "due_on_provisional", "due_phase", "due_basis", "due_tag", "status_tag"}
	caseRow := func(i int) []any {
		k := i % 4
		on := today.AddDays(30 + i%1000).String()
		due := dueColumns{On: &on, Phase: []string{"determination", "preliminary_review", "member_unit_opinions", "special_review"}[k], Basis: basis}
		status := []string{"submitted", "under_review", "soliciting_opinions", "special_review"}[k]
		return []any{caseID(i), filler, filler, fmt.Sprintf("org-%04d", i%1000), status,
			"someone", now, now, *due.On, false, due.Phase, basis, dueTag(rowsKey, caseID(i), due, 0), statusTag(rowsKey, caseID(i), status, 0)}
	}
	matCols := []string{"id", "case_id", "kind", "filename", "filename_mac", "version", "content_type", "size", "sha256", "blob_id", "header", "uploaded_by", "uploader_org", "uploaded_at"}
	matRow := func(i int) []any {
		id := fmt.Sprintf("mfill%021d", i)
		return []any{id, caseID(i % max(n, 1)), "other", filler, id, 1, "application/pdf", 300_000, "00", "blob-" + id, filler, "someone", "org-x", now}
	}
	if sqldb.Dialect(f.svc.db) == sqldb.Postgres {
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		defer conn.Close()
		err = conn.Raw(func(dc any) error {
			c := dc.(*stdlib.Conn).Conn()
			i := 0
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"cases"}, caseCols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == n {
					return nil, nil
				}
				i++
				return caseRow(i - 1), nil
			})); err != nil {
				return err
			}
			j := 0
			_, err := c.CopyFrom(ctx, pgx.Identifier{"materials"}, matCols, pgx.CopyFromFunc(func() ([]any, error) {
				if j == m {
					return nil, nil
				}
				j++
				return matRow(j - 1), nil
			}))
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
		for _, t := range []string{"cases", "materials"} {
			if _, err := sqlDB.ExecContext(ctx, "ANALYZE "+t); err != nil {
				tb.Fatal(err)
			}
		}
		return
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	insert := func(table string, cols []string, k int, row func(int) []any) {
		q := "INSERT INTO " + table + " (" + joinCols(cols) + ") VALUES (?" + repeatPH(len(cols)-1) + ")"
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			tb.Fatal(err)
		}
		defer st.Close()
		for i := range k {
			if _, err := st.ExecContext(ctx, row(i)...); err != nil {
				tb.Fatal(err)
			}
		}
	}
	insert("cases", caseCols, n, caseRow)
	insert("materials", matCols, m, matRow)
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	// One big transaction leaves it all in the WAL: checkpoint it, as a
	// running database would have.
	if _, err := sqlDB.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		tb.Fatal(err)
	}
}

func joinCols(cols []string) string {
	out := cols[0]
	for _, c := range cols[1:] {
		out += ", " + c
	}
	return out
}

func repeatPH(n int) string {
	out := ""
	for range n {
		out += ",?"
	}
	return out
}

func p99Of(tb testing.TB, k int, op func() error) time.Duration {
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

// BenchmarkListsScale measures the p99 of first and later pages of the
// operator's case list and of a case's materials (120 of each, real rows
// with sealed names, read through the vault with auditing), and of the
// office's deadlines (100 cases on the clock, all due within MaxWithin;
// the bulk-loaded cases are due after them), first on the
// fixture's small tables (the baseline, same run) and then after
// CRVAULT_BENCH_CASES other cases (default 10,000; issue 10: 100,000) and
// CRVAULT_BENCH_MATERIALS materials (default 100,000; issue 10: 1,000,000)
// were bulk-loaded beside them. Run with -benchtime 1x.
func BenchmarkListsScale(b *testing.B) {
	n, m := benchSize("CRVAULT_BENCH_CASES", 10_000), benchSize("CRVAULT_BENCH_MATERIALS", 100_000)
	for _, d := range sqldbtest.Backends {
		b.Run(fmt.Sprintf("%s/cases=%d/materials=%d", sqldbtest.Name(d), n, m), func(b *testing.B) {
			for b.Loop() {
				f := newWF(b, d, time.Now(), false)
				var probe string
				for i := range 120 {
					c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Core routers", Product: "AR-9000"})
					if err != nil {
						b.Fatal(err)
					}
					if i == 0 {
						probe = c.ID
					}
				}
				for i := range 120 {
					f.uploadID(f.op, probe, "other", fmt.Sprintf("doc-%03d", i))
				}
				// 100 cases on the clock, for two pages of deadlines.
				for range 100 {
					id := f.draft()
					if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
						b.Fatal(err)
					}
				}
				dlLater, err := f.svc.DeadlinesPage(f.ctx, f.office, MaxWithin, 50, "")
				if err != nil || dlLater.NextCursor == "" {
					b.Fatalf("deadlines: %+v %v", dlLater, err)
				}
				casesLater, err := f.svc.ListCases(f.ctx, f.op, "", 50, "")
				if err != nil {
					b.Fatal(err)
				}
				matsLater, err := f.svc.MaterialsPage(f.ctx, f.op, probe, 50, "")
				if err != nil {
					b.Fatal(err)
				}
				type probeQ struct {
					name string
					op   func() error
				}
				qs := []probeQ{
					{"cases-first", func() error { _, err := f.svc.ListCases(f.ctx, f.op, "", 50, ""); return err }},
					{"cases-later", func() error { _, err := f.svc.ListCases(f.ctx, f.op, "", 50, casesLater.NextCursor); return err }},
					{"materials-first", func() error { _, err := f.svc.MaterialsPage(f.ctx, f.op, probe, 50, ""); return err }},
					{"materials-later", func() error {
						_, err := f.svc.MaterialsPage(f.ctx, f.op, probe, 50, matsLater.NextCursor)
						return err
					}},
					{"deadlines-first", func() error {
						_, err := f.svc.DeadlinesPage(f.ctx, f.office, MaxWithin, 50, "")
						return err
					}},
					{"deadlines-later", func() error {
						_, err := f.svc.DeadlinesPage(f.ctx, f.office, MaxWithin, 50, dlLater.NextCursor)
						return err
					}},
				}
				base := make([]time.Duration, len(qs))
				for i, q := range qs {
					base[i] = p99Of(b, 100, q.op)
				}
				t0 := time.Now()
				fillCases(b, f, n, m)
				b.ReportMetric(time.Since(t0).Seconds(), "generate-s")
				for i, q := range qs {
					got := p99Of(b, 100, q.op)
					b.ReportMetric(float64(got.Microseconds())/1000, q.name+"-p99-ms")
					b.ReportMetric(float64(got)/float64(base[i]), q.name+"/small")
				}
			}
		})
	}
}

// BenchmarkDeadlinesIndexVsReplay compares, in one run, a page of
// deadlines read from the stored due dates with the same page as every
// request computed it before: audited, the history of every open case
// replayed (replayDeadlines, the tests' oracle), then the page's titles
// decrypted. CRVAULT_BENCH_DUE_CASES real cases (default 200) are filed
// and submitted, each with its own key and history. The replay grows with
// the open cases, the indexed page does not.
func BenchmarkDeadlinesIndexVsReplay(b *testing.B) {
	n := benchSize("CRVAULT_BENCH_DUE_CASES", 200)
	for _, d := range sqldbtest.Backends {
		b.Run(fmt.Sprintf("%s/open=%d", sqldbtest.Name(d), n), func(b *testing.B) {
			for b.Loop() {
				f := newWF(b, d, time.Now(), false)
				for range n {
					id := f.draft()
					if _, err := f.svc.Submit(f.ctx, f.op, id); err != nil {
						b.Fatal(err)
					}
				}
				page := p99Of(b, 50, func() error {
					p, err := f.svc.DeadlinesPage(f.ctx, f.office, MaxWithin, 50, "")
					if err == nil && len(p.Items) != min(n, 50) {
						err = fmt.Errorf("%d items", len(p.Items))
					}
					return err
				})
				replay := p99Of(b, 50, func() error {
					if err := f.svc.record(f.ctx, f.office, "deadline.list", audit.Allowed, "", "deadlines", "", ""); err != nil {
						return err
					}
					all := replayDeadlines(b, f, MaxWithin)
					if len(all) != n {
						return fmt.Errorf("%d deadlines", len(all))
					}
					for _, dl := range all[:min(n, 50)] {
						var row caseRow
						if err := f.svc.db.Where("id = ?", dl.CaseID).Take(&row).Error; err != nil {
							return err
						}
						if _, err := f.svc.openCase(f.ctx, row, nil); err != nil {
							return err
						}
					}
					return nil
				})
				b.ReportMetric(float64(page.Microseconds())/1000, "page-p99-ms")
				b.ReportMetric(float64(replay.Microseconds())/1000, "replay-page-p99-ms")
				b.ReportMetric(float64(replay)/float64(page), "replay/page")
			}
		})
	}
}
