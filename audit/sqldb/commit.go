package sqldb

import (
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"gorm.io/gorm"
)

// CommitUnknown reports whether a transaction that failed with err may
// nevertheless have committed, so that what it would have referenced (a
// blob written before it) must not be deleted on the strength of the
// error. The database's own answer to a statement or to COMMIT (a
// constraint, a type, a serialisation failure, COMMIT answered with
// ROLLBACK) means nothing committed. A connection lost or a context ended
// while COMMIT was in flight does not tell: PostgreSQL may have made the
// commit durable before the client heard, and may still be making it; a
// server terminating the session (SQLSTATE classes 08, 57 and 58, XX)
// may do so after its commit record is written; and SQLite reports an
// I/O error of a COMMIT whose frames may already be in the write-ahead
// log, to be replayed at the next open. Errors it cannot place are
// counted as unknown: the caller then leaves the cleanup to a sweep that
// checks what is referenced once the outcome is settled.
func CommitUnknown(err error) bool {
	if err == nil {
		return false
	}
	for _, refused := range []error{pgx.ErrTxCommitRollback, gorm.ErrDuplicatedKey, gorm.ErrForeignKeyViolated,
		gorm.ErrCheckConstraintViolated, gorm.ErrInvalidData, gorm.ErrInvalidValue, gorm.ErrInvalidField} {
		if errors.Is(err, refused) {
			return false
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case len(pe.Code) != 5:
			return true
		case pe.Code[:2] == "08", pe.Code[:2] == "57", pe.Code[:2] == "58", pe.Code[:2] == "XX":
			return true
		}
		return false
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrIoErr || se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB
	}
	return true
}
