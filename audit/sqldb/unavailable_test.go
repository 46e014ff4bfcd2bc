package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// TestIsUnavailable: outages (503) against faults of the request or of
// crvault (4xx, 500), as the drivers report them, wrapped as callers do.
func TestIsUnavailable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("load case x: %w", err) }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"client cancelled", context.Canceled, false},
		{"explicit", ErrUnavailable, true},
		{"connection dropped mid-query", io.ErrUnexpectedEOF, true},
		{"bad connection", driver.ErrBadConn, true},
		{"conn closed", pgconn.ErrConnClosed, true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"refused, errno", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"a file's errno", &fs.PathError{Op: "open", Path: "/data/blobs/.tmp-1", Err: syscall.ENOENT}, false},
		{"a bare errno", wrap(syscall.ENOTDIR), false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"disk full", &pgconn.PgError{Code: "53100"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"read-only standby", &pgconn.PgError{Code: "25006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"query cancelled", &pgconn.PgError{Code: "57014"}, false},
		{"sqlite full", sqlite3.Error{Code: sqlite3.ErrFull}, true},
		{"sqlite busy", sqlite3.Error{Code: sqlite3.ErrBusy}, true},
		{"sqlite I/O", sqlite3.Error{Code: sqlite3.ErrIoErr}, true},
		{"sqlite constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false},
		{"sqlite corrupt", sqlite3.Error{Code: sqlite3.ErrCorrupt}, false},
	}
	for _, c := range cases {
		if got := IsUnavailable(c.err); got != c.want {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
		if c.err != nil {
			if got := IsUnavailable(wrap(c.err)); got != c.want {
				t.Errorf("%s (wrapped): IsUnavailable = %v, want %v", c.name, got, c.want)
			}
		}
	}
}
