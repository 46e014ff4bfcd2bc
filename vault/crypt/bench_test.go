package crypt

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// The benchmarks report throughput and, as the figure to watch, the cost of
// the age envelope as a ratio to a plain io.Copy of the same bytes run in the
// same process (x_copy: 1 means free), so results compare across machines.

const benchSize = 16 << 20

// reportRatio times io.Copy of src, b.N times with the benchmark's timer
// stopped, and reports the benchmark's time per op as a multiple of it.
// (testing.Benchmark cannot be nested in a running benchmark.)
func reportRatio(b *testing.B, src []byte) {
	b.Helper()
	b.StopTimer()
	elapsed := b.Elapsed()
	var dst bytes.Buffer
	dst.Grow(len(src) + 1<<20)
	start := time.Now()
	for range b.N {
		dst.Reset()
		if _, err := io.Copy(&dst, bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start)
	b.ReportMetric(float64(elapsed)/float64(base), "x_copy")
}

func BenchmarkEncrypt(b *testing.B) {
	k, _ := newCase(b, testMaster(b))
	src := testData(b, benchSize, 1)
	var dst bytes.Buffer
	dst.Grow(int(PayloadSize(benchSize)) + 1<<20)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		dst.Reset()
		s, err := k.Encrypt(&dst)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(s, bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportRatio(b, src)
}

func BenchmarkOpenStream(b *testing.B) {
	k, _ := newCase(b, testMaster(b))
	src := testData(b, benchSize, 2)
	header, payload := seal(b, k, src)
	var dst bytes.Buffer
	dst.Grow(benchSize + 1<<20)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		dst.Reset()
		r, err := k.OpenStream(header, bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(&dst, r); err != nil {
			b.Fatal(err)
		}
	}
	reportRatio(b, src)
}

// BenchmarkOpenChunks opens the payload as the vault's streaming read does:
// blocks of 8 chunks decrypted in place, then copied out once.
func BenchmarkOpenChunks(b *testing.B) {
	k, _ := newCase(b, testMaster(b))
	src := testData(b, benchSize, 3)
	header, payload := seal(b, k, src)
	var dst bytes.Buffer
	dst.Grow(benchSize + 1<<20)
	block := make([]byte, 8*encChunk)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		dst.Reset()
		_, o := chunkOpener(b, k, header, payload)
		for i := int64(0); i < o.Chunks(); i += 8 {
			n := copy(block, payload[ChunkOffset(i):min(int64(len(payload)), ChunkOffset(i+8))])
			pt, err := o.Open(block[:n], i)
			if err != nil {
				b.Fatal(err)
			}
			dst.Write(pt)
		}
	}
	reportRatio(b, src)
}

// BenchmarkOpenCaseKey is the per-request cost of unwrapping a case key
// (one ML-KEM-768 + X25519 decapsulation), which decides whether the vault
// should cache case keys.
func BenchmarkOpenCaseKey(b *testing.B) {
	m := testMaster(b)
	wrapped, err := m.NewCaseKey()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.OpenCaseKey(wrapped); err != nil {
			b.Fatal(err)
		}
	}
}
