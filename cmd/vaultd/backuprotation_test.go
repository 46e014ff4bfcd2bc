package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/vault"
)

// TestBackupDuringKeyRotationRestores: a backup copies the database first
// and the blobs after it, which on a large store takes hours; a master key
// rotation finished meanwhile (keys rotate, then keys retire, which deletes
// the old master's file) must not leave the backup without the master its
// database copy wraps every key to. The key files were copied last, after
// the blobs: the backup then held the new master only, and its restore
// could not open a single case key.
func TestBackupDuringKeyRotationRestores(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "backup-rotation")
	s.stop()
	// Blobs enough for the copy to take a while, as a real store's would
	// (each is synced to disk as it is copied): opaque to the backup,
	// which copies whatever the store lists.
	blobs := filepath.Join(s.data, "blobs")
	junk := bytes.Repeat([]byte{0xa5}, 512)
	for range 4000 {
		if err := os.WriteFile(filepath.Join(blobs, vault.NewID()), junk, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "backup")
	keysOut := filepath.Join(t.TempDir(), "backup-keys")
	backup := exec.Command(vaultdBin, "backup", "--out", out, "--keys-out", keysOut)
	backup.Env = s.env
	var bout, berr bytes.Buffer
	backup.Stdout, backup.Stderr = &bout, &berr
	if err := backup.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- backup.Wait() }()
	// Once the database copy has begun, its snapshot is taken: rotate and
	// retire the old master, as an operator would, while the blobs copy.
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(out, "vault.db")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup never copied the database: %s", berr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.mustCLI("", "keys", "rotate")
	if msg := s.mustCLI("", "keys", "retire"); !strings.Contains(msg, "deleted") {
		t.Fatalf("retire said: %s", msg)
	}
	if err := <-done; err != nil {
		t.Fatalf("backup: %v: %s", err, berr.String())
	}

	r := emptyEnvironment(t, backends[0], s)
	if _, errs, code := r.cli("", "restore", "--from", out, "--keys-from", keysOut); code != 0 {
		t.Fatalf("restore of the backup taken during the rotation: exit %d: %s", code, errs)
	}
	for _, u := range []string{"office", "rev1", "inspector1"} {
		authenticators.put(r.realm(), u, authenticators.get(s.realm(), u))
	}
	r.start()
	op := r.login(t, "operator1", pw)
	op.expect(200, "GET", "/cases/"+caseID, nil)
	readAll(t, op, docs)
}
