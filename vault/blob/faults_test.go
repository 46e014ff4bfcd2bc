package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/blob/blobtest"
)

// proxy is a TCP relay in front of the real S3 server that the test can
// take down (closing its listener and every relayed connection, so clients
// see resets and refusals) and bring back on the same address.
type proxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	if err := p.up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // went down meanwhile
				p.mu.Unlock()
				c.Close()
				d.Close()
				return
			}
			p.conns[c], p.conns[d] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(d, c); d.Close() }()
			go func() { _, _ = io.Copy(c, d); c.Close() }()
		}
	}()
	return nil
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// s3BehindProxy opens a store with 5 MiB parts that talks to the test S3
// server through a proxy the test controls.
func s3BehindProxy(t *testing.T) (*blob.S3, *proxy) {
	t.Helper()
	cfg := blobtest.S3Config(t)
	p := newProxy(t, cfg.Endpoint)
	cfg.Endpoint = p.addr
	cfg.PartSize = 5 << 20
	s, err := blob.NewS3(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.up()
		_ = s.List(context.Background(), func(id string, _ time.Time) error { return s.Delete(context.Background(), id) })
	})
	return s, p
}

// TestS3OutageIsUnavailable: with the S3 server unreachable every operation
// fails with ErrUnavailable (the vault answers 503 store_unavailable), a
// read cut in the middle too; once it is back the same store works again.
// Failures that are not the store's never carry ErrUnavailable.
func TestS3OutageIsUnavailable(t *testing.T) {
	s, p := s3BehindProxy(t)
	ctx := ctxT(t)
	big := data(7, 12<<20)
	put(t, s, "present", big)
	if _, err := s.Open(ctx, "missing"); !errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("open missing: %v, want ErrNotFound only", err)
	}
	if _, err := s.Put(ctx, "victim", onlyReader{&failingReader{data: data(1, 1000), err: errBoom}}, -1); !errors.Is(err, errBoom) || errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("put from a failing reader: %v, want the reader's error only", err)
	}
	obj, err := s.Open(ctx, "present")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	head := make([]byte, 1<<20)
	if _, err := obj.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}

	p.down()
	ops := map[string]func() error{
		"put single":    func() error { _, err := s.Put(ctx, "a", bytes.NewReader(big[:1000]), 1000); return err },
		"put multipart": func() error { _, err := s.Put(ctx, "b", bytes.NewReader(big), -1); return err },
		"open":          func() error { _, err := s.Open(ctx, "present"); return err },
		"read mid-stream": func() error {
			_, err := io.ReadAll(io.NewSectionReader(obj, int64(len(head)), obj.Size()-int64(len(head))))
			return err
		},
		"delete": func() error { return s.Delete(ctx, "present") },
		"list":   func() error { return s.List(ctx, func(string, time.Time) error { return nil }) },
		"ping":   func() error { return s.Ping(ctx) },
		"sweep":  func() error { _, err := s.SweepIncomplete(ctx, time.Now()); return err },
	}
	var wg sync.WaitGroup
	for name, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op(); !errors.Is(err, blob.ErrUnavailable) {
				t.Errorf("%s with S3 down: %v, want ErrUnavailable", name, err)
			}
		}()
	}
	wg.Wait()

	if err := p.up(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "present"); !bytes.Equal(got, big) {
		t.Fatal("blob changed across the outage")
	}
	put(t, s, "after", big[:100])
}

// TestS3AbortRetriedUntilTheStoreIsBack: a multipart upload cut by an S3
// outage cannot be aborted at once; the abort is retried in the background
// and goes through once S3 answers again, leaving no upload behind.
func TestS3AbortRetriedUntilTheStoreIsBack(t *testing.T) {
	s, p := s3BehindProxy(t)
	s.SetAbortRetry(50 * time.Millisecond)
	ctx := ctxT(t)
	src := &cutReader{r: bytes.NewReader(data(2, 12<<20)), at: 6 << 20, cut: p.down}
	_, err := s.Put(ctx, "cut", onlyReader{src}, -1)
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("put cut by an outage: %v, want ErrUnavailable", err)
	}
	if err := p.up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cut upload to be aborted", func() bool {
		ups, err := s.IncompleteUploads(ctx)
		return err == nil && len(ups) == 0
	})
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close with no aborts pending: %v", err)
	}
	assertOnly(t, s)
}

// TestSweepIncomplete: unfinished writes older than the cutoff go, those a
// Put of this process is still making stay, whatever their age.
func TestSweepIncomplete(t *testing.T) {
	for _, kind := range []string{"local", "s3"} {
		t.Run(kind, func(t *testing.T) {
			if kind == "s3" {
				blobtest.S3Config(t) // skip or fail like every S3 test
			}
			s := store(t, kind)
			ctx := ctxT(t)
			// Something a crash left behind.
			switch st := s.(type) {
			case *blob.S3:
				if _, err := st.StartMultipart(ctx, "crashed"); err != nil {
					t.Fatal(err)
				}
			case *blob.Local:
				dir, _ := localDirs.Load(st)
				if err := os.WriteFile(filepath.Join(dir.(string), ".tmp-crashed"), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// A live upload, stalled after its first part.
			release := make(chan struct{})
			src := &cutReader{r: bytes.NewReader(data(3, 7<<20)), at: 6 << 20, cut: func() { <-release }}
			done := make(chan error, 1)
			go func() { _, err := s.Put(ctx, "live", onlyReader{src}, -1); done <- err }()
			waitFor(t, "the live upload to start", func() bool { return src.passed() })

			if n, err := s.SweepIncomplete(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
				t.Fatalf("sweep of writes older than an hour: %d, %v; want 0", n, err)
			}
			n, err := s.SweepIncomplete(ctx, time.Now().Add(time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("sweep: removed %d (%v), want the crashed write only", n, err)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatalf("the live upload failed after the sweep: %v", err)
			}
			assertOnly(t, s, "live")
		})
	}
}

// TestLocalDiskFullIsUnavailable: a write that finds the filesystem full
// fails with ErrUnavailable and leaves no temp file; stored blobs still
// read, and writes work again once there is room, with the same store.
func TestLocalDiskFullIsUnavailable(t *testing.T) {
	dir := blobtest.Tmpfs(t, 4<<20)
	s, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	localDirs.Store(s, dir)
	ctx := ctxT(t)
	put(t, s, "kept", data(1, 1<<20))
	filler := filepath.Join(dir, "filler") // listed as a blob while it is there
	if err := os.WriteFile(filler, data(2, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{2 << 20, -1} {
		_, err := s.Put(ctx, "big", bytes.NewReader(data(3, 2<<20)), size)
		if !errors.Is(err, blob.ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("put on a full disk (size %d): %v, want ErrUnavailable", size, err)
		}
	}
	if got := readAll(t, s, "kept"); !bytes.Equal(got, data(1, 1<<20)) {
		t.Fatal("stored blob changed")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	put(t, s, "big", data(3, 2<<20))
	assertOnly(t, s, "big", "kept")
}

// cutReader yields r and calls cut once, when at bytes have been read.
type cutReader struct {
	r    io.Reader
	at   int64
	n    int64
	cut  func()
	mu   sync.Mutex
	done bool
}

func (c *cutReader) Read(p []byte) (int, error) {
	if rest := c.at - c.n; rest > 0 && int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.at && !c.passed() {
		c.mu.Lock()
		c.done = true
		c.mu.Unlock()
		c.cut()
	}
	return n, err
}

func (c *cutReader) passed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// waitFor polls cond until it holds, failing the test after two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLocalDirGoneIsUnavailable: a store whose directory has gone (a
// volume unmounted under it) cannot take bytes: ErrUnavailable, which the
// vault answers 503 store_unavailable, never a database outage or a 500;
// once the directory is back, the same store works again.
func TestLocalDirGoneIsUnavailable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	s, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	aside := dir + ".aside"
	if err := os.Rename(dir, aside); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "new", bytes.NewReader(data(1, 1000)), 1000); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("put with the directory gone: %v, want ErrUnavailable", err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // a file where the directory was
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "new", bytes.NewReader(data(1, 1000)), 1000); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("put with a file for a directory: %v, want ErrUnavailable", err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(aside, dir); err != nil {
		t.Fatal(err)
	}
	put(t, s, "new", data(1, 1000))
}

// TestLocalStoreGoneIsUnavailable (review h30d): with the store's directory
// itself gone (an unmounted volume), a read and a delete say the store is
// unavailable, as a write and /readyz do. A read said the blob was missing,
// which the vault answers as 500 material_damaged although nothing is; a
// delete said it was done, though the blob stays on the absent volume.
func TestLocalStoreGoneIsUnavailable(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "blobs")
	l, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	const id = "0123456789abcdef0123456789abcdef"
	if _, err := l.Put(ctx, id, bytes.NewReader([]byte("sealed")), 6); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(ctx, "0123456789abcdef0123456789abcdee"); !errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("a missing blob in a present store: %v, want ErrNotFound alone", err)
	}
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(ctx, id); !errors.Is(err, blob.ErrUnavailable) || errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open with the store's directory gone: %v, want ErrUnavailable", err)
	}
	if err := l.Delete(ctx, id); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("delete with the store's directory gone: %v, want ErrUnavailable", err)
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	obj, err := l.Open(ctx, id)
	if err != nil {
		t.Fatalf("open once the directory is back: %v", err)
	}
	obj.Close()
}
