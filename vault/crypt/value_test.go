package crypt

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealValue(t *testing.T) {
	m, other := testMaster(t), testMaster(t)
	secret := []byte("JBSWY3DPEHPK3PXP-totp-secret")
	sealed, err := m.SealValue("access/totp/u1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value holds the plaintext")
	}
	got, err := m.OpenValue("access/totp/u1", sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open = %q, %v", got, err)
	}
	again, _ := m.SealValue("access/totp/u1", secret)
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: nonce not random")
	}
	for name, open := range map[string]func() ([]byte, error){
		"other label":  func() ([]byte, error) { return m.OpenValue("access/totp/u2", sealed) },
		"other master": func() ([]byte, error) { return other.OpenValue("access/totp/u1", sealed) },
		"flipped byte": func() ([]byte, error) { return m.OpenValue("access/totp/u1", flip(sealed, len(sealed)-3)) },
		"truncated":    func() ([]byte, error) { return m.OpenValue("access/totp/u1", sealed[:20]) },
		"empty":        func() ([]byte, error) { return m.OpenValue("access/totp/u1", nil) },
	} {
		if _, err := open(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	moved, err := m.ResealValue("access/totp/u1", sealed, other)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.OpenValue("access/totp/u1", moved); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("resealed = %q, %v", got, err)
	}
}
