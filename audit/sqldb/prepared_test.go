package sqldb_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestPreparedOnceAndShared: callers racing for a statement on first use
// all get the one that was kept, and it runs; a query that does not prepare
// answers an error every time instead of a nil statement. Lookup scans one
// row, answers gorm.ErrRecordNotFound for none, and on SQLite only runs
// whatever the caller's context.
func TestPreparedOnceAndShared(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, d)
			q := "SELECT CAST(? AS INTEGER) + 1"
			if sqldb.Dialect(db) == sqldb.Postgres {
				q = "SELECT $1::int + 1"
			}
			p := sqldb.NewPrepared(db, q)
			var wg sync.WaitGroup
			got := make(chan any, 16)
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := p.Stmt(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					if err := st.QueryRowContext(ctx, i).Scan(&n); err != nil || n != i+1 {
						t.Errorf("statement ran %d, %v; want %d", n, err, i+1)
					}
					got <- st
				}()
			}
			wg.Wait()
			close(got)
			first, _ := p.Stmt(ctx)
			for st := range got {
				if st != any(first) {
					t.Fatal("two callers got different statements")
				}
			}

			// Lookup: one row, none, and a cancelled context, which only
			// PostgreSQL heeds (an embedded lookup is never cancelled).
			var n int
			if err := p.Lookup(ctx, []any{&n}, 41); err != nil || n != 42 {
				t.Fatalf("lookup: %d, %v; want 42", n, err)
			}
			none := "SELECT 1 WHERE CAST(? AS INTEGER) = 0"
			if sqldb.Dialect(db) == sqldb.Postgres {
				none = "SELECT 1 WHERE $1::int = 0"
			}
			if err := sqldb.NewPrepared(db, none).Lookup(ctx, []any{&n}, 1); !errors.Is(err, gorm.ErrRecordNotFound) {
				t.Fatalf("lookup of no row: %v, want gorm.ErrRecordNotFound", err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			err := p.Lookup(cctx, []any{&n}, 1)
			if d := sqldb.Dialect(db); (d == sqldb.SQLite) != (err == nil) {
				t.Fatalf("%s lookup on a cancelled context: %v", d, err)
			}

			bad := sqldb.NewPrepared(db, "SELECT FROM nowhere WHERE")
			for range 2 {
				if st, err := bad.Stmt(ctx); err == nil || st != nil {
					t.Fatalf("malformed query: %v, %v; want an error", st, err)
				}
			}
		})
	}
}
