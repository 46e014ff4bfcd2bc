package crypt

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/chacha20poly1305"
)

// MaxInPlacePayload bounds the payloads [CaseKey.OpenPayload] takes: one
// caller buffer per read, so memory per read stays bounded.
const MaxInPlacePayload = 4 << 20

// OpenPayload authenticates header with k and decrypts a whole payload
// held in memory in place, returning the plaintext as a prefix of payload
// (no other buffer). It is for small documents: age's own readers allocate a
// 64 KiB chunk buffer per reader or per ReadAt call, more than a 4 KiB
// document and its whole read path. The format is age's STREAM exactly (the
// 16-byte nonce, a payload key derived with HKDF-SHA256 from the file key
// and that nonce, 64 KiB chunks sealed with ChaCha20-Poly1305 under a
// counter nonce whose last byte marks the final chunk), and
// TestOpenPayloadMatchesAge checks it against age's reader.
//
// Every chunk is authenticated before any plaintext is returned; on error
// payload holds partial plaintext and the caller must clear it (a pooled
// buffer must not carry it to the next user).
func (k *CaseKey) OpenPayload(header, payload []byte) ([]byte, error) {
	fk, err := k.OpenHeader(header)
	if err != nil {
		return nil, err
	}
	return fk.OpenPayload(payload)
}

// FileKey is one material's unwrapped file key: it opens that material's
// payload and nothing else. Like CaseKey it never prints its secret.
type FileKey struct{ k []byte }

func (FileKey) String() string               { return "crypt.FileKey{}" }
func (f FileKey) GoString() string           { return f.String() }
func (f FileKey) Format(s fmt.State, _ rune) { _, _ = io.WriteString(s, f.String()) }
func (f FileKey) LogValue() slog.Value       { return slog.StringValue(f.String()) }

// OpenHeader authenticates a material's header with k and returns its file
// key: the hybrid post-quantum decapsulation that dominates a small read's
// CPU, which a caller may cache (see the package's threat model).
func (k *CaseKey) OpenHeader(header []byte) (*FileKey, error) {
	fk, err := k.fileKey(header)
	if err != nil {
		return nil, err
	}
	return &FileKey{k: fk}, nil
}

// OpenPayload is [CaseKey.OpenPayload] with the header already opened.
func (f *FileKey) OpenPayload(payload []byte) ([]byte, error) {
	return f.open(payload, payload)
}

// OpenPayloadTo is OpenPayload into dst, which must hold the plaintext
// ([PlaintextSize] of len(payload)); payload is left as it was, for a
// caller that keeps the ciphertext (the vault's cache of small blobs).
// dst must not overlap payload. Every chunk is authenticated; on error dst
// may hold partial plaintext and the caller must clear it.
func (f *FileKey) OpenPayloadTo(dst, payload []byte) ([]byte, error) {
	return f.open(dst, payload)
}

// open decrypts payload into dst; dst == payload (the same array) decrypts
// in place.
func (f *FileKey) open(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxInPlacePayload {
		return nil, fmt.Errorf("crypt: open payload: %d bytes is over the in-memory limit", len(payload))
	}
	size, err := PlaintextSize(int64(len(payload)))
	if err != nil {
		return nil, err
	}
	if int64(len(dst)) < size {
		return nil, fmt.Errorf("crypt: open payload: %d bytes of room for %d of plaintext", len(dst), size)
	}
	inPlace := len(dst) > 0 && len(payload) > 0 && &dst[0] == &payload[0]
	key, err := hkdf.Key(sha256.New, f.k, payload[:nonceSize], "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("crypt: payload key: %w", err)
	}
	aead, err := chacha20poly1305.New(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: payload key: %w", err)
	}
	enc := payload[nonceSize:]
	chunks := (len(enc) + encChunk - 1) / encChunk
	var nonce [chacha20poly1305.NonceSize]byte
	for i := range chunks {
		ct := enc[i*encChunk : min(len(enc), (i+1)*encChunk)]
		binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
		if i == chunks-1 {
			nonce[len(nonce)-1] = 1
		}
		out := dst[i*chunkSize : i*chunkSize]
		if inPlace {
			// In place, then moved left over the nonce and earlier tags, so
			// the plaintext ends up contiguous at the front of payload.
			out = ct[:0]
		}
		pt, err := aead.Open(out, nonce[:], ct, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: payload: chunk %d does not authenticate", ErrCorrupt, i)
		}
		if inPlace {
			copy(payload[i*chunkSize:], pt)
		}
	}
	return dst[:size], nil
}
