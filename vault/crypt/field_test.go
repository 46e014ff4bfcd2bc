package crypt

import (
	"bytes"
	"errors"
	"testing"
)

func TestFieldSealing(t *testing.T) {
	m := testMaster(t)
	k, wrapped := newCase(t, m)
	other, _ := newCase(t, m)
	secret := []byte("MARKER 核心路由器 title")

	sealed, err := k.SealField("cases.title/c1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) || bytes.Contains(sealed, []byte("MARKER")) {
		t.Fatal("sealed field holds its plaintext")
	}
	if !IsSealedField(sealed) || len(sealed) != len(secret)+FieldOverhead {
		t.Fatalf("sealed form: %d bytes, sealed=%v", len(sealed), IsSealedField(sealed))
	}
	again, _ := k.SealField("cases.title/c1", secret)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}

	// The same key reopened from its wrapped form opens it: the field key is
	// derived from the case identity, not drawn per process.
	k2, err := m.OpenCaseKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.OpenField("cases.title/c1", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q, %v", got, err)
	}

	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct {
		key   *CaseKey
		label string
		value []byte
		want  error
	}{
		"other case":   {other, "cases.title/c1", sealed, ErrCorrupt},
		"other row":    {k, "cases.title/c2", sealed, ErrCorrupt},
		"other column": {k, "cases.product/c1", sealed, ErrCorrupt},
		"tampered":     {k, "cases.title/c1", tampered, ErrCorrupt},
		"truncated":    {k, "cases.title/c1", sealed[:FieldOverhead-1], ErrNotSealed},
		"legacy text":  {k, "cases.title/c1", []byte("Core routers"), ErrNotSealed},
	} {
		if _, err := tc.key.OpenField(tc.label, tc.value); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}

	empty, err := k.SealField("x", nil)
	if err != nil || !IsSealedField(empty) {
		t.Fatalf("seal empty: %v", err)
	}
	if got, err := k.OpenField("x", empty); err != nil || len(got) != 0 {
		t.Fatalf("open empty: %q %v", got, err)
	}
}

func TestFieldMAC(t *testing.T) {
	m := testMaster(t)
	k, wrapped := newCase(t, m)
	other, _ := newCase(t, m)
	k2, err := m.OpenCaseKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	a := k.FieldMAC("materials.filename", []byte("contract.pdf"))
	if !bytes.Equal(a, k2.FieldMAC("materials.filename", []byte("contract.pdf"))) {
		t.Fatal("the MAC of one value under one case key is not stable")
	}
	for name, b := range map[string][]byte{
		"other value": k.FieldMAC("materials.filename", []byte("contract2.pdf")),
		"other label": k.FieldMAC("materials.kind", []byte("contract.pdf")),
		"other case":  other.FieldMAC("materials.filename", []byte("contract.pdf")),
		// label and value are separated, so moving bytes between them differs
		"shifted": k.FieldMAC("materials.filenamec", []byte("ontract.pdf")),
	} {
		if bytes.Equal(a, b) {
			t.Errorf("%s: equal MAC", name)
		}
	}
}

func BenchmarkOpenField(b *testing.B) {
	m := testMaster(b)
	k, _ := newCase(b, m)
	sealed, _ := k.SealField("cases.title/c1", []byte("Core routers for the grid"))
	for b.Loop() {
		if _, err := k.OpenField("cases.title/c1", sealed); err != nil {
			b.Fatal(err)
		}
	}
}
