package vault

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

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

// SealBlob pipes body -> limit/hash -> age -> blob store without holding the
// document: memory stays at age's chunk plus the store's part buffer. size is
// the declared plaintext length or -1; limit is the largest accepted. On any
// error nothing is left in the store. Only holders of a key (the vault for
// cases, supervision for report attachments) can use it.
func (s *Service) SealBlob(ctx context.Context, key *crypt.CaseKey, blobID string, body io.Reader, size, limit int64) (Sealed, error) {
	if size > limit {
		return Sealed{}, fail(ErrTooLarge, "too_large", fmt.Sprintf("the limit is %d bytes", limit))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	blobSize := int64(-1)
	if size >= 0 {
		blobSize = crypt.PayloadSize(size)
	}
	putDone := make(chan error, 1)
	go func() {
		_, err := s.blobs.Put(ctx, blobID, pr, blobSize)
		pr.CloseWithError(err) // unblocks the writer if the store gave up first
		putDone <- err
	}()
	sealer, err := key.Encrypt(pw)
	if err != nil {
		pw.CloseWithError(err)
		<-putDone
		return Sealed{}, fmt.Errorf("start encryption: %w", err)
	}
	h := sha256.New()
	max := limit
	if size >= 0 {
		max = size
	}
	// Large reads mean fewer syscalls and pipe hand-offs per byte.
	n, copyErr := io.CopyBuffer(io.MultiWriter(sealer, h), io.LimitReader(body, max+1), make([]byte, 256<<10))
	switch {
	case copyErr != nil:
	case n > max && size >= 0:
		copyErr = fail(ErrBadRequest, "content_length_mismatch", "the body is longer than its declared length")
	case n > max:
		copyErr = fail(ErrTooLarge, "too_large", fmt.Sprintf("the limit is %d bytes", limit))
	case size >= 0 && n < size:
		copyErr = fail(ErrBadRequest, "content_length_mismatch", "the body ended before its declared length")
	}
	if copyErr == nil {
		copyErr = sealer.Close()
	}
	if copyErr != nil {
		cancel()
		pw.CloseWithError(copyErr)
		// A store that failed first closed the pipe, and the copy failed
		// writing to it: that is the failure to report, not the body.
		if putErr := <-putDone; errors.Is(putErr, blob.ErrUnavailable) {
			return Sealed{}, s.storeFailed(ctx, blobID, putErr)
		}
		_ = s.blobs.Delete(context.WithoutCancel(ctx), blobID)
		return Sealed{}, classifyBodyError(copyErr)
	}
	pw.Close()
	if err := <-putDone; err != nil {
		if errors.Is(err, blob.ErrUnavailable) {
			return Sealed{}, s.storeFailed(ctx, blobID, err)
		}
		_ = s.blobs.Delete(context.WithoutCancel(ctx), blobID)
		return Sealed{}, fmt.Errorf("store blob: %w", err)
	}
	return Sealed{Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Header: sealer.Header()}, nil
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
// must call closeFn.
//
// Whole documents and ranges share one path: age's ReaderAt decrypts the
// chunks a read covers, fed by a read-ahead of the ciphertext that starts at
// the first chunk needed, so the store's latency overlaps with decryption.
// Large reads (through the bufio) keep age's per-call chunk buffer rare.
func (s *Service) OpenSealed(ctx context.Context, key *crypt.CaseKey, header []byte, blobID string, size int64, r *Range) (body io.Reader, closeFn func() error, err error) {
	obj, err := s.blobs.Open(ctx, blobID)
	if err != nil {
		return nil, nil, fmt.Errorf("open blob: %w", err)
	}
	from, to := int64(0), obj.Size()
	if r != nil && r.Length > 0 {
		from = ageNonceSize + r.Start/ageChunkSize*ageEncChunkSize
		to = min(to, ageNonceSize+((r.Start+r.Length-1)/ageChunkSize+1)*ageEncChunkSize)
	}
	ra := newReadAhead(io.NewSectionReader(obj, from, max(0, to-from)), 256<<10, 4)
	closeFn = func() error {
		ra.Close()
		return obj.Close()
	}
	plain, plainSize, err := key.OpenReaderAt(header, &seqReaderAt{ra: ra, pos: from, src: obj}, obj.Size())
	if err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("decrypt: %w", err)
	}
	if plainSize != size {
		closeFn()
		return nil, nil, fmt.Errorf("stored size %d disagrees with recorded %d", plainSize, size)
	}
	start, length := int64(0), size
	if r != nil {
		start, length = r.Start, r.Length
	}
	return bufio.NewReaderSize(io.NewSectionReader(plain, start, length), 1<<20), closeFn, nil
}

// The age payload layout (age's STREAM): a 16-byte nonce, then chunks of
// 64 KiB of plaintext each sealed with a 16-byte tag.
const (
	ageNonceSize    = 16
	ageChunkSize    = 64 << 10
	ageEncChunkSize = ageChunkSize + 16
)
