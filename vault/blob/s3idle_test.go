package blob_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/blob/blobtest"
)

// stallProxy relays TCP to the S3 server. While armed, each connection
// carries at most budget more bytes from the server, then nothing, with the
// connection left open: a server (or a middlebox) gone silent mid-answer.
// stalls limits how many connections stall (negative: all of them).
type stallProxy struct {
	target string
	ln     net.Listener
	armed  atomic.Bool
	budget atomic.Int64
	stalls atomic.Int64
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	p := &stallProxy{target: target}
	p.ln = relay(t, target, func(c, u net.Conn) {
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go p.down(c, u)
	}, func() { p.armed.Store(false) })
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

// arm makes the next stalls connections (all if negative) go silent once
// they have carried budget bytes from now on.
func (p *stallProxy) arm(budget, stalls int64) {
	p.budget.Store(budget)
	p.stalls.Store(stalls)
	p.armed.Store(true)
}

func (p *stallProxy) down(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 1024)
	var sent int64
	stalled := false
	for {
		n, err := src.Read(buf)
		if !p.armed.Load() {
			sent, stalled = 0, false
		} else if n > 0 {
			if !stalled && sent+int64(n) > p.budget.Load() {
				if s := p.stalls.Load(); s < 0 || (s > 0 && p.stalls.CompareAndSwap(s, s-1)) {
					stalled = true
				}
			}
			if stalled {
				if keep := p.budget.Load() - sent; keep > 0 {
					_, _ = dst.Write(buf[:keep])
					sent += keep
				}
				// Silent from here: hold the connection until disarmed.
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

// s3Stalling opens a store that reaches the test S3 server through a
// stallProxy, with a short read idle timeout.
func s3Stalling(t *testing.T, idle time.Duration) (*blob.S3, *stallProxy) {
	t.Helper()
	cfg := blobtest.S3Config(t)
	p := newStallProxy(t, cfg.Endpoint)
	cfg.Endpoint = p.ln.Addr().String()
	cfg.ReadIdle = idle
	s, err := blob.NewS3(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.armed.Store(false)
		_ = s.List(context.Background(), func(id string, _ time.Time) error { return s.Delete(context.Background(), id) })
	})
	return s, p
}

// TestS3StalledBodyIsUnavailable (review h28d, finding 2): a store that
// sends the headers of a GET and part of the body, then nothing, keeping the
// connection open, fails the read with ErrUnavailable within about two read
// idle timeouts (one retry on a new connection), on the streaming path and
// on the whole-read path; a stall followed by a working retry is not a
// failure; a reader that pauses between reads is not a stalled store; and
// the store serves again once the server talks.
func TestS3StalledBodyIsUnavailable(t *testing.T) {
	const idle = 300 * time.Millisecond
	s, p := s3Stalling(t, idle)
	ctx := ctxT(t)
	big, small := data(21, 3<<20), data(22, 12<<10)
	put(t, s, "big", big)
	put(t, s, "small", small)

	timed := func(what string, f func() error) error {
		t.Helper()
		start := time.Now()
		err := f()
		took := time.Since(start)
		t.Logf("%s: %v after %v", what, err, took.Round(time.Millisecond))
		if took > 2*idle+3*time.Second {
			t.Errorf("%s took %v, want about two idle timeouts (%v each)", what, took, idle)
		}
		return err
	}

	p.arm(64<<10, -1)
	err := timed("streaming read, every connection stalls", func() error {
		o, err := s.Open(ctx, "big")
		if err != nil {
			return err
		}
		defer o.Close()
		_, err = io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
		return err
	})
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("stalled streaming read: %v, want ErrUnavailable", err)
	}
	p.armed.Store(false)
	p.arm(4<<10, -1)
	err = timed("whole read, stalled", func() error { return blob.ReadWhole(ctx, s, "small", make([]byte, len(small))) })
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("stalled whole read: %v, want ErrUnavailable", err)
	}

	// One connection stalls, the retry's does not: the read completes.
	p.armed.Store(false)
	p.arm(256<<10, 1)
	var got []byte
	err = timed("streaming read, one connection stalls", func() error {
		o, err := s.Open(ctx, "big")
		if err != nil {
			return err
		}
		defer o.Close()
		got, err = io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
		return err
	})
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read with one stalled connection: %v (%d bytes), want the blob after a retry", err, len(got))
	}
	if p.stalls.Load() != 0 {
		t.Fatal("no connection stalled: the test did not test the retry")
	}
	p.armed.Store(false)

	// A consumer that pauses longer than the idle timeout between reads
	// (a slow client) continues the same stream.
	o, err := s.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	head := make([]byte, 1<<20)
	if _, err := o.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	gets := s.Gets()
	time.Sleep(3 * idle)
	rest := make([]byte, len(big)-len(head))
	if _, err := o.ReadAt(rest, int64(len(head))); err != nil && err != io.EOF {
		t.Fatalf("read after a pause of the reader: %v", err)
	}
	if !bytes.Equal(append(head, rest...), big) || s.Gets() != gets {
		t.Fatalf("read after a pause: %d new GETs, want the same stream continued", s.Gets()-gets)
	}
	if b := readAll(t, s, "small"); !bytes.Equal(b, small) {
		t.Fatal("small blob not served after the stall")
	}
}

// TestS3OwnDeadlineIsUnavailable (review h28d, finding 3): when the store's
// own bound on a call runs out (a server that does not answer, or trickles
// a small blob too slowly), the error is ErrUnavailable, not a bare
// context.DeadlineExceeded (which the API took for the database's); a
// caller's own cancellation stays the caller's.
func TestS3OwnDeadlineIsUnavailable(t *testing.T) {
	s, p := s3Stalling(t, 10*time.Second)
	ctx := ctxT(t)
	small := data(23, 12<<10)
	put(t, s, "small", small)
	s.SetOpTimeout(500 * time.Millisecond)
	// Opened while the store answers: its reads' GETs then meet the silence.
	// The caller's own bound, well past opTimeout, so that a GET the store
	// does not bound fails the test instead of hanging it.
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	obj, err := s.Open(rctx, "small")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	p.arm(0, -1) // not even a header
	// A GET whose headers never come was bounded only by the transport's
	// two-minute header timeout, as were the start of a multipart upload
	// (size unknown) and its completion (TestS3UnansweredCompletionIsUnavailable).
	_, err = obj.ReadAt(make([]byte, len(small)), 0)
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("stream read against a silent store: %v, want ErrUnavailable", err)
	}
	ops := map[string]func(context.Context) error{
		"open":  func(ctx context.Context) error { _, err := s.Open(ctx, "small"); return err },
		"whole": func(ctx context.Context) error { return blob.ReadWhole(ctx, s, "small", make([]byte, len(small))) },
		// The request reaches the server, only its answer does not:
		// delete another blob.
		"delete": func(ctx context.Context) error { return s.Delete(ctx, "other") },
		"ping":   s.Ping,
		"multipart": func(ctx context.Context) error {
			_, err := s.Put(ctx, "multipart", bytes.NewReader(small), -1)
			return err
		},
	}
	for name, op := range ops {
		// The caller's own bound, well past opTimeout, so that a call the
		// store does not bound fails here instead of hanging the test.
		octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
		err := op(octx)
		ocancel()
		if !errors.Is(err, blob.ErrUnavailable) {
			t.Errorf("%s against a silent store: %v, want ErrUnavailable", name, err)
		}
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		if err := op(cctx); !errors.Is(err, context.Canceled) || errors.Is(err, blob.ErrUnavailable) {
			t.Errorf("%s cancelled by its caller: %v, want the cancellation only", name, err)
		}
	}
	p.armed.Store(false)
	s.SetOpTimeout(30 * time.Second)
	if b := readAll(t, s, "small"); !bytes.Equal(b, small) {
		t.Fatal("small blob not served once the store answers")
	}
}

// TestS3UnansweredCompletionIsUnavailable: a store that takes a multipart
// upload's parts, then the completion, and never answers it fails the
// upload with ErrUnavailable within the store's bound (opTimeout, plus an
// allowance growing with the object's size), where it waited for the
// transport's two-minute header timeout and minio-go's retries; the store
// takes uploads again once it answers.
func TestS3UnansweredCompletionIsUnavailable(t *testing.T) {
	cfg := blobtest.S3Config(t)
	var armed atomic.Bool
	ln := relay(t, cfg.Endpoint, func(c, u net.Conn) {
		// Requests on a connection follow one another, so once a completion
		// has gone up, whatever comes down is its answer: withheld.
		var hold atomic.Bool
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if armed.Load() && bytes.HasPrefix(buf[:n], []byte("POST ")) &&
						bytes.Contains(bytes.SplitN(buf[:n], []byte("\r\n"), 2)[0], []byte("uploadId=")) {
						hold.Store(true)
					}
					if _, werr := u.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			u.Close()
		}()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := u.Read(buf)
				if n > 0 && hold.Load() {
					for armed.Load() {
						time.Sleep(10 * time.Millisecond)
					}
					break
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
		}()
	}, func() { armed.Store(false) })
	cfg.Endpoint = ln.Addr().String()
	s, err := blob.NewS3(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetOpTimeout(500 * time.Millisecond)
	s.SetAbortRetry(10 * time.Millisecond)
	ctx := ctxT(t)
	body := data(24, 1<<20)

	armed.Store(true)
	// The caller's own bound, well past the store's.
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = s.Put(pctx, "unanswered", bytes.NewReader(body), -1) // size unknown: multipart
	pcancel()
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("completion never answered: %v, want ErrUnavailable", err)
	}
	armed.Store(false)
	s.WaitAborts()
	// The store may well have completed the upload it never answered: the
	// outcome is unknown here, as after a crash; no material refers to the
	// blob of a failed Put, and the vault's janitor collects such orphans.
	if _, err := s.Put(ctx, "answered", bytes.NewReader(body), -1); err != nil {
		t.Fatalf("once the store answers: %v", err)
	}
	if b := readAll(t, s, "answered"); !bytes.Equal(b, body) {
		t.Fatal("uploaded blob reads back different")
	}
	t.Cleanup(func() {
		_ = s.List(context.Background(), func(id string, _ time.Time) error { return s.Delete(context.Background(), id) })
	})
}

// TestS3SlowHealthyCompletionGoesOn (review h29i, finding 5): a store that
// answers a completion as AWS documents for a large object, 200 and its
// headers at once, then white space while it assembles the parts, then the
// result, is alive all along: the upload completes, though it takes longer
// than the bound on a completion that gets no answer at all.
func TestS3SlowHealthyCompletionGoesOn(t *testing.T) {
	cfg := blobtest.S3Config(t)
	var armed atomic.Bool
	ln := relay(t, cfg.Endpoint, func(c, u net.Conn) {
		go func() { io.Copy(u, c); u.Close() }()
		go func() {
			defer c.Close()
			br := bufio.NewReader(u)
			for {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				complete := armed.Load() && bytes.Contains(body, []byte("CompleteMultipartUploadResult"))
				if !complete {
					res.Body = io.NopCloser(bytes.NewReader(body))
					res.ContentLength = int64(len(body))
					res.TransferEncoding = nil
					if err := res.Write(c); err != nil {
						return
					}
					continue
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
				for range 25 { // 5 s of keep-alive white space
					fmt.Fprintf(c, "1\r\n \r\n")
					time.Sleep(200 * time.Millisecond)
				}
				fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			}
		}()
	}, func() { armed.Store(false) })
	cfg.Endpoint = ln.Addr().String()
	s, err := blob.NewS3(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetOpTimeout(500 * time.Millisecond) // allowance for 24 MiB: 3 s more
	ctx, cancel := context.WithTimeout(ctxT(t), time.Minute)
	defer cancel()
	armed.Store(true)
	start := time.Now()
	_, err = s.Put(ctx, "slow-complete", bytes.NewReader(data(24, 24<<20)), -1)
	if took := time.Since(start); err == nil && took < 4*time.Second {
		t.Fatalf("the completion took %v: the store did not keep it alive as the test means", took)
	}
	if err != nil {
		t.Errorf("a completion answered with 200 at once and kept alive failed: %v", err)
	}
}
