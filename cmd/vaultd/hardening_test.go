package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stalledRequest sends a request whose headers promise more body than it
// sends, then waits for the answer, as a client that stopped sending would.
func stalledRequest(t *testing.T, s *server, token, method, path, ctype string, promised int, sent string) (*http.Response, []byte, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "%s /api/v1%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		method, path, s.addr, token, ctype, promised, sent)
	// A liveness bound, far beyond the configured deadline: a body that
	// is never cut fails here rather than hanging the suite.
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s with a stalled body: no answer: %v", method, path, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, b, time.Since(start)
}

// operatorWorld bootstraps only what a test of an operator's requests
// needs (its organisation, a provider for its cases, the operator): the
// full cast costs a dozen CLI runs. Log in with w.login after start.
func operatorWorld(t *testing.T, s *server) *world {
	t.Helper()
	w := &world{s: s}
	w.opOrg = s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
	w.provOrg = s.mustCLI("", "org", "add", "--name", "Acme Routers", "--kind", "provider")
	s.mustCLI(pw+"\n", "user", "add", "--username", "operator1", "--org", "Grid Co", "--role", "operator", "--password-stdin")
	return w
}

func (w *world) loginOperator(t *testing.T) { w.op = w.s.login(t, "operator1", pw) }

// slowBody yields n bytes of gen, pausing after every chunk: slow, but
// never stalled for as long as the idle deadline.
type slowBody struct {
	gen   io.Reader
	left  int
	chunk int
	pause time.Duration
	since int // bytes since the last pause
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.since >= b.chunk {
		time.Sleep(b.pause)
		b.since = 0
	}
	n := min(len(p), b.chunk-b.since, b.left)
	n, err := io.ReadFull(b.gen, p[:n])
	b.left -= n
	b.since += n
	return n, err
}

// TestStalledBodyCutSlowUploadGoesOn: with a 2 s body idle deadline, an
// upload and a JSON request whose bodies stop arriving are answered 408
// body_timeout soon after it, and store nothing; a 64 MiB upload that
// trickles in over many times the deadline, never pausing that long, is
// stored whole.
func TestStalledBodyCutSlowUploadGoesOn(t *testing.T) {
	// Not parallel: it asserts timing (a 2 s body deadline against a client pausing 0.5 s),
	// which the load of parallel tests would blur. Its two backends run at
	// once, though (14 s instead of 28 s of the serial phase): each mostly
	// sleeps between its chunks, and that little load leaves a 0.5 s pause
	// far from the 2 s deadline; the other bounds are lower bounds, which
	// load cannot break.
	const idle = 2 * time.Second
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_HTTP_BODY_IDLE_TIMEOUT="+idle.String())
			w := operatorWorld(t, s)
			s.start()
			w.loginOperator(t)
			caseID, docs := w.newCase(t, "MARKER-SLOW")

			res, body, took := stalledRequest(t, s, w.op.token, "POST", "/cases/"+caseID+"/materials?kind=other&filename=stalled.bin",
				"application/octet-stream", 8<<20, strings.Repeat("x", 1000))
			if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"code":"body_timeout"`) {
				t.Fatalf("stalled upload: %d %s", res.StatusCode, body)
			}
			if took < idle {
				t.Fatalf("stalled upload cut after %v, before the %v deadline", took, idle)
			}
			res, body, _ = stalledRequest(t, s, w.op.token, "POST", "/cases", "application/json", 500, `{"title":`)
			if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"code":"body_timeout"`) {
				t.Fatalf("stalled JSON body: %d %s", res.StatusCode, body)
			}

			const size = 64 << 20
			gen := newGen(size, 7, "MARKER-SLOW-UPLOAD")
			sb := &slowBody{gen: gen, left: size, chunk: 4 << 20, pause: idle / 4}
			req, err := http.NewRequest("POST", s.base+"/api/v1/cases/"+caseID+"/materials?kind=other&filename=slow.bin", sb)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = size
			req.Header.Set("Authorization", "Bearer "+w.op.token)
			req.Header.Set("Content-Type", "application/octet-stream")
			start := time.Now()
			r2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r2.Body)
			r2.Body.Close()
			if r2.StatusCode != 201 {
				t.Fatalf("slow upload: %d %s", r2.StatusCode, b)
			}
			if took := time.Since(start); took < 3*idle {
				t.Fatalf("the slow upload took %v, not several deadlines: the test did not test", took)
			}
			var m struct {
				Size   int64  `json:"size"`
				SHA256 string `json:"sha256"`
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Size != size || m.SHA256 != hex.EncodeToString(gen.sum.Sum(nil)) {
				t.Fatalf("slow upload stored %d bytes, sha256 %s", m.Size, m.SHA256)
			}

			var list struct {
				Items []struct {
					Filename string `json:"filename"`
				} `json:"items"`
			}
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &list)
			if len(list.Items) != len(docs)+1 {
				t.Fatalf("materials after one stalled and one slow upload: %+v", list.Items)
			}
			for _, it := range list.Items {
				if it.Filename == "stalled.bin" {
					t.Fatal("the stalled upload left a material")
				}
			}
		})
	}
}

// dialFrom opens a TCP connection to addr from a given loopback address.
func dialFrom(local, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

func healthzFrom(local, addr string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext,
		DisableKeepAlives: true}}
	res, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// TestStalledConnectionsDoNotStarveOthers: one client opens 320
// connections that stall in their bodies. The server holds 100 of them
// (the default cap per client) and closes the rest at once; /healthz still
// answers everyone else, and the client gets its slots back as its
// connections end.
func TestStalledConnectionsDoNotStarveOthers(t *testing.T) {
	// Not parallel: it asserts timing (a refused connection must be closed within the 5 s it watches),
	// which the load of parallel tests would blur.
	const attacker, held = "127.0.0.2", 100
	s := newServer(t, backends[0], "VAULT_HTTP_BODY_IDLE_TIMEOUT=10m")
	s.start()
	conns := make([]net.Conn, 0, 320)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 320 {
		c, err := dialFrom(attacker, s.addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", attacker, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	}
	// Each connection either stays open with no answer (held) or is
	// closed by the server (refused).
	var mu sync.Mutex
	var open, closed int
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := c.Read(make([]byte, 1))
			mu.Lock()
			defer mu.Unlock()
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				open++
			case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
				closed++
			default:
				t.Errorf("stalled connection read: %v", err)
			}
		}()
	}
	wg.Wait()
	if open != held || closed != 320-held {
		t.Fatalf("%d held and %d closed of 320 stalled connections; want %d held", open, closed, held)
	}
	if err := healthzFrom("127.0.0.1", s.addr); err != nil {
		t.Fatalf("/healthz for another client while one stalls 320 connections: %v", err)
	}
	if err := healthzFrom(attacker, s.addr); err == nil {
		t.Fatal("the stalling client got a 101st connection")
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = healthzFrom(attacker, s.addr); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the client's slots never came back: %v", err)
	}
}

var wantHeaders = map[string]string{
	"Cache-Control":           "no-store",
	"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	"X-Frame-Options":         "DENY",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
}

func checkHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, v := range wantHeaders {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
	if h.Get("Strict-Transport-Security") != "" {
		t.Errorf("%s: HSTS over plain HTTP", what)
	}
}

// TestSecurityHeadersMetricsAndFilenames: every kind of answer carries the
// security headers; /metrics is only on its own listener, or behind the
// token; format characters never reach a stored filename.
func TestSecurityHeadersMetricsAndFilenames(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := operatorWorld(t, s)
	s.start()
	w.loginOperator(t)
	caseID, docs := w.newCase(t, "MARKER-HEADERS")
	var mat string
	for id := range docs {
		mat = id
	}
	for what, r := range map[string]resp{
		"authenticated JSON": w.op.expect(200, "GET", "/me", nil),
		"list":               w.op.expect(200, "GET", "/cases", nil),
		"download":           w.op.expect(200, "GET", "/materials/"+mat+"/content", nil),
		"401 problem":        s.do(t, "", "GET", "/me", nil, nil),
		"404 problem":        w.op.expect(404, "GET", "/cases/nope", nil),
		"login":              s.do(t, "", "POST", "/sessions", strings.NewReader(`{"username":"operator1","password":"`+pw+`"}`), map[string]string{"Content-Type": "application/json"}),
	} {
		checkHeaders(t, what, r.Header)
	}

	// /metrics: not on the API listener at all without a token...
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("/metrics on the API listener: %d", res.StatusCode)
	}
	// ...and on its own listener.
	if r, err := httpGet(s.metricsBase + "/metrics"); err != nil || r.status != 200 || !strings.Contains(r.body, "crvault_http_requests_total") {
		t.Fatalf("metrics listener: %v %d", err, r.status)
	}

	// Bidi and other format characters are stripped from filenames.
	r := w.op.uploadRaw(caseID, "other", "invoice\u202Efdp.exe\u200B", "application/octet-stream", []byte("x"))
	var m struct {
		ID       string `json:"id"`
		Filename string `json:"filename"`
	}
	r.json(t, &m)
	if r.Status != 201 || m.Filename != "invoicefdp.exe" {
		t.Fatalf("filename with bidi controls: %d %q", r.Status, m.Filename)
	}
	cd := w.op.expect(200, "GET", "/materials/"+m.ID+"/content", nil).Header.Get("Content-Disposition")
	if strings.Contains(cd, "%E2%80%AE") || strings.ContainsRune(cd, '\u202E') {
		t.Fatalf("Content-Disposition carries the override: %q", cd)
	}
}

// TestMetricsToken: with VAULT_METRICS_TOKEN, /metrics on the API listener
// answers only its bearers, and a refused scrape is audited.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	const token = "metrics-token-0123456789"
	s := newServer(t, backends[0], "VAULT_METRICS_TOKEN="+token)
	s.start()
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong-token-0123456789", 401}, {"Bearer " + token, 200}} {
		req, _ := http.NewRequest("GET", s.base+"/metrics", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || (tc.code == 200) != strings.Contains(string(b), "crvault_http_requests_total") {
			t.Fatalf("Authorization %q: %d %.200s", tc.auth, res.StatusCode, b)
		}
		if tc.code == 401 {
			checkHeaders(t, "metrics 401", res.Header)
		}
	}
	db, err := openSQL(s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	denied, err := db.strings(`SELECT outcome || ' ' || detail FROM audit_events WHERE action = 'metrics.scrape' ORDER BY seq`)
	if err != nil || len(denied) != 2 || denied[0] != "denied missing_token" || denied[1] != "denied invalid_token" {
		t.Fatalf("audited refused scrapes: %v %v", denied, err)
	}
	// The separate listener asks for the token too.
	if r, err := httpGet(s.metricsBase + "/metrics"); err != nil || r.status != 401 {
		t.Fatalf("metrics listener without the token: %v %+v", err, r.status)
	}
}
