package crypt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"filippo.io/age/plugin"

	"github.com/crvault/crvault/audit/keyfile"
)

// Sealed master key files. A master key file may hold the hybrid identity
// itself, or that identity age-encrypted to the recipients of a hardware
// token through an age plugin (age-plugin-yubikey, age-plugin-tpm, ...).
// A sealed file is opened at start by running the plugin with its identity
// (which for such plugins is a reference to the token, not a secret), so the
// master key exists in the process's memory only and never on disk.
//
// The trade-off, stated plainly: the token's own cryptography protects the
// sealed file (P-256 for a YubiKey's PIV slots, for example), which is not
// post-quantum. Case keys stay wrapped to the hybrid master, so a copy of
// the database alone remains safe against a future quantum adversary; a copy
// of the sealed file as well is only as safe as the token's algorithm.

// sealedPrefixes are how an age file starts, binary or armored.
var sealedPrefixes = []string{"age-encryption.org/", armor.Header}

// IsSealedKeyFile reports whether b is an age-encrypted key file rather
// than a plain identity file.
func IsSealedKeyFile(b []byte) bool {
	t := skipComments(b)
	for _, p := range sealedPrefixes {
		if bytes.HasPrefix(t, []byte(p)) {
			return true
		}
	}
	return false
}

// skipComments drops leading blank and # lines.
func skipComments(b []byte) []byte {
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		if !bytes.HasPrefix(b, []byte("#")) {
			return b
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
}

// ParseUnsealIdentities parses the identities that open sealed master key
// files: plugin identities (AGE-PLUGIN-NAME-1...), run through their plugin
// binary age-plugin-name on PATH with ui for its messages, or hybrid
// identities. One per line; blank and # lines are ignored.
func ParseUnsealIdentities(text string, ui *plugin.ClientUI) ([]age.Identity, error) {
	var ids []age.Identity
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(line), "AGE-PLUGIN-") {
			id, err := plugin.NewIdentity(line, ui)
			if err != nil {
				return nil, fmt.Errorf("plugin identity: %w", err)
			}
			ids = append(ids, id)
			continue
		}
		id, err := parseHybrid(line)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("no identity found")
	}
	return ids, nil
}

// ParseSealRecipients parses the recipients new master key files are
// sealed to: plugin recipients (age1name1...) or hybrid recipients
// (age1pq1...), one per line or comma separated.
func ParseSealRecipients(text string, ui *plugin.ClientUI) ([]age.Recipient, error) {
	var rs []age.Recipient
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.Split(line, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			if r, err := age.ParseHybridRecipient(f); err == nil {
				rs = append(rs, r)
				continue
			}
			r, err := plugin.NewRecipient(f, ui)
			if err != nil {
				return nil, fmt.Errorf("recipient %.24s...: neither hybrid nor plugin recipient", f)
			}
			rs = append(rs, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, errors.New("no recipient found")
	}
	return rs, nil
}

// LoadMasterFile reads a master key file, plain or sealed; unseal opens a
// sealed one (nil: sealed files are refused). The same mode rules as
// LoadMaster apply.
func LoadMasterFile(path string, unseal []age.Identity) (*Master, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if !IsSealedKeyFile(b) {
		m, err := ParseMaster(string(b))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		return m, nil
	}
	if len(unseal) == 0 {
		return nil, fmt.Errorf("%w: key file %s is sealed (age-encrypted) and no identity to open it was given (VAULT_MASTER_IDENTITY_FILE)", ErrNoKey, path)
	}
	body := skipComments(b)
	var src io.Reader = bytes.NewReader(body)
	if bytes.HasPrefix(body, []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(body))
	}
	r, err := age.Decrypt(src, unseal...)
	if err != nil {
		// age's and the plugins' messages name no secret.
		return nil, fmt.Errorf("%w: open sealed key file %s: %v", ErrNoKey, path, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	defer clear(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: open sealed key file %s: %v", ErrNoKey, path, err)
	}
	m, err := ParseMaster(string(plain))
	if err != nil {
		return nil, fmt.Errorf("sealed key file %s: %w", path, err)
	}
	return m, nil
}

// MasterFilePattern matches the master key files of a keys directory: the
// first one (master.age-key) and those rotations add (master-<fp>.age-key).
const MasterFilePattern = "master*.age-key"

// LoadKeyDir loads every master key file of dir (plain or sealed), sorted
// by name. A directory without any returns no masters and no error.
func LoadKeyDir(dir string, unseal []age.Identity) ([]*Master, error) {
	paths, err := filepath.Glob(filepath.Join(dir, MasterFilePattern))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var ms []*Master
	for _, p := range paths {
		m, err := LoadMasterFile(p, unseal)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// RotatedKeyFile is the name a rotation gives a new master's key file.
func RotatedKeyFile(m *Master) string { return "master-" + m.fp + ".age-key" }

// WriteSealedKeyFile writes m's identity file age-encrypted (armored) to
// recipients, at path, mode 0600, never overwriting: the plaintext identity
// exists only in memory. It refuses classic recipients only where age
// would (a plugin's recipients are what the token offers).
func (m *Master) WriteSealedKeyFile(path string, recipients []age.Recipient) error {
	if len(recipients) == 0 {
		return errors.New("write sealed key file: no recipient")
	}
	var b bytes.Buffer
	aw := armor.NewWriter(&b)
	w, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return fmt.Errorf("write sealed key file: %w", err)
	}
	plain := m.identityFile()
	_, err = w.Write(plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("write sealed key file: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write sealed key file: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("write sealed key file: %w", err)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# crvault master key %s, sealed to %d recipient(s) (age plugin or hybrid key).\n", m.fp, len(recipients))
	out.Write(b.Bytes())
	return keyfile.WriteOnce(path, out.Bytes())
}

// readKeyFile reads a key file after checking it is a regular file of mode
// 0600 or stricter.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open key file: %w", ErrNoKey, err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: stat key file %s: %w", ErrNoKey, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: key file %s is not a regular file", ErrNoKey, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o: %w", ErrNoKey, path, perm, ErrKeyPermissions)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("%w: read key file %s: %w", ErrNoKey, path, err)
	}
	return b, nil
}
