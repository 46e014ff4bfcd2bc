package crypt

import (
	"crypto/cipher"
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
	o, err := f.ChunkOpener(payload[:nonceSize], int64(len(payload)))
	if err != nil {
		return nil, err
	}
	// In place, each chunk is moved left over the nonce and the earlier
	// tags once decrypted, so the plaintext ends up at the front of payload.
	inPlace := len(dst) > 0 && &dst[0] == &payload[0]
	if _, err := o.openTo(dst, payload[nonceSize:], 0, inPlace); err != nil {
		return nil, err
	}
	return dst[:size], nil
}

// ChunkOpener decrypts the chunks of one payload in any order, a block of
// consecutive whole chunks at a time, into the block itself: the streaming
// read path decrypts each block of ciphertext where the store put it, with
// no copy to a buffer of age's and none back out, and can hand the blocks to
// another goroutine to send. It is age's STREAM, as [FileKey.OpenPayload]
// is; the final chunk is opened under its final-chunk nonce, so a payload cut
// at a chunk boundary, or blocks taken from another payload, do not
// authenticate. A ChunkOpener is safe for concurrent use.
type ChunkOpener struct {
	aead   cipher.AEAD
	chunks int64
}

// ChunkOpener derives the payload key from the payload's nonce (its first 16
// bytes) for a payload of payloadSize bytes, nonce included.
func (f *FileKey) ChunkOpener(nonce []byte, payloadSize int64) (*ChunkOpener, error) {
	if len(nonce) != nonceSize {
		return nil, fmt.Errorf("crypt: payload nonce of %d bytes", len(nonce))
	}
	if _, err := PlaintextSize(payloadSize); err != nil {
		return nil, err
	}
	aead, err := payloadAEAD(f.k, nonce)
	if err != nil {
		return nil, err
	}
	return &ChunkOpener{aead: aead, chunks: PayloadChunks(payloadSize)}, nil
}

// PayloadChunks is the number of chunks in a payload of payloadSize bytes,
// nonce included (one of PayloadSize's results).
func PayloadChunks(payloadSize int64) int64 {
	return (payloadSize - nonceSize + encChunk - 1) / encChunk
}

// payloadAEAD is age's payload cipher: ChaCha20-Poly1305 under
// HKDF-SHA256(file key, nonce, "payload").
func payloadAEAD(fileKey, nonce []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("crypt: payload key: %w", err)
	}
	aead, err := chacha20poly1305.New(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: payload key: %w", err)
	}
	return aead, nil
}

// Chunks is the number of chunks in the payload; chunk i starts at byte
// [ChunkOffset](i) of it and holds plaintext from i*[ChunkSize].
func (o *ChunkOpener) Chunks() int64 { return o.chunks }

// ChunkSize is the plaintext size of every chunk but the final one.
const ChunkSize = chunkSize

// ChunkOffset is where chunk i starts in the payload.
func ChunkOffset(i int64) int64 { return nonceSize + i*encChunk }

// Open authenticates and decrypts in place block, which holds the chunks
// first, first+1, ... whole (the payload's final chunk may be short), and
// returns their plaintext, contiguous at the front of block. On error block
// may hold partial plaintext and the caller must clear it.
func (o *ChunkOpener) Open(block []byte, first int64) ([]byte, error) {
	return o.openTo(block, block, first, true)
}

// openTo decrypts enc, the chunks from first on, into dst. inPlace says that
// dst is enc's own array, starting at enc or before it: each chunk is then
// decrypted where it is and moved to its place in dst.
func (o *ChunkOpener) openTo(dst, enc []byte, first int64, inPlace bool) ([]byte, error) {
	n := (int64(len(enc)) + encChunk - 1) / encChunk
	if first < 0 || n == 0 || first+n > o.chunks {
		return nil, fmt.Errorf("%w: payload: %d bytes from chunk %d of %d", ErrCorrupt, len(enc), first, o.chunks)
	}
	// Only the payload's final chunk may be short.
	if last := int64(len(enc)) - (n-1)*encChunk; last < tagSize || (last < encChunk && first+n != o.chunks) {
		return nil, fmt.Errorf("%w: payload: short chunk %d", ErrCorrupt, first+n-1)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	for j := range n {
		i := first + j
		ct := enc[j*encChunk : min(int64(len(enc)), (j+1)*encChunk)]
		binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
		nonce[len(nonce)-1] = 0
		if i == o.chunks-1 {
			nonce[len(nonce)-1] = 1
		}
		out := dst[j*chunkSize : j*chunkSize]
		if inPlace {
			out = ct[:0]
		}
		pt, err := o.aead.Open(out, nonce[:], ct, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: payload: chunk %d does not authenticate", ErrCorrupt, i)
		}
		if inPlace && len(pt) > 0 && &dst[j*chunkSize] != &pt[0] {
			copy(dst[j*chunkSize:], pt)
		}
	}
	return dst[:int64(len(enc))-n*tagSize], nil
}
