package audit

import (
	"bytes"
	"context"
	"testing"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// incrementalFixture is a log of 15 events with checkpoints at 10 and 15
// (stored, and handed to the memory witness).
func incrementalFixture(t *testing.T, d string) (*fixture, []byte, []byte) {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, d)
	f.appendN(t, 10)
	cp10, err := f.log.makeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := f.log.Append(ctx, sampleEvent(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	cp15, err := f.log.makeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f, cp10, cp15
}

// TestVerifySince: an incremental verification reads only what follows the
// last verified checkpoint, hands back the newest checkpoint it vouched for,
// catches tampering in the new part, and refuses a log shorter than, or not
// an extension of, the verified checkpoint or any visible one.
func TestVerifySince(t *testing.T) {
	ctx := context.Background()
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d)+"/chain", func(t *testing.T) {
			f, cp10, cp15 := incrementalFixture(t, d)
			rep, note, err := f.log.VerifySince(ctx, nil)
			if err != nil || rep.From != 1 || rep.To != 15 || !bytes.Equal(note, cp15) {
				t.Fatalf("from the start: %+v %v, note is cp15: %v", rep, err, bytes.Equal(note, cp15))
			}
			rep, note, err = f.log.VerifySince(ctx, cp10)
			if err != nil || rep.From != 11 || rep.To != 15 || rep.Covered != 15 || !bytes.Equal(note, cp15) {
				t.Fatalf("since 10: %+v %v", rep, err)
			}
			full, err := f.log.Verify(ctx)
			if err != nil || full.Root != rep.Root {
				t.Fatalf("full verify %+v %v; incremental root %s", full, err, rep.Root)
			}
			// Nothing new: the same checkpoint comes back.
			rep, note, err = f.log.VerifySince(ctx, cp15)
			if err != nil || rep.From != 16 || rep.To != 15 || !bytes.Equal(note, cp15) {
				t.Fatalf("since 15: %+v %v", rep, err)
			}
			// Events not yet under a checkpoint are checked but vouch for
			// nothing new.
			f.appendN(t, 3)
			rep, note, err = f.log.VerifySince(ctx, cp15)
			if err != nil || rep.To != 18 || rep.Covered != 15 || !bytes.Equal(note, cp15) {
				t.Fatalf("since 15 with 3 more: %+v %v", rep, err)
			}
			// A state signed by another key is refused.
			other := newFixture(t, d)
			other.appendN(t, 10)
			foreign, err := other.log.makeCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = f.log.VerifySince(ctx, foreign)
			wantVerifyError(t, err, 0, "last verified checkpoint does not verify")
		})
		t.Run(sqldbtest.Name(d)+"/tampered-new-part", func(t *testing.T) {
			f, cp10, _ := incrementalFixture(t, d)
			dropTriggers(t, f.db)
			exec(t, f.db, "UPDATE audit_events SET purpose = 'curiosity' WHERE seq = 13")
			_, _, err := f.log.VerifySince(ctx, cp10)
			wantVerifyError(t, err, 13, "content does not match its hash")
		})
		t.Run(sqldbtest.Name(d)+"/tampered-last-verified-event", func(t *testing.T) {
			f, cp10, _ := incrementalFixture(t, d)
			dropTriggers(t, f.db)
			// Event 10 is rewritten with a hash that matches its new
			// content: only the checkpoint's tree can tell.
			var e Event
			evs, prevs, err := f.log.readEvents(ctx, 10, 10)
			if err != nil {
				t.Fatal(err)
			}
			e = evs[0]
			e.Purpose = "curiosity"
			exec(t, f.db, "UPDATE audit_events SET purpose = ?, hash = ? WHERE seq = 10", e.Purpose, hashHex(Canonical(e, prevs[0])))
			_, _, err = f.log.VerifySince(ctx, cp10)
			wantVerifyError(t, err, 10, "not the one the last verified checkpoint holds")
		})
		t.Run(sqldbtest.Name(d)+"/rolled-back-below-verified", func(t *testing.T) {
			f, _, cp15 := incrementalFixture(t, d)
			truncateTail(t, f, 12)
			_, _, err := f.log.VerifySince(ctx, cp15)
			wantVerifyError(t, err, 13, "last verified checkpoint covers 15")
		})
		t.Run(sqldbtest.Name(d)+"/rolled-back-below-witness", func(t *testing.T) {
			f, cp10, _ := incrementalFixture(t, d)
			truncateTail(t, f, 12) // the stored checkpoint 15 goes; the witness keeps it
			_, _, err := f.log.VerifySince(ctx, cp10)
			wantVerifyError(t, err, 13, "witnessed (memory) checkpoint covers 15")
		})
		t.Run(sqldbtest.Name(d)+"/rewritten-and-regrown", func(t *testing.T) {
			f, cp10, _ := incrementalFixture(t, d)
			if err := f.log.Close(ctx); err != nil {
				t.Fatal(err)
			}
			truncateTail(t, f, 8)
			blind := f.opts
			blind.Witnesses, blind.Registerer = nil, nil
			l2 := openLog(t, f.db, blind)
			for i := range 12 {
				if _, err := l2.Append(ctx, sampleEvent(200+i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l2.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			_, _, err := l2.VerifySince(ctx, cp10)
			wantVerifyError(t, err, 10, "no longer has the root of the last verified checkpoint")
		})
	}
}
