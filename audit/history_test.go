package audit

import (
	"context"
	"testing"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// insiderRewrite plays the insider who holds the checkpoint signing key (it
// lives in the data directory) and the right to add to the witness (the
// vault's S3 credentials): with the triggers dropped, every event after
// keep goes with its tree hashes and checkpoints, a writer with the genuine
// key that does not see the witness appends other events past the old
// size and signs a checkpoint over them, and that checkpoint is put at the
// witness as its newest. The witness's older checkpoints, which cannot be
// removed, still commit to the original events. It returns the forged
// checkpoint.
func insiderRewrite(t *testing.T, f *fixture, keep int64, grow int) []byte {
	t.Helper()
	forged := insiderResign(t, f, keep, grow)
	f.witness.plant(mustCheckpointSize(t, forged), forged)
	return forged
}

// insiderResign rewrites the log as insiderRewrite does, and returns the
// forged checkpoint without putting it at the witness.
func insiderResign(t *testing.T, f *fixture, keep int64, grow int) []byte {
	t.Helper()
	ctx := context.Background()
	if err := f.log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	truncateTail(t, f, keep)
	blind := f.opts
	blind.Witnesses, blind.Registerer = nil, nil
	l := openLog(t, f.db, blind)
	for i := range grow {
		if _, err := l.Append(ctx, sampleEvent(500+i)); err != nil {
			t.Fatal(err)
		}
	}
	forged, err := l.makeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return forged
}

func mustCheckpointSize(t *testing.T, signed []byte) int64 {
	t.Helper()
	n, err := CheckpointSize(signed)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readOnly opens the log as `vaultd audit verify` does, with f's witness.
func readOnly(t *testing.T, f *fixture) *Log {
	t.Helper()
	ro := f.opts
	ro.ReadOnly, ro.Registerer = true, nil
	return openLog(t, f.db, ro)
}

// TestVerifyChecksOlderWitnessedCheckpoints: a log rewritten and re-signed
// with the genuine key, its forged checkpoint the witness's newest, is
// consistent in itself and with that newest checkpoint; the older
// checkpoint the witness still holds is what shows the rewrite, in the
// full and in the incremental verification, naming the witness and size.
// Each case runs with a witness that reads every checkpoint (names of
// earlier releases) and with one that passes all but the newest by the
// root in their names.
func TestVerifyChecksOlderWitnessedCheckpoints(t *testing.T) {
	for _, named := range []bool{false, true} {
		mode := "read"
		if named {
			mode = "named"
		}
		t.Run(mode, func(t *testing.T) { testOlderWitnessed(t, named) })
	}
}

func testOlderWitnessed(t *testing.T, named bool) {
	ctx := context.Background()
	incrementalFixture := func(t *testing.T, d string) (*fixture, []byte, []byte) {
		f, cp10, cp15 := incrementalFixture(t, d)
		f.witness.named = named
		return f, cp10, cp15
	}
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d)+"/full", func(t *testing.T) {
			f, _, _ := incrementalFixture(t, d) // witnessed at 10 and 15
			forged := insiderRewrite(t, f, 3, 20)
			if n := mustCheckpointSize(t, forged); n != 23 {
				t.Fatalf("forged checkpoint at %d, want 23", n)
			}
			l := readOnly(t, f)
			_, err := l.Verify(ctx)
			wantVerifyError(t, err, 15, "witnessed (memory) checkpoint at size 15 does not match the log's tree root")
			_, _, err = l.VerifySince(ctx, nil)
			wantVerifyError(t, err, 15, "witnessed (memory) checkpoint at size 15 does not match the log's tree root")
		})
		t.Run(sqldbtest.Name(d)+"/incremental", func(t *testing.T) {
			// The last verified checkpoint (10) is still a prefix of the
			// rewritten log: only the witnessed 15 after it shows the
			// rewrite of events 13..15.
			f, cp10, _ := incrementalFixture(t, d)
			insiderRewrite(t, f, 12, 8)
			_, _, err := readOnly(t, f).VerifySince(ctx, cp10)
			wantVerifyError(t, err, 15, "witnessed (memory) checkpoint at size 15 does not match the log's tree root")
		})
		t.Run(sqldbtest.Name(d)+"/genuine", func(t *testing.T) {
			// Without the rewrite every witnessed checkpoint matches; an
			// incremental run checks only those after its last one.
			f, cp10, cp15 := incrementalFixture(t, d)
			f.appendN(t, 4)
			if _, err := f.log.makeCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			l := readOnly(t, f)
			rep, err := l.Verify(ctx)
			if err != nil || rep.Witnessed != 3 {
				t.Fatalf("full verify of a genuine log: %+v %v; want 3 witnessed checkpoints", rep, err)
			}
			for _, c := range []struct {
				since []byte
				want  int
			}{{nil, 3}, {cp10, 2}, {cp15, 1}} {
				rep, _, err := l.VerifySince(ctx, c.since)
				if err != nil || rep.Witnessed != c.want {
					t.Fatalf("incremental from %d: %+v %v; want %d witnessed checkpoints", rep.From-1, rep, err, c.want)
				}
			}
		})
		t.Run(sqldbtest.Name(d)+"/planted", func(t *testing.T) {
			// What the witness holds must be genuine: a checkpoint signed
			// with another key, or kept under another size's name, is
			// named, not passed over.
			f, _, _ := incrementalFixture(t, d)
			other := newFixture(t, d)
			other.appendN(t, 3)
			foreign, err := other.log.makeCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			f.witness.plant(3, foreign)
			_, err = readOnly(t, f).Verify(ctx)
			if named {
				// Passed by its name, which commits to another log.
				wantVerifyError(t, err, 3, "witnessed (memory) checkpoint at size 3 does not match the log's tree root")
			} else {
				wantVerifyError(t, err, 0, "holds a checkpoint at size 3 that does not verify with this vault's checkpoint key")
			}

			g, _, cp15 := incrementalFixture(t, d)
			g.witness.plant(12, cp15)
			_, err = readOnly(t, g).Verify(ctx)
			if named {
				wantVerifyError(t, err, 12, "witnessed (memory) checkpoint at size 12 does not match the log's tree root")
			} else {
				wantVerifyError(t, err, 0, "holds a checkpoint of size 15 under the name of size 12")
			}

		})
		t.Run(sqldbtest.Name(d)+"/same-size", func(t *testing.T) {
			// The log is rewritten back to its old size, so the forged
			// checkpoint and the genuine one have the same size (and, in
			// a witness of this release, distinct names), and the forged
			// one is the newest, read first: the genuine one beside it,
			// passed by name, shows the rewrite.
			f, _, _ := incrementalFixture(t, d)
			forged := insiderResign(t, f, 3, 12)
			if n := mustCheckpointSize(t, forged); n != 15 {
				t.Fatalf("forged checkpoint at %d, want 15", n)
			}
			f.witness.plantNewest(forged)
			l := readOnly(t, f)
			_, err := l.Verify(ctx)
			wantVerifyError(t, err, 15, "witnessed (memory) checkpoint at size 15 does not match the log's tree root")
			_, _, err = l.VerifySince(ctx, nil)
			wantVerifyError(t, err, 15, "witnessed (memory) checkpoint at size 15 does not match the log's tree root")
		})
		t.Run(sqldbtest.Name(d)+"/truncated", func(t *testing.T) {
			// An older witnessed checkpoint beyond the log is the
			// truncation it always was.
			f, _, _ := incrementalFixture(t, d)
			if err := f.log.Close(ctx); err != nil {
				t.Fatal(err)
			}
			truncateTail(t, f, 12)
			f.witness.mu.Lock()
			f.witness.size, f.witness.signed = 0, nil // the newest alone taken away
			f.witness.mu.Unlock()
			_, err := readOnly(t, f).Verify(ctx)
			wantVerifyError(t, err, 13, "log ends at seq 12 but the witnessed (memory) checkpoint covers 15 events")
		})
	}
}
