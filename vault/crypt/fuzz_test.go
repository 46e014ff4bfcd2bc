package crypt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
)

// ParseMaster reads an environment variable: outside input.
func FuzzParseMaster(f *testing.F) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(id.String())
	f.Add("# c\n" + id.String() + "\n")
	f.Add("AGE-SECRET-KEY-PQ-1")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMaster(s)
		if err != nil {
			if !errors.Is(err, ErrNoKey) {
				t.Fatalf("error %v is not ErrNoKey", err)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Fatalf("error %q names key material", err)
			}
			return
		}
		if m.Fingerprint() == "" {
			t.Fatal("parsed master without fingerprint")
		}
	})
}

// Headers and payloads come back from the database and the blob store, which
// an attacker may have written to: opening must fail cleanly, never panic,
// and never succeed on anything but the original pair.
func FuzzOpen(f *testing.F) {
	m, err := GenerateMaster()
	if err != nil {
		f.Fatal(err)
	}
	wrapped, _ := m.NewCaseKey()
	k, err := m.OpenCaseKey(wrapped)
	if err != nil {
		f.Fatal(err)
	}
	plain := bytes.Repeat([]byte("confidential "), 100)
	var payload bytes.Buffer
	s, _ := k.Encrypt(&payload)
	s.Write(plain)
	s.Close()
	header := s.Header()
	f.Add(header, payload.Bytes())
	f.Add(header[:len(header)/2], payload.Bytes()[:20])
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n\n--- AAAA\n"), []byte{})
	f.Fuzz(func(t *testing.T, h, p []byte) {
		r, err := k.OpenStream(h, bytes.NewReader(p))
		if err == nil {
			var got []byte
			got, err = io.ReadAll(r)
			if err == nil && !(bytes.Equal(h, header) && bytes.Equal(p, payload.Bytes()) && bytes.Equal(got, plain)) {
				t.Fatal("OpenStream accepted a forged header or payload")
			}
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("OpenStream error %v is neither ErrCorrupt nor ErrWrongKey", err)
		}
		got, err := openAllChunks(k, h, p)
		if err == nil && !bytes.Equal(got, plain) {
			t.Fatal("ChunkOpener accepted a forged header or payload")
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("ChunkOpener error %v is neither ErrCorrupt nor ErrWrongKey", err)
		}
	})
}

// Wrapped case keys come from the database.
func FuzzOpenCaseKey(f *testing.F) {
	m, err := GenerateMaster()
	if err != nil {
		f.Fatal(err)
	}
	wrapped, _ := m.NewCaseKey()
	f.Add(wrapped)
	f.Add(wrapped[:100])
	f.Fuzz(func(t *testing.T, w []byte) {
		_, err := m.OpenCaseKey(w)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("error %v is neither ErrCorrupt nor ErrWrongKey", err)
		}
	})
}
