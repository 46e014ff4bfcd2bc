package api

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// APIContentSecurityPolicy is the CSP of every API answer: nothing may load,
// and no page may frame it. The web application sets its own on its pages.
const APIContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'"

// securityHeaders puts the browser-facing protections on every answer,
// problems included: answers are never stored by a cache (they are
// confidential or change with who asks), never sniffed, never framed, and
// never leak the URL in a Referer. Handlers may override them (a future
// static asset may be cacheable). HSTS is sent on TLS connections; behind
// a TLS-terminating proxy the proxy sends it.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", APIContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if c.Request.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
	c.Next()
}

// MetricsHandler serves Prometheus metrics, to bearers of token only when
// token is set. vaultd serves it on VAULT_METRICS_ADDR, and on the main
// listener only when VAULT_METRICS_TOKEN is set: never open to anyone
// there.
func MetricsHandler(g prometheus.Gatherer, token string) http.Handler {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerIs(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="crvault-metrics"`)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "a metrics bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func bearerIs(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// metrics serves /metrics on the main router behind the bearer token; a
// refused scrape is a denied attempt like any other and is audited (a
// misconfigured scraper's repeats are counted, not written one by one).
func (h *handler) metrics(c *gin.Context) {
	if !bearerIs(c.Request, h.MetricsToken) {
		detail := "invalid_token"
		if c.GetHeader("Authorization") == "" {
			detail = "missing_token"
		}
		if h.recordDenied(c, "metrics.scrape", "GET /metrics", detail) {
			c.Header("WWW-Authenticate", `Bearer realm="crvault-metrics"`)
			problem(c, http.StatusUnauthorized, "unauthenticated", "a metrics bearer token is required")
		}
		return
	}
	h.metricsHandler.ServeHTTP(c.Writer, c.Request)
}

// codeBodyTimeout answers a request body that stopped arriving.
const codeBodyTimeout = "body_timeout"

// isBodyTimeout reports whether a body read failed on the idle deadline.
func isBodyTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// WithIOTimeouts bounds how long a client may keep a request body or a
// response waiting: each read of the body must bring bytes within
// bodyIdle, and each write of the answer must be taken within writeIdle.
// The deadlines move forward with every read and write, so a slow upload
// or download that keeps moving goes on for as long as it needs, while
// one that stalls is cut (the server's own ReadTimeout and WriteTimeout
// would cut the slow ones too). Zero turns a deadline off.
func WithIOTimeouts(next http.Handler, bodyIdle, writeIdle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if writeIdle > 0 {
			dw := &deadlineWriter{ResponseWriter: w, rc: rc, idle: writeIdle}
			dw.refresh()
			// The end of the answer is written after the handler returns.
			defer dw.refresh()
			w = dw
		}
		if bodyIdle > 0 && r.Body != nil && r.Body != http.NoBody {
			db := &deadlineBody{ReadCloser: r.Body, rc: rc, idle: bodyIdle}
			// The deadline starts now: a body that never arrives is cut
			// even when the handler has not started reading.
			db.arm()
			r.Body = db
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody moves the connection's read deadline forward before each
// read, and never again once the body is read: from then on the server
// reads the connection in the background to notice a client that goes
// away (net/http lifts the deadline for that read), and a deadline set
// then would cancel a long answer.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	mu   sync.Mutex
	done bool
}

func (b *deadlineBody) arm() {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return b.ReadCloser.Read(p)
	}
	b.arm()
	b.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.mu.Lock()
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
		b.mu.Unlock()
	}
	return n, err
}

// deadlineWriter moves the connection's write deadline forward before each
// write: a client that stops taking the answer is cut after idle, one that
// takes it slowly is not.
type deadlineWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *deadlineWriter) refresh() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.refresh()
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) WriteHeader(code int) {
	w.refresh()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Flush() {
	w.refresh()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack keeps gin's Hijack working through the wrapper; the hijacker
// owns the connection's deadlines from then on.
func (w *deadlineWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.rc.Hijack() }
