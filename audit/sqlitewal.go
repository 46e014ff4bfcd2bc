package audit

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// On SQLite the commit that pushes the write-ahead log past 1,000 pages
// copies it back into the database file and syncs that, inside the commit:
// every audited request of that batch waits for it, and with five indexed
// B-trees per event that was every few dozen commits. The writer's own
// connection therefore never checkpoints (wal_autocheckpoint=0), and a
// PASSIVE checkpoint runs every walCheckpointEvery beside it, waiting for
// no reader or writer. Other connections keep SQLite's default, so the WAL
// stays bounded even if this goroutine stalls.
const walCheckpointEvery = 500 * time.Millisecond

// A batch is one multi-row INSERT per table inside the commit's
// transaction, so SQLite keeps a statement journal to undo just that
// statement, and past 64 KiB spills it to a temporary file: under load that
// was a file created and unlinked every few commits, on the commit's path.
// The writer's connection keeps it in memory (temp_store=MEMORY), bounded
// by the pages one batch touches. Other connections keep the default: a
// large sort there must spill to disk rather than grow without bound.

// sqliteWriterConn returns the writer's connection, taking one from the
// pool (turning its automatic checkpoints off and its temporary storage to
// memory) when there is none.
func (l *Log) sqliteWriterConn(ctx context.Context) (*sql.Conn, error) {
	if l.wconn != nil {
		return l.wconn.c, nil
	}
	c, err := l.sqlDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("writer connection: %w", err)
	}
	for _, pragma := range []string{"PRAGMA wal_autocheckpoint=0", "PRAGMA temp_store=MEMORY"} {
		if _, err := c.ExecContext(ctx, pragma); err != nil {
			c.Close()
			return nil, fmt.Errorf("writer connection: %w", err)
		}
	}
	l.wconn = &writerConn{c: c, used: time.Now()}
	return c, nil
}

// walCheckpointer copies the write-ahead log into the database file in the
// background (SQLite only).
func (l *Log) walCheckpointer() {
	defer l.wg.Done()
	t := time.NewTicker(walCheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			if _, err := l.sqlDB.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				l.logger.Warn("audit: write-ahead log checkpoint failed", "err", err)
			}
			cancel()
		}
	}
}
