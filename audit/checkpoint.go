package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit/keyfile"
)

// DefaultOrigin is the checkpoint origin line and signing key name.
const DefaultOrigin = "crvault.audit"

// signerKeyFile is the key's name under Options.KeyDir.
const signerKeyFile = "audit-checkpoint.key"

// Checkpoint is a parsed, signature-checked checkpoint.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// formatCheckpoint is the C2SP tlog-checkpoint body: origin, size, base64 root.
func formatCheckpoint(origin string, size int64, root tlog.Hash) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// ParseCheckpoint checks a signed checkpoint note against verifierKey and
// returns its contents. The origin must equal the key name.
func ParseCheckpoint(signed []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: verifier key: %v", ErrInvalid, err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature does not verify with key %s: %w", v.Name(), err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has %d lines", ErrInvalid, len(lines))
	}
	if lines[0] != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint origin %q is not key name %q", ErrInvalid, lines[0], v.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint size %q", ErrInvalid, lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint root %q", ErrInvalid, lines[2])
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: tlog.Hash(raw)}, nil
}

// ErrKeyMissing is wrapped by Open when the checkpoint key file is missing
// and none may be made: a read-only open, or a log that holds checkpoints.
var ErrKeyMissing = errors.New("audit: the checkpoint key is missing")

// ErrKeyNotPinned is wrapped by Open when the checkpoint key file is not the
// private half of Options.VerifierKey.
var ErrKeyNotPinned = errors.New("audit: the checkpoint key is not the pinned one")

// openKey loads (or, on a first start without a pinned key, creates) the
// signer key and checks it against the pinned verifier key, if any. A
// read-only open with a pinned key and no key file gets a nil signer.
func openKey(opts Options, create bool) (note.Signer, string, error) {
	pinned := strings.TrimSpace(opts.VerifierKey)
	if pinned == "" {
		return loadOrCreateKey(opts.KeyFile, opts.Origin, opts.UnwrapKey, create)
	}
	v, err := note.NewVerifier(pinned)
	if err != nil {
		return nil, "", fmt.Errorf("%w: pinned checkpoint verifier key: %v", ErrInvalid, err)
	}
	if v.Name() != opts.Origin {
		return nil, "", fmt.Errorf("%w: pinned checkpoint verifier key is for origin %q, not %q", ErrInvalid, v.Name(), opts.Origin)
	}
	// Never generated: a pinned key says the real one exists somewhere,
	// and a new one would only be refused.
	signer, vkey, err := loadOrCreateKey(opts.KeyFile, opts.Origin, opts.UnwrapKey, false)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.ReadOnly:
		return nil, pinned, nil
	case err != nil:
		return nil, "", err
	case vkey != pinned:
		return nil, "", fmt.Errorf("%w: checkpoint key %s verifies as %s, the pinned verifier key is %s (the key was swapped, or the pin is stale)",
			ErrKeyNotPinned, opts.KeyFile, vkey, pinned)
	}
	return signer, vkey, nil
}

// DefaultKeyFile is where the checkpoint signer key lives when no key file
// is configured: audit-checkpoint.key in keyDir.
func DefaultKeyFile(keyDir string) string { return filepath.Join(keyDir, signerKeyFile) }

// ageHeader starts an age-encrypted file.
const ageHeader = "age-encryption.org/"

// loadOrCreateKey returns the signer and verifier key from path, generating
// them (mode 0600, with the verifier key beside it) on first start. A key
// file encrypted with age (for instance to an age plugin holding the real
// secret in a token) is decrypted with unwrap.
func loadOrCreateKey(path, origin string, unwrap func([]byte) ([]byte, error), create bool) (note.Signer, string, error) {
	skey, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !create {
		// A read-only open (vaultd audit verify) never makes a key, nor
		// does one on a log with checkpoints: with the key's mount
		// missing it would make a new one and report the genuine log's
		// signatures as forged.
		return nil, "", fmt.Errorf("%w: %s: give its file (VAULT_AUDIT_KEY_FILE, or restore <data>/keys from the backup); "+
			"a new key would make the signatures already in the log read as forged (%w)", ErrKeyMissing, path, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		skey, err = createKey(path, origin)
		if errors.Is(err, fs.ErrExist) {
			// Another process starting at the same moment won the race.
			skey, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	if skey, err = unwrapKey(path, skey, unwrap); err != nil {
		return nil, "", err
	}
	signer, vkey, err := parseSignerKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	if signer.Name() != origin {
		return nil, "", fmt.Errorf("checkpoint key %s is for origin %q, not %q", path, signer.Name(), origin)
	}
	return signer, vkey, nil
}

// unwrapKey decrypts an age-encrypted key file; other files pass through.
func unwrapKey(path string, skey []byte, unwrap func([]byte) ([]byte, error)) ([]byte, error) {
	if !bytes.HasPrefix(skey, []byte(ageHeader)) {
		return skey, nil
	}
	if unwrap == nil {
		return nil, fmt.Errorf("checkpoint key %s is age-encrypted but no identity to decrypt it is configured", path)
	}
	plain, err := unwrap(skey)
	if err != nil {
		return nil, fmt.Errorf("decrypt checkpoint key %s: %w", path, err)
	}
	return plain, nil
}

// createKey generates a signer key into path (keyfile.WriteOnce: two
// processes starting at once must not overwrite each other's key, and a
// crash must leave either no key or a whole one) and its verifier key
// beside it.
func createKey(path, origin string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	s, v, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if err := keyfile.WriteOnce(path, []byte(s+"\n")); err != nil {
		return nil, err
	}
	if err := writeVerifierKey(path, v); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// writeVerifierKey writes the verifier key beside the new signer key at
// path, mode 0600 like every file under the key directory. It is a
// convenience: vaultd audit pubkey derives it from the signer key.
func writeVerifierKey(path, vkey string) error {
	pub := strings.TrimSuffix(path, ".key") + ".pub"
	if err := keyfile.WriteOnce(pub, []byte(vkey+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write verifier key: %w", err)
	}
	return nil
}

// parseSignerKey derives the verifier key from the private key, so the two
// can never disagree.
func parseSignerKey(skey string) (note.Signer, string, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("parse checkpoint key: %w", err)
	}
	// PRIVATE+KEY+name+hash+base64; base64 may itself contain '+'.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, "", errors.New("parse checkpoint key: malformed")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, "", errors.New("parse checkpoint key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, "", fmt.Errorf("derive verifier key: %w", err)
	}
	return signer, vkey, nil
}

// LoadPublicKey returns the verifier key of the checkpoint signer key in
// keyFile (for `vaultd audit pubkey`), without opening the log; unwrap
// decrypts an age-encrypted key file as for Options.UnwrapKey.
func LoadPublicKey(keyFile string, unwrap func([]byte) ([]byte, error)) (string, error) {
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("read checkpoint key: %w", err)
	}
	if skey, err = unwrapKey(keyFile, skey, unwrap); err != nil {
		return "", err
	}
	_, vkey, err := parseSignerKey(strings.TrimSpace(string(skey)))
	return vkey, err
}

func signCheckpoint(signer note.Signer, size int64, root tlog.Hash) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(formatCheckpoint(signer.Name(), size, root))}, signer)
}
