package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// partPool bounds the memory of every multipart upload of the process
// together: parts are read into at most max buffers of partSize bytes, so
// eight concurrent uploads share the same few megabytes instead of each
// holding its own. Buffers are made lazily and reused, so the garbage
// collector never sees them churn.
type partPool struct {
	size int
	sem  chan struct{}
	mu   sync.Mutex
	free [][]byte
}

func newPartPool(partSize uint64, max int) *partPool {
	return &partPool{size: int(partSize), sem: make(chan struct{}, max)}
}

func (p *partPool) get(ctx context.Context) ([]byte, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b, nil
	}
	return make([]byte, p.size), nil
}

func (p *partPool) put(b []byte) {
	p.mu.Lock()
	p.free = append(p.free, b[:cap(b)])
	p.mu.Unlock()
	<-p.sem
}

// putMultipart streams r to key as a multipart upload: each part is read into
// a pooled buffer and sent while the next one is read, at most s.parallel
// parts of this upload in flight. On any error the upload is aborted (see
// abortUpload), so no object and no stray parts remain. Errors of S3 calls
// are classified with s3Fault; errors of r are returned as they are.
func (s *S3) putMultipart(pctx context.Context, key string, r io.Reader) (n int64, err error) {
	ctx, cancel := context.WithCancel(pctx)
	defer cancel()
	ictx, icancel := context.WithTimeout(ctx, s.opTimeout)
	uploadID, err := s.core.NewMultipartUpload(ictx, s.bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	icancel()
	if err != nil {
		return 0, s3Fault(pctx, err)
	}
	s.inflight.Store(uploadID, struct{}{})
	defer func() {
		if err != nil {
			s.abortUpload(pctx, key, uploadID, err)
		}
		s.inflight.Delete(uploadID)
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		parts    []minio.CompletePart
		firstErr error
		inflight = make(chan struct{}, s.parallel)
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	for num := 1; ; num++ {
		if num > 10000 {
			fail(fmt.Errorf("blob exceeds 10000 parts of %d bytes", s.partSize))
			break
		}
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
		}
		if ctx.Err() != nil {
			break
		}
		buf, gerr := s.parts.get(ctx)
		if gerr != nil {
			<-inflight
			fail(gerr)
			break
		}
		m, rerr := io.ReadFull(r, buf)
		n += int64(m)
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !last {
			s.parts.put(buf)
			<-inflight
			fail(rerr)
			break
		}
		if m == 0 && num > 1 {
			s.parts.put(buf)
			<-inflight
			break
		}
		wg.Add(1)
		go func(num int, data []byte) {
			defer wg.Done()
			defer func() { s.parts.put(buf); <-inflight }()
			// A part the store stops taking ends within writeIdle, which
			// fails the upload and frees its buffers for other uploads.
			w := watchWrite(ctx, bytes.NewReader(data), s.writeIdle)
			p, perr := s.core.PutObjectPart(w.ctx, s.bucket, key, uploadID, num, w.Body(), int64(len(data)), minio.PutObjectPartOptions{
				// Parts are age ciphertext, authenticated end to end: a payload
				// hash for the request signature would only repeat that, at the
				// cost of a SHA-256 pass over every byte.
				DisableContentSha256: true,
			})
			perr = w.End(ctx, perr)
			if perr != nil {
				fail(fmt.Errorf("part %d: %w", num, s3Fault(pctx, perr)))
				return
			}
			mu.Lock()
			parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
			mu.Unlock()
		}(num, buf[:m])
		if last {
			break
		}
	}
	wg.Wait()
	if firstErr != nil {
		return n, firstErr
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	sortParts(parts)
	// Only the wait for the answer's first byte is bounded: S3 may answer
	// a completion at once and keep the connection alive with white space
	// while it assembles the parts (AWS does for large objects), and a
	// bound on the whole call would cut such a healthy store (review h29i).
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	noAnswer := time.AfterFunc(s.opTimeout+completionAllowance(n), ccancel)
	defer noAnswer.Stop()
	cctx = httptrace.WithClientTrace(cctx, &httptrace.ClientTrace{GotFirstResponseByte: func() { noAnswer.Stop() }})
	if _, err := s.core.CompleteMultipartUpload(cctx, s.bucket, key, uploadID, parts, minio.PutObjectOptions{}); err != nil {
		return n, s3Fault(pctx, err)
	}
	return n, nil
}

// completionFloor is the slowest rate, in bytes a second, at which a
// healthy store assembles a multipart upload's parts when it completes it.
const completionFloor = 8 << 20

// completionAllowance is the time a completion may take beyond opTimeout: a
// store answers it only once the parts are assembled, which takes time in
// proportion to the object on some servers (AWS documents minutes for large
// ones). Without a bound at all, a store that took the request and never
// answered would hold the upload, and its client, until the transport's
// two-minute header timeout, and minio-go's retries, ran out.
func completionAllowance(size int64) time.Duration {
	return time.Duration(size/completionFloor) * time.Second
}

// abortAttempts bounds the background retries of one abort: with the
// doubling pause from S3.abortRetry (1 s) they span about a minute, past
// which the upload is left to SweepIncomplete and the bucket's lifecycle
// rule.
const abortAttempts = 7

// abortUpload removes the parts of a failed multipart upload. When the store
// itself failed there is no point in asking it at once: the abort is retried
// in the background, with a doubling pause, on a context of its own (the
// request that failed is over by then). Otherwise one attempt is made before
// returning, so a failed Put normally leaves nothing, and retries follow if
// it did not go through.
//
// An abort that goes through is repeated once after a pause: S3 documents
// that a part upload in progress when the abort arrives may still succeed,
// and a part the client gave up on (a cancelled request) can still be in
// the server's hands. With versitygw such a straggler re-created the
// upload after the abort in about 1 in 150 cancelled uploads.
func (s *S3) abortUpload(ctx context.Context, key, uploadID string, cause error) {
	ctx = context.WithoutCancel(ctx)
	if !errors.Is(cause, ErrUnavailable) && s.abortOnce(ctx, key, uploadID) == nil {
		s.aborts.Add(1)
		go func() {
			defer s.aborts.Done()
			select {
			case <-time.After(s.abortRetry):
			case <-s.closing:
			}
			if err := s.abortOnce(ctx, key, uploadID); err != nil {
				s.log.Warn("multipart upload not aborted a second time; the janitor will remove what is left", "key", key, "upload", uploadID, "err", err)
			}
		}()
		return
	}
	s.aborts.Add(1)
	go func() {
		defer s.aborts.Done()
		pause := s.abortRetry
		var err error
		for attempt := 1; attempt <= abortAttempts; attempt++ {
			if err = s.abortOnce(ctx, key, uploadID); err == nil {
				return
			}
			select {
			case <-time.After(pause):
			case <-s.closing:
				attempt = abortAttempts - 1 // one last try, then leave it to the sweep
			}
			pause *= 2
		}
		s.log.Warn("multipart upload not aborted; the janitor will remove it", "key", key, "upload", uploadID, "err", err)
	}()
}

func (s *S3) abortOnce(ctx context.Context, key, uploadID string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	err := s.core.AbortMultipartUpload(ctx, s.bucket, key, uploadID)
	if err != nil && minio.ToErrorResponse(err).Code == "NoSuchUpload" {
		return nil // already gone: aborted by the sweep, or completed
	}
	return err
}

// SweepIncomplete aborts the multipart uploads under the prefix that began
// before cutoff, except those this process is still making.
func (s *S3) SweepIncomplete(ctx context.Context, before time.Time) (int, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type upload struct{ key, id string }
	var stale []upload
	// Collected first: aborting while paging could disturb the listing's markers.
	for u := range s.core.Client.ListIncompleteUploads(lctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return 0, fmt.Errorf("list incomplete uploads: %w", s3Fault(ctx, u.Err))
		}
		if !ValidID(strings.TrimPrefix(u.Key, s.prefix)) || !u.Initiated.Before(before) {
			continue
		}
		if _, live := s.inflight.Load(u.UploadID); live {
			continue
		}
		stale = append(stale, upload{u.Key, u.UploadID})
	}
	n := 0
	for _, u := range stale {
		if err := s.abortOnce(ctx, u.key, u.id); err != nil {
			return n, fmt.Errorf("abort incomplete upload %s: %w", u.key, s3Fault(ctx, err))
		}
		n++
	}
	return n, nil
}

// Close waits (within ctx) for aborts still being retried in the background,
// cutting their pauses short.
func (s *S3) Close(ctx context.Context) error {
	s.once.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() { s.aborts.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("s3 blob store: aborts still pending: %w", ctx.Err())
	}
}

func sortParts(p []minio.CompletePart) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].PartNumber < p[j-1].PartNumber; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}
