package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	h, err := New(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(h)
	defer plain.Close()
	secure := httptest.NewTLSServer(h)
	defer secure.Close()
	want := map[string]string{
		"Cache-Control":           "no-store",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for _, srv := range []*httptest.Server{plain, secure} {
		for _, path := range []string{"/healthz", "/api/v1/healthz", "/api/v1/openapi.yaml", "/no/such/route"} {
			res, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s %s: %s = %q, want %q", srv.URL, path, k, got, v)
				}
			}
			hsts := res.Header.Get("Strict-Transport-Security")
			if (srv == secure) != strings.HasPrefix(hsts, "max-age=") {
				t.Errorf("%s %s: Strict-Transport-Security %q (TLS %v)", srv.URL, path, hsts, srv == secure)
			}
		}
	}
}

func TestMetricsHandlerNeedsTheToken(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Inc()
	srv := httptest.NewServer(MetricsHandler(reg, "s3cret-metrics-token"))
	defer srv.Close()
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong", 401}, {"Basic s3cret-metrics-token", 401}, {"Bearer s3cret-metrics-token", 200}} {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || (tc.code == 200) != strings.Contains(string(body), "crvault_test_total 1") {
			t.Errorf("Authorization %q: %d %q", tc.auth, res.StatusCode, body)
		}
	}
}

// ioServer runs WithIOTimeouts over a handler on a real TCP listener.
func ioServer(t *testing.T, idle time.Duration, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(WithIOTimeouts(h, idle, idle))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// readBody answers 200 with the byte count, or 408 when the body stalled.
func readBody(got chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		got <- err
		if isBodyTimeout(err) {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, n)
	}
}

func TestStalledBodyIsCutMovingBodyIsNot(t *testing.T) {
	const idle = time.Second
	got := make(chan error, 1)
	addr := ioServer(t, idle, readBody(got))

	// Stalled: the headers promise 100 bytes, 10 arrive, then nothing.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	select {
	case err := <-got:
		if !isBodyTimeout(err) {
			t.Fatalf("stalled body read ended with %v, want the deadline", err)
		}
	case <-time.After(30 * idle):
		t.Fatal("a stalled body was never cut")
	}
	conn.SetReadDeadline(time.Now().Add(30 * idle))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %v %v", res, err)
	}

	// Moving: 12 chunks, each well within the idle time, the whole far
	// beyond it.
	pr, pw := io.Pipe()
	go func() {
		for range 12 {
			time.Sleep(idle / 4)
			pw.Write([]byte("0123456789"))
		}
		pw.Close()
	}()
	start := time.Now()
	res, err = http.Post("http://"+addr, "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if err := <-got; err != nil || res.StatusCode != 200 || string(body) != "120" {
		t.Fatalf("moving body: %d %q %v", res.StatusCode, body, err)
	}
	if elapsed := time.Since(start); elapsed < 2*idle {
		t.Fatalf("the slow body took %v, not longer than the idle time: the test did not test", elapsed)
	}
}

// TestDeadlinesDoNotCutSlowHandlers: once the body is read, a handler that
// thinks longer than the idle time before answering is neither cancelled
// (the server's background read must not hit a leftover deadline) nor
// unable to write.
func TestDeadlinesDoNotCutSlowHandlers(t *testing.T) {
	const idle = 500 * time.Millisecond
	addr := ioServer(t, idle, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// Read again past the end, as the strict JSON decoder does to
		// refuse trailing data.
		n, err := r.Body.Read(make([]byte, 1))
		fmt.Printf("after-EOF read %d %v %T\n", n, err, r.Body)
		select {
		case <-r.Context().Done():
			fmt.Println("CANCELLED")
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
			return
		case <-time.After(3 * idle):
		}
		// More than the server buffers, so it is written while the
		// handler runs, under the write deadline.
		w.Write([]byte(strings.Repeat("done", 64<<10)))
	})
	for _, body := range []io.Reader{nil, strings.NewReader("small body")} {
		res, err := http.Post("http://"+addr, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || len(b) != 256<<10 {
			t.Fatalf("slow handler (body %v): %d, %d bytes", body != nil, res.StatusCode, len(b))
		}
	}
}

// TestStalledReaderIsCut: a client that stops taking a large answer frees
// the handler after the idle time.
func TestStalledReaderIsCut(t *testing.T) {
	const idle = 500 * time.Millisecond
	done := make(chan error, 1)
	addr := ioServer(t, idle, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		var err error
		for i := 0; i < 4096 && err == nil; i++ { // up to 256 MiB
			_, err = w.Write(buf)
		}
		done <- err
	})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.Read(make([]byte, 1024)) // a little, then nothing more
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("handler wrote 256 MiB to a client that stopped reading")
		}
	case <-time.After(60 * idle):
		t.Fatal("a client that stopped reading held the handler")
	}
}
