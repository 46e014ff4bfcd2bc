package sqldb_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestCommitUnknown: the database's refusal of a row means nothing
// committed; a lost connection, an ended context, a session the server
// terminated or a SQLite I/O error leaves the outcome unknown, as does an
// error nobody can place.
func TestCommitUnknown(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("record material m1: %w", err) }
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{gorm.ErrDuplicatedKey, false},
		{wrap(gorm.ErrCheckConstraintViolated), false},
		{wrap(pgx.ErrTxCommitRollback), false},
		{&pgconn.PgError{Code: "23514"}, false}, // check violation
		{&pgconn.PgError{Code: "40001"}, false}, // serialization failure
		{&pgconn.PgError{Code: "53100"}, false}, // disk full: refused
		{wrap(&pgconn.PgError{Code: "57P01"}), true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "XX000"}, true},
		{sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{sqlite3.Error{Code: sqlite3.ErrFull}, false},
		{wrap(sqlite3.Error{Code: sqlite3.ErrIoErr}), true},
		{wrap(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{driver.ErrBadConn, true},
		{wrap(context.DeadlineExceeded), true},
		{context.Canceled, true},
		{errors.New("something else"), true},
	} {
		if got := sqldb.CommitUnknown(c.err); got != c.want {
			t.Errorf("CommitUnknown(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestCommitUnknownFromTheDrivers: the errors the real drivers give. A
// duplicate row is refused on both databases; on PostgreSQL, a session
// terminated before COMMIT gives an error that cannot tell the outcome.
func TestCommitUnknownFromTheDrivers(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, d)
			if err := db.Exec("CREATE TABLE commit_probe (id INTEGER PRIMARY KEY)").Error; err != nil {
				t.Fatal(err)
			}
			err := db.Transaction(func(tx *gorm.DB) error {
				return tx.Exec("INSERT INTO commit_probe (id) VALUES (1), (1)").Error
			})
			if err == nil || sqldb.CommitUnknown(err) {
				t.Fatalf("duplicate row: %v, unknown %v", err, sqldb.CommitUnknown(err))
			}
			if sqldb.Dialect(db) != sqldb.Postgres {
				return
			}
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			conn, err := sqlDB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO commit_probe (id) VALUES (2)"); err != nil {
				t.Fatal(err)
			}
			var pid int
			if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if err := db.Exec("SELECT pg_terminate_backend(?)", pid).Error; err != nil {
				t.Fatal(err)
			}
			err = tx.Commit()
			if err == nil || !sqldb.CommitUnknown(err) {
				t.Fatalf("COMMIT on a terminated session: %v, unknown %v", err, sqldb.CommitUnknown(err))
			}
			t.Logf("COMMIT on a terminated session: %v", err)
		})
	}
}
