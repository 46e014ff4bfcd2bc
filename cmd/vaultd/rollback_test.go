package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/mod/sumdb/tlog"
)

// watch runs `vaultctl audit watch --once` as an operator would, with the
// token in the environment.
func watch(t *testing.T, s *server, token, key, state string) (string, int) {
	t.Helper()
	cmd := exec.Command(vaultctlBin, "audit", "watch", "--once", "--server", s.base, "--key", key, "--state", state)
	cmd.Env = append(os.Environ(), "VAULTCTL_TOKEN="+token, "XDG_CONFIG_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// checkpointSize fetches the current checkpoint and returns its size.
func checkpointSize(t *testing.T, c *client) int64 {
	t.Helper()
	lines := strings.Split(string(c.expect(200, "GET", "/audit/checkpoint", nil).Body), "\n")
	n, err := parseInt(lines[1])
	if err != nil {
		t.Fatalf("checkpoint size %q: %v", lines[1], err)
	}
	return n
}

// truncateAuditTail is the attack of issue 8: a database administrator
// drops the append-only triggers and deletes the newest events with their
// tree hashes and every checkpoint that covered them.
func (s *server) truncateAuditTail(t *testing.T, keep int64) {
	t.Helper()
	if strings.HasPrefix(s.dbURL(), "postgres") {
		s.sql(t, `ALTER TABLE audit_events DISABLE TRIGGER USER`, `ALTER TABLE audit_hashes DISABLE TRIGGER USER`,
			`ALTER TABLE audit_checkpoints DISABLE TRIGGER USER`)
	} else {
		db, err := openSQL(s.dbURL())
		if err != nil {
			t.Fatal(err)
		}
		names, err := db.strings(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit_%'`)
		db.close()
		if err != nil || len(names) == 0 {
			t.Fatalf("find audit triggers: %v %v", names, err)
		}
		for _, n := range names {
			s.sql(t, `DROP TRIGGER `+n)
		}
	}
	s.sql(t, `DELETE FROM audit_events WHERE seq > `+itoa(keep),
		`DELETE FROM audit_hashes WHERE idx >= `+itoa(tlog.StoredHashCount(keep)),
		`DELETE FROM audit_checkpoints WHERE size > `+itoa(keep))
}

// TestAuditTailTruncationIsCaught plays the tail-truncation attack on
// SQLite and on PostgreSQL (with the object-locked S3 witness): the running
// server stops signing and fails audited requests closed, start-up refuses
// the shortened log naming the first missing event, `vaultd audit verify`
// fails naming it, and when the insider also takes the server's own
// witness away, an operator's `vaultctl audit watch` still catches it.
func TestAuditTailTruncationIsCaught(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := operatorWorld(t, s)
			s.start()
			w.loginOperator(t)
			w.newCase(t, "MARKER-ROLLBACK")
			key := s.mustCLI("", "audit", "pubkey")
			state := filepath.Join(t.TempDir(), "watch-state")

			out, code := watch(t, s, w.op.token, key, state)
			if code != 0 || !strings.Contains(out, "first checkpoint seen") {
				t.Fatalf("first watch: exit %d: %s", code, out)
			}
			first := checkpointSize(t, w.op)
			// Wait for the checkpointer (every 10 s) to sign past the first.
			var signed int64
			for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(time.Second) {
				w.op.expect(200, "GET", "/cases", nil)
				if signed = checkpointSize(t, w.op); signed > first+3 || time.Now().After(deadline) {
					break
				}
			}
			if signed <= first+3 {
				t.Fatalf("no checkpoint past %d within 40 s", first)
			}
			out, code = watch(t, s, w.op.token, key, state)
			if code != 0 || !strings.Contains(out, "extends size") {
				t.Fatalf("second watch: exit %d: %s", code, out)
			}
			if strings.HasPrefix(be.name, "postgres") {
				checkWORMWitness(t, s)
			}

			// The attack, under the running server.
			keep := signed - 3
			s.truncateAuditTail(t, keep)
			// The next audited request fails closed: the writer sees a log
			// shorter than what it committed and checkpointed.
			p := w.op.expect(503, "GET", "/audit/checkpoint", nil).problem(t)
			if p["code"] != "audit_unavailable" {
				t.Fatalf("audited request after truncation: %v", p)
			}
			if r, err := http.Get(s.base + "/readyz"); err != nil || r.StatusCode != 503 {
				t.Fatalf("readyz after truncation: %v %v", r, err)
			} else {
				r.Body.Close()
			}
			if _, ok := s.waitLog(t, "AUDIT LOG ROLLED BACK OR REWRITTEN UNDER THE RUNNING SERVER"); !ok {
				t.Fatalf("no loud log line:\n%s", tail(s.log.String(), 3000))
			}
			s.stop()
			// Nothing was signed over the shortened log on the way down:
			// the one checkpoint above it is the tree the server had
			// committed, at least as long as what it had signed, kept as
			// evidence by the halt.
			db, err := openSQL(s.dbURL())
			if err != nil {
				t.Fatal(err)
			}
			over, err := db.strings(`SELECT CAST(size AS TEXT) FROM audit_checkpoints WHERE size > ` + itoa(keep) + ` AND size < ` + itoa(signed))
			db.close()
			if err != nil || len(over) != 0 {
				t.Fatalf("checkpoints signed over the truncated log: %v %v", over, err)
			}

			missing := "seq " + itoa(keep+1)
			_, errs, code := s.cli("", "serve")
			// Refused by the checkpoint the halt kept, in the database and
			// at the witness, or by the witness's older ones.
			if code == 0 || !strings.Contains(errs, missing) || !strings.Contains(errs, "witnessed") && !strings.Contains(errs, "stored checkpoint") {
				t.Fatalf("start-up on the truncated log: exit %d: %s", code, tail(errs, 2000))
			}
			vout, verrs, code := s.cli("", "audit", "verify")
			if code != 1 || !strings.Contains(vout+verrs, missing) {
				t.Fatalf("audit verify on the truncated log: exit %d: %s %s", code, vout, verrs)
			}

			// The insider also takes the server's witness away (deletes
			// the directory, or, as the S3 objects cannot be deleted,
			// points the server at a fresh prefix), deletes the
			// checkpoint the halt kept in the database, and restarts it.
			// The server now serves the shorter log as if nothing
			// happened; the operator's watcher has the old checkpoint.
			s.sql(t, `DELETE FROM audit_checkpoints WHERE size > `+itoa(keep))
			if strings.HasPrefix(be.name, "postgres") {
				s.env = append(s.env, "VAULT_CHECKPOINT_S3_PREFIX=elsewhere/")
			} else if err := os.RemoveAll(filepath.Join(s.data, "keys", "checkpoint-witness")); err != nil {
				t.Fatal(err)
			}
			s.start()
			out, code = watch(t, s, w.op.token, key, state)
			if code != 1 || !strings.Contains(out, "the audit log shrank") || !strings.Contains(out, "size "+itoa(signed)+" was seen before") {
				t.Fatalf("watch after the rollback: exit %d: %s", code, out)
			}
		})
	}
}

// checkWORMWitness: the vault's own S3 credentials cannot delete the
// checkpoints in the witness bucket.
func checkWORMWitness(t *testing.T, s *server) {
	t.Helper()
	bucket := envOf(s, "VAULT_S3_BUCKET") + "-audit"
	mc, err := minio.New(envOf(s, "VAULT_S3_ENDPOINT"), &minio.Options{
		Creds: credentials.NewStaticV4(envOf(s, "VAULT_S3_ACCESS_KEY"), envOf(s, "VAULT_S3_SECRET_KEY"), ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lock, _, _, _, err := mc.GetObjectLockConfig(ctx, bucket)
	if err != nil || lock != "Enabled" {
		t.Fatalf("witness bucket %s object lock: %q %v", bucket, lock, err)
	}
	n := 0
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "audit-checkpoints/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
		if err := mc.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{}); err == nil {
			t.Fatalf("witness checkpoint %s deleted with the vault's own credentials", obj.Key)
		}
	}
	if n == 0 {
		t.Fatalf("no checkpoint in the witness bucket %s", bucket)
	}
}

func envOf(s *server, name string) string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}
