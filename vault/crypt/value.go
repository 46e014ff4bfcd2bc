package crypt

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Small secrets that are not documents (TOTP secrets, for one) are sealed
// under a 256-bit key derived from the master identity with HKDF-SHA256,
// with XChaCha20-Poly1305 and the caller's label as additional data: a value
// opens only under the label it was sealed with, so a database administrator
// cannot move one account's sealed secret onto another. A symmetric key of
// 256 bits is as safe against a quantum adversary as the hybrid master.
//
// Format: version byte 1 || 24-byte nonce || ciphertext and tag.

const valueVersion = 1

// maxValueSize bounds what SealValue and OpenValue handle: these are
// secrets of a few dozen bytes, never documents.
const maxValueSize = 64 << 10

func (m *Master) valueKey() ([]byte, error) {
	s := m.id.String()
	return hkdf.Key(sha256.New, []byte(s), nil, "crvault master value seal v1", chacha20poly1305.KeySize)
}

// SealValue encrypts a small secret (at most 64 KiB) under the master,
// bound to label.
func (m *Master) SealValue(label string, plaintext []byte) ([]byte, error) {
	if len(plaintext) > maxValueSize {
		return nil, errors.New("crypt: seal value: too large")
	}
	key, err := m.valueKey()
	if err != nil {
		return nil, fmt.Errorf("crypt: seal value: %w", err)
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: seal value: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = valueVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("crypt: seal value: %w", err)
	}
	return aead.Seal(out, out[1:1+aead.NonceSize()], plaintext, []byte(label)), nil
}

// OpenValue decrypts what SealValue made under the same master and label.
// ErrCorrupt if it was altered, sealed under another label, or by another
// master (which this format cannot tell apart).
func (m *Master) OpenValue(label string, sealed []byte) ([]byte, error) {
	key, err := m.valueKey()
	if err != nil {
		return nil, fmt.Errorf("crypt: open value: %w", err)
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: open value: %w", err)
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || len(sealed) > maxValueSize+64 || sealed[0] != valueVersion {
		return nil, fmt.Errorf("%w: open value: malformed", ErrCorrupt)
	}
	plain, err := aead.Open(nil, sealed[1:1+aead.NonceSize()], sealed[1+aead.NonceSize():], []byte(label))
	if err != nil {
		return nil, fmt.Errorf("%w: open value", ErrCorrupt)
	}
	return plain, nil
}

// ResealValue re-encrypts a sealed value from m to the master to, for
// master rotation.
func (m *Master) ResealValue(label string, sealed []byte, to *Master) ([]byte, error) {
	if to == nil {
		return nil, errors.New("crypt: reseal value: no target master")
	}
	plain, err := m.OpenValue(label, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return to.SealValue(label, plain)
}
