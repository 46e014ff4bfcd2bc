package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// genReader yields n deterministic pseudo-random bytes, with the marker at
// the start of every 64 KiB so a leak of any part of it is visible to a scan.
type genReader struct {
	left   int64
	pos    int64
	rng    *rand.ChaCha8
	marker []byte
	sum    hash.Hash
}

func newGen(n int64, seed byte, marker string) *genReader {
	var s [32]byte
	s[0] = seed
	return &genReader{left: n, rng: rand.NewChaCha8(s), marker: []byte(marker), sum: sha256.New()}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	g.rng.Read(p)
	for i := range p {
		if off := (g.pos + int64(i)) % (64 << 10); off < int64(len(g.marker)) {
			p[i] = g.marker[off]
		}
	}
	g.pos += int64(len(p))
	g.left -= int64(len(p))
	g.sum.Write(p)
	return len(p), nil
}

// heapWatch samples the server's go_memstats_heap_inuse_bytes while a
// transfer runs and keeps the peak.
type heapWatch struct {
	s    *server
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak float64
}

func (s *server) heapInuse(t testing.TB) float64 {
	t.Helper()
	res, err := http.Get(s.metricsBase + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("parse heap metric %q: %v", v, err)
			}
			return f
		}
	}
	t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	return 0
}

func watchHeap(t testing.TB, s *server) *heapWatch {
	h := &heapWatch{s: s, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				res, err := http.Get(s.metricsBase + "/metrics")
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
						f, _ := strconv.ParseFloat(v, 64)
						h.mu.Lock()
						h.peak = max(h.peak, f)
						h.mu.Unlock()
					}
				}
			}
		}
	}()
	return h
}

func (h *heapWatch) finish() float64 {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak
}

// TestLargeTransferBoundedHeap streams 1 GiB up and back down and checks the
// server's heap never grows by more than 64 MiB, and that no plaintext
// reached disk or the log. Set CRVAULT_LARGE=0 to shrink it to 64 MiB when
// iterating locally.
func TestLargeTransferBoundedHeap(t *testing.T) {
	t.Parallel()
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			marker := "MARKER-LARGE-" + strings.ReplaceAll(be.name, "+", "-")
			caseID, _ := w.newCase(t, marker)
			base := s.heapInuse(t)
			hw := watchHeap(t, s)

			gen := newGen(size, 7, marker)
			req, _ := http.NewRequest("POST", s.base+"/api/v1/cases/"+caseID+"/materials?kind=other&filename=big.bin", gen)
			req.ContentLength = size
			req.Header.Set("Authorization", "Bearer "+w.op.token)
			req.Header.Set("Content-Type", "application/octet-stream")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("upload: %d %s", res.StatusCode, body)
			}
			var m struct {
				ID     string `json:"id"`
				Size   int64  `json:"size"`
				SHA256 string `json:"sha256"`
			}
			resp{Body: body}.json(t, &m)
			want := hex.EncodeToString(gen.sum.Sum(nil))
			if m.Size != size || m.SHA256 != want {
				t.Fatalf("stored size %d sha %s, want %d %s", m.Size, m.SHA256, size, want)
			}

			req, _ = http.NewRequest("GET", s.base+"/api/v1/materials/"+m.ID+"/content", nil)
			req.Header.Set("Authorization", "Bearer "+w.op.token)
			res, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			h := sha256.New()
			n, err := io.Copy(h, res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || n != size || hex.EncodeToString(h.Sum(nil)) != want {
				t.Fatalf("download: status %d, %d bytes, err %v", res.StatusCode, n, err)
			}
			// A range deep inside the document decrypts only its chunks.
			req, _ = http.NewRequest("GET", s.base+"/api/v1/materials/"+m.ID+"/content", nil)
			req.Header.Set("Authorization", "Bearer "+w.op.token)
			off := size - 100000
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+9))
			res, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("range: %v", err)
			}
			part, _ := io.ReadAll(res.Body)
			res.Body.Close()
			ref := newGen(size, 7, marker)
			io.CopyN(io.Discard, ref, off)
			exp := make([]byte, 10)
			io.ReadFull(ref, exp)
			if res.StatusCode != 206 || !bytes.Equal(part, exp) {
				t.Fatalf("range: %d %x want %x", res.StatusCode, part, exp)
			}

			peak := hw.finish()
			growth := peak - base
			t.Logf("heap in use: base %.1f MiB, peak %.1f MiB, growth %.1f MiB for %d MiB each way", base/(1<<20), peak/(1<<20), growth/(1<<20), size>>20)
			if growth > 64<<20 {
				t.Errorf("heap grew by %.1f MiB during the transfer; the bound is 64 MiB", growth/(1<<20))
			}
			s.stop()
			assertNoPlaintext(t, s, marker)
		})
	}
}
