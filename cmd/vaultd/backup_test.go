package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// Backup and restore (issue 12, item 5).

// emptyEnvironment prepares a server on the same kind of backend with
// nothing in it: a new data directory, a new bucket, and for PostgreSQL a
// new database where the backup's schema does not exist yet.
func emptyEnvironment(t *testing.T, be backend, from *server) *server {
	t.Helper()
	s := newServer(t, be)
	if dbKind(from.dbURL()) != "postgres" {
		return s
	}
	base := sqldbtest.Require(t, "PostgreSQL", "VAULT_TEST_DATABASE_URL")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "restore_" + hex.EncodeToString(b)
	admin, err := sqldb.Open(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		sqldb.Close(admin)
	})
	src, _ := url.Parse(from.dbURL())
	u, _ := url.Parse(base)
	u.Path = "/" + name
	q := u.Query()
	q.Set("search_path", src.Query().Get("search_path"))
	u.RawQuery = q.Encode()
	for i, e := range s.env {
		if strings.HasPrefix(e, "VAULT_DATABASE_URL=") {
			s.env[i] = "VAULT_DATABASE_URL=" + u.String()
		}
	}
	return s
}

// TestBackupWipeRestoreVerify backs up a running vault (database, blobs,
// keys, checkpoints), restores the backup into an empty environment, and
// checks that the restored log verifies, every material reads back, staff
// sign in with their TOTP, and a restore refuses a non-empty target.
func TestBackupWipeRestoreVerify(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			escrowEnv, _ := escrowFiles(t)
			s := newServer(t, be, escrowEnv)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			docs := map[string][]byte{}
			for _, m := range []string{"backup-a", "backup-b"} {
				caseID, d := w.newCase(t, m)
				for k, v := range d {
					docs[k] = v
				}
				w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "slow"})
			}
			out := filepath.Join(t.TempDir(), "backup")
			keysOut := filepath.Join(t.TempDir(), "backup-keys")
			msg := s.mustCLI("", "backup", "--out", out, "--keys-out", keysOut)
			if !strings.Contains(msg, "6 blobs") {
				t.Fatalf("backup said: %s", msg)
			}
			if _, err := os.Stat(filepath.Join(out, "keys")); err == nil {
				t.Fatal("keys were written beside the data although --keys-out was given")
			}
			// A material uploaded after the backup is not in it.
			late, _ := w.newCase(t, "after the backup")
			s.stop()

			r := emptyEnvironment(t, be, s)
			r.mustCLI("", "restore", "--from", out, "--keys-from", keysOut)
			if _, errs, code := r.cli("", "restore", "--from", out, "--keys-from", keysOut); code == 0 || !strings.Contains(errs, "empty environment") {
				t.Fatalf("restore over a restored environment: exit %d: %s", code, errs)
			}
			if v := r.mustCLI("", "audit", "verify"); !strings.Contains(v, "OK") {
				t.Fatalf("audit verify after restore: %s", v)
			}
			for _, u := range []string{"office", "rev1", "inspector1"} {
				authenticators.put(r.realm(), u, authenticators.get(s.realm(), u))
			}
			r.start()
			op := r.login(t, "operator1", pw)
			readAll(t, op, docs)
			op.expect(404, "GET", "/cases/"+late, nil)
			insp := r.login(t, "inspector1", pw)
			var ev struct {
				Items []struct{ Action string } `json:"items"`
			}
			insp.expect(200, "GET", "/audit/events?action=backup.restore", nil).json(t, &ev)
			if len(ev.Items) != 1 {
				t.Fatalf("restore events: %+v", ev.Items)
			}
			var cs struct {
				Items []struct{ ID string } `json:"items"`
			}
			insp.expect(200, "GET", "/complaints", nil).json(t, &cs)
			if len(cs.Items) != 2 {
				t.Fatalf("complaints after restore: %+v", cs.Items)
			}
		})
	}
}

// TestRestoreRefusedBeforeWriting: what would make the restored log fail
// to open is refused before anything is written, with what to do, so that
// the corrected command then runs in the same, still empty, environment:
// the backup's keys not given (they were written apart with --keys-out),
// and a checkpoint witness that outlived the loss and holds the backup's
// own record, beyond the backup's log.
func TestRestoreRefusedBeforeWriting(t *testing.T) {
	t.Parallel()
	be := backends[0]
	mirror := filepath.Join(t.TempDir(), "witness")
	s := newServer(t, be, "VAULT_CHECKPOINT_MIRROR_DIR="+mirror)
	s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
	out := filepath.Join(t.TempDir(), "backup")
	keysOut := filepath.Join(t.TempDir(), "backup-keys")
	s.mustCLI("", "backup", "--out", out, "--keys-out", keysOut)

	r := emptyEnvironment(t, be, s)
	r.env = append(r.env, "VAULT_CHECKPOINT_MIRROR_DIR="+mirror)
	// Nothing restored: no database, no keys, no blob, and the surviving
	// witness as it was.
	witnessed, _ := os.ReadDir(mirror)
	empty := func(when string) {
		t.Helper()
		for _, dir := range []string{filepath.Join(r.data, "keys"), filepath.Join(r.data, "blobs")} {
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("%s: %s holds %d entries", when, dir, len(ents))
			}
		}
		if _, err := os.Stat(filepath.Join(r.data, "vault.db")); err == nil {
			t.Fatalf("%s: the database was written", when)
		}
		if now, _ := os.ReadDir(mirror); len(now) != len(witnessed) {
			t.Fatalf("%s: the witness went from %d to %d files", when, len(witnessed), len(now))
		}
	}
	if _, errs, code := r.cli("", "restore", "--from", out); code == 0 || !strings.Contains(errs, "--keys-from") {
		t.Fatalf("restore without the backup's keys: exit %d: %s", code, errs)
	}
	empty("after the restore without keys")
	_, errs, code := r.cli("", "restore", "--from", out, "--keys-from", keysOut)
	if code == 0 || !strings.Contains(errs, "fresh witness") || !strings.Contains(errs, "Nothing was written") {
		t.Fatalf("restore behind the witness: exit %d: %s", code, errs)
	}
	empty("after the restore behind the witness")
	// Against a fresh witness it runs, and the log verifies.
	fresh := filepath.Join(t.TempDir(), "fresh-witness")
	for i, e := range r.env {
		if strings.HasPrefix(e, "VAULT_CHECKPOINT_MIRROR_DIR=") {
			r.env[i] = "VAULT_CHECKPOINT_MIRROR_DIR=" + fresh
		}
	}
	r.mustCLI("", "restore", "--from", out, "--keys-from", keysOut)
	if v := r.mustCLI("", "audit", "verify"); !strings.Contains(v, "OK") {
		t.Fatalf("audit verify after the restore: %s", v)
	}
}
