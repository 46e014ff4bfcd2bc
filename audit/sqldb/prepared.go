package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	"gorm.io/gorm"
)

// Prepared is a statement for the hottest lookups, prepared on first use
// and kept: database/sql then prepares it once per connection, where a
// query by text is parsed and planned on every call (on SQLite, as much
// CPU as running it). Closing the database closes it; a Close of its own
// could race with a request still using it.
type Prepared struct {
	db     *gorm.DB
	query  string
	sqlite bool
	st     atomic.Pointer[sql.Stmt]
}

// NewPrepared returns query on db, to be prepared on first use.
func NewPrepared(db *gorm.DB, query string) *Prepared {
	return &Prepared{db: db, query: query, sqlite: Dialect(db) == SQLite}
}

// Lookup runs the statement for one row, scanning it into dst;
// gorm.ErrRecordNotFound when there is none. On SQLite it runs
// uncancelled: a lookup by key in the embedded database takes
// microseconds, and on a cancellable context mattn/go-sqlite3 starts a
// goroutine per row to watch it, and database/sql another per query, which
// cost more than the lookup. PostgreSQL keeps the caller's context.
func (p *Prepared) Lookup(ctx context.Context, dst []any, args ...any) error {
	st, err := p.Stmt(ctx)
	if err != nil {
		return err
	}
	if p.sqlite {
		ctx = context.WithoutCancel(ctx)
	}
	err = st.QueryRowContext(ctx, args...).Scan(dst...)
	if errors.Is(err, sql.ErrNoRows) {
		return gorm.ErrRecordNotFound
	}
	return err
}

// Stmt returns the prepared statement, preparing it if no call has yet.
func (p *Prepared) Stmt(ctx context.Context) (*sql.Stmt, error) {
	if st := p.st.Load(); st != nil {
		return st, nil
	}
	sqlDB, err := p.db.DB()
	if err != nil {
		return nil, err
	}
	st, err := sqlDB.PrepareContext(ctx, p.query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if !p.st.CompareAndSwap(nil, st) {
		st.Close() // another call prepared it first
		return p.st.Load(), nil
	}
	return st, nil
}

// Column is a column of a hand-scanned row: its name, and the field its
// value is scanned to. sqldbtest.CheckColumns holds a list of them to the
// model's GORM schema.
type Column struct {
	Name string
	Dst  any
}
