package audit

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
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
