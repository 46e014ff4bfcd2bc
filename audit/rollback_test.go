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
			// Nothing signed over the truncated log: the one checkpoint
			// above it is the tree the writer committed, kept as evidence.
			if n := checkpointRows(t, f, 10); n != 0 {
				t.Fatalf("%d checkpoints signed beyond the writer's own tree", n)
			}
			if n := checkpointRows(t, f, 9); n > 1 {
				t.Fatalf("%d checkpoints at size 10", n)
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

// forgeTail plays the database administrator of review h29b (finding 3):
// the events after keep, which no checkpoint covers yet, are replaced by n
// others, chained and hashed as a writer would (a second, blind writer here;
// the administrator needs no key for this), so that the log is longer than
// before and consistent in itself, and nothing but the running writer's own
// memory remembers the originals. The checkpoints the blind writer signed
// on closing go too: the administrator could not have made them.
func forgeTail(t *testing.T, f *fixture, keep int64, n int) {
	t.Helper()
	truncateTail(t, f, keep)
	blind := f.opts
	blind.Witnesses, blind.Registerer = nil, nil
	l2, err := Open(context.Background(), f.db, blind)
	if err != nil {
		t.Fatalf("open the forger's writer: %v", err)
	}
	for i := range n {
		if _, err := l2.Append(context.Background(), sampleEvent(200+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	exec(t, f.db, "DELETE FROM audit_checkpoints WHERE size > ?", keep)
}

// TestRunningLogHaltsOnRewrittenTail (review h29b, finding 3): the events a
// running writer committed after the newest checkpoint are rewritten under
// it, and the log made longer than before, so that it looks like another
// process's appends. Neither the next append nor the next checkpoint takes
// it: the log halts, naming the last event this writer committed, no
// checkpoint is signed over the forged tail, and the tree the writer
// committed is signed and witnessed, so that a restart and verify refuse
// the log too. Before the fix the writer appended to it and the
// checkpointer signed it.
func TestRunningLogHaltsOnRewrittenTail(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		for _, first := range []string{"append", "checkpoint"} {
			t.Run(sqldbtest.Name(d)+"/"+first, func(t *testing.T) {
				f := newFixture(t, d)
				ctx := context.Background()
				f.appendN(t, 10)
				if _, err := f.log.makeCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
				f.appendN(t, 5) // 11..15, anchored by this writer alone
				forgeTail(t, f, 10, 8)
				var err error
				if first == "append" {
					_, err = f.log.Append(ctx, sampleEvent(1))
				} else {
					_, err = f.log.makeCheckpoint(ctx)
				}
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrRolledBack) {
					t.Fatalf("%s over the rewritten tail: %v, want ErrUnavailable and ErrRolledBack", first, err)
				}
				wantVerifyError(t, err, 15, "what this server committed up to seq 15")
				if _, err := f.log.makeCheckpoint(ctx); !errors.Is(err, ErrRolledBack) {
					t.Fatalf("checkpoint after the halt: %v", err)
				}
				if n := checkpointRows(t, f, 15); n != 0 {
					t.Fatalf("%d checkpoints signed over the forged tail", n)
				}
				// The halt outlives the process: the tree this writer
				// committed was signed and witnessed, and a restart, or a
				// verify, refuses the rewritten log.
				// Kept in the background (halt): wait for it.
				f.log.preserving.Wait()
				if size, _ := f.witness.latest(); size != 15 {
					t.Fatalf("witness holds size %d, want the writer's own 15", size)
				}
				opts := f.opts
				opts.Registerer = nil
				_, err = Open(ctx, f.db, opts)
				wantVerifyError(t, err, 15, "checkpoint at size 15 does not match the log's tree")
				ro := opts
				ro.ReadOnly, ro.Witnesses = true, nil // the database's copy alone
				_, err = openLog(t, f.db, ro).Verify(ctx)
				var ve *VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("verify of the rewritten log, with the database's checkpoints only: %v, want a *VerifyError", err)
				}
			})
		}
	}
}

// TestRunningLogTakesAnotherWritersAppends: a head that moved because
// another process appended (vaultd user add beside the server, a second
// instance) extends what this writer committed, and is taken as before.
func TestRunningLogTakesAnotherWritersAppends(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 10)
			other := f.opts
			other.Witnesses, other.Registerer = nil, nil
			l2 := openLog(t, f.db, other)
			for i := range 3 {
				if _, err := l2.Append(ctx, sampleEvent(300+i)); err != nil {
					t.Fatal(err)
				}
			}
			e, err := f.log.Append(ctx, sampleEvent(1))
			if err != nil || e.Seq != 14 {
				t.Fatalf("append after another writer's: seq %d, %v", e.Seq, err)
			}
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
		})
	}
}

// TestTruncatedUnsignedTailLeavesEvidence (review h29i, finding 3): the
// administrator deletes the events a running writer committed after the
// newest checkpoint, without regrowing the log. The next append halts, and
// the tree the writer committed is kept at the witness and in the database,
// so a restart refuses the shortened log and verify fails. Before, the halt
// kept nothing, and both accepted it.
func TestTruncatedUnsignedTailLeavesEvidence(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 10)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			f.appendN(t, 5) // 11..15: the reads the administrator wants gone
			truncateTail(t, f, 10)
			if _, err := f.log.Append(ctx, sampleEvent(1)); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("append: %v, want ErrRolledBack", err)
			}
			f.log.preserving.Wait() // the evidence is kept in the background
			if size, _ := f.witness.latest(); size != 15 {
				t.Fatalf("witness holds size %d, want the writer's own 15", size)
			}
			opts := f.opts
			opts.Registerer = nil
			_, err := Open(ctx, f.db, opts)
			wantVerifyError(t, err, 11, "checkpoint covers 15 events")
			ro := f.opts
			ro.ReadOnly, ro.Registerer, ro.Witnesses = true, nil, nil // the database's copy alone
			if _, err := openLog(t, f.db, ro).Verify(ctx); err == nil {
				t.Fatal("verify passes on the truncated log")
			}
		})
	}
}

// TestHaltKeepsEvidenceAfterAnotherInstanceSigned (review h29i, finding 2):
// with two instances, the administrator rewrites the events one of them (A)
// committed after the newest checkpoint, and the other (B), which never
// built on them, signs and witnesses the longer forged log. A halts at its
// next append, but the witness refuses A's tree as stale. Before, nothing
// kept it beyond the database row the administrator also owns: deleting
// that row, a restart of A and a verify both accepted the forged log. Now
// the witness keeps it as evidence, and both refuse.
func TestHaltKeepsEvidenceAfterAnotherInstanceSigned(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 10)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			bOpts := f.opts
			bOpts.Registerer = nil
			b := openLog(t, reopen(t, f.db), bOpts) // B: another vaultd, same witness
			f.appendN(t, 5)                         // A's 11..15
			forgeTail(t, f, 10, 8)                  // 11..18, none of them A's
			if _, err := b.makeCheckpoint(ctx); err != nil {
				t.Fatalf("B signs the forged log (the documented gap): %v", err)
			}
			if size, _ := f.witness.latest(); size != 18 {
				t.Fatalf("witness newest %d, want B's 18", size)
			}
			if _, err := f.log.Append(ctx, sampleEvent(1)); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("A's append over the rewritten tail: %v, want ErrRolledBack", err)
			}
			f.log.preserving.Wait()
			exec(t, f.db, "DELETE FROM audit_checkpoints WHERE size = 15") // the administrator owns this table
			opts := f.opts
			opts.Registerer = nil
			_, err := Open(ctx, f.db, opts)
			wantVerifyError(t, err, 15, "kept as evidence")
			ro := opts
			ro.ReadOnly = true
			_, err = openLog(t, f.db, ro).Verify(ctx)
			wantVerifyError(t, err, 15, "kept as evidence")
		})
	}
}
