//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	addJunkBlobs(t, s)
	// Once the database copy has begun, its snapshot is taken: rotate and
	// retire the old master, as an operator would, while the backup is
	// held there (a real store's copy takes hours).
	b := startHeldBackup(t, s)
	out, keysOut := b.out, b.keysOut
	s.mustCLI("", "keys", "rotate")
	if msg := s.mustCLI("", "keys", "retire"); !strings.Contains(msg, "deleted") {
		t.Fatalf("retire said: %s", msg)
	}
	b.finish()

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

// TestBackupOfABusyVaultWithMirrorRestores: the checkpoint mirror
// (VAULT_CHECKPOINT_MIRROR_DIR) keeps the newest signed checkpoint, and the
// server signs one every few seconds while it serves. Copied after the
// blobs, the backup's mirror held a checkpoint of events the backup's
// database never saw, and its restore into a fresh witness refused the
// restored log as rolled back.
func TestBackupOfABusyVaultWithMirrorRestores(t *testing.T) {
	t.Parallel()
	mirror := filepath.Join(t.TempDir(), "mirror")
	s := newServer(t, backends[0], "VAULT_CHECKPOINT_MIRROR_DIR="+mirror, "VAULT_CHECKPOINT_INTERVAL=200ms")
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "backup-busy")
	addJunkBlobs(t, s)
	checkpoint := func() string {
		names, _ := filepath.Glob(filepath.Join(mirror, "checkpoint-*"))
		if len(names) == 0 {
			return ""
		}
		return filepath.Base(names[len(names)-1])
	}
	// The vault goes on serving, audited, while the backup is held after
	// its database snapshot, and signs checkpoints of what it did.
	b := startHeldBackup(t, s)
	out, keysOut := b.out, b.keysOut
	deadline := time.Now().Add(time.Minute)
	before := checkpoint()
	for checkpoint() == before {
		w.op.expect(200, "GET", "/cases/"+caseID, nil)
		time.Sleep(50 * time.Millisecond)
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint signed while the backup ran")
		}
	}
	b.finish()
	s.stop()

	r := emptyEnvironment(t, backends[0], s)
	r.env = append(r.env, "VAULT_CHECKPOINT_MIRROR_DIR="+filepath.Join(t.TempDir(), "fresh-mirror"))
	if _, errs, code := r.cli("", "restore", "--from", out, "--keys-from", keysOut); code != 0 {
		t.Fatalf("restore of a busy vault's backup: exit %d: %s", code, errs)
	}
	if v := r.mustCLI("", "audit", "verify"); !strings.Contains(v, "OK") {
		t.Fatalf("audit verify after the restore: %s", v)
	}
	for _, u := range []string{"office", "rev1", "inspector1"} {
		authenticators.put(r.realm(), u, authenticators.get(s.realm(), u))
	}
	r.start()
	readAll(t, r.login(t, "operator1", pw), docs)
}

// addJunkBlobs puts blobs in s's store for the backup to copy after its
// database: opaque to it, which copies whatever the store lists. They keep
// the backup busy past its database copy long enough for
// startHeldBackup to stop it there.
func addJunkBlobs(t *testing.T, s *server) {
	t.Helper()
	junk := bytes.Repeat([]byte{0xa5}, 512)
	for range 200 {
		if err := os.WriteFile(filepath.Join(s.data, "blobs", vault.NewID()), junk, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// heldBackup is a `vaultd backup` of a test's server, stopped as soon as
// its database copy exists (its snapshot is taken then): what a test does
// until finish happens while the backup copies the blobs, which on a real
// store takes hours. Stopping the process, rather than giving it more
// blobs to copy, makes that window as wide as the test needs on any
// machine. Both VACUUM INTO and pg_dump make their file before they take
// their snapshot, and write it only after: held as soon as the file
// existed, a backup could still copy what the test did while it was held.
type heldBackup struct {
	t            *testing.T
	out, keysOut string // the backup's directory and its key files'
	cmd          *exec.Cmd
	stderr       bytes.Buffer
	done         chan error
	resumed      bool
}

// startHeldBackup starts a backup of s and holds it at its database copy.
func startHeldBackup(t *testing.T, s *server) *heldBackup {
	t.Helper()
	b := &heldBackup{t: t, out: filepath.Join(t.TempDir(), "backup"), keysOut: filepath.Join(t.TempDir(), "backup-keys"), done: make(chan error, 1)}
	b.cmd = exec.Command(vaultdBin, "backup", "--out", b.out, "--keys-out", b.keysOut)
	b.cmd.Env = s.env
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	written := func(name string) bool {
		fi, err := os.Stat(filepath.Join(b.out, name))
		return err == nil && fi.Size() > 0
	}
	for !written("vault.db") && !written("vault.pgdump") {
		if time.Now().After(deadline) {
			t.Fatalf("the backup never copied the database: %s", b.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("stop the backup: %v", err)
	}
	t.Cleanup(b.resume) // a test that fails while it is held must not leave it stopped
	if _, err := os.Stat(filepath.Join(b.out, manifestFile)); err == nil {
		t.Fatal("the backup was held only after it wrote its manifest")
	}
	return b
}

func (b *heldBackup) resume() {
	if !b.resumed {
		b.resumed = true
		if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			b.t.Errorf("resume the backup: %v", err)
		}
	}
}

// finish lets the backup go on and waits for it to succeed.
func (b *heldBackup) finish() {
	b.t.Helper()
	b.resume()
	if err := <-b.done; err != nil {
		b.t.Fatalf("backup: %v: %s", err, b.stderr.String())
	}
}
