package crypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Field sealing: short confidential values kept in database rows (a case's
// title, a filename, a reason, a comment) are sealed with XChaCha20-Poly1305
// under a key derived from the case key, so they share its fate: whoever
// cannot open the case key cannot read them, and deleting the wrapped case key
// shreds them with the documents.
//
// A sealed field is fieldMagic, fieldVersion, a random 24-byte nonce and the
// ciphertext with its 16-byte tag. The magic byte is 0x00, which no text the
// vault stores can start with (PostgreSQL text cannot hold NUL, and the vault
// refuses control characters), so a sealed value is told apart from a value
// written before sealing existed without trying to decrypt it.
const (
	fieldMagic   = 0x00
	fieldVersion = 0x01
	fieldHeader  = 2 + chacha20poly1305.NonceSizeX
	// FieldOverhead is how many bytes sealing adds to a value.
	FieldOverhead = fieldHeader + chacha20poly1305.Overhead
)

// HKDF info strings: changing one makes every sealed field unreadable.
const (
	infoFieldAEAD = "crvault field seal v1"
	infoFieldMAC  = "crvault field mac v1"
)

// fieldKeys are the symmetric keys derived from one case (or supervision)
// identity.
type fieldKeys struct {
	aead cipher.AEAD
	mac  []byte
}

func deriveFieldKeys(secret string) (fieldKeys, error) {
	ek, err := hkdf.Key(sha256.New, []byte(secret), nil, infoFieldAEAD, chacha20poly1305.KeySize)
	if err != nil {
		return fieldKeys{}, fmt.Errorf("crypt: derive field key: %w", err)
	}
	defer clear(ek)
	aead, err := chacha20poly1305.NewX(ek)
	if err != nil {
		return fieldKeys{}, fmt.Errorf("crypt: field cipher: %w", err)
	}
	mk, err := hkdf.Key(sha256.New, []byte(secret), nil, infoFieldMAC, 32)
	if err != nil {
		return fieldKeys{}, fmt.Errorf("crypt: derive field mac key: %w", err)
	}
	return fieldKeys{aead: aead, mac: mk}, nil
}

// IsSealedField reports whether b has the form SealField produces. It does
// not authenticate: only OpenField does.
func IsSealedField(b []byte) bool {
	return len(b) >= FieldOverhead && b[0] == fieldMagic && b[1] == fieldVersion
}

// SealField encrypts a confidential value under k. label binds the value to
// where it is stored (table, column and row): a value copied into another row
// or column does not open there, so a database administrator can neither read
// nor swap sealed values unnoticed. An empty value seals to a short but
// non-empty result like any other.
func (k *CaseKey) SealField(label string, plaintext []byte) ([]byte, error) {
	out := make([]byte, fieldHeader, fieldHeader+len(plaintext)+chacha20poly1305.Overhead)
	out[0], out[1] = fieldMagic, fieldVersion
	if _, err := rand.Read(out[2:fieldHeader]); err != nil {
		return nil, fmt.Errorf("crypt: seal field: %w", err)
	}
	return k.fields.aead.Seal(out, out[2:fieldHeader], plaintext, []byte(label)), nil
}

// ErrNotSealed means a value OpenField was given was never sealed.
var ErrNotSealed = errors.New("crypt: value is not sealed")

// OpenField decrypts a value sealed by SealField under the same key and
// label. A value sealed for another label or case, or altered, is ErrCorrupt;
// a value that was never sealed is ErrNotSealed.
func (k *CaseKey) OpenField(label string, sealed []byte) ([]byte, error) {
	if !IsSealedField(sealed) {
		return nil, ErrNotSealed
	}
	pt, err := k.fields.aead.Open(nil, sealed[2:fieldHeader], sealed[fieldHeader:], []byte(label))
	if err != nil {
		return nil, fmt.Errorf("%w: sealed field %s", ErrCorrupt, label)
	}
	return pt, nil
}

// FieldMAC is a keyed hash (HMAC-SHA256 under a key derived from k) of value
// in the namespace label: equal values give equal MACs within one case, so a
// sealed column can still be matched for equality through a MAC column and a
// unique index, while the database learns nothing about the value itself
// beyond equality within the case.
func (k *CaseKey) FieldMAC(label string, value []byte) []byte {
	m := hmac.New(sha256.New, k.fields.mac)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(value)
	return m.Sum(nil)
}
