package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// ErrUnavailable marks a database that cannot serve now. Code that detects
// an outage itself may wrap it; IsUnavailable also recognises the drivers'
// own errors, so callers need not.
var ErrUnavailable = errors.New("database unavailable")

// IsUnavailable reports whether err says the database could not serve the
// request now, as opposed to refusing this request: it cannot be reached,
// is shutting down or starting up, has lost the connection, is out of
// connections, disk or memory, is a read-only standby, refused our
// credentials, or did not answer in time. Such a request may succeed later
// unchanged (503); anything else is a fault in the request or in crvault.
// A request the client itself cancelled is not an outage.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	// pgx reports a connection the server dropped in the middle of a
	// query (a crash, an immediate shutdown) as a bare io.ErrUnexpectedEOF.
	if errors.Is(err, ErrUnavailable) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return unavailableState(pe.Code)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// pgconn marks every failure of the connection itself (a write or read
	// on the socket, a lost connection) as an error that knows whether it is
	// safe to retry; errors of the query carry a PgError instead.
	var conn interface{ SafeToRetry() bool }
	if errors.As(err, &conn) || pgconn.Timeout(err) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrIoErr, sqlite3.ErrFull, sqlite3.ErrCantOpen, sqlite3.ErrReadonly, sqlite3.ErrNomem:
			return true
		}
		return false
	}
	// A network failure on the way to the server. A bare errno also has
	// net.Error's methods, but one not under a network operation is a
	// file's (a blob store's missing directory, say), not the database's.
	// A bare context.DeadlineExceeded has them too and stays the
	// database's: database/sql returns one, unwrapped, when a deadline
	// ends its wait for a pooled connection or a transaction. Other parts
	// must not let theirs out bare: the blob store wraps its own deadlines
	// in its ErrUnavailable, which the callers check first.
	var ne net.Error
	if !errors.As(err, &ne) {
		return false
	}
	_, bare := ne.(syscall.Errno)
	return !bare
}

// unavailableState reports whether a PostgreSQL SQLSTATE names an outage.
func unavailableState(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "08", // connection exception
		"53", // insufficient resources: disk full, out of memory, too many connections
		"58", // system error: I/O error
		"28": // invalid authorisation: credentials rotated under a running server
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", "57P05", // admin or crash shutdown, cannot connect now, idle session timeout
		"25006": // read-only transaction: a standby after a failover
		return true
	}
	return false
}
