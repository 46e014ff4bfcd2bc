package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func vaultctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(vaultctlBin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestAuditTrailInspection takes an export, a checkpoint and the public key
// from a real server run and proves offline, with no database, that a read
// happened; then shows that the CLI names the first bad entry of an edited
// export and of an edited database.
func TestAuditTrailInspection(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-AUDIT")
			for id := range docs {
				w.op.expect(200, "GET", "/materials/"+id+"/content", nil)
			}
			// Checkpoints are signed at least every 10 s while events arrive;
			// wait for one that covers the reads.
			var size int64
			var cp []byte
			evs := w.insp.events("case=" + caseID + "&action=material.read")
			if len(evs) == 0 {
				t.Fatal("no material.read events")
			}
			target := evs[len(evs)-1].Seq
			deadline := time.Now().Add(40 * time.Second)
			for {
				cp = w.insp.expect(200, "GET", "/audit/checkpoint", nil).Body
				lines := strings.Split(string(cp), "\n")
				if len(lines) > 2 {
					if n, err := parseInt(lines[1]); err == nil {
						size = n
					}
				}
				if size >= target || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Second)
			}
			if size < target {
				t.Fatalf("no checkpoint covered seq %d within 40 s (size %d)", target, size)
			}
			// Operators may fetch checkpoints and consistency proofs, not exports.
			w.op.expect(200, "GET", "/audit/checkpoint", nil)
			w.op.expect(200, "GET", "/audit/proofs/consistency?from=1&to="+itoa(size), nil)
			w.op.expect(403, "GET", "/audit/export", nil).problem(t)
			w.op.expect(403, "GET", "/audit/proofs/inclusion?seq=1", nil).problem(t)
			w.op.expect(403, "GET", "/audit/proofs/inclusion?seq=0", nil).problem(t) // permission before validation
			w.insp.expect(422, "GET", "/audit/proofs/inclusion?seq=0", nil).problem(t)
			w.insp.expect(422, "GET", "/audit/proofs/inclusion?seq=1&size=999999999", nil).problem(t)

			var incl struct {
				Seq      int64    `json:"seq"`
				TreeSize int64    `json:"tree_size"`
				Proof    []string `json:"proof"`
			}
			w.insp.expect(200, "GET", "/audit/proofs/inclusion?seq="+itoa(target)+"&size="+itoa(size), nil).json(t, &incl)
			if incl.Seq != target || incl.TreeSize != size {
				t.Fatalf("inclusion proof for %d in %d: %+v", target, size, incl)
			}

			exp := w.insp.expect(200, "GET", "/audit/export?to="+itoa(size), nil)
			if ct := exp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Fatalf("export content type %q", ct)
			}
			dir := t.TempDir()
			expPath, cpPath := filepath.Join(dir, "export.ndjson"), filepath.Join(dir, "checkpoint")
			os.WriteFile(expPath, exp.Body, 0o600)
			os.WriteFile(cpPath, cp, 0o600)
			key := s.mustCLI("", "audit", "pubkey")

			out, code := vaultctl(t, "audit", "verify", "--export", expPath, "--checkpoint", cpPath, "--key", key)
			if code != 0 {
				t.Fatalf("offline verification of a genuine export failed: %s", out)
			}
			// The read we care about is in the verified export.
			if !exportHas(t, exp.Body, target, "material.read", w.op.id) {
				t.Fatalf("seq %d is not a material.read by the operator in the export", target)
			}

			// An edited export is caught, naming the entry.
			edited := bytes.Replace(exp.Body, []byte(`"actor":"`+w.op.id+`"`), []byte(`"actor":"someone-else"`), 1)
			os.WriteFile(expPath, edited, 0o600)
			out, code = vaultctl(t, "audit", "verify", "--export", expPath, "--checkpoint", cpPath, "--key", key)
			if code != 1 || !strings.Contains(out, "seq ") {
				t.Fatalf("edited export: exit %d: %s", code, out)
			}
			// A checkpoint from another key is refused.
			other := strings.Replace(key, key[len(key)-8:], "AAAAAAAA", 1)
			if out, code = vaultctl(t, "audit", "verify", "--export", expPath, "--checkpoint", cpPath, "--key", other); code == 0 {
				t.Fatalf("a wrong key verified: %s", out)
			}

			// Editing the database behind the server's back is caught by
			// vaultd audit verify, naming the sequence number.
			s.stop()
			if strings.HasPrefix(s.dbURL(), "postgres") {
				s.sql(t, `ALTER TABLE audit_events DISABLE TRIGGER USER`,
					`UPDATE audit_events SET actor = 'someone-else' WHERE seq = `+itoa(target))
			} else {
				s.sqliteDropAuditTriggers(t)
				s.sql(t, `UPDATE audit_events SET actor = 'someone-else' WHERE seq = `+itoa(target))
			}
			out2, errs, code := s.cli("", "audit", "verify")
			if code != 1 || !strings.Contains(out2+errs, "seq "+itoa(target)) {
				t.Fatalf("tampered database: exit %d: %s %s", code, out2, errs)
			}
		})
	}
}

func (s *server) sqliteDropAuditTriggers(t *testing.T) {
	t.Helper()
	db, err := openSQL(s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	names, err := db.strings(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'`)
	if err != nil || len(names) == 0 {
		t.Fatalf("find audit triggers: %v %v", names, err)
	}
	for _, n := range names {
		s.sql(t, `DROP TRIGGER `+n)
	}
}

func exportHas(t *testing.T, export []byte, seq int64, action, actor string) bool {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(export))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Seq    int64  `json:"seq"`
			Action string `json:"action"`
			Actor  string `json:"actor"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Seq == seq {
			return e.Action == action && e.Actor == actor
		}
	}
	return false
}
