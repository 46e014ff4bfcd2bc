package audit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

const insertEventRow = `INSERT INTO audit_events (seq, at_us, actor, actor_org, action, outcome, case_id, resource, purpose, ip, request_id, detail, prev_hash, hash)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// appendForged appends a well-formed event at the tail (chain and tree
// hashes right), as anyone with INSERT on the audit tables can: the format
// is public. Only its time gives it away.
func appendForged(t *testing.T, f *fixture, e Event) {
	t.Helper()
	ctx := context.Background()
	sqlDB, err := f.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	size, prev, err := head(ctx, sqlDB)
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = size + 1
	c := Canonical(e, prev)
	e.Hash = hashHex(c)
	hs, err := newBuilder(size, dbHashes{ctx: ctx, q: sqlDB, ph: f.log.ph}).add(tlog.RecordHash(c))
	if err != nil {
		t.Fatal(err)
	}
	exec(t, f.db, insertEventRow, e.Seq, e.Time.UnixMicro(), e.Actor, e.ActorOrg, e.Action, string(e.Outcome), e.CaseID,
		e.Resource, e.Purpose, e.IP, e.RequestID, e.Detail, prev, e.Hash)
	first := tlog.StoredHashCount(size)
	for i, h := range hs {
		exec(t, f.db, "INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)", first+int64(i), h[:])
	}
}

// bothVerifiesRefuse runs the full and the incremental verification (from
// note, the last verified checkpoint) and wants both to refuse, naming why.
func bothVerifiesRefuse(t *testing.T, f *fixture, note []byte, why string) {
	t.Helper()
	ctx := context.Background()
	_, err := f.log.Verify(ctx)
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(ve.Reason, why) {
		t.Errorf("full verify: %v; want a VerifyError saying %q", err, why)
	}
	_, _, err = f.log.VerifySince(ctx, note)
	if !errors.As(err, &ve) || !strings.Contains(ve.Reason, why) {
		t.Errorf("incremental verify: %v; want a VerifyError saying %q", err, why)
	}
}

// TestEventsOutsideTheNumbering: a row numbered below 1 is met by no walk
// of the chain; it needs only INSERT, which the application's role has.
// Verification names it, and queries never serve it.
func TestEventsOutsideTheNumbering(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 5)
			note, err := f.log.makeCheckpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			when := time.Now().Add(-30 * 24 * time.Hour).UnixMicro()
			exec(t, f.db, insertEventRow, 0, when, "alice", "org-b", "material.read", "allowed", "case-0",
				"material/secret", "curiosity", "10.0.0.9", "req-x", "", "forged", "forged")
			bothVerifiesRefuse(t, f, note, "numbered below 1")
			for _, q := range []Filter{{CaseID: "case-0"}, {Actor: "alice"}, {}, {Since: time.UnixMicro(when - 1)}} {
				evs, _, err := f.log.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range evs {
					if e.Seq < 1 {
						t.Errorf("query %+v serves event %d", q, e.Seq)
					}
				}
			}
		})
	}
}

// TestTimeOrderVerified: times never go backwards along the log, and
// queries turn time ranges into ranges of sequence numbers on that
// promise. An event dated before the one it follows (which would hide a
// range's genuine events from since= queries), or far in the future (which
// would drag every later event's time up to it), fails verification.
func TestTimeOrderVerified(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		for _, tc := range []struct {
			name string
			at   func(last time.Time) time.Time
			why  string
		}{
			{"backdated", func(last time.Time) time.Time { return last.Add(-36 * time.Hour) }, "before the event it follows"},
			{"future", func(time.Time) time.Time { return time.Now().AddDate(10, 0, 0) }, "in the future"},
		} {
			t.Run(sqldbtest.Name(d)+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, d)
				ctx := context.Background()
				evs := f.appendN(t, 5)
				note, err := f.log.makeCheckpoint(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.log.Verify(ctx); err != nil {
					t.Fatalf("the genuine log: %v", err)
				}
				appendForged(t, f, Event{Time: tc.at(evs[len(evs)-1].Time), Actor: "nobody", ActorOrg: "x", Action: "case.read", Outcome: Allowed})
				bothVerifiesRefuse(t, f, note, tc.why)
			})
		}
	}
}

// TestSQLiteTextTypesVerified: SQLite keeps a value of any type in any
// column, and a blob equal to a string compares unequal to it, so an
// event whose actor or case is re-stored as a blob drops out of every
// filtered query while its hash still verifies. Verification names it.
func TestSQLiteTextTypesVerified(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 5)
	note, err := f.log.makeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.appendN(t, 3)
	dropTriggers(t, f.db)
	exec(t, f.db, "UPDATE audit_events SET actor = CAST(actor AS BLOB), case_id = CAST(case_id AS BLOB) WHERE seq = 7")
	bothVerifiesRefuse(t, f, note, "stored as another type")
}

// TestCheckpointerToleratesAnotherWriter: another process on the same
// SQLite file (a vaultd user add while the server runs) may append and
// sign a checkpoint between the checkpointer's read of the head and of the
// latest checkpoint. That is no rollback: the server goes on appending.
// (On PostgreSQL the checkpointer holds a lock that the other waits for.)
func TestCheckpointerToleratesAnotherWriter(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 3)
	f.log.Close(ctx)
	var other *Log
	ran := false
	opts := f.opts
	opts.Registerer = nil
	opts.afterHead = func() {
		if ran || other == nil {
			return
		}
		ran = true
		if _, err := other.Append(ctx, sampleEvent(9)); err != nil {
			t.Errorf("the other process's append: %v", err)
		}
		if _, err := other.makeCheckpoint(ctx); err != nil {
			t.Errorf("the other process's checkpoint: %v", err)
		}
	}
	server := openLog(t, f.db, opts)
	otherOpts := f.opts
	otherOpts.Registerer = nil
	other = openLog(t, f.db, otherOpts)
	if _, err := server.Append(ctx, sampleEvent(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.makeCheckpoint(ctx); err != nil {
		t.Fatalf("checkpoint while another process appended: %v", err)
	}
	if !ran {
		t.Fatal("the other process never ran: the test did not test")
	}
	if _, err := server.Append(ctx, sampleEvent(5)); err != nil {
		t.Fatalf("append after the checkpoint: %v", err)
	}
}

// TestCheckpointerRereadFailureIsNoRollback (review h29i): when another
// process signed past the head the checkpointer read, the head is read
// again; a failure of that read (a lost connection) says nothing about the
// log and must not halt it for good. Before the fix the unread head counted
// as a log ending at 0, and the server refused every write until a restart.
func TestCheckpointerRereadFailureIsNoRollback(t *testing.T) {
	f := newFixture(t, sqldb.SQLite)
	ctx := context.Background()
	f.appendN(t, 3)
	f.log.Close(ctx)
	var other *Log
	ckCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran, reread := false, false
	opts := f.opts
	opts.Registerer = nil
	opts.afterHead = func() {
		if ran || other == nil {
			return
		}
		ran = true
		if _, err := other.Append(ctx, sampleEvent(9)); err != nil {
			t.Errorf("the other process's append: %v", err)
		}
		if _, err := other.makeCheckpoint(ctx); err != nil {
			t.Errorf("the other process's checkpoint: %v", err)
		}
	}
	opts.beforeReread = func() {
		reread = true
		cancel() // the second read of the head fails
	}
	server := openLog(t, f.db, opts)
	otherOpts := f.opts
	otherOpts.Registerer = nil
	other = openLog(t, f.db, otherOpts)
	if _, err := server.Append(ctx, sampleEvent(4)); err != nil {
		t.Fatal(err)
	}
	_, err := server.makeCheckpoint(ckCtx)
	if !ran || !reread {
		t.Fatalf("the other process ran %v, the head was read again %v: the test did not test", ran, reread)
	}
	if err == nil || errors.Is(err, ErrRolledBack) {
		t.Fatalf("checkpoint with a failed second read of the head: %v, want a plain failure", err)
	}
	if err := server.anchor.haltErr(); err != nil {
		t.Fatalf("the log halted on a read that failed: %v", err)
	}
	if _, err := server.Append(ctx, sampleEvent(5)); err != nil {
		t.Fatalf("append after the failed checkpoint: %v", err)
	}
	if _, err := server.makeCheckpoint(ctx); err != nil {
		t.Fatalf("the next checkpoint: %v", err)
	}
}
