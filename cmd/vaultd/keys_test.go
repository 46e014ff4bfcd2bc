package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/plugin"
)

// Keys (issue 12, item 3): master key rotation interrupted and resumed,
// retirement, escrow recovery, and a master sealed by an age plugin.

// escrowFiles writes an escrow identity (the office's offline key) and its
// recipients file; it returns the env setting and the identity's path.
func escrowFiles(t *testing.T) (env, identityPath string) {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	identityPath = filepath.Join(dir, "escrow.key")
	if err := os.WriteFile(identityPath, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rcpts := filepath.Join(dir, "escrow.txt")
	if err := os.WriteFile(rcpts, []byte("# the office's safe\n"+id.Recipient().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return "VAULT_ESCROW_RECIPIENTS_FILE=" + rcpts, identityPath
}

// readAll reads every document back through the API and compares.
func readAll(t *testing.T, c *client, docs map[string][]byte) {
	t.Helper()
	for id, want := range docs {
		r := c.do("GET", "/materials/"+id+"/content", nil)
		if r.Status != 200 || !bytes.Equal(r.Body, want) {
			t.Fatalf("material %s: %d, %d bytes (want %d): %.200s", id, r.Status, len(r.Body), len(want), r.Body)
		}
	}
}

// fileSums hashes every file under dir, for "blobs untouched".
func fileSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

func masterFiles(t *testing.T, s *server) []string {
	t.Helper()
	fs, _ := filepath.Glob(filepath.Join(s.data, "keys", "master*.age-key"))
	sort.Strings(fs)
	return fs
}

// TestKeyRotationInterruptedAndResumed rotates the master key of a running
// vault in two runs: the first stops after two keys (as an interrupted run
// would), the server keeps reading every material and signing in with TOTP
// (its secrets are sealed under a key wrapped to the master), the old master
// cannot be retired yet, the second run finishes, the old master is retired
// and its file deleted; after a restart with only the new key everything
// still reads, no blob changed, and the log verifies with the rotation in it.
func TestKeyRotationInterruptedAndResumed(t *testing.T) {
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
			var cases []string
			for i := range 3 {
				caseID, d := w.newCase(t, "rotation-"+string(rune('a'+i)))
				cases = append(cases, caseID)
				for k, v := range d {
					docs[k] = v
				}
				if i == 0 {
					// A complaint creates the supervision key, which is
					// wrapped to the master too.
					w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "slow review"})
				}
			}
			readAll(t, w.op, docs)
			blobsBefore := fileSums(t, filepath.Join(s.data, "blobs"))
			old := masterFiles(t, s)
			if len(old) != 1 {
				t.Fatalf("key files before rotation: %v", old)
			}

			out := s.mustCLI("", "keys", "rotate", "--batch", "1", "--limit", "2")
			if !strings.Contains(out, "rewrapped 2 keys") || !strings.Contains(out, "run the same command again") {
				t.Fatalf("interrupted rotation said:\n%s", out)
			}
			status := s.mustCLI("", "keys", "status")
			if !strings.Contains(status, "unfinished") || !strings.Contains(status, "retiring") {
				t.Fatalf("status after an interrupted rotation:\n%s", status)
			}
			// Half rotated: the running server opens keys of both masters.
			readAll(t, w.op, docs)
			w.office = s.login(t, "office", pw)
			w.op.expect(201, "POST", "/complaints", map[string]any{"case": cases[1], "kind": "unfair", "description": "x"})

			if _, errs, code := s.cli("", "keys", "retire"); code == 0 || !strings.Contains(errs, "still wrapped") {
				t.Fatalf("retire during an unfinished rotation: exit %d: %s", code, errs)
			}
			out = s.mustCLI("", "keys", "rotate")
			if !strings.Contains(out, "continuing the rotation") || !strings.Contains(out, "0 remaining") {
				t.Fatalf("resumed rotation said:\n%s", out)
			}
			out = s.mustCLI("", "keys", "retire")
			if !strings.Contains(out, "retired") || !strings.Contains(out, "deleted") {
				t.Fatalf("retire said:\n%s", out)
			}
			now := masterFiles(t, s)
			if len(now) != 1 || now[0] == old[0] {
				t.Fatalf("key files after retirement: %v (before %v)", now, old)
			}

			s.stop()
			s.start()
			readAll(t, w.op, docs)
			w.office = s.login(t, "office", pw) // TOTP secret still opens
			w.newCase(t, "after rotation")
			if got := fileSums(t, filepath.Join(s.data, "blobs")); be.name == "sqlite+local" {
				for p, sum := range blobsBefore {
					if got[p] != sum {
						t.Fatalf("blob %s changed or vanished in the rotation", p)
					}
				}
			}
			if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "OK") {
				t.Fatalf("audit verify: %s", out)
			}
			var ev struct {
				Items []struct {
					Action, Detail string
				} `json:"items"`
			}
			w.insp = s.login(t, "inspector1", pw)
			w.insp.expect(200, "GET", "/audit/events?action=keys.rotate", nil).json(t, &ev)
			if len(ev.Items) < 3 {
				t.Fatalf("rotation audit events: %+v", ev.Items)
			}
		})
	}
}

// TestEscrowRecovery loses every master key file; the server refuses to
// start (it will not wrap new keys to a master of its own invention), and
// keys recover with the escrow identity alone rewraps every key to a new
// master: every material reads again and staff sign in with their TOTP.
func TestEscrowRecovery(t *testing.T) {
	t.Parallel()
	escrowEnv, escrowID := escrowFiles(t)
	s := newServer(t, backends[0], escrowEnv)
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	_, docs := w.newCase(t, "escrow")
	// A key command run from a shell that lacks the escrow setting must not
	// strip the escrow copies from every key, unless asked to.
	withEnv := s.env
	s.env = slices.DeleteFunc(slices.Clone(withEnv), func(e string) bool { return strings.HasPrefix(e, "VAULT_ESCROW_RECIPIENTS_FILE=") })
	escrowed := func() []string {
		return queryStrings(t, s, "SELECT DISTINCT escrow FROM case_keys")
	}
	before := escrowed()
	if len(before) != 1 || before[0] == "" {
		t.Fatalf("escrow of the case keys: %q", before)
	}
	for _, cmd := range [][]string{{"keys", "rewrap"}, {"keys", "rotate"}} {
		if _, errs, code := s.cli("", cmd...); code == 0 || !strings.Contains(errs, "--escrow-change") {
			t.Fatalf("vaultd %v without the escrow setting: exit %d: %s", cmd, code, errs)
		}
	}
	if got := escrowed(); !slices.Equal(got, before) {
		t.Fatalf("escrow after refused commands: %q, want %q", got, before)
	}
	// An instance started so serves, and says at start that the keys it
	// creates will lack the vault's escrow.
	s.stop()
	s.start()
	if !strings.Contains(s.log.String(), "escrow recipients (VAULT_ESCROW_RECIPIENTS_FILE) differ") {
		t.Fatal("an instance without the keys' escrow recipients started without a warning")
	}
	s.env = withEnv
	s.stop()
	for _, f := range masterFiles(t, s) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(vaultdBin, "serve")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "keys recover --escrow-identity") {
		t.Fatalf("serve without its master: %v\n%s", err, out)
	}
	if fs := masterFiles(t, s); len(fs) != 0 {
		t.Fatalf("a start without the vault's master generated another: %v", fs)
	}
	out2 := s.mustCLI("", "keys", "recover", "--escrow-identity", escrowID)
	if !strings.Contains(out2, "0 remaining") {
		t.Fatalf("recover said:\n%s", out2)
	}
	s.mustCLI("", "keys", "retire")
	s.start()
	readAll(t, w.op, docs)
	s.login(t, "office", pw)
	if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
	// Asked to, the same command drops the copies.
	s.env = slices.DeleteFunc(slices.Clone(withEnv), func(e string) bool { return strings.HasPrefix(e, "VAULT_ESCROW_RECIPIENTS_FILE=") })
	s.mustCLI("", "keys", "rewrap", "--escrow-change")
	if got := escrowed(); len(got) != 1 || got[0] != "" {
		t.Fatalf("escrow after keys rewrap --escrow-change without recipients: %q", got)
	}
	s.env = withEnv
}

// TestEscrowRecoveryWithAKeyWithoutEscrow (review h27f, finding 1): a
// server started without VAULT_ESCROW_RECIPIENTS_FILE creates a case after
// the keys were given escrow, so its key is wrapped to the master alone;
// keys status says so. The master is lost. keys recover moves the vault's
// keys, the supervision key and every escrowed case key to a new master,
// records and names the lost case, and exits non-zero, every run; the vault
// starts again and the escrowed case reads.
func TestEscrowRecoveryWithAKeyWithoutEscrow(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			escrowEnv, escrowID := escrowFiles(t)
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start() // without escrow, and it keeps running so
			w.loginAll(t)
			kept, docs := w.newCase(t, "escrowed")
			w.op.expect(201, "POST", "/complaints", map[string]any{"case": kept, "kind": "unfair", "description": "slow review"})
			s.env = append(s.env, escrowEnv)
			s.mustCLI("", "keys", "rewrap")
			if st := s.mustCLI("", "keys", "status"); strings.Contains(st, "without escrow") {
				t.Fatalf("status with every key escrowed:\n%s", st)
			}
			lost, _ := w.newCase(t, "not escrowed")
			if st := s.mustCLI("", "keys", "status"); !strings.Contains(st, "escrow recipients: 1 (1 case key without escrow: run vaultd keys rewrap)") {
				t.Fatalf("status with a case key without escrow:\n%s", st)
			}
			s.stop()
			for _, f := range masterFiles(t, s) {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
			for run := range 2 {
				out, errs, code := s.cli("", "keys", "recover", "--escrow-identity", escrowID, "--batch", "1")
				if code != 1 || !strings.Contains(errs, "1 case keys could not be recovered") || !strings.Contains(errs, lost) ||
					!strings.Contains(errs, "cannot be read") || !strings.Contains(errs, "old master key file turns up") || strings.Contains(errs, kept) {
					t.Fatalf("recover run %d: exit %d\n%s\n%s", run, code, out, errs)
				}
			}
			for _, table := range []string{"vault_keys", "supervision_keys"} {
				if got := queryStrings(t, s, "SELECT DISTINCT master FROM "+table); len(got) != 1 || got[0] != queryStrings(t, s, "SELECT fingerprint FROM vault_masters WHERE state = 'active'")[0] {
					t.Fatalf("%s after the recovery: masters %q", table, got)
				}
			}
			if st := s.mustCLI("", "keys", "status"); !strings.Contains(st, "escrow recipients: 1") {
				t.Fatalf("status after the recovery:\n%s", st)
			}
			s.start()
			w.loginAll(t) // TOTP secrets open: the secrets key was recovered
			readAll(t, w.op, docs)
			var ev struct {
				Items []struct {
					Action, Outcome, Resource string
				} `json:"items"`
			}
			w.insp.expect(200, "GET", "/audit/events?action=keys.lost", nil).json(t, &ev)
			if len(ev.Items) != 2 || ev.Items[0].Resource != "case/"+lost || ev.Items[0].Outcome != "error" {
				t.Fatalf("keys.lost events (one per run): %+v", ev.Items)
			}
			if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "OK") {
				t.Fatalf("audit verify: %s", out)
			}
		})
	}
}

// buildAgePlugin builds the stand-in token plugin of vault/crypt's tests
// and makes a token for it; it returns the env that plugs the token in.
func buildAgePlugin(t *testing.T) (pluginEnv []string, tokenEnv string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "age-plugin-crvaulttest"),
		"../../vault/crypt/testdata/age-plugin-crvaulttest").CombinedOutput()
	if err != nil {
		t.Fatalf("build test plugin: %v\n%s", err, out)
	}
	tok, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(idFile, []byte(plugin.EncodeIdentity("crvaulttest", []byte("slot-1"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"VAULT_MASTER_IDENTITY_FILE=" + idFile,
		"VAULT_MASTER_RECIPIENTS=" + plugin.EncodeRecipient("crvaulttest", []byte(tok.Recipient().String()))}, "CRVAULT_TEST_TOKEN=" + tokenFile
}

// TestMasterSealedByAgePlugin runs the vault with its master key sealed to
// an age plugin's token: the first start writes it sealed, no plaintext
// master ever reaches the data directory (before or after a rotation), and
// without the token the server does not start.
func TestMasterSealedByAgePlugin(t *testing.T) {
	t.Parallel()
	pluginEnv, tokenEnv := buildAgePlugin(t)
	s := newServer(t, backends[0], append(pluginEnv, tokenEnv)...)
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	_, docs := w.newCase(t, "plugin")
	readAll(t, w.op, docs)
	s.mustCLI("", "keys", "rotate")
	s.mustCLI("", "keys", "retire")
	s.stop()
	s.start()
	readAll(t, w.op, docs)
	s.stop()

	files := masterFiles(t, s)
	if len(files) != 1 {
		t.Fatalf("key files: %v", files)
	}
	_ = filepath.Walk(s.data, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("AGE-SECRET-KEY-PQ-1")) {
			t.Errorf("%s holds a plaintext master key", p)
		}
		return nil
	})
	b, _ := os.ReadFile(files[0])
	if !bytes.Contains(b, []byte("BEGIN AGE ENCRYPTED FILE")) {
		t.Fatalf("rotated key file is not sealed:\n%s", b)
	}

	// The token unplugged: no start, and a clear reason.
	for i, e := range s.env {
		if e == tokenEnv {
			s.env[i] = "CRVAULT_TEST_TOKEN="
		}
	}
	cmd := exec.Command(vaultdBin, "serve")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no usable master key") {
		t.Fatalf("serve without the token: %v\n%s", err, out)
	}
}

// TestKeyRotationToADistributedKey is the rotation of several machines:
// keys new writes a master without touching the database, every instance
// is restarted with it beside the old one, then keys rotate --key moves
// every key to it; after retirement the instances need only the new file.
func TestKeyRotationToADistributedKey(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	_, docs := w.newCase(t, "distributed")
	secret := filepath.Join(t.TempDir(), "next-master.age-key")
	out := s.mustCLI("", "keys", "new", "--out", secret)
	if !strings.Contains(out, secret) {
		t.Fatalf("keys new said: %s", out)
	}
	if st := s.mustCLI("", "keys", "status"); strings.Count(st, "\n") != 1 || !strings.Contains(st, "active") {
		t.Fatalf("keys new changed the database:\n%s", st)
	}
	s.stop()
	s.env = append(s.env, "VAULT_MASTER_KEY_FILE="+secret)
	s.start()
	s.mustCLI("", "keys", "rotate", "--key", secret)
	s.mustCLI("", "keys", "retire")
	if fs := masterFiles(t, s); len(fs) != 0 {
		t.Fatalf("the retired master's file is still in the keys directory: %v", fs)
	}
	readAll(t, w.op, docs)
	s.stop()
	s.start()
	readAll(t, w.op, docs)
	w.newCase(t, "after")
}
