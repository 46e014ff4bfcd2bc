// Package blob stores opaque ciphertext blobs (age payloads) under ids chosen
// by the caller, in a local directory or an S3 bucket.
//
// What it promises:
//   - A Put is atomic: the blob becomes visible under its id only once the whole
//     stream was written and is durable. A failed or cancelled Put leaves nothing
//     visible under the id (an old blob of the same id stays as it was).
//   - Stored objects carry nothing but the bytes: no content type beyond
//     application/octet-stream, no user metadata, names are the caller's ids.
//   - A failure of the store itself (unreachable, failing, full, too slow)
//     wraps ErrUnavailable, so callers can tell "try again later" from a
//     missing blob, a bad id or a fault in the stream they handed in.
//   - Unfinished writes (S3 multipart uploads, local temp files) are removed
//     when the write fails, retried for a while if the store is down, and
//     otherwise found by SweepIncomplete.
//   - Ids are restricted to [A-Za-z0-9_-] (1 to MaxIDLen characters), so an id
//     can never name a path or key outside the store.
//
// The package never sees plaintext; it must only ever be handed ciphertext.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotFound is returned by Open when no blob has the id.
var ErrNotFound = errors.New("blob not found")

// ErrInvalidID is returned for an id outside [A-Za-z0-9_-]{1,MaxIDLen}.
var ErrInvalidID = errors.New("invalid blob id")

// ErrSizeMismatch is returned by Put when the reader yields more or fewer
// bytes than the size the caller declared; nothing is stored.
var ErrSizeMismatch = errors.New("blob size does not match declared size")

// ErrUnavailable wraps every failure of the store itself: it cannot be
// reached, answers with a server error, throttles, times out, or has no
// space left. Nothing about the request was wrong; it may succeed later.
var ErrUnavailable = errors.New("blob store unavailable")

func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// MaxIDLen bounds ids so that they fit any filesystem name and S3 key.
const MaxIDLen = 128

// Store is where encrypted blobs live.
type Store interface {
	// Put stores r under id atomically: the object becomes visible only after
	// the whole stream was written and confirmed durable; on any error
	// (including ctx cancellation or a reader error) nothing is left (or only
	// something List+Delete can reclaim). size is -1 if unknown. Returns
	// bytes written. Putting an existing id replaces it.
	Put(ctx context.Context, id string, r io.Reader, size int64) (int64, error)
	// Open returns the blob for random access, or ErrNotFound.
	Open(ctx context.Context, id string) (Object, error)
	// Delete removes the blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, id string) error
	// List calls fn for every stored object (for the orphan janitor), with its
	// modification time. An error from fn stops the listing and is returned.
	List(ctx context.Context, fn func(id string, modTime time.Time) error) error
	// Ping reports whether the store is usable (readiness).
	Ping(ctx context.Context) error
	// SweepIncomplete removes unfinished writes (multipart uploads, temp
	// files) begun before cutoff that no Put of this process is still
	// making: what a crash, or a store that was down when the failed write
	// tried to clean up, left behind. It returns how many it removed.
	SweepIncomplete(ctx context.Context, before time.Time) (int, error)
}

// Object is an open blob. It is safe for concurrent ReadAt calls.
type Object interface {
	// ReadAt follows io.ReaderAt: a read that reaches the end returns io.EOF
	// with the bytes it got. Sequential reads are cheap on every store.
	io.ReaderAt
	Size() int64
	Close() error
}

// ValidID reports whether id is acceptable as a blob id.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidID(id) {
		// The id is caller input, not a secret, but it may be long or binary: quote and cut it.
		if len(id) > 40 {
			id = id[:40] + "..."
		}
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return nil
}

// guardReader makes a Put's source fail on ctx cancellation and, when the size
// is declared, on any byte count other than size. The check for surplus bytes
// happens before the last declared byte is handed on, so a too-long stream
// fails the upload instead of being silently cut at size.
type guardReader struct {
	ctx       context.Context
	r         io.Reader
	remaining int64 // -1: size unknown
	n         int64
	// srcErr is the first failure of the source (its own error, a size
	// mismatch or cancellation): a Put that fails after one is the
	// caller's fault, not the store's.
	srcErr error
}

func newGuardReader(ctx context.Context, r io.Reader, size int64) *guardReader {
	return &guardReader{ctx: ctx, r: r, remaining: size}
}

func (g *guardReader) Read(p []byte) (int, error) {
	n, err := g.read(p)
	if err != nil && err != io.EOF {
		// Cancellation explains whatever else went wrong.
		if cerr := g.ctx.Err(); cerr != nil {
			err = cerr
		}
		if g.srcErr == nil {
			g.srcErr = err
		}
	}
	return n, err
}

// fault returns the error a Put reports when the store call failed with
// err: the source's own failure if there was one, else err marked as the
// store's (unless the caller's ctx ended, which explains it).
func (g *guardReader) fault(err error) error {
	if g.srcErr != nil {
		return g.srcErr
	}
	if cerr := g.ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func (g *guardReader) read(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	if g.remaining < 0 {
		n, err := g.r.Read(p)
		g.n += int64(n)
		return n, err
	}
	if g.remaining == 0 {
		return 0, g.checkDrained()
	}
	if int64(len(p)) > g.remaining {
		p = p[:g.remaining]
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	g.remaining -= int64(n)
	if err == io.EOF && g.remaining > 0 {
		return n, fmt.Errorf("%w: stream ended after %d bytes", ErrSizeMismatch, g.n)
	}
	if err != nil && err != io.EOF {
		return n, err
	}
	if g.remaining == 0 {
		if err := g.checkDrained(); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	}
	return n, nil
}

// checkDrained returns io.EOF if the source has no more bytes.
func (g *guardReader) checkDrained() error {
	var one [1]byte
	for range 100 {
		n, err := g.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: stream is longer than %d bytes", ErrSizeMismatch, g.n)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
