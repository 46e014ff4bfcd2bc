package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
)

func TestLoadOrCreateMaster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	m, err := LoadOrCreateMaster(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{dir: 0o700, filepath.Join(dir, MasterKeyFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("keys directory holds %d entries, want only the key file", len(entries))
	}

	// Second start: same key, and it still opens what the first one wrapped.
	wrapped, err := m.NewCaseKey()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := LoadOrCreateMaster(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Fingerprint() != m.Fingerprint() {
		t.Fatal("second start produced a different master")
	}
	if _, err := m2.OpenCaseKey(wrapped); err != nil {
		t.Fatal(err)
	}

	// The file is an ordinary age identity file.
	b, err := os.ReadFile(filepath.Join(dir, MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil || len(ids) != 1 {
		t.Fatalf("key file is not one age identity: %v", err)
	}
	if _, ok := ids[0].(*age.HybridIdentity); !ok {
		t.Fatalf("key file holds %T, want a hybrid identity", ids[0])
	}
}

func TestLoadOrCreateMasterConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	fps := make([]string, 4)
	errs := make([]error, 4)
	for i := range fps {
		wg.Go(func() {
			m, err := LoadOrCreateMaster(dir)
			errs[i] = err
			if err == nil {
				fps[i] = m.Fingerprint()
			}
		})
	}
	wg.Wait()
	for i := range fps {
		if errs[i] != nil || fps[i] != fps[0] {
			t.Fatalf("start %d: %q, %v; want every start to agree on %q", i, fps[i], errs[i], fps[0])
		}
	}
}

func TestKeyFilePermissions(t *testing.T) {
	tests := []struct {
		mode    fs.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o400, false},
		{0o640, true},
		{0o644, true},
		{0o604, true},
		{0o660, true},
	}
	m := testMaster(t)
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, MasterKeyFile)
			if err := m.WriteKeyFile(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			for name, load := range map[string]func() (*Master, error){
				"LoadMaster":         func() (*Master, error) { return LoadMaster(path) },
				"LoadOrCreateMaster": func() (*Master, error) { return LoadOrCreateMaster(dir) },
			} {
				got, err := load()
				if tc.wantErr {
					if !errors.Is(err, ErrNoKey) || !errors.Is(err, ErrKeyPermissions) {
						t.Errorf("%s: err = %v, want ErrNoKey and ErrKeyPermissions", name, err)
					}
					continue
				}
				if err != nil || got.Fingerprint() != m.Fingerprint() {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

func TestLoadMasterFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := LoadMaster(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoKey) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNoKey and fs.ErrNotExist", err)
	}
	if _, err := LoadMaster(dir); !errors.Is(err, ErrNoKey) {
		t.Errorf("directory: %v, want ErrNoKey", err)
	}
	if _, err := LoadMaster(write("garbage", "hello\n")); !errors.Is(err, ErrNoKey) {
		t.Errorf("garbage: %v, want ErrNoKey", err)
	}
	// A key file that exists but is broken is never silently replaced.
	kd := t.TempDir()
	if err := os.WriteFile(filepath.Join(kd, MasterKeyFile), []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateMaster(kd); !errors.Is(err, ErrNoKey) {
		t.Errorf("LoadOrCreateMaster over a broken key: %v, want ErrNoKey", err)
	}
	if b, _ := os.ReadFile(filepath.Join(kd, MasterKeyFile)); string(b) != "broken" {
		t.Error("broken key file was overwritten")
	}
	m := testMaster(t)
	p := filepath.Join(dir, "exists")
	if err := m.WriteKeyFile(p); err != nil {
		t.Fatal(err)
	}
	if err := testMaster(t).WriteKeyFile(p); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteKeyFile over an existing key: %v, want fs.ErrExist", err)
	}
	if got, err := LoadMaster(p); err != nil || got.Fingerprint() != m.Fingerprint() {
		t.Errorf("existing key changed: %v", err)
	}
}

func TestParseMaster(t *testing.T) {
	hy, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	hy2, _ := age.GenerateHybridIdentity()
	classic, _ := age.GenerateX25519Identity()
	key := hy.String()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"bare key", key, true},
		{"key with newline and spaces", "  " + key + "\n", true},
		{"identity file", "# created: now\n# public key: age1pq...\n\n" + key + "\n", true},
		{"lower case (age refuses it too)", strings.ToLower(key), false},
		{"empty", "", false},
		{"only comments", "# nothing\n", false},
		{"two keys", key + "\n" + hy2.String() + "\n", false},
		{"classic X25519", classic.String(), false},
		{"one character changed", key[:30] + string(key[30]^1) + key[31:], false},
		{"truncated", key[:len(key)-4], false},
		{"public key", hy.Recipient().String(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMaster(tc.in)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if m.Fingerprint() != fingerprint(hy.Recipient()) {
					t.Fatal("parsed a different key")
				}
				return
			}
			if !errors.Is(err, ErrNoKey) {
				t.Fatalf("err = %v, want ErrNoKey", err)
			}
			// Errors must not echo key material, not even a part of it.
			for _, secret := range []string{"AGE-SECRET-KEY", key[20:40], classic.String()[20:40]} {
				if strings.Contains(strings.ToUpper(err.Error()), strings.ToUpper(secret)) {
					t.Fatalf("error %q contains key material", err)
				}
			}
		})
	}
}

// A Master or CaseKey may end up in a log line or an error by accident, as a
// value, a pointer or a field; none of these may show the secret.
func TestKeysNeverPrint(t *testing.T) {
	m := testMaster(t)
	k, _ := newCase(t, m)
	type holder struct {
		M  Master
		PM *Master
		K  CaseKey
		PK *CaseKey
	}
	h := holder{*m, m, *k, k}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", m)
		fmt.Fprintf(&out, verb+"\n", *m)
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", h)
		fmt.Fprintf(&out, verb+"\n", &h)
	}
	out.WriteString(fmt.Sprint(m, k, h) + fmt.Sprintln(m, k, h))
	for _, hd := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		l := slog.New(hd)
		l.Info("keys", "master", m, "masterValue", *m, "case", k, "holder", h)
		l.Info("any", slog.Any("m", m), slog.Any("k", k))
	}
	s := out.String()
	for _, secret := range []string{"AGE-SECRET-KEY", strings.ToLower("AGE-SECRET-KEY"), fmt.Sprintf("%x", "AGE-SECRET-KEY")} {
		if strings.Contains(strings.ToUpper(s), strings.ToUpper(secret)) {
			t.Fatalf("printed keys contain secret material:\n%s", s)
		}
	}
	if !strings.Contains(s, m.Fingerprint()) || !strings.Contains(s, k.Fingerprint()) {
		t.Fatalf("output does not name the keys by fingerprint:\n%s", s)
	}
}
