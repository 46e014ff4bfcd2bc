package crypt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/plugin"
)

func escrowPair(t testing.TB) (*age.HybridIdentity, string) {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id, id.Recipient().String()
}

func TestEscrowRecoveryWithTheEscrowIdentityAlone(t *testing.T) {
	m := testMaster(t)
	ms, err := NewMasters(m)
	if err != nil {
		t.Fatal(err)
	}
	escrowID, escrowRcpt := escrowPair(t)
	if err := ms.SetEscrow("# the office's safe\n" + escrowRcpt + "\n"); err != nil {
		t.Fatal(err)
	}
	if ms.EscrowFingerprint() == "" || ms.EscrowCount() != 1 {
		t.Fatalf("escrow not set: %q %d", ms.EscrowFingerprint(), ms.EscrowCount())
	}
	w, key, err := ms.NewKey(m.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if w.Master != m.Fingerprint() || w.Escrow != ms.EscrowFingerprint() {
		t.Fatalf("wrapped names %q/%q", w.Master, w.Escrow)
	}
	plain := testData(t, 200<<10, 7)
	header, payload := seal(t, key, plain)

	// Disaster: every master is gone. Plain age and the escrow identity
	// open the wrapped key, then the material.
	r, err := age.Decrypt(bytes.NewReader(w.Data), escrowID)
	if err != nil {
		t.Fatalf("escrow identity cannot open the wrapped key: %v", err)
	}
	idText, _ := io.ReadAll(r)
	caseID, err := age.ParseHybridIdentity(string(idText))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := age.Decrypt(io.MultiReader(bytes.NewReader(header), bytes.NewReader(payload)), caseID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(pr)
	if !bytes.Equal(got, plain) {
		t.Fatal("material recovered through escrow differs")
	}

	// Without escrow configured, the escrow identity opens nothing.
	ms2, _ := NewMasters(m)
	w2, _, err := ms2.NewKey(m.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := age.Decrypt(bytes.NewReader(w2.Data), escrowID); err == nil {
		t.Fatal("a key wrapped without escrow opened with the escrow identity")
	}
}

func TestRewrapMovesKeysToTheNewMasterOnly(t *testing.T) {
	m1, m2 := testMaster(t), testMaster(t)
	ms, _ := NewMasters(m1)
	w, key, err := ms.NewKey(m1.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	header, payload := seal(t, key, []byte("a document"))
	ms.Add(m2)
	_, escrowRcpt := escrowPair(t)
	if err := ms.SetEscrow(escrowRcpt); err != nil {
		t.Fatal(err)
	}
	w2, err := ms.Rewrap(w, m2.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	if w2.Master != m2.Fingerprint() || w2.Escrow != ms.EscrowFingerprint() {
		t.Fatalf("rewrapped names %q/%q", w2.Master, w2.Escrow)
	}
	if _, err := m1.OpenCaseKey(w2.Data); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("old master opens the rewrapped key: %v", err)
	}
	k2, err := m2.OpenCaseKey(w2.Data)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Fingerprint() != key.Fingerprint() {
		t.Fatal("rewrapping changed the case key")
	}
	r, err := k2.OpenStream(header, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "a document" {
		t.Fatalf("material under the rewrapped key reads %q", b)
	}
	// A set that holds only the old master cannot open it.
	old, _ := NewMasters(m1)
	if _, err := old.Open(w2); !errors.Is(err, ErrUnknownMaster) {
		t.Fatalf("open with a set lacking the master: %v", err)
	}
}

func TestParseHybridRecipientsRefusesClassic(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	if _, err := ParseHybridRecipients(x.Recipient().String()); err == nil {
		t.Fatal("classic X25519 escrow recipient accepted")
	}
	if rs, err := ParseHybridRecipients(""); err != nil || len(rs) != 0 {
		t.Fatalf("empty escrow: %v %v", rs, err)
	}
}

// buildTestPlugin builds the stand-in token plugin and puts it on PATH.
func buildTestPlugin(t *testing.T) (identity, recipient string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "age-plugin-crvaulttest"), "./testdata/age-plugin-crvaulttest").CombinedOutput()
	if err != nil {
		t.Fatalf("build test plugin: %v\n%s", err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	tok, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRVAULT_TEST_TOKEN", tokenFile)
	return plugin.EncodeIdentity("crvaulttest", []byte("slot-1")), plugin.EncodeRecipient("crvaulttest", []byte(tok.Recipient().String()))
}

func TestSealedMasterOpensOnlyThroughThePlugin(t *testing.T) {
	identity, recipient := buildTestPlugin(t)
	ui := &plugin.ClientUI{DisplayMessage: func(string, string) error { return nil }}
	rs, err := ParseSealRecipients(recipient, ui)
	if err != nil {
		t.Fatal(err)
	}
	m := testMaster(t)
	path := filepath.Join(t.TempDir(), MasterKeyFile)
	if err := m.WriteSealedKeyFile(path, rs); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte("AGE-SECRET-KEY")) || !IsSealedKeyFile(b) {
		t.Fatalf("sealed key file is not sealed:\n%s", b)
	}
	if _, err := LoadMasterFile(path, nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("sealed file without identity: %v", err)
	}
	ids, err := ParseUnsealIdentities("# token slot\n"+identity+"\n", ui)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadMasterFile(path, ids)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != m.Fingerprint() {
		t.Fatal("the plugin opened another master")
	}
	ms, err := LoadKeyDir(filepath.Dir(path), ids)
	if err != nil || len(ms) != 1 || ms[0].Fingerprint() != m.Fingerprint() {
		t.Fatalf("LoadKeyDir: %v %v", ms, err)
	}

	// The token unplugged: no master, no start.
	t.Setenv("CRVAULT_TEST_TOKEN", "")
	if _, err := LoadMasterFile(path, ids); !errors.Is(err, ErrNoKey) {
		t.Fatalf("sealed file opened without the token: %v", err)
	}
}

// Fuzz the parsers of configuration files that name keys: they must never
// panic, and never accept a classic escrow recipient.
func FuzzParseHybridRecipients(f *testing.F) {
	id, _ := age.GenerateHybridIdentity()
	x, _ := age.GenerateX25519Identity()
	f.Add(id.Recipient().String())
	f.Add("# comment\n" + id.Recipient().String() + "," + id.Recipient().String())
	f.Add(x.Recipient().String())
	f.Add("age1pq1")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseHybridRecipients(s)
		if err == nil && len(rs) > 0 && strings.Contains(s, x.Recipient().String()) {
			t.Fatal("accepted a classic recipient")
		}
	})
}

func FuzzParseUnsealIdentities(f *testing.F) {
	f.Add(plugin.EncodeIdentity("crvaulttest", []byte("slot-1")))
	f.Add("AGE-PLUGIN-\n#x\n")
	f.Add("AGE-SECRET-KEY-1QQQ")
	f.Fuzz(func(t *testing.T, s string) {
		// Parsing runs no plugin; only Unwrap would.
		_, _ = ParseUnsealIdentities(s, nil)
		_, _ = ParseSealRecipients(s, nil)
		_ = IsSealedKeyFile([]byte(s))
	})
}

// BenchmarkMastersRewrap measures a rotation's work per key against the
// unwrap every cache miss already pays (the in-run baseline): report the
// ratio of the two ns/op.
func BenchmarkMastersRewrap(b *testing.B) {
	m1, m2 := testMaster(b), testMaster(b)
	ms, _ := NewMasters(m1, m2)
	_, escrowRcpt := escrowPair(b)
	_ = ms.SetEscrow(escrowRcpt)
	w, _, err := ms.NewKey(m1.Fingerprint())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline-open", func(b *testing.B) {
		for b.Loop() {
			if _, err := ms.Open(w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rewrap", func(b *testing.B) {
		for b.Loop() {
			if _, err := ms.Rewrap(w, m2.Fingerprint()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
