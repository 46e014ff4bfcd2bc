package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crvault/crvault/audit/sqldb"
)

// pipelineMax bounds the batches commitPipelined takes, keeping one
// statement well under PostgreSQL's 65,535 bound parameters.
const pipelineMax = 1024

// errWriterConnClosed: the held connection was closed before the batch was
// sent.
var errWriterConnClosed = errors.New("writer connection closed")

// writerConn is the writer's own PostgreSQL connection, held across
// commits: under load the shared pool is busy with the requests that wait
// for this very commit, and queueing behind them would stall every one.
type writerConn struct {
	c    *sql.Conn
	used time.Time
}

// commitPipelined commits a batch that follows this writer's own last
// commit in one round trip: BEGIN, the commit level and advisory lock,
// a guarded insert and COMMIT go out together. The insert stores nothing
// unless the log still ends where this writer left it, checked under the
// lock; when it does not (another process appended, or rows vanished),
// done is false and the caller takes the general path, which reads the head
// and checks it against the anchor. done is false too when the batch never
// reached the server (a stale connection): nothing can have committed.
func (l *Log) commitPipelined(ctx context.Context, events []Event) (out []Event, done bool, err error) {
	size := l.tree.size
	if err := l.anchor.haltErr(); err != nil {
		return nil, true, err
	}
	if ck, _ := l.anchor.get(); size < ck.Size {
		// A checkpoint beyond this writer's last commit: another process
		// appended and signed since. Only the head read under the lock
		// can tell that from a rollback (checkHead on the general path).
		return nil, false, nil
	}
	tree := l.tree.cloneInto(l.spare)
	tree.fallback = dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}
	b, err := l.seal(events, tree, size, l.head.hash, l.head.us)
	if err != nil {
		return nil, false, nil // the general path reads the hashes in its transaction
	}
	q, args := guardedInsert(size, b)
	var ok bool
	err = l.onWriterConn(ctx, func(pc *pgx.Conn) error {
		batch := &pgx.Batch{}
		batch.Queue("BEGIN")
		batch.Queue(lockSQL, l.opts.SyncCommit, int64(pgLockKey))
		batch.Queue(q, args...)
		batch.Queue("COMMIT")
		br := pc.SendBatch(ctx, batch)
		_, err := br.Exec()
		if err == nil {
			_, err = br.Exec()
		}
		if err == nil {
			err = br.QueryRow().Scan(&ok)
		}
		if err == nil {
			var tag pgconn.CommandTag
			// An aborted transaction answers COMMIT with ROLLBACK, not
			// an error: only the tag says the events are stored.
			if tag, err = br.Exec(); err == nil && tag.String() != "COMMIT" {
				err = fmt.Errorf("commit answered %q", tag.String())
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		l.head.known = false
		if pgconn.SafeToRetry(err) || errors.Is(err, errWriterConnClosed) {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("commit events %d..%d: %w", b.out[0].Seq, b.out[len(b.out)-1].Seq, err)
	}
	if !ok {
		// Routine with several instances: each appends in turn.
		l.logger.Debug("audit log head moved under this writer; rereading it", "seq", size)
		return nil, false, nil
	}
	l.committed(b)
	return b.out, true, nil
}

// onWriterConn runs fn on the writer's connection, taking one from the pool
// when there is none. A connection idle for over a second is pinged first,
// as the pool would, so that a server restart costs no batch. After an
// error the connection is discarded: its transaction state is unknown.
func (l *Log) onWriterConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	w := l.wconn
	if w != nil && time.Since(w.used) > time.Second {
		if err := w.c.PingContext(ctx); err != nil {
			w.c.Close()
			w, l.wconn = nil, nil
		}
	}
	if w == nil {
		c, err := l.sqlDB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("writer connection: %w", err)
		}
		w = &writerConn{c: c}
		l.wconn = w
	}
	var ferr error
	err := w.c.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			ferr = fmt.Errorf("writer connection: driver %T is not pgx", dc)
			return driver.ErrBadConn
		}
		if pc.Conn().IsClosed() {
			// Known dead before anything was sent: safe to retry.
			ferr = errWriterConnClosed
			return driver.ErrBadConn
		}
		if ferr = fn(pc.Conn()); ferr != nil {
			// Tell database/sql to close it rather than pool it.
			return driver.ErrBadConn
		}
		return nil
	})
	w.used = time.Now()
	if ferr == nil && err != nil {
		ferr = err
	}
	if ferr != nil {
		w.c.Close()
		l.wconn = nil
	}
	if errors.Is(ferr, driver.ErrBadConn) && ctx.Err() == nil {
		return fmt.Errorf("writer connection: %w", ferr)
	}
	return ferr
}

// closeWriterConn returns the writer's connection to the pool; on SQLite
// it closes it instead, since its pragmas (sqlitewal.go) are the writer's
// alone and would outlive it in the pool.
func (l *Log) closeWriterConn() {
	if l.wconn == nil {
		return
	}
	if l.dialect == sqldb.SQLite {
		_ = l.wconn.c.Raw(func(any) error { return driver.ErrBadConn })
	}
	l.wconn.c.Close()
	l.wconn = nil
}

// guardedInsert is one statement that inserts the batch's events and tree
// hashes only if the log still has exactly size events, and returns whether
// it did. Parameters carry explicit types: rows selected from VALUES are
// not typed by the target columns.
func guardedInsert(size int64, b sealed) (string, []any) {
	args := make([]any, 0, 1+len(b.out)*eventCols+2*len(b.hashes))
	var sb strings.Builder
	sb.Grow(160 + len(b.out)*eventCols*12 + len(b.hashes)*24)
	ph := func(n int, cast string) { // the nth parameter
		sb.WriteByte('$')
		sb.WriteString(strconv.Itoa(n))
		sb.WriteString(cast)
	}
	args = append(args, size)
	sb.WriteString("WITH g AS (SELECT coalesce(max(seq), 0) = ")
	ph(len(args), "::bigint")
	sb.WriteString(" AS ok FROM audit_events), ev AS (INSERT INTO audit_events (" + eventColumns + ") SELECT * FROM (VALUES ")
	for i, e := range b.out {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		first := len(args)
		args = appendEventRow(args, e, b.prevs[i])
		for c := range eventCols {
			if c > 0 {
				sb.WriteByte(',')
			}
			if c < 2 {
				ph(first+c+1, "::bigint")
			} else {
				ph(first+c+1, "::text")
			}
		}
		sb.WriteByte(')')
	}
	sb.WriteString(") v WHERE (SELECT ok FROM g)), hs AS (INSERT INTO audit_hashes (idx, hash) SELECT * FROM (VALUES ")
	for i, h := range b.hashes {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		args = append(args, b.firstIdx+int64(i))
		ph(len(args), "::bigint")
		sb.WriteByte(',')
		args = append(args, h[:])
		ph(len(args), "::bytea")
		sb.WriteByte(')')
	}
	sb.WriteString(") h WHERE (SELECT ok FROM g)) SELECT ok FROM g")
	return sb.String(), args
}
