package access

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// column names a column and the field it is scanned to.
func column(name string, dst any) sqldb.Column { return sqldb.Column{Name: name, Dst: dst} }

func (r *sessionRow) columns() []sqldb.Column {
	return []sqldb.Column{column("id", &r.ID), column("token_hash", &r.TokenHash), column("user_id", &r.UserID), column("created_at", &r.CreatedAt),
		column("last_seen_at", &r.LastSeenAt), column("absolute_end", &r.AbsoluteEnd), column("revoked_at", &r.RevokedAt),
		column("second_factor", &r.SecondFactor), column("row_tag", &r.RowTag)}
}

// sessionStmt is the session lookup, prepared on first use.
type sessionStmt struct {
	prep *sqldb.Prepared
}

func newSessionStmt(db *gorm.DB) *sessionStmt {
	var r sessionRow
	names := make([]string, 0, 9)
	for _, c := range r.columns() {
		names = append(names, c.Name)
	}
	ph := "?"
	if sqldb.Dialect(db) == sqldb.Postgres {
		ph = "$1"
	}
	return &sessionStmt{prep: sqldb.NewPrepared(db, "SELECT "+strings.Join(names, ", ")+" FROM access_sessions WHERE token_hash = "+ph)}
}

// byTokenHash returns the session whose token hashes to hash, or
// gorm.ErrRecordNotFound.
func (q *sessionStmt) byTokenHash(ctx context.Context, hash string) (sessionRow, error) {
	var r sessionRow
	cols := r.columns()
	dst := make([]any, len(cols))
	for i, c := range cols {
		dst[i] = c.Dst
	}
	err := q.prep.Lookup(ctx, dst, hash)
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		err = fmt.Errorf("load session: %w", err)
	}
	return r, err
}
