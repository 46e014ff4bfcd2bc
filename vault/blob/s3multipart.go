package blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

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
// parts of this upload in flight. On any error the upload is aborted, so no
// object and no stray parts remain.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader) (n int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	uploadID, err := s.core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
			defer acancel()
			_ = s.core.AbortMultipartUpload(actx, s.bucket, key, uploadID)
		}
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
			p, perr := s.core.PutObjectPart(ctx, s.bucket, key, uploadID, num, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{
				// Parts are age ciphertext, authenticated end to end: a payload
				// hash for the request signature would only repeat that, at the
				// cost of a SHA-256 pass over every byte.
				DisableContentSha256: true,
			})
			if perr != nil {
				fail(fmt.Errorf("part %d: %w", num, perr))
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
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, uploadID, parts, minio.PutObjectOptions{}); err != nil {
		return n, err
	}
	return n, nil
}

func sortParts(p []minio.CompletePart) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].PartNumber < p[j-1].PartNumber; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}
