package audit

import (
	"context"
	"database/sql"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crvault/crvault/audit/sqldb"
)

func headReads(t *testing.T, l *Log) float64 {
	t.Helper()
	var m dto.Metric
	if err := l.m.headReads.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestPipelinedCommitChainsOnItsOwnHead: on PostgreSQL a writer reads the
// log head once and then chains each batch on its own last commit in one
// round trip; when another writer appended in between, the guarded insert
// stores nothing and the batch goes the general way, so the chain stays
// whole and no event is lost or doubled.
func TestPipelinedCommitChainsOnItsOwnHead(t *testing.T) {
	f := newFixture(t, sqldb.Postgres)
	ctx := context.Background()
	f.appendN(t, 20)
	if n := headReads(t, f.log); n != 1 {
		t.Fatalf("%v head reads for 20 batches in a row, want 1 (the first)", n)
	}
	opts2 := f.opts
	opts2.Registerer, opts2.Witnesses = nil, nil
	l2 := openLog(t, reopen(t, f.db), opts2)
	for i := range 3 {
		if _, err := l2.Append(ctx, sampleEvent(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	e, err := f.log.Append(ctx, sampleEvent(200))
	if err != nil {
		t.Fatalf("append after another writer: %v", err)
	}
	if e.Seq != 24 {
		t.Fatalf("seq %d, want 24", e.Seq)
	}
	if n := headReads(t, f.log); n != 2 {
		t.Fatalf("%v head reads, want 2: the moved head must be read again", n)
	}
	if _, err := f.log.Append(ctx, sampleEvent(201)); err != nil {
		t.Fatal(err)
	}
	if n := headReads(t, f.log); n != 2 {
		t.Fatalf("%v head reads, want 2: back on the pipelined path", n)
	}
	rep, err := f.log.Verify(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.TreeSize != 25 {
		t.Fatalf("tree size %d, want 25", rep.TreeSize)
	}
}

// TestWriterConnectionLostWhileIdle: the writer holds its own connection;
// when the server drops it while idle (a restart, an administrator), the
// next batch takes a fresh one instead of failing.
func TestWriterConnectionLostWhileIdle(t *testing.T) {
	f := newFixture(t, sqldb.Postgres)
	ctx := context.Background()
	f.appendN(t, 3)
	// The writer is idle: Append returned through a channel after its
	// last use of wconn.
	if f.log.wconn == nil {
		t.Fatal("no writer connection after pipelined commits")
	}
	var pid int
	if err := f.log.wconn.c.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var killed bool
	if err := f.db.Raw("SELECT pg_terminate_backend(?)", pid).Row().Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate writer backend %d: %v %v", pid, killed, err)
	}
	f.log.wconn.used = time.Time{} // idle long enough to be pinged
	for i := range 3 {
		if _, err := f.log.Append(ctx, sampleEvent(10+i)); err != nil {
			t.Fatalf("append %d after the connection was dropped: %v", i, err)
		}
	}
	rep, err := f.log.Verify(ctx)
	if err != nil || rep.TreeSize != 6 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestSQLiteWriterLeavesWALCheckpointsToTheBackground: the writer's own
// connection never copies the write-ahead log back inside a commit (that
// stalled whole batches of audited requests); the log's background
// checkpointer does, and the log stays whole.
func TestSQLiteWriterLeavesWALCheckpointsToTheBackground(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 50)
	if f.log.wconn == nil {
		t.Fatal("no writer connection")
	}
	var n int
	if err := f.log.wconn.c.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("writer connection checkpoints every %d pages, want never", n)
	}
	// Another connection keeps SQLite's default, which bounds the WAL
	// should the background checkpointer stall.
	sqlDB, _ := f.db.DB()
	if err := sqlDB.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&n); err != nil || n != 1000 {
		t.Fatalf("pool connection: wal_autocheckpoint %d (%v), want 1000", n, err)
	}
	rep, err := f.log.Verify(ctx)
	if err != nil || rep.TreeSize != 50 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestSQLiteWriterJournalsStatementsInMemory: the writer's connection keeps
// the statement journal of its multi-row inserts in memory, where SQLite
// otherwise created and unlinked a temporary file every few commits; the
// pool's connections keep temporary storage on disk, which bounds the
// memory of a large sort.
func TestSQLiteWriterJournalsStatementsInMemory(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 20)
	if f.log.wconn == nil {
		t.Fatal("no writer connection")
	}
	var n int
	if err := f.log.wconn.c.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("writer connection: temp_store %d, want 2 (memory)", n)
	}
	sqlDB, _ := f.db.DB()
	if err := sqlDB.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&n); err != nil || n != 0 {
		t.Fatalf("pool connection: temp_store %d (%v), want 0 (the default)", n, err)
	}
	// Once the writer lets its connection go, no connection in the pool
	// carries its settings.
	if err := f.log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range sqlDB.Stats().Idle {
		c, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var store, ckpt int
		if err := c.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&store); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil {
			t.Fatal(err)
		}
		if store != 0 || ckpt != 1000 {
			t.Fatalf("pool connection after the writer's: temp_store %d, wal_autocheckpoint %d", store, ckpt)
		}
	}
}

// TestPipelinedCommitAfterAnotherWriterSigned: another process (a CLI
// command) appends and signs a checkpoint, which this writer then learns of
// while its own view of the head is older. That is no rollback: the batch
// must read the head again, not halt the log.
func TestPipelinedCommitAfterAnotherWriterSigned(t *testing.T) {
	f := newFixture(t, sqldb.Postgres)
	ctx := context.Background()
	f.appendN(t, 3)
	opts2 := f.opts
	opts2.Registerer, opts2.Witnesses = nil, nil
	l2 := openLog(t, reopen(t, f.db), opts2)
	for i := range 2 {
		if _, err := l2.Append(ctx, sampleEvent(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l2.makeCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// This writer's checkpointer comes round and sees the newer checkpoint.
	if _, err := f.log.makeCheckpoint(ctx); err != nil {
		t.Fatalf("checkpoint after another writer: %v", err)
	}
	e, err := f.log.Append(ctx, sampleEvent(200))
	if err != nil {
		t.Fatalf("append after another writer signed: %v", err)
	}
	if e.Seq != 6 {
		t.Fatalf("seq %d, want 6", e.Seq)
	}
	if rep, err := f.log.Verify(ctx); err != nil || rep.TreeSize != 6 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
