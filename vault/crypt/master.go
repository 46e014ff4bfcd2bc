package crypt

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/crvault/crvault/audit/keyfile"
)

var (
	// ErrNoKey means no usable master key: missing, unreadable, malformed,
	// classic (not post-quantum) or kept in a file others can read. vaultd
	// refuses to start on it.
	ErrNoKey = errors.New("crypt: no usable master key")
	// ErrKeyPermissions is joined with ErrNoKey when the key file is readable
	// or writable by group or others.
	ErrKeyPermissions = errors.New("crypt: key file is accessible by group or others (want mode 0600)")
	// ErrWrongKey means the key opens none of the recipient stanzas: the
	// header or wrapped case key belongs to another key (or its stanza was
	// altered, which age cannot tell apart).
	ErrWrongKey = errors.New("crypt: wrong key")
	// ErrCorrupt means a header, wrapped key or payload failed authentication
	// or is malformed: tampering, truncation, or a header paired with another
	// material's payload.
	ErrCorrupt = errors.New("crypt: failed authentication")
)

// MasterKeyFile is the name of the master key file inside the keys directory.
const MasterKeyFile = "master.age-key"

// maxKeyFileSize bounds what is read from a key file or the environment; a
// hybrid identity is under 100 bytes, comments included well under this.
const maxKeyFileSize = 64 << 10

// Master holds the master hybrid identity. It never prints its secret: String,
// GoString, Format and LogValue show only a fingerprint of the public key.
// Methods are on the value so that a Master embedded by value is redacted too.
type Master struct {
	id   *age.HybridIdentity
	rcpt *age.HybridRecipient
	fp   string
}

func newMaster(id *age.HybridIdentity) *Master {
	r := id.Recipient()
	return &Master{id: id, rcpt: r, fp: fingerprint(r)}
}

// fingerprint is a short, stable name for a public key; the recipient string
// of a hybrid key is almost 2000 characters, too long for logs.
func fingerprint(r *age.HybridRecipient) string {
	sum := sha256.Sum256([]byte(r.String()))
	return hex.EncodeToString(sum[:8])
}

// GenerateMaster returns a fresh random master, for first start and rotation.
func GenerateMaster() (*Master, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("crypt: generate master: %w", err)
	}
	return newMaster(id), nil
}

// Fingerprint names the master's public key (16 hex digits) without revealing
// anything secret; log it to tell which master a process runs with.
func (m Master) Fingerprint() string { return m.fp }

func (m Master) String() string { return "crypt.Master{fingerprint:" + m.fp + "}" }

// GoString keeps %#v from dumping the identity's fields.
func (m Master) GoString() string { return m.String() }

// Format redacts every verb, %x and %q included.
func (m Master) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// LogValue makes slog show only the fingerprint.
func (m Master) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fingerprint", m.fp))
}

// ParseMaster parses a master key supplied through the environment
// (VAULT_MASTER_KEY): either the bare AGE-SECRET-KEY-PQ-1... line or the whole
// content of an age identity file (blank and # lines are ignored).
func ParseMaster(s string) (*Master, error) {
	if len(s) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: key text too long", ErrNoKey)
	}
	var keys []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: read key text: %v", ErrNoKey, err)
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("%w: no identity in key text", ErrNoKey)
	case len(keys) > 1:
		return nil, fmt.Errorf("%w: %d identities in key text, want exactly one", ErrNoKey, len(keys))
	}
	id, err := parseHybrid(keys[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	return newMaster(id), nil
}

// parseHybrid never puts age's parse error in its own: bech32 errors quote
// characters of the input, which here is a secret.
func parseHybrid(line string) (*age.HybridIdentity, error) {
	id, err := age.ParseHybridIdentity(line)
	if err == nil {
		return id, nil
	}
	upper := strings.ToUpper(line)
	if strings.HasPrefix(upper, "AGE-SECRET-KEY-1") {
		return nil, errors.New("classic X25519 identity refused; a hybrid post-quantum (mlkem768x25519) identity is required")
	}
	return nil, errors.New("not a valid hybrid post-quantum age identity")
}

// LoadMaster reads the master key from a file supplied by the operator. The
// file must be a regular file of mode 0600 or stricter (for a Kubernetes
// secret, set defaultMode: 0400).
func LoadMaster(path string) (*Master, error) {
	return LoadMasterFile(path, nil)
}

// LoadOrCreateMaster loads <dir>/master.age-key, generating it on first start.
// dir is created with mode 0700; the key file is written with mode 0600 via a
// synced temporary file linked into place, so a crash never leaves a partial
// key and two processes starting at once end up with the same key.
func LoadOrCreateMaster(dir string) (*Master, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create key directory: %w", ErrNoKey, err)
	}
	path := filepath.Join(dir, MasterKeyFile)
	m, err := LoadMaster(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return m, err
	}
	m, err = GenerateMaster()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	switch err := m.WriteKeyFile(path); {
	case errors.Is(err, fs.ErrExist):
		// Another process won the race; its key is the one in use.
		return LoadMaster(path)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	return m, nil
}

// WriteKeyFile writes m as an age identity file (usable with `age -d -i` for
// disaster recovery) at path, mode 0600, atomically and only if path does not
// exist yet (the error then wraps fs.ErrExist): a master key is never
// overwritten, since that would lose every case.
func (m *Master) WriteKeyFile(path string) error {
	b := m.identityFile()
	defer clear(b)
	return keyfile.WriteOnce(path, b)
}

// identityFile is m as an age identity file, with comments.
func (m *Master) identityFile() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# crvault master key. Keep it secret and backed up offline:\n")
	fmt.Fprintf(&b, "# without it no document in this vault can ever be read again.\n")
	fmt.Fprintf(&b, "# created: %s\n# fingerprint: %s\n", time.Now().UTC().Format(time.RFC3339), m.fp)
	fmt.Fprintf(&b, "# public key: %s\n", m.rcpt.String())
	b.WriteString(m.id.String())
	b.WriteString("\n")
	return b.Bytes()
}

// NewCaseKey generates a hybrid identity for a new case and returns it
// wrapped (age-encrypted) to the master: the only form the database stores.
func (m *Master) NewCaseKey() ([]byte, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("crypt: generate case key: %w", err)
	}
	return m.wrap(id)
}

func (m *Master) wrap(id *age.HybridIdentity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, m.rcpt)
	if err != nil {
		return nil, fmt.Errorf("crypt: wrap case key: %w", err)
	}
	s := id.String()
	if _, err := io.WriteString(w, s); err != nil {
		return nil, fmt.Errorf("crypt: wrap case key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("crypt: wrap case key: %w", err)
	}
	return buf.Bytes(), nil
}

// maxWrappedSize bounds a wrapped case key (~1.7 KB): header plus an
// encrypted identity string of under 100 bytes.
const maxWrappedSize = 16 << 10

// OpenCaseKey unwraps a case key. It fails with ErrWrongKey when wrapped was
// made for another master and ErrCorrupt when it was altered.
func (m *Master) OpenCaseKey(wrapped []byte) (*CaseKey, error) {
	if len(wrapped) > maxWrappedSize {
		return nil, fmt.Errorf("%w: wrapped case key of %d bytes", ErrCorrupt, len(wrapped))
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), m.id)
	if err != nil {
		return nil, classifyHeaderErr("open case key", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxWrappedSize))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("%w: open case key: %v", ErrCorrupt, err)
	}
	id, err := parseHybrid(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: open case key: %v", ErrCorrupt, err)
	}
	return newCaseKey(id)
}

// Rewrap re-encrypts a wrapped case key from m to the master to, for master
// rotation: only case-key rows change; headers and blobs stay as they are.
func (m *Master) Rewrap(wrapped []byte, to *Master) ([]byte, error) {
	if to == nil {
		return nil, errors.New("crypt: rewrap: no target master")
	}
	k, err := m.OpenCaseKey(wrapped)
	if err != nil {
		return nil, fmt.Errorf("crypt: rewrap: %w", err)
	}
	return to.wrap(k.id)
}

// classifyHeaderErr maps age's header errors to the package's sentinels.
// age's messages carry no key material, only what went wrong.
func classifyHeaderErr(op string, err error) error {
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return fmt.Errorf("%w: %s", ErrWrongKey, op)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, op, err)
}
