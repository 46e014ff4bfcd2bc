package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestTamperMatrix plays a database administrator who disables the
// append-only triggers and edits the log; Verify must name what and where.
func TestTamperMatrix(t *testing.T) {
	const n = 10
	tests := []struct {
		name    string
		tamper  func(t *testing.T, f *fixture)
		wantSeq int64
		want    string
	}{
		{"edited field", func(t *testing.T, f *fixture) {
			exec(t, f.db, "UPDATE audit_events SET purpose = 'curiosity' WHERE seq = 4")
		}, 4, "content does not match"},
		{"edited field with recomputed hash", func(t *testing.T, f *fixture) {
			e, prev := readOne(t, f, 4)
			e.Actor = "someone-else"
			exec(t, f.db, "UPDATE audit_events SET actor = ?, hash = ? WHERE seq = 4", e.Actor, hashHex(Canonical(e, prev)))
		}, 4, "stored tree hash"},
		{"deleted row", func(t *testing.T, f *fixture) {
			exec(t, f.db, "DELETE FROM audit_events WHERE seq = 5")
		}, 5, "event missing"},
		{"forged row inserted outside the writer", func(t *testing.T, f *fixture) {
			last, _ := readOne(t, f, n)
			e := sampleEvent(99)
			e.Seq, e.Time = n+1, last.Time
			e.Hash = hashHex(Canonical(e, last.Hash))
			exec(t, f.db, `INSERT INTO audit_events (seq, at_us, actor, actor_org, action, outcome, case_id, resource, purpose, ip, request_id, detail, prev_hash, hash)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, e.Seq, e.Time.UnixMicro(), e.Actor, e.ActorOrg, e.Action, string(e.Outcome),
				e.CaseID, e.Resource, e.Purpose, e.IP, e.RequestID, e.Detail, last.Hash, e.Hash)
		}, n + 1, "stored tree hash"},
		{"swapped rows", func(t *testing.T, f *fixture) {
			a, pa := readOne(t, f, 3)
			b, pb := readOne(t, f, 4)
			set := "UPDATE audit_events SET actor=?, action=?, outcome=?, resource=?, request_id=?, prev_hash=?, hash=? WHERE seq=?"
			exec(t, f.db, set, b.Actor, b.Action, string(b.Outcome), b.Resource, b.RequestID, pb, b.Hash, 3)
			exec(t, f.db, set, a.Actor, a.Action, string(a.Outcome), a.Resource, a.RequestID, pa, a.Hash, 4)
		}, 3, "content does not match"},
		{"truncated tail", func(t *testing.T, f *fixture) {
			exec(t, f.db, "DELETE FROM audit_events WHERE seq > 8")
		}, 9, "beyond the last event"},
		{"truncated tail and tree hashes", func(t *testing.T, f *fixture) {
			exec(t, f.db, "DELETE FROM audit_events WHERE seq > 8")
			exec(t, f.db, "DELETE FROM audit_hashes WHERE idx >= ?", tlog.StoredHashCount(8))
		}, 9, "stored checkpoint covers 10"},
		{"rollback to a self-consistent older state", func(t *testing.T, f *fixture) {
			exec(t, f.db, "DELETE FROM audit_events WHERE seq > 8")
			exec(t, f.db, "DELETE FROM audit_hashes WHERE idx >= ?", tlog.StoredHashCount(8))
			exec(t, f.db, "DELETE FROM audit_checkpoints WHERE size > 8")
		}, 9, "witnessed (memory) checkpoint covers 10"},
		{"rollback and regrow", func(t *testing.T, f *fixture) {
			exec(t, f.db, "DELETE FROM audit_events WHERE seq > 8")
			exec(t, f.db, "DELETE FROM audit_hashes WHERE idx >= ?", tlog.StoredHashCount(8))
			exec(t, f.db, "DELETE FROM audit_checkpoints WHERE size > 8")
			// A writer that does not know the witness (a restarted
			// server whose witness configuration was removed) carries on
			// from the shorter head.
			opts := f.opts
			opts.Witnesses, opts.Registerer = nil, nil
			l2 := openLog(t, reopen(t, f.db), opts)
			for i := range 3 {
				if _, err := l2.Append(context.Background(), sampleEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
		}, 10, "witnessed (memory) checkpoint at size 10 does not match"},
		{"checkpoint signed by another key", func(t *testing.T, f *fixture) {
			skey, _, err := note.GenerateKey(rand.Reader, DefaultOrigin)
			if err != nil {
				t.Fatal(err)
			}
			s, _, err := parseSignerKey(skey)
			if err != nil {
				t.Fatal(err)
			}
			var root tlog.Hash
			signed, err := signCheckpoint(s, 12, root)
			if err != nil {
				t.Fatal(err)
			}
			exec(t, f.db, "INSERT INTO audit_checkpoints (size, root, note, created_us) VALUES (?, ?, ?, 0)", 12, root[:], string(signed))
		}, 12, "signature does not verify"},
	}
	for _, d := range sqldbtest.Backends {
		for _, tc := range tests {
			t.Run(sqldbtest.Name(d)+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, d)
				ctx := context.Background()
				f.appendN(t, 8)
				if _, err := f.log.makeCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
				f.appendN(t, n-8)
				if _, err := f.log.makeCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := f.log.Verify(ctx); err != nil {
					t.Fatalf("verify before tampering: %v", err)
				}
				dropTriggers(t, f.db)
				tc.tamper(t, f)
				_, err := f.log.Verify(ctx)
				var ve *VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("verify after tampering: %v, want *VerifyError", err)
				}
				if ve.Seq != tc.wantSeq || !strings.Contains(ve.Reason, tc.want) {
					t.Fatalf("got seq %d %q; want seq %d containing %q", ve.Seq, ve.Reason, tc.wantSeq, tc.want)
				}
				// The same tampering is caught offline from an export,
				// against the witnessed (database-independent) checkpoint.
				if tc.name == "checkpoint signed by another key" {
					return
				}
				size, ck := f.witness.latest()
				if size != n {
					t.Fatalf("witness holds size %d, want %d", size, n)
				}
				var buf bytes.Buffer
				if err := f.log.Export(ctx, &buf, 1, 0); err != nil && !errors.Is(err, ErrInvalid) {
					t.Fatalf("export: %v", err)
				}
				rep, err := VerifyExport(&buf, ck, f.log.PublicKey(), nil)
				if tc.name == "forged row inserted outside the writer" {
					// Offline, a row appended after the newest checkpoint is
					// indistinguishable from a late append; it is reported
					// as not covered by the checkpoint.
					if err != nil || rep.Covered != n || rep.TreeSize != n+1 {
						t.Fatalf("forged tail offline: %+v %v", rep, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("offline verification accepted the tampered log")
				}
			})
		}
	}
}

func readOne(t *testing.T, f *fixture, seq int64) (Event, string) {
	t.Helper()
	evs, prevs, err := f.log.readEvents(context.Background(), seq, seq)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read seq %d: %v", seq, err)
	}
	return evs[0], prevs[0]
}
