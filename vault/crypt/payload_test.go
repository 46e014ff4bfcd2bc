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

// A ChunkOpener opens any run of whole chunks in place, wherever it
// starts, to exactly what age gives for those bytes; and it refuses a run
// opened as another position, a short chunk that is not the final one, and
// a run past the end.
func TestChunkOpenerMatchesAge(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	for _, n := range []int{0, 1, chunkSize, chunkSize + 1, 5 * chunkSize, 7*chunkSize + 9} {
		plain := testData(t, n, uint64(n)+1)
		header, payload := seal(t, k, plain)
		fk, o := chunkOpener(t, k, header, payload)
		if want := int64(max(1, (n+chunkSize-1)/chunkSize)); o.Chunks() != want {
			t.Fatalf("%d bytes: %d chunks, want %d", n, o.Chunks(), want)
		}
		for _, per := range []int64{1, 3, 8} {
			var got []byte
			for first := int64(0); first < o.Chunks(); first += per {
				end := min(int64(len(payload)), ChunkOffset(first+per))
				block := bytes.Clone(payload[ChunkOffset(first):end])
				pt, err := o.Open(block, first)
				if err != nil {
					t.Fatalf("%d bytes, %d per block, from chunk %d: %v", n, per, first, err)
				}
				if len(pt) > 0 && &pt[0] != &block[0] {
					t.Fatalf("%d bytes: plaintext not in the block", n)
				}
				got = append(got, pt...)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("%d bytes, %d chunks per block: %d bytes differ from the plaintext", n, per, len(got))
			}
		}
		if _, err := fk.ChunkOpener(payload[:nonceSize], nonceSize+encChunk+10); !errors.Is(err, ErrCorrupt) {
			t.Errorf("impossible payload size: %v", err)
		}
		if o.Chunks() < 3 {
			continue
		}
		refuse := map[string]func() ([]byte, error){
			"chunk 1 opened as 0": func() ([]byte, error) { return o.Open(bytes.Clone(payload[ChunkOffset(1):ChunkOffset(2)]), 0) },
			"a short chunk before the final one": func() ([]byte, error) {
				return o.Open(bytes.Clone(payload[ChunkOffset(0):ChunkOffset(1)-1]), 0)
			},
			"past the end": func() ([]byte, error) { return o.Open(bytes.Clone(payload[ChunkOffset(1):ChunkOffset(2)]), o.Chunks()) },
			"a chunk as the final one": func() ([]byte, error) {
				return o.Open(bytes.Clone(payload[ChunkOffset(0):ChunkOffset(1)]), o.Chunks()-1)
			},
		}
		for name, open := range refuse {
			if _, err := open(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%d bytes, %s: %v, want ErrCorrupt", n, name, err)
			}
		}
	}
}

// chunkOpener opens a material's header and its payload's chunk opener.
func chunkOpener(t testing.TB, k *CaseKey, header, payload []byte) (*FileKey, *ChunkOpener) {
	t.Helper()
	fk, err := k.OpenHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	o, err := fk.ChunkOpener(payload[:nonceSize], int64(len(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return fk, o
}
