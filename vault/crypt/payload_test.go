package crypt

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
)

// OpenPayload is a second implementation of age's STREAM decryption: it
// must give exactly what age's reader gives, for sizes around every chunk
// boundary, and accept nothing age refuses.
func TestOpenPayloadMatchesAge(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	for _, n := range []int{0, 1, 4096, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 3*chunkSize + 7, 1 << 20} {
		plain := testData(t, n, uint64(n))
		header, payload := seal(t, k, plain)
		r, err := k.OpenStream(header, bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		viaAge, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(viaAge, plain) {
			t.Fatalf("%d bytes: age read %d bytes, %v", n, len(viaAge), err)
		}
		got, err := k.OpenPayload(header, bytes.Clone(payload))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: OpenPayload gave %d bytes, %v", n, len(got), err)
		}
		// Into a buffer of its own: the same plaintext, the ciphertext
		// untouched (the vault caches it).
		fk, err := k.OpenHeader(header)
		if err != nil {
			t.Fatal(err)
		}
		kept := bytes.Clone(payload)
		got, err = fk.OpenPayloadTo(make([]byte, n+3), kept)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: OpenPayloadTo gave %d bytes, %v", n, len(got), err)
		}
		if !bytes.Equal(kept, payload) {
			t.Fatalf("%d bytes: OpenPayloadTo changed the ciphertext", n)
		}
		if n > 0 {
			if _, err := fk.OpenPayloadTo(make([]byte, n-1), kept); err == nil {
				t.Fatalf("%d bytes: OpenPayloadTo wrote into a buffer one byte short", n)
			}
		}
	}
}

func TestOpenPayloadRefusesTampering(t *testing.T) {
	m := testMaster(t)
	k, _ := newCase(t, m)
	plain := testData(t, 2*chunkSize+100, 7)
	header, payload := seal(t, k, plain)
	bad := map[string][]byte{}
	for _, off := range []int{0, nonceSize, nonceSize + encChunk + 5, len(payload) - 1} {
		p := bytes.Clone(payload)
		p[off] ^= 1
		bad["flip at "+strconv.Itoa(off)] = p
	}
	// Dropping the final chunk leaves a size age would accept: only the
	// final-chunk flag in the nonce tells.
	bad["truncated at a chunk boundary"] = bytes.Clone(payload[:nonceSize+2*encChunk])
	bad["truncated mid chunk"] = bytes.Clone(payload[:len(payload)-10])
	swapped := bytes.Clone(payload)
	copy(swapped[nonceSize:], payload[nonceSize+encChunk:nonceSize+2*encChunk])
	copy(swapped[nonceSize+encChunk:], payload[nonceSize:nonceSize+encChunk])
	bad["chunks swapped"] = swapped
	for name, p := range bad {
		if _, err := k.OpenPayload(header, bytes.Clone(p)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
		fk, err := k.OpenHeader(header)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fk.OpenPayloadTo(make([]byte, len(plain)), p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s, out of place: err %v, want ErrCorrupt", name, err)
		}
	}
	// Another case's key, or another material's header, opens nothing.
	other, _ := newCase(t, m)
	if _, err := other.OpenPayload(header, bytes.Clone(payload)); err == nil {
		t.Error("another case's key opened the payload")
	}
	otherHeader, _ := seal(t, k, plain)
	if _, err := k.OpenPayload(otherHeader, bytes.Clone(payload)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another material's header: err %v, want ErrCorrupt", err)
	}
}
