package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestCheckpointKeyCreatedWhole: the checkpoint signer key and its verifier
// key are created mode 0600, like every file under the key directory, with
// no temporary file left beside them; processes starting at once end up
// with one key between them.
func TestCheckpointKeyCreatedWhole(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := DefaultKeyFile(dir)
	const n = 8
	vkeys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, vkeys[i], errs[i] = loadOrCreateKey(path, DefaultOrigin, nil, true)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || vkeys[i] != vkeys[0] {
			t.Fatalf("start %d: %q, %v; start 0: %q", i, vkeys[i], errs[i], vkeys[0])
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("key directory holds %v, want the key and its verifier key", entries)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "audit-checkpoint.pub"))
	if err != nil || string(pub) != vkeys[0]+"\n" {
		t.Fatalf("verifier key file %q, %v; want %q", pub, err, vkeys[0])
	}
}

// TestReadOnlyOpenMakesNoKey: vaultd audit verify opens the log read-only;
// with the checkpoint key's mount missing it must fail, not make a new key
// and then report the genuine checkpoints' signatures as forged.
func TestReadOnlyOpenMakesNoKey(t *testing.T) {
	f := newFixture(t, "sqlite")
	dir := t.TempDir()
	_, err := Open(context.Background(), f.db, Options{KeyDir: dir, ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open without its key: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a read-only open wrote %v", entries)
	}
}

// TestNoNewKeyBesideCheckpoints: a writer whose key file is missing makes a
// new key only for a log nothing has signed; beside checkpoints signed with
// the old key (a restore without its keys, a key mount missing) it refuses,
// saying what to give it, and writes nothing.
func TestNoNewKeyBesideCheckpoints(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sqlite")
	f.appendN(t, 3)
	if err := f.log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	opts := f.opts
	opts.KeyDir, opts.KeyFile, opts.Registerer = empty, "", nil
	_, err := Open(ctx, f.db, opts)
	if !errors.Is(err, ErrKeyMissing) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "VAULT_AUDIT_KEY_FILE") {
		t.Fatalf("writer without its key beside checkpoints: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("the refused open wrote %v", entries)
	}
	// A fresh log still gets its key on first start.
	fresh := newFixture(t, "sqlite")
	if fresh.log.PublicKey() == "" {
		t.Fatal("a fresh log made no key")
	}
}

// TestPinnedVerifierKey: with Options.VerifierKey set, a key file that is
// not its private half is refused, by the writer and by a read-only open
// alike, none is generated, and a read-only open without the key file
// verifies with the pinned key alone.
func TestPinnedVerifierKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "sqlite")
	f.appendN(t, 4)
	if err := f.log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pinned := f.log.PublicKey()
	_, other, err := note.GenerateKey(rand.Reader, DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	with := func(pin string, readOnly bool, keyDir string) (*Log, error) {
		opts := f.opts
		opts.VerifierKey, opts.ReadOnly, opts.Registerer = pin, readOnly, nil
		if keyDir != "" {
			opts.KeyDir = keyDir
		}
		l, err := Open(ctx, f.db, opts)
		if err == nil {
			t.Cleanup(func() { l.Close(ctx) })
		}
		return l, err
	}
	for _, ro := range []bool{false, true} {
		if _, err := with(pinned+"\n", ro, ""); err != nil {
			t.Fatalf("read-only %v, the pinned key: %v", ro, err)
		}
		if _, err := with(other, ro, ""); !errors.Is(err, ErrKeyNotPinned) || !strings.Contains(err.Error(), other) {
			t.Fatalf("read-only %v, another key pinned: %v, want ErrKeyNotPinned naming it", ro, err)
		}
		if _, err := with("not a key", ro, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("read-only %v, a malformed pin: %v", ro, err)
		}
	}
	// The key's mount is missing: the writer refuses and makes none; a
	// read-only open verifies with the pin.
	empty := t.TempDir()
	if _, err := with(pinned, false, empty); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("writer without its key file: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("a pinned open wrote %v", entries)
	}
	l, err := with(pinned, true, empty)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := l.Verify(ctx); err != nil || rep.TreeSize != 4 || rep.Checkpoints == 0 {
		t.Fatalf("verify with the pinned key alone: %+v %v", rep, err)
	}
	// Pinned to another key, the genuine checkpoints do not verify.
	l, err = with(other, true, empty)
	if err != nil {
		t.Fatal(err)
	}
	var ve *VerifyError
	if _, err := l.Verify(ctx); !errors.As(err, &ve) || !strings.Contains(ve.Reason, "does not verify") {
		t.Fatalf("verify pinned to another key: %v", err)
	}
}
