package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkIOTimeouts moves 64 MiB up and 64 MiB down over loopback through
// a bare handler and through WithIOTimeouts, alternating in the same run,
// and reports the deadline-refreshing path's throughput as a ratio to the
// bare one (1.0: no cost). Run: go test -run '^$' -bench IOTimeouts ./api/
func BenchmarkIOTimeouts(b *testing.B) {
	const size = 64 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			return
		}
		w.Write(data)
	})
	bare := httptest.NewServer(h)
	defer bare.Close()
	guarded := httptest.NewServer(WithIOTimeouts(h, 30*time.Second, 60*time.Second))
	defer guarded.Close()
	round := func(url string) time.Duration {
		t0 := time.Now()
		res, err := http.Post(url, "application/octet-stream", bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		res, err = http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, res.Body); err != nil || n != size {
			b.Fatalf("download: %d %v", n, err)
		}
		res.Body.Close()
		return time.Since(t0)
	}
	var tBare, tGuarded time.Duration
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tBare += round(bare.URL)
		tGuarded += round(guarded.URL)
	}
	b.ReportMetric(tBare.Seconds()/tGuarded.Seconds(), "guarded/bare_throughput")
}
