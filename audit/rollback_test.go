package audit

import (
	"context"
	"errors"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// truncateTail plays the database administrator of issue 8: with the
// triggers dropped, the newest events go together with their tree hashes
// and every checkpoint that covered them, leaving a shorter log that is
// consistent in itself.
func truncateTail(t *testing.T, f *fixture, keep int64) {
	t.Helper()
	dropTriggers(t, f.db)
	exec(t, f.db, "DELETE FROM audit_events WHERE seq > ?", keep)
	exec(t, f.db, "DELETE FROM audit_hashes WHERE idx >= ?", tlog.StoredHashCount(keep))
	exec(t, f.db, "DELETE FROM audit_checkpoints WHERE size > ?", keep)
}

func wantVerifyError(t *testing.T, err error, seq int64, reason string) {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *VerifyError", err)
	}
	if ve.Seq != seq || !strings.Contains(ve.Reason, reason) {
		t.Fatalf("got seq %d %q; want seq %d containing %q", ve.Seq, ve.Reason, seq, reason)
	}
}

func checkpointRows(t *testing.T, f *fixture, above int64) int64 {
	t.Helper()
	var n int64
	if err := f.db.Raw("SELECT COUNT(*) FROM audit_checkpoints WHERE size > ?", above).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStartupRefusesTruncatedLog: a writer does not open on a log shorter
// than, or diverging from, the checkpoint its witness holds, and names the
// first missing event; verification says the same.
func TestStartupRefusesTruncatedLog(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 12)
			if err := f.log.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if size, _ := f.witness.latest(); size != 12 {
				t.Fatalf("witness holds size %d after close, want 12", size)
			}
			truncateTail(t, f, 9)

			opts := f.opts
			opts.Registerer = nil
			_, err := Open(ctx, f.db, opts)
			wantVerifyError(t, err, 10, "witnessed (memory) checkpoint covers 12 events")

			ro := opts
			ro.ReadOnly = true
			_, err = openLog(t, f.db, ro).Verify(ctx)
			wantVerifyError(t, err, 10, "witnessed (memory) checkpoint covers 12")

			// Regrown past the witnessed size by a writer that does not
			// see the witness: longer, but not an extension.
			blind := opts
			blind.Witnesses = nil
			l2 := openLog(t, f.db, blind)
			for i := range 5 {
				if _, err := l2.Append(ctx, sampleEvent(100+i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l2.Close(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = Open(ctx, f.db, opts)
			wantVerifyError(t, err, 12, "witnessed (memory) checkpoint at size 12 does not match")
		})
	}
}

// TestRunningLogHaltsOnTruncation: the tail is removed under a running
// writer. The next append fails closed, naming the first missing event, no
// checkpoint is signed over the shortened log, and the log stays halted.
func TestRunningLogHaltsOnTruncation(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d)+"/append", func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 10)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			truncateTail(t, f, 7)
			_, err := f.log.Append(ctx, sampleEvent(1))
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrRolledBack) {
				t.Fatalf("append after truncation: %v, want ErrUnavailable and ErrRolledBack", err)
			}
			wantVerifyError(t, err, 8, "events 8..10 were removed")
			if _, err := f.log.Append(ctx, sampleEvent(2)); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("second append: %v", err)
			}
			if err := f.log.Ping(ctx); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("ping: %v", err)
			}
			if _, err := f.log.makeCheckpoint(ctx); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("checkpoint: %v", err)
			}
			if err := f.log.Close(ctx); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("close: %v", err)
			}
			if n := checkpointRows(t, f, 7); n != 0 {
				t.Fatalf("%d checkpoints signed over the truncated log", n)
			}
			if size, _ := f.witness.latest(); size != 10 {
				t.Fatalf("witness went from 10 to %d", size)
			}
			var m dto.Metric
			if err := f.log.m.rolledBack.Write(&m); err != nil || m.GetGauge().GetValue() != 1 {
				t.Fatalf("crvault_audit_rolled_back = %v (%v), want 1", m.GetGauge().GetValue(), err)
			}
		})
		t.Run(sqldbtest.Name(d)+"/checkpointer", func(t *testing.T) {
			// No append comes along: the checkpointer notices.
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 10)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			truncateTail(t, f, 7)
			_, err := f.log.makeCheckpoint(ctx)
			wantVerifyError(t, err, 8, "checkpoint covers 10 events")
			if _, err := f.log.Append(ctx, sampleEvent(1)); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("append after the checkpointer halted: %v", err)
			}
		})
		t.Run(sqldbtest.Name(d)+"/regrown by another writer", func(t *testing.T) {
			// The tail is replaced by other events of a writer that does
			// not know the witness (the log is longer than before): the
			// running writer refuses to sign a tree that does not extend
			// its last checkpoint.
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 10)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			truncateTail(t, f, 7)
			blind := f.opts
			blind.Witnesses, blind.Registerer = nil, nil
			l2 := openLog(t, reopen(t, f.db), blind)
			for i := range 6 {
				if _, err := l2.Append(ctx, sampleEvent(50+i)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := f.log.makeCheckpoint(ctx)
			wantVerifyError(t, err, 10, "is not an extension of the latest signed checkpoint at size 10")
			if n := checkpointRows(t, f, 10); n != 0 {
				t.Fatalf("%d checkpoints signed over the rewritten log", n)
			}
		})
	}
}

// TestWitnessCatchesUpAndAnotherWriterIsNoRollback: a witness configured
// later gets the newest checkpoint at start-up, and a second writer on the
// same database (a second vaultd) that signs ahead is not mistaken for a
// rollback.
func TestWitnessCatchesUpAndAnotherWriterIsNoRollback(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 5)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			late := &memWitness{}
			opts := f.opts
			opts.Witnesses = []Witness{f.witness, late}
			opts.Registerer = nil
			l2 := openLog(t, reopen(t, f.db), opts)
			if size, _ := late.latest(); size != 5 {
				t.Fatalf("late witness holds %d after start-up, want 5", size)
			}
			for i := range 4 {
				if _, err := l2.Append(ctx, sampleEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l2.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			// The first writer is behind the shared witness now; its own
			// appends and checkpoints go on.
			f.appendN(t, 2)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatalf("first writer after the second signed ahead: %v", err)
			}
			if size, _ := f.witness.latest(); size != 11 {
				t.Fatalf("shared witness holds %d, want 11", size)
			}
			if _, err := f.log.Verify(ctx); err != nil {
				t.Fatal(err)
			}
			// A witness ahead of a checkpoint being handed over (the
			// other writer was faster) is checked against the log: fine
			// while the log holds it, a rollback once it does not.
			root, err := tlog.TreeHash(7, dbHashes{ctx: ctx, q: f.log.sqlDB, ph: f.log.ph})
			if err != nil {
				t.Fatal(err)
			}
			at7, err := signCheckpoint(f.log.signer, 7, root)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.log.witness(ctx, 7, at7); err != nil {
				t.Fatalf("witness ahead of a consistent log: %v", err)
			}
			truncateTail(t, f, 8)
			err = f.log.witness(ctx, 7, at7)
			wantVerifyError(t, err, 9, "witnessed (memory) checkpoint covers 11 events")
			if _, err := f.log.Append(ctx, sampleEvent(1)); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("append after a witness showed the rollback: %v", err)
			}
		})
	}
}
