package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// s3StallProxy relays TCP to the S3 server (review h28d). While armed,
// each connection carries at most budget more bytes from the server to
// vaultd, then nothing, with the connection held open: a server (or a
// middlebox) that answered a GET's headers and went silent mid-body.
// While upArmed, each connection carries at most upBudget more bytes from
// vaultd to the server, then the proxy stops reading them (review h28h): a
// server that stopped taking an upload, the connection held open.
type s3StallProxy struct {
	ln       net.Listener
	armed    atomic.Bool
	budget   atomic.Int64
	upArmed  atomic.Bool
	upBudget atomic.Int64
}

func newS3StallProxy(t *testing.T, target string) *s3StallProxy {
	t.Helper()
	p := &s3StallProxy{}
	p.ln = relay(t, target, func(c, u net.Conn) {
		go p.up(u, c)
		go p.down(c, u)
	}, func() {
		p.armed.Store(false)
		p.upArmed.Store(false)
	})
	return p
}

// relay accepts TCP connections on a loopback port, dials target for each
// and hands both ends to pipe, which relays them as the test needs (in
// goroutines of its own). At cleanup stop runs first (to release pipes held
// on purpose), then the listener and every connection close.
func relay(t testing.TB, target string, pipe func(client, upstream net.Conn), stop func()) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		if stop != nil {
			stop()
		}
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln
}

// arm makes every connection go silent once it has carried budget more
// bytes from the server; disarm lets them all flow again.
func (p *s3StallProxy) arm(budget int64) { p.budget.Store(budget); p.armed.Store(true) }
func (p *s3StallProxy) disarm()          { p.armed.Store(false) }

// up relays vaultd's bytes to the server; see upArmed.
func (p *s3StallProxy) up(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 16<<10)
	var sent int64
	for {
		if !p.upArmed.Load() {
			sent = 0
		} else if sent > p.upBudget.Load() {
			// Not reading from here, the connection held open, until
			// disarmed; then this connection is given up.
			for p.upArmed.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if p.upArmed.Load() {
				sent += int64(n)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *s3StallProxy) down(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 1024)
	var sent int64
	for {
		n, err := src.Read(buf)
		if !p.armed.Load() {
			sent = 0
		} else if n > 0 {
			if keep := p.budget.Load() - sent; int64(n) > keep {
				if keep > 0 {
					_, _ = dst.Write(buf[:keep])
				}
				// Silent from here, the connection held open, until
				// disarmed; then this connection is given up.
				for p.armed.Load() {
					time.Sleep(10 * time.Millisecond)
				}
				return
			}
			sent += int64(n)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestS3StallEndsReads (review h28d, findings 2 and 3): vaultd reaches S3
// through a proxy that lets each connection carry a few bytes of the answer
// and then holds it open in silence. A read of a document must not wait on
// such a store without bound: with a read idle timeout of 500 ms,
//
//   - a stall before the first byte of the document is sent (a small
//     document read whole; a large one while its end is authenticated)
//     answers 503 store_unavailable (not database_unavailable) with
//     Retry-After within a few seconds, audited as an error;
//
//   - a stall after the download began cuts the connection short of its
//     Content-Length, and the audit log has the read's error event with
//     store_unavailable and the bytes sent;
//
//   - an upload that S3 stops reading (review h28h) answers 503
//     store_unavailable within a few seconds, and uploads work again once
//     S3 reads;
//
// and once S3 talks again, the same documents read back whole.
func TestS3StallEndsReads(t *testing.T) {
	const idle = 500 * time.Millisecond
	env := backends[1].env(t)
	var endpoint string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "VAULT_S3_ENDPOINT="); ok {
			endpoint = v
		}
	}
	proxy := newS3StallProxy(t, endpoint)
	env = append(env, "VAULT_S3_ENDPOINT="+proxy.ln.Addr().String())
	s := newServer(t, backend{"postgres+s3-via-stall-proxy", func(testing.TB) []string { return env }},
		"VAULT_S3_READ_IDLE_TIMEOUT="+idle.String(), "VAULT_S3_WRITE_IDLE_TIMEOUT="+idle.String(),
		// Every read must reach the store, not the ciphertext cache.
		"VAULT_CIPHERTEXT_CACHE_BYTES=0")
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, _ := w.newCase(t, "MARKER-STALL")
	readAll := func(g *genReader) []byte {
		b, err := io.ReadAll(g)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	small := readAll(newGen(12<<10, 3, "MARKER-STALL-SMALL"))
	big := readAll(newGen(3<<20, 4, "MARKER-STALL-BIG"))
	smallID := w.op.upload(t, caseID, "other", "small.txt", string(small))
	bigID := w.op.upload(t, caseID, "other", "big.txt", string(big))
	// A bound well under the 30 s that would also end a small read (and
	// that used to come out as database_unavailable).
	bound := 2*idle + 8*time.Second

	errorEventOf := func(rid string) *event {
		for _, e := range w.insp.events("action=material.read&outcome=error") {
			if e.RequestID == rid {
				return &e
			}
		}
		return nil
	}

	t.Run("stall before the first byte", func(t *testing.T) {
		proxy.arm(4 << 10)
		defer proxy.disarm()
		for _, d := range []struct{ rid, id string }{{"stall-small", smallID}, {"stall-big-open", bigID}} {
			start := time.Now()
			a := s.call(w.op.token, "GET", "/materials/"+d.id+"/content", d.rid, nil, nil)
			took := time.Since(start)
			expectOutage(t, d.rid+" with S3 stalled", a, "store_unavailable")
			if took > bound {
				t.Errorf("%s: answered after %v, want within %v", d.rid, took, bound)
			}
			if bytes.Contains(a.body, []byte("MARKER-STALL")) {
				t.Fatalf("%s: the refusal carries document bytes", d.rid)
			}
			if e := errorEventOf(d.rid); e == nil || e.Detail != "store_unavailable" {
				t.Errorf("%s: audit error event %+v, want detail store_unavailable", d.rid, e)
			}
		}
	})

	t.Run("stall after the first bytes", func(t *testing.T) {
		// Enough for the document's end and first blocks, not for all of it.
		proxy.arm(1 << 20)
		defer proxy.disarm()
		req, _ := http.NewRequest("GET", s.base+"/api/v1/materials/"+bigID+"/content", nil)
		req.Header.Set("Authorization", "Bearer "+w.op.token)
		req.Header.Set("X-Request-ID", "stall-big-cut")
		start := time.Now()
		res, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatalf("download with S3 stalling mid-body: no answer after %v: %v", time.Since(start), err)
		}
		got, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		took := time.Since(start)
		t.Logf("download with S3 stalling mid-body: %d, %d of %d bytes, then %v, after %v", res.StatusCode, len(got), res.ContentLength, rerr, took)
		if res.StatusCode != 200 {
			t.Fatalf("download: %d, want 200 then a cut (the stall must come after the first bytes)", res.StatusCode)
		}
		if rerr == nil || int64(len(got)) >= res.ContentLength || len(got) == 0 {
			t.Fatalf("download ended with %v after %d of %d bytes: want a cut, short of Content-Length, after some bytes", rerr, len(got), res.ContentLength)
		}
		if !bytes.Equal(got, big[:len(got)]) {
			t.Fatal("the bytes before the cut are not the document's")
		}
		if took > 2*bound {
			t.Errorf("the cut came after %v, want within %v", took, 2*bound)
		}
		e := errorEventOf("stall-big-cut")
		if e == nil || !strings.HasPrefix(e.Detail, "store_unavailable bytes_sent=") {
			t.Fatalf("cut download: audit error event %+v, want store_unavailable bytes_sent=N", e)
		}
		var line map[string]any
		if l, ok := s.waitLog(t, `"msg":"http"`, `"request_id":"stall-big-cut"`); ok {
			_ = json.Unmarshal([]byte(l), &line)
		}
		if line == nil || line["aborted"] != true {
			t.Fatalf("access log line of the cut download: %v", line)
		}
	})

	t.Run("upload S3 stops taking", func(t *testing.T) {
		// Review h28h, finding 1: the store keeps the connection open and
		// stops reading the upload. Both sizes: one sent as a single PUT,
		// one as a multipart upload.
		proxy.upArmed.Store(true)
		proxy.upBudget.Store(64 << 10)
		defer proxy.upArmed.Store(false)
		for _, u := range []struct {
			rid  string
			body []byte
		}{{"upstall-single", big}, {"upstall-multipart", readAll(newGen(20<<20, 5, "MARKER-STALL-UP"))}} {
			start := time.Now()
			a := s.call(w.op.token, "POST", "/cases/"+caseID+"/materials?kind=other&filename="+u.rid+".bin", u.rid,
				bytes.NewReader(u.body), map[string]string{"Content-Type": "application/octet-stream"})
			took := time.Since(start)
			expectOutage(t, u.rid+" with S3 not reading", a, "store_unavailable")
			if took > bound {
				t.Errorf("%s: answered after %v, want within %v", u.rid, took, bound)
			}
			if e := errorEvent(w.insp, u.rid); e == nil || e.Detail != "store_unavailable" {
				t.Errorf("%s: audit error event %+v, want detail store_unavailable", u.rid, e)
			}
		}
	})
	if a := s.call(w.op.token, "POST", "/cases/"+caseID+"/materials?kind=other&filename=after.bin", "upstall-after",
		bytes.NewReader(big), map[string]string{"Content-Type": "application/octet-stream"}); a.status != 201 {
		t.Fatalf("upload once S3 reads again: %v", a)
	}

	for id, want := range map[string][]byte{smallID: small, bigID: big} {
		deadline := time.Now().Add(time.Minute)
		for {
			a := s.call(w.op.token, "GET", "/materials/"+id+"/content", "after-stall", nil, nil)
			if a.status == 200 && bytes.Equal(a.body, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recovery once S3 talks again: %v", a)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
