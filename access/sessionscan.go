package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// Authenticate reads the session row on every authenticated request, so
// that a logout or a revocation holds at once on every instance. Through
// GORM that read was a statement built, parsed and planned per request and
// scanned by reflection; on SQLite, mattn/go-sqlite3 also started a
// goroutine per row to watch the request's context. It is now prepared
// once and scanned into fixed targets. TestSessionColumnsMatchModel holds
// the column list to the GORM schema, so a field added to sessionRow cannot
// be left unread here.

// column is a column name and where its value is scanned to.
type column struct {
	name string
	dst  any
}

func (r *sessionRow) columns() []column {
	return []column{{"id", &r.ID}, {"token_hash", &r.TokenHash}, {"user_id", &r.UserID}, {"created_at", &r.CreatedAt},
		{"last_seen_at", &r.LastSeenAt}, {"absolute_end", &r.AbsoluteEnd}, {"revoked_at", &r.RevokedAt},
		{"second_factor", &r.SecondFactor}}
}

// sessionStmt is prepared on first use and kept for the Service's life;
// closing the database closes it (a Close of its own could race with a
// request still authenticating).
type sessionStmt struct {
	db     *gorm.DB
	sqlite bool
	prep   atomic.Pointer[sql.Stmt]
}

func newSessionStmt(db *gorm.DB) *sessionStmt {
	return &sessionStmt{db: db, sqlite: sqldb.Dialect(db) == sqldb.SQLite}
}

func (q *sessionStmt) query() string {
	var r sessionRow
	names := make([]string, 0, 8)
	for _, c := range r.columns() {
		names = append(names, c.name)
	}
	ph := "?"
	if !q.sqlite {
		ph = "$1"
	}
	return "SELECT " + strings.Join(names, ", ") + " FROM access_sessions WHERE token_hash = " + ph
}

func (q *sessionStmt) stmt(ctx context.Context) (*sql.Stmt, error) {
	if st := q.prep.Load(); st != nil {
		return st, nil
	}
	sqlDB, err := q.db.DB()
	if err != nil {
		return nil, err
	}
	st, err := sqlDB.PrepareContext(ctx, q.query())
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if !q.prep.CompareAndSwap(nil, st) {
		st.Close()
		return q.prep.Load(), nil
	}
	return st, nil
}

// byTokenHash returns the session whose token hashes to hash, or
// gorm.ErrRecordNotFound.
func (q *sessionStmt) byTokenHash(ctx context.Context, hash string) (sessionRow, error) {
	var r sessionRow
	st, err := q.stmt(ctx)
	if err != nil {
		return r, fmt.Errorf("load session: %w", err)
	}
	if q.sqlite {
		// A lookup by unique index in the embedded database takes
		// microseconds: there is nothing to cancel, and watching the
		// context costs mattn/go-sqlite3 a goroutine per row.
		ctx = context.WithoutCancel(ctx)
	}
	cols := r.columns()
	dst := make([]any, len(cols))
	for i, c := range cols {
		dst[i] = c.dst
	}
	err = st.QueryRowContext(ctx, hash).Scan(dst...)
	if errors.Is(err, sql.ErrNoRows) {
		return r, gorm.ErrRecordNotFound
	}
	if err != nil {
		return r, fmt.Errorf("load session: %w", err)
	}
	return r, nil
}
