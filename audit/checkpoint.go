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
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultOrigin is the checkpoint origin line and signing key name.
const DefaultOrigin = "crvault.audit"

// Key file names under Options.KeyDir.
const (
	signerKeyFile   = "audit-checkpoint.key"
	verifierKeyFile = "audit-checkpoint.pub"
)

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

// loadOrCreateKey returns the signer and verifier key, generating them
// (mode 0600) on first start.
func loadOrCreateKey(dir, origin string) (note.Signer, string, error) {
	if dir == "" {
		return nil, "", fmt.Errorf("audit: Options.KeyDir is required")
	}
	path := filepath.Join(dir, signerKeyFile)
	skey, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", fmt.Errorf("create key dir: %w", err)
		}
		s, v, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, "", fmt.Errorf("generate checkpoint key: %w", err)
		}
		// O_EXCL: two processes starting at once must not overwrite each other's key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return loadOrCreateKeyRetry(dir, origin, err)
		}
		if _, err := f.WriteString(s + "\n"); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("write checkpoint key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("write checkpoint key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, "", fmt.Errorf("write checkpoint key: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, verifierKeyFile), []byte(v+"\n"), 0o644); err != nil {
			return nil, "", fmt.Errorf("write verifier key: %w", err)
		}
		skey = []byte(s)
	} else if err != nil {
		return nil, "", fmt.Errorf("read checkpoint key: %w", err)
	}
	signer, vkey, err := parseSignerKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, "", err
	}
	if signer.Name() != origin {
		return nil, "", fmt.Errorf("checkpoint key in %s is for origin %q, not %q", dir, signer.Name(), origin)
	}
	return signer, vkey, nil
}

func loadOrCreateKeyRetry(dir, origin string, cause error) (note.Signer, string, error) {
	if !errors.Is(cause, fs.ErrExist) {
		return nil, "", fmt.Errorf("create checkpoint key: %w", cause)
	}
	return loadOrCreateKey(dir, origin)
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

// LoadPublicKey returns the checkpoint verifier key stored in keyDir (for
// `vaultd audit pubkey`), without opening the log.
func LoadPublicKey(keyDir string) (string, error) {
	skey, err := os.ReadFile(filepath.Join(keyDir, signerKeyFile))
	if err != nil {
		return "", fmt.Errorf("read checkpoint key: %w", err)
	}
	_, vkey, err := parseSignerKey(strings.TrimSpace(string(skey)))
	return vkey, err
}

func signCheckpoint(signer note.Signer, size int64, root tlog.Hash) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(formatCheckpoint(signer.Name(), size, root))}, signer)
}

// mirrorName sorts by size.
func mirrorName(size int64) string { return fmt.Sprintf("checkpoint-%020d", size) }

// writeMirror stores a checkpoint outside the database; write then rename so
// a reader never sees half a file.
func writeMirror(dir string, size int64, signed []byte) error {
	final := filepath.Join(dir, mirrorName(size))
	if old, err := os.ReadFile(final); err == nil && bytes.Equal(old, signed) {
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("mirror checkpoint %d: %w", size, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(signed); err != nil {
		tmp.Close()
		return fmt.Errorf("mirror checkpoint %d: %w", size, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("mirror checkpoint %d: %w", size, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mirror checkpoint %d: %w", size, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("mirror checkpoint %d: %w", size, err)
	}
	return nil
}

type mirrored struct {
	name   string
	signed []byte
}

func readMirror(dir string) ([]mirrored, error) {
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint mirror: %w", err)
	}
	var out []mirrored
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "checkpoint-") || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read mirrored %s: %w", e.Name(), err)
		}
		out = append(out, mirrored{name: e.Name(), signed: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
