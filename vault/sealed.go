package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
)

// Sealed is what SealBlob stored: the plaintext's size and SHA-256, and the
// detached age header that, with the key, opens the blob.
type Sealed struct {
	Size   int64
	SHA256 string
	Header []byte
}

// SealBlob streams body -> hash -> age -> blob store without holding the
// document: the store reads the payload from a crypt.SealReader, which reads
// each chunk of the body into the store's own buffer and encrypts it there
// (no goroutine, no pipe, no copy in between), so memory stays at the
// store's part buffer. size is the declared plaintext length or -1; limit
// is the largest accepted. On any error nothing is left in the store. Only
// holders of a key (the vault for cases, supervision for report
// attachments) can use it.
func (s *Service) SealBlob(ctx context.Context, key *crypt.CaseKey, blobID string, body io.Reader, size, limit int64) (Sealed, error) {
	if size > limit {
		return Sealed{}, fail(ErrTooLarge, "too_large", fmt.Sprintf("the limit is %d bytes", limit))
	}
	h := sha256.New()
	sr, err := key.SealReader(body, size, limit, h)
	if err != nil {
		return Sealed{}, fmt.Errorf("start encryption: %w", err)
	}
	blobSize := int64(-1)
	if size >= 0 {
		blobSize = crypt.PayloadSize(size)
	}
	_, err = s.blobs.Put(ctx, blobID, sr, blobSize)
	if bodyErr := sr.SourceErr(); bodyErr != nil {
		// The body failed, or disagreed with its declared length or the
		// limit: the client's failure, whatever the store made of the
		// stream that stopped short of io.EOF.
		_ = s.blobs.Delete(context.WithoutCancel(ctx), blobID)
		switch {
		case errors.Is(bodyErr, crypt.ErrBodyShort):
			return Sealed{}, fail(ErrBadRequest, "content_length_mismatch", "the body ended before its declared length")
		case errors.Is(bodyErr, crypt.ErrBodyLong) && size >= 0:
			return Sealed{}, fail(ErrBadRequest, "content_length_mismatch", "the body is longer than its declared length")
		case errors.Is(bodyErr, crypt.ErrBodyLong):
			return Sealed{}, fail(ErrTooLarge, "too_large", fmt.Sprintf("the limit is %d bytes", limit))
		}
		return Sealed{}, classifyBodyError(bodyErr)
	}
	if err != nil {
		if errors.Is(err, blob.ErrUnavailable) {
			return Sealed{}, s.storeFailed(ctx, blobID, err)
		}
		_ = s.blobs.Delete(context.WithoutCancel(ctx), blobID)
		return Sealed{}, fmt.Errorf("store blob: %w", err)
	}
	return Sealed{Size: sr.Size(), SHA256: hex.EncodeToString(h.Sum(nil)), Header: sr.Header()}, nil
}

// storeFailed reports a write the blob store could not take: 503
// store_unavailable, with the cause kept for the log and errors.Is. The
// store cleans up after itself (a failed Put leaves nothing, or something
// its SweepIncomplete finds), so no Delete is sent to a store that is down.
func (s *Service) storeFailed(ctx context.Context, blobID string, err error) error {
	s.log.WarnContext(ctx, "blob store refused a write", "blob", blobID, "err", err)
	return &storeError{ve: fail(ErrUnavailable, "store_unavailable", "the document store is unavailable; nothing was stored, try again later"),
		cause: err}
}

// storeError is a vault Error that also unwraps to the store's own error,
// so that errors.Is(err, ErrStoreUnavailable) holds for it.
type storeError struct {
	ve    *Error
	cause error
}

func (e *storeError) Error() string   { return e.ve.Error() }
func (e *storeError) Unwrap() []error { return []error{e.ve, e.cause} }

// OpenSealed decrypts a blob written by SealBlob: the whole plaintext, or the
// range r of it. Callers authorise and audit before calling it; the caller
// must call closeFn, and must not read body after it.
//
// Small documents (up to smallPayloadMax of ciphertext, 1 MiB of plaintext)
// are read whole, in one request, into a pooled buffer sized to the document
// and decrypted in place: no goroutine, and no allocation that grows with
// the stream machinery below. Most review materials are that small.
//
// Larger ones stream: the blob's size and final chunk are authenticated
// first (a truncated, padded or swapped blob fails here, before any byte is
// served), then a chunkStream reads and decrypts the chunks the range
// covers, a block ahead of the sending. Memory per read is bounded either
// way.
func (s *Service) OpenSealed(ctx context.Context, key *crypt.CaseKey, header []byte, blobID string, size int64, r *Range) (body io.Reader, closeFn func() error, err error) {
	start, length := int64(0), size
	if r != nil {
		start, length = r.Start, r.Length
	}
	if start < 0 || length < 0 || start+length > size {
		return nil, nil, fmt.Errorf("range %d+%d outside a document of %d bytes", start, length, size)
	}
	if payload := crypt.PayloadSize(size); payload >= 0 && payload <= smallPayloadMax {
		return s.openSmall(ctx, key, header, blobID, payload, start, length)
	}
	fk, err := s.keys.FileKey(key, header)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt: %w", err)
	}
	obj, err := s.blobs.Open(ctx, blobID)
	if err != nil {
		return nil, nil, fmt.Errorf("open blob: %w", err)
	}
	o, err := openChunks(fk, obj, size)
	if err != nil {
		obj.Close()
		return nil, nil, err
	}
	if length == 0 {
		return bytes.NewReader(nil), obj.Close, nil
	}
	cs := newChunkStream(obj, o, spanOf(start, length))
	return cs, func() error {
		cs.Close()
		return obj.Close()
	}, nil
}

// openChunks checks a large blob against its recorded plaintext size and
// authenticates its final chunk, and returns the opener of its chunks.
func openChunks(fk *crypt.FileKey, obj blob.Object, size int64) (*crypt.ChunkOpener, error) {
	payload := obj.Size()
	if plain, err := crypt.PlaintextSize(payload); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	} else if plain != size {
		return nil, fmt.Errorf("decrypt: %w: stored size %d disagrees with recorded %d", crypt.ErrCorrupt, plain, size)
	}
	buf := getChunkBlock()
	defer func() {
		clear(buf)
		putChunkBlock(buf)
	}()
	// The final chunk first, then the nonce: on S3 the nonce's read leaves
	// its response open at the first chunk, where a whole read continues.
	chunks := crypt.PayloadChunks(payload)
	final := buf[:payload-crypt.ChunkOffset(chunks-1)]
	if err := readFullAt(obj, final, crypt.ChunkOffset(chunks-1)); err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	var nonce [ageNonceSize]byte
	if err := readFullAt(obj, nonce[:], 0); err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	o, err := fk.ChunkOpener(nonce[:], payload)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if _, err := o.Open(final, chunks-1); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return o, nil
}

// readFullAt fills p from r at off; a short read is io.ErrUnexpectedEOF.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	}
	return err
}

// openSmall reads a small blob whole and decrypts it in place, or from the
// ciphertext cache into a pooled buffer. The buffer holds plaintext from
// then on: it is cleared before it goes back to the pool, and the body
// refuses to read once closed.
func (s *Service) openSmall(ctx context.Context, key *crypt.CaseKey, header []byte, blobID string, payload, start, length int64) (io.Reader, func() error, error) {
	fk, err := s.keys.FileKey(key, header)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt: %w", err)
	}
	// A blob in the cache (ciphercache.go), or one read a second time:
	// ciphertext in a buffer of its own, decrypted into the pooled one.
	ct, cached := s.ciphers.get(blobID, payload)
	if !cached && s.ciphers.admit(blobID, payload) {
		ct = make([]byte, payload)
		if err := s.readWhole(ctx, blobID, ct); err != nil {
			return nil, nil, err
		}
	}
	if ct != nil {
		buf := getPayloadBuf(int(payload))
		plain, err := fk.OpenPayloadTo(buf, ct)
		if err != nil {
			clear(buf)
			putPayloadBuf(buf)
			s.ciphers.drop(blobID)
			return nil, nil, fmt.Errorf("decrypt: %w", err)
		}
		if !cached {
			s.ciphers.put(blobID, ct)
		}
		b := &pooledBody{buf: buf, rest: plain[start : start+length]}
		return b, b.Close, nil
	}
	buf := getPayloadBuf(int(payload))
	if err := s.readWhole(ctx, blobID, buf); err != nil {
		putPayloadBuf(buf)
		return nil, nil, err
	}
	plain, err := fk.OpenPayload(buf)
	if err != nil {
		clear(buf)
		putPayloadBuf(buf)
		return nil, nil, fmt.Errorf("decrypt: %w", err)
	}
	b := &pooledBody{buf: buf, rest: plain[start : start+length]}
	return b, b.Close, nil
}

// readWhole reads a small blob whole into p.
func (s *Service) readWhole(ctx context.Context, blobID string, p []byte) error {
	if err := blob.ReadWhole(ctx, s.blobs, blobID, p); err != nil {
		if errors.Is(err, blob.ErrWrongSize) {
			// Truncated, padded or swapped for another blob: it does not
			// authenticate as this material, like a changed byte.
			err = fmt.Errorf("%w: %w", crypt.ErrCorrupt, err)
		}
		return fmt.Errorf("open blob: %w", err)
	}
	return nil
}

// pooledBody reads plaintext held in a pooled buffer.
type pooledBody struct {
	buf    []byte
	rest   []byte
	closed bool
}

var errBodyClosed = errors.New("content body read after close")

func (b *pooledBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

// WriteTo hands the plaintext to w in one write, so io.Copy needs no buffer
// of its own.
func (b *pooledBody) WriteTo(w io.Writer) (int64, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	n, err := w.Write(b.rest)
	b.rest = b.rest[n:]
	if err == nil && len(b.rest) > 0 {
		err = io.ErrShortWrite
	}
	return int64(n), err
}

func (b *pooledBody) Close() error {
	if !b.closed {
		b.closed, b.rest = true, nil
		clear(b.buf)
		putPayloadBuf(b.buf)
		b.buf = nil
	}
	return nil
}

// The age payload layout (age's STREAM): a 16-byte nonce, then chunks of
// 64 KiB of plaintext each sealed with a 16-byte tag.
const (
	ageNonceSize    = 16
	ageChunkSize    = 64 << 10
	ageEncChunkSize = ageChunkSize + 16
)

// smallPayloadMax is the largest ciphertext read whole: 16 chunks, a
// document of up to 1 MiB.
const smallPayloadMax = ageNonceSize + 16*ageEncChunkSize

// Pools of payload buffers for small reads, one per size class, so a
// buffer is at most twice its document (below one chunk) or exact to the
// chunk (above): 4, 8, 16 and 32 KiB, then 1 to 16 whole chunks.
var payloadPools [4 + 16]sync.Pool

func payloadClass(n int) (class, size int) {
	for i, c := range []int{4 << 10, 8 << 10, 16 << 10, 32 << 10} {
		if n <= c {
			return i, c
		}
	}
	chunks := int(crypt.PayloadChunks(int64(n)))
	return 3 + chunks, ageNonceSize + chunks*ageEncChunkSize
}

// getPayloadBuf returns a buffer of exactly n bytes (n <= smallPayloadMax).
func getPayloadBuf(n int) []byte {
	class, size := payloadClass(n)
	if b, ok := payloadPools[class].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, size)
}

func putPayloadBuf(b []byte) {
	if b == nil {
		return
	}
	class, size := payloadClass(cap(b))
	if size != cap(b) {
		return // not one of ours
	}
	b = b[:cap(b)]
	payloadPools[class].Put(&b)
}
