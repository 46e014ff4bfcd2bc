package main

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"

	"github.com/crvault/crvault/audit"
)

// TestAgeWrappedAuditKey: a checkpoint key encrypted with age is read
// through the identities file; without it, or with the wrong identity,
// nothing signs.
func TestAgeWrappedAuditKey(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, audit.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	wc, err := age.Encrypt(&ct, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	wc.Write([]byte(skey + "\n"))
	wc.Close()
	keyFile := filepath.Join(dir, "audit.key.age")
	idFile := filepath.Join(dir, "identities.txt")
	other, _ := age.GenerateX25519Identity()
	otherFile := filepath.Join(dir, "other.txt")
	for p, b := range map[string]string{keyFile: ct.String(), idFile: "# the vault's identity\n" + id.String() + "\n", otherFile: other.String() + "\n"} {
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	got, err := audit.LoadPublicKey(keyFile, keyUnwrapper(idFile, log))
	if err != nil || got != vkey {
		t.Fatalf("age-wrapped key: %q %v; want %q", got, err, vkey)
	}
	if _, err := audit.LoadPublicKey(keyFile, nil); err == nil || !strings.Contains(err.Error(), "age-encrypted") {
		t.Fatalf("without identities: %v", err)
	}
	if _, err := audit.LoadPublicKey(keyFile, keyUnwrapper(otherFile, log)); err == nil {
		t.Fatal("the wrong identity decrypted the key")
	}
}

// TestAuditKeyApartFromData: VAULT_AUDIT_KEY_FILE puts the signing key
// outside the data directory (generated there on first start), and every
// command uses it.
func TestAuditKeyApartFromData(t *testing.T) {
	t.Parallel()
	secrets := filepath.Join(t.TempDir(), "secrets")
	keyFile := filepath.Join(secrets, "audit.key")
	s := newServer(t, backends[0], "VAULT_AUDIT_KEY_FILE="+keyFile)
	s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("key not generated at VAULT_AUDIT_KEY_FILE: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.data, "keys", "audit-checkpoint.key")); err == nil {
		t.Fatal("a key was generated in the data directory too")
	}
	pub := s.mustCLI("", "audit", "pubkey")
	want, err := audit.LoadPublicKey(keyFile, nil)
	if err != nil || pub != want {
		t.Fatalf("audit pubkey %q, key file's %q (%v)", pub, want, err)
	}
	if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "audit log OK") {
		t.Fatalf("verify: %s", out)
	}
}

// TestAuditVerifierKeyPinned: VAULT_AUDIT_VERIFIER_KEY, set apart from the
// data directory, makes commands refuse a checkpoint key that is not its
// private half, and lets `vaultd audit verify` run without the key file.
func TestAuditVerifierKeyPinned(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
	pub := s.mustCLI("", "audit", "pubkey")
	_, other, err := note.GenerateKey(rand.Reader, audit.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	base := s.env
	s.env = append(append([]string(nil), base...), "VAULT_AUDIT_VERIFIER_KEY="+other)
	for _, args := range [][]string{{"audit", "verify"}, {"org", "add", "--name", "Acme", "--kind", "provider"}} {
		if _, errs, code := s.cli("", args...); code == 0 || !strings.Contains(errs, "the pinned verifier key is "+other) {
			t.Fatalf("vaultd %v with another key pinned: exit %d: %s", args, code, errs)
		}
	}
	s.env = append(append([]string(nil), base...), "VAULT_AUDIT_VERIFIER_KEY="+pub)
	s.mustCLI("", "org", "add", "--name", "Acme", "--kind", "provider")
	keyFile := filepath.Join(s.data, "keys", "audit-checkpoint.key")
	if err := os.Rename(keyFile, keyFile+".away"); err != nil {
		t.Fatal(err)
	}
	if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "audit log OK") {
		t.Fatalf("verify with the pinned key alone: %s", out)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("a key was generated")
	}
}
