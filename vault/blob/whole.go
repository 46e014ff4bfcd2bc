package blob

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
)

// ErrWrongSize is returned by ReadWhole when the stored blob is not exactly
// the size the caller expected (truncated, padded or replaced).
var ErrWrongSize = errors.New("blob is not the expected size")

// wholeReader is a Store that reads a small blob in one request.
type wholeReader interface {
	readWhole(ctx context.Context, id string, p []byte) error
}

// ReadWhole fills p with the whole blob, which must be exactly len(p) bytes
// (ErrWrongSize otherwise; ErrNotFound when missing). It is the small-read
// path: where Open costs a stat and a GET per stream, ReadWhole costs one GET
// on S3, and the caller supplies (and can pool) the buffer.
func ReadWhole(ctx context.Context, s Store, id string, p []byte) error {
	if wr, ok := s.(wholeReader); ok {
		return wr.readWhole(ctx, id, p)
	}
	obj, err := s.Open(ctx, id)
	if err != nil {
		return err
	}
	defer obj.Close()
	if obj.Size() != int64(len(p)) {
		return fmt.Errorf("read blob %s: %d bytes, want %d: %w", id, obj.Size(), len(p), ErrWrongSize)
	}
	if n, err := obj.ReadAt(p, 0); n < len(p) {
		return fmt.Errorf("read blob %s: %w", id, err)
	}
	return nil
}

// readWhole is one GET: its answer carries the object's size, so no stat
// goes before it.
func (s *S3) readWhole(ctx context.Context, id string, p []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	// opTimeout bounds the whole read (the blob is small), the idle timeout
	// each wait for its bytes. Faults are judged against the caller's ctx:
	// either bound running out is the store's unavailability.
	tctx, cancelT := context.WithTimeout(ctx, s.opTimeout)
	defer cancelT()
	rctx, cancel := context.WithCancelCause(tctx)
	s.gets.Add(1)
	raw, info, _, err := s.core.GetObject(rctx, s.bucket, s.key(id), minio.GetObjectOptions{})
	if isNotFound(err) {
		cancel(nil)
		return fmt.Errorf("read blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		cancel(nil)
		return fmt.Errorf("read blob %s: %w", id, s3Fault(ctx, err))
	}
	body := newIdleBody(raw, s.readIdle, cancel)
	defer body.Close()
	if info.Size != int64(len(p)) {
		return fmt.Errorf("read blob %s: %d bytes, want %d: %w", id, info.Size, len(p), ErrWrongSize)
	}
	if _, err := io.ReadFull(body, p); err != nil {
		return fmt.Errorf("read blob %s: %w", id, s3Fault(ctx, err))
	}
	return nil
}
