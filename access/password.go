package access

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordHasher turns passwords into self-describing hash strings and checks
// them. Verify must accept any hash Hash ever produced, whatever its
// parameters, so that parameters can be raised without locking users out.
type PasswordHasher interface {
	Hash(password string) (string, error)
	Verify(password, encoded string) (bool, error)
}

// Argon2id hashes with argon2id and encodes in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
type Argon2id struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   int
	KeyLen    uint32
}

// DefaultArgon2id meets OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
var DefaultArgon2id = Argon2id{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

var errMalformedHash = errors.New("malformed password hash")

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password under a fresh random salt.
func (a Argon2id) Hash(password string) (string, error) {
	salt := make([]byte, a.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, a.Time, a.MemoryKiB, a.Threads, a.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, a.MemoryKiB, a.Time, a.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks password against a PHC string using the parameters stored in
// it, in constant time with respect to the key.
func (Argon2id) Verify(password, encoded string) (bool, error) {
	p, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// decoyMaker is a PasswordHasher that can make a stored-hash string without
// hashing anything: one that Verify checks with exactly the work of a real
// hash made now, and that no password matches.
type decoyMaker interface {
	Decoy() (string, error)
}

// Decoy returns a PHC string with a's parameters, a random salt and a
// random key. Verifying a password against it runs argon2id with those
// parameters, like any stored hash of a; it matches with probability
// 2^-(8*KeyLen). Unknown usernames are checked against it, and making it
// costs no argon2id run: every start of vaultd and every command-line call
// used to hash a random string for it (19 MiB, t=2).
func (a Argon2id) Decoy() (string, error) {
	buf := make([]byte, a.SaltLen+int(a.KeyLen))
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("decoy hash: %w", err)
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, a.MemoryKiB, a.Time, a.Threads,
		b64.EncodeToString(buf[:a.SaltLen]), b64.EncodeToString(buf[a.SaltLen:])), nil
}

type phc struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

// parsePHC parses a stored hash. It bounds every parameter so that a corrupt
// or hostile row cannot make a login allocate gigabytes or spin for minutes.
func parsePHC(s string) (phc, error) {
	var p phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, errMalformedHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, errMalformedHash
	}
	var m, t, th uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", m, t, th) != parts[3] {
		return p, errMalformedHash
	}
	if m < 8 || m > 1<<21 || t < 1 || t > 64 || th < 1 || th > 64 || m < 8*th {
		return p, errMalformedHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, errMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, errMalformedHash
	}
	return phc{memory: m, time: t, threads: uint8(th), salt: salt, key: key}, nil
}

// boundedHasher lets at most n hashes run at once. Each argon2id run holds
// its whole memory cost (19 MiB by default), so without a bound a burst of
// logins is a memory exhaustion attack; with it, excess logins queue.
type boundedHasher struct {
	h   PasswordHasher
	sem chan struct{}
}

func newBoundedHasher(h PasswordHasher, n int) boundedHasher {
	return boundedHasher{h: h, sem: make(chan struct{}, max(n, 1))}
}

func (b boundedHasher) Hash(password string) (string, error) {
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	return b.h.Hash(password)
}

// decoy makes a decoy hash: without hashing when the wrapped hasher can,
// else by hashing a random string.
func (b boundedHasher) decoy(random string) (string, error) {
	if d, ok := b.h.(decoyMaker); ok {
		return d.Decoy()
	}
	return b.Hash(random)
}

func (b boundedHasher) Verify(password, encoded string) (bool, error) {
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	return b.h.Verify(password, encoded)
}
