package blob

import (
	"context"
	"time"

	"github.com/minio/minio-go/v7"
)

// Gets reports how many GET requests the store's objects have issued.
func (s *S3) Gets() int64 { return s.gets.Load() }

// IncompleteUploads lists multipart uploads still open under the prefix.
func (s *S3) IncompleteUploads(ctx context.Context) ([]string, error) {
	var keys []string
	for u := range s.core.Client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return nil, u.Err
		}
		keys = append(keys, u.Key)
	}
	return keys, nil
}

// RawClient exposes the minio client for benchmarks against the raw SDK.
func (s *S3) RawClient() (*minio.Client, string, string) { return s.core.Client, s.bucket, s.prefix }

// WaitAborts waits for the background aborts started so far.
func (s *S3) WaitAborts() { s.aborts.Wait() }

// SetAbortRetry shortens the pause between background abort attempts.
func (s *S3) SetAbortRetry(d time.Duration) { s.abortRetry = d }

// StartMultipart opens a multipart upload under id and leaves it unfinished,
// as a crashed writer would.
func (s *S3) StartMultipart(ctx context.Context, id string) (string, error) {
	return s.core.NewMultipartUpload(ctx, s.bucket, s.key(id), minio.PutObjectOptions{})
}

// SetOpTimeout shortens the bound of calls that move no blob bytes and of
// whole reads of small blobs (30 s).
func (s *S3) SetOpTimeout(d time.Duration) { s.opTimeout = d }
