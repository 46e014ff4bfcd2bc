package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditVerifyIncremental: `vaultd audit verify --incremental` checks the
// whole log the first time, keeps the checkpoint it vouched for, then
// checks only what was appended since; tampering in the new part fails it
// naming the event, and a forged state file is refused.
func TestAuditVerifyIncremental(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			// Every command appends and signs a checkpoint as it closes.
			s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
			s.mustCLI("", "org", "add", "--name", "Acme", "--kind", "provider")
			out := s.mustCLI("", "audit", "verify", "--incremental")
			if !strings.Contains(out, "audit log OK") || !strings.Contains(out, "events 1 to ") {
				t.Fatalf("first incremental run: %s", out)
			}
			state := filepath.Join(s.data, "audit-verified")
			first, err := os.ReadFile(state)
			if err != nil || !strings.Contains(string(first), "\n— ") {
				t.Fatalf("state file: %q %v", first, err)
			}
			s.mustCLI("", "org", "add", "--name", "Inspectorate", "--kind", "supervision")
			out = s.mustCLI("", "audit", "verify", "--incremental")
			if !strings.Contains(out, "audit log OK") || strings.Contains(out, "events 1 to ") {
				t.Fatalf("second incremental run re-read the log from the start: %s", out)
			}
			second, _ := os.ReadFile(state)
			if string(second) == string(first) {
				t.Fatal("the state did not move to the newer checkpoint")
			}

			// Tamper with the newest event, after the kept checkpoint.
			s.mustCLI("", "org", "add", "--name", "Other Co", "--kind", "operator")
			var last string
			db, err := openSQL(s.dbURL())
			if err != nil {
				t.Fatal(err)
			}
			seqs, err := db.strings(`SELECT CAST(MAX(seq) AS TEXT) FROM audit_events`)
			db.close()
			if err != nil || len(seqs) != 1 {
				t.Fatalf("max seq: %v %v", seqs, err)
			}
			last = seqs[0]
			if strings.HasPrefix(s.dbURL(), "postgres") {
				s.sql(t, `ALTER TABLE audit_events DISABLE TRIGGER USER`,
					`UPDATE audit_events SET actor = 'someone-else' WHERE seq = `+last)
			} else {
				s.sqliteDropAuditTriggers(t)
				s.sql(t, `UPDATE audit_events SET actor = 'someone-else' WHERE seq = `+last)
			}
			out, errs, code := s.cli("", "audit", "verify", "--incremental")
			if code != 1 || !strings.Contains(out+errs, "seq "+last) {
				t.Fatalf("tampered new part: exit %d: %s %s", code, out, errs)
			}
			// The default state lies in the data directory, which whoever
			// holds the checkpoint key may write: said on every run.
			if !strings.Contains(errs, "is in the data directory") {
				t.Errorf("no warning about the state's place: %s", errs)
			}
			if after, _ := os.ReadFile(state); string(after) != string(second) {
				t.Fatal("a failed run moved the state")
			}

			forged := filepath.Join(t.TempDir(), "forged")
			if err := os.WriteFile(forged, []byte("crvault\n999\nAAAA\n\n— nobody AAAA\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errs, code = s.cli("", "audit", "verify", "--incremental", "--state", forged)
			if code != 1 || !strings.Contains(out+errs, "does not verify") {
				t.Fatalf("forged state: exit %d: %s %s", code, out, errs)
			}
			if strings.Contains(errs, "is in the data directory") {
				t.Errorf("warned about a state kept elsewhere: %s", errs)
			}
		})
	}
}
