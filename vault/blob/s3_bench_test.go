package blob_test

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/crvault/crvault/vault/blob/blobtest"
)

// benchSize is 256 MiB unless VAULT_BENCH_BLOB_MIB says otherwise (for quick runs).
func benchSize(b *testing.B) int64 {
	b.Helper()
	mib := int64(256)
	if v := os.Getenv("VAULT_BENCH_BLOB_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("VAULT_BENCH_BLOB_MIB=%q: want a positive integer", v)
		}
		mib = n
	}
	return mib << 20
}

// source streams n deterministic bytes without holding them in memory, and
// hides every method but Read, as an age encryptor's output would.
func source(n int64) io.Reader {
	return onlyReader{io.LimitReader(rand.NewChaCha8([32]byte{42}), n)}
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// BenchmarkS3Put compares blob.S3.Put with a plain minio-go PutObject of the
// same bytes against the same server in the same run; the figure that
// matters is blob/raw (1 means no overhead).
func BenchmarkS3Put(b *testing.B) {
	s := blobtest.S3(b)
	raw, bucket, prefix := s.RawClient()
	size := benchSize(b)
	ctx := context.Background()
	b.SetBytes(size)
	var rawTime, blobTime time.Duration
	for b.Loop() {
		b.StopTimer()
		start := time.Now()
		if _, err := raw.PutObject(ctx, bucket, prefix+"raw", source(size), size, minio.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(start)
		b.StartTimer()
		start = time.Now()
		if _, err := s.Put(ctx, "blob", source(size), size); err != nil {
			b.Fatal(err)
		}
		blobTime += time.Since(start)
	}
	b.ReportMetric(mbps(size*int64(b.N), rawTime), "raw-MB/s")
	b.ReportMetric(mbps(size*int64(b.N), blobTime), "blob-MB/s")
	b.ReportMetric(rawTime.Seconds()/blobTime.Seconds(), "blob/raw")
}

// BenchmarkS3Get compares reading a blob front to back through Object.ReadAt
// (as io.SectionReader does, in small chunks) with a plain minio-go GetObject.
func BenchmarkS3Get(b *testing.B) {
	s := blobtest.S3(b)
	raw, bucket, prefix := s.RawClient()
	size := benchSize(b)
	ctx := context.Background()
	if _, err := s.Put(ctx, "blob", source(size), size); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	var rawTime, blobTime time.Duration
	for b.Loop() {
		b.StopTimer()
		start := time.Now()
		obj, err := raw.GetObject(ctx, bucket, prefix+"blob", minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, obj); err != nil || n != size {
			b.Fatalf("raw get: %d bytes, %v", n, err)
		}
		obj.Close()
		rawTime += time.Since(start)
		b.StartTimer()
		start = time.Now()
		o, err := s.Open(ctx, "blob")
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, io.NewSectionReader(o, 0, o.Size())); err != nil || n != size {
			b.Fatalf("blob get: %d bytes, %v", n, err)
		}
		o.Close()
		blobTime += time.Since(start)
	}
	b.ReportMetric(mbps(size*int64(b.N), rawTime), "raw-MB/s")
	b.ReportMetric(mbps(size*int64(b.N), blobTime), "blob-MB/s")
	b.ReportMetric(rawTime.Seconds()/blobTime.Seconds(), "blob/raw")
}
