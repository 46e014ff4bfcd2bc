package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/blob/blobtest"
)

// data returns n deterministic pseudo-random bytes.
func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, s blob.Store, id string, b []byte) {
	t.Helper()
	n, err := s.Put(ctxT(t), id, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
	if n != int64(len(b)) {
		t.Fatalf("put %s: wrote %d bytes, want %d", id, n, len(b))
	}
}

func readAll(t *testing.T, s blob.Store, id string) []byte {
	t.Helper()
	o, err := s.Open(ctxT(t), id)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	defer o.Close()
	got, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return got
}

func listIDs(t *testing.T, s blob.Store) []string {
	t.Helper()
	var ids []string
	if err := s.List(ctxT(t), func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatalf("list: %v", err)
	}
	slices.Sort(ids)
	return ids
}

// forEach runs f as a subtest on every available store, each fresh.
func forEach(t *testing.T, f func(t *testing.T, s blob.Store)) {
	t.Helper()
	for name := range blobtest.Stores(t) {
		t.Run(name, func(t *testing.T) { f(t, blobtest.Stores(t)[name]) })
	}
}

// onlyReader hides every method but Read, as a request body would.
type onlyReader struct{ io.Reader }

func TestPutOpenRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 4095, 300 << 10, 6<<20 + 17}
	forEach(t, func(t *testing.T, s blob.Store) {
		for _, size := range sizes {
			for _, known := range []bool{true, false} {
				t.Run(fmt.Sprintf("size=%d/known=%v", size, known), func(t *testing.T) {
					id := fmt.Sprintf("rt-%d-%v", size, known)
					want := data(uint64(size), size)
					declared := int64(size)
					if !known {
						declared = -1
					}
					n, err := s.Put(ctxT(t), id, onlyReader{bytes.NewReader(want)}, declared)
					if err != nil {
						t.Fatalf("put: %v", err)
					}
					if n != int64(size) {
						t.Fatalf("put wrote %d, want %d", n, size)
					}
					o, err := s.Open(ctxT(t), id)
					if err != nil {
						t.Fatalf("open: %v", err)
					}
					defer o.Close()
					if o.Size() != int64(size) {
						t.Fatalf("size %d, want %d", o.Size(), size)
					}
					if got := readAll(t, s, id); !bytes.Equal(got, want) {
						t.Fatalf("content differs (got %d bytes)", len(got))
					}
				})
			}
		}
	})
}

func TestPutReplaces(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		put(t, s, "x", []byte("first version"))
		put(t, s, "x", []byte("second"))
		if got := readAll(t, s, "x"); string(got) != "second" {
			t.Fatalf("got %q after replacement", got)
		}
	})
}

func TestReadAtRandom(t *testing.T) {
	const size = 700 << 10
	want := data(7, size)
	forEach(t, func(t *testing.T, s blob.Store) {
		put(t, s, "ra", want)
		o, err := s.Open(ctxT(t), "ra")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		type read struct{ off, n int }
		reads := []read{{0, 0}, {0, size}, {0, size + 1}, {size, 1}, {size, 0}, {size + 5, 10}, {size - 1, 1}, {size - 1, 2}, {1, size - 1}}
		for range 150 {
			reads = append(reads, read{rng.IntN(size + 100), rng.IntN(90 << 10)})
		}
		for _, r := range reads {
			p := make([]byte, r.n)
			n, err := o.ReadAt(p, int64(r.off))
			wantN := max(0, min(r.n, size-r.off))
			if n != wantN {
				t.Fatalf("ReadAt(len %d, off %d) = %d bytes, want %d (err %v)", r.n, r.off, n, wantN, err)
			}
			switch {
			case n < r.n && err != io.EOF:
				t.Fatalf("ReadAt(len %d, off %d) short read with err %v, want io.EOF", r.n, r.off, err)
			case n == r.n && err != nil && err != io.EOF:
				t.Fatalf("ReadAt(len %d, off %d): %v", r.n, r.off, err)
			}
			if !bytes.Equal(p[:n], want[min(r.off, size):min(r.off, size)+n]) {
				t.Fatalf("ReadAt(len %d, off %d) returned wrong bytes", r.n, r.off)
			}
		}
		if _, err := o.ReadAt(make([]byte, 1), -1); err == nil {
			t.Fatal("negative offset accepted")
		}
	})
}

func TestReadAtConcurrent(t *testing.T) {
	const size = 512 << 10
	want := data(9, size)
	forEach(t, func(t *testing.T, s blob.Store) {
		put(t, s, "conc", want)
		o, err := s.Open(ctxT(t), "conc")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				// Each goroutine reads its own quarter sequentially, interleaved with the others.
				start := (g % 4) * (size / 4)
				buf := make([]byte, 8<<10)
				for off := start; off < start+size/4; off += len(buf) {
					n, err := o.ReadAt(buf, int64(off))
					if err != nil && err != io.EOF {
						errs <- err
						return
					}
					if !bytes.Equal(buf[:n], want[off:off+n]) {
						errs <- fmt.Errorf("goroutine %d: wrong bytes at %d", g, off)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

// failingReader yields its data, then fails with err. With a hook it runs the
// hook instead and then yields zeros forever, like a client still sending.
type failingReader struct {
	data []byte
	err  error
	hook func()
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.hook != nil {
			r.hook()
			clear(p)
			return len(p), nil
		}
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var errBoom = errors.New("boom")

func TestFailedPutLeavesNothing(t *testing.T) {
	type tc struct {
		name    string
		size    int // bytes the reader yields before failing or ending
		declare func(size int) int64
		fail    bool // reader error after size bytes
		cancel  bool // ctx cancelled after size bytes
		wantErr error
	}
	known := func(n int) int64 { return int64(n) + 1000 }
	unknown := func(int) int64 { return -1 }
	cases := []tc{
		{"reader error/known size", 200 << 10, known, true, false, errBoom},
		{"reader error/unknown size", 200 << 10, unknown, true, false, errBoom},
		{"reader error/multipart after a part", 7 << 20, unknown, true, false, errBoom},
		{"reader error/known size multipart", 7 << 20, func(n int) int64 { return 12 << 20 }, true, false, errBoom},
		{"cancel/known size", 200 << 10, known, false, true, context.Canceled},
		{"cancel/multipart after a part", 7 << 20, unknown, false, true, context.Canceled},
		{"too short", 200 << 10, known, false, false, blob.ErrSizeMismatch},
		{"too long", 200 << 10, func(n int) int64 { return int64(n) - 1 }, false, false, blob.ErrSizeMismatch},
	}
	for name := range blobtest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					s := store(t, name)
					put(t, s, "keep", []byte("an earlier blob"))
					ctx, cancel := context.WithCancel(ctxT(t))
					defer cancel()
					r := &failingReader{data: data(3, c.size), err: io.EOF}
					if c.fail {
						r.err = errBoom
					}
					if c.cancel {
						r.hook = cancel
					}
					_, err := s.Put(ctx, "victim", onlyReader{r}, c.declare(c.size))
					if !errors.Is(err, c.wantErr) {
						t.Fatalf("put error %v, want %v", err, c.wantErr)
					}
					// A failed replacement must not disturb the blob that was there.
					_, err = s.Put(ctxT(t), "keep", onlyReader{&failingReader{data: data(4, 1000), err: errBoom}}, -1)
					if !errors.Is(err, errBoom) {
						t.Fatalf("failing replacement: %v", err)
					}
					assertOnly(t, s, "keep")
					if got := readAll(t, s, "keep"); string(got) != "an earlier blob" {
						t.Fatalf("failed replacement changed the blob to %d bytes", len(got))
					}
				})
			}
		})
	}
}

// store returns a fresh store of the kind; local ones remember their dir so
// assertOnly can also look for stray temp files.
func store(t *testing.T, kind string) blob.Store {
	t.Helper()
	if kind == "s3" {
		// Small parts so that multipart paths run with small test data.
		cfg := blobtest.S3Config(t)
		cfg.PartSize = 5 << 20
		s, err := blob.NewS3(ctxT(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.SetAbortRetry(200 * time.Millisecond)
		t.Cleanup(func() {
			_ = s.List(context.Background(), func(id string, _ time.Time) error { return s.Delete(context.Background(), id) })
		})
		return s
	}
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	localDirs.Store(s, dir)
	return s
}

var localDirs sync.Map

// assertOnly checks that the store holds exactly ids, with no leftovers of failed writes.
func assertOnly(t *testing.T, s blob.Store, ids ...string) {
	t.Helper()
	if got := listIDs(t, s); !slices.Equal(got, ids) {
		t.Fatalf("store lists %q, want %q", got, ids)
	}
	if _, err := s.Open(ctxT(t), "victim"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open victim after failed put: %v, want ErrNotFound", err)
	}
	switch s := s.(type) {
	case *blob.S3:
		s.WaitAborts()
		uploads, err := s.IncompleteUploads(ctxT(t))
		if err != nil {
			t.Fatalf("list incomplete uploads: %v", err)
		}
		if len(uploads) > 0 {
			t.Fatalf("incomplete multipart uploads left: %q", uploads)
		}
	case *blob.Local:
		dir, _ := localDirs.Load(s)
		entries, err := os.ReadDir(dir.(string))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, ids) {
			t.Fatalf("blob dir holds %q, want %q", names, ids)
		}
	}
}

func TestDeleteIdempotent(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		put(t, s, "gone", []byte("x"))
		put(t, s, "stays", []byte("y"))
		for i := range 2 {
			if err := s.Delete(ctxT(t), "gone"); err != nil {
				t.Fatalf("delete #%d: %v", i+1, err)
			}
		}
		if err := s.Delete(ctxT(t), "never-existed"); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
		if _, err := s.Open(ctxT(t), "gone"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open deleted: %v, want ErrNotFound", err)
		}
		if got := listIDs(t, s); !slices.Equal(got, []string{"stays"}) {
			t.Fatalf("list after delete: %q", got)
		}
	})
}

func TestList(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		before := time.Now().Add(-time.Minute)
		want := []string{"a", "b-1", "c_2", "Z9"}
		for _, id := range want {
			put(t, s, id, []byte(id))
		}
		slices.Sort(want)
		if got := listIDs(t, s); !slices.Equal(got, want) {
			t.Fatalf("list %q, want %q", got, want)
		}
		err := s.List(ctxT(t), func(id string, mod time.Time) error {
			if mod.Before(before) || mod.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s: implausible modTime %v", id, mod)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := errors.New("stop")
		calls := 0
		err = s.List(ctxT(t), func(string, time.Time) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("List with failing fn: err %v after %d calls, want stop after 1", err, calls)
		}
	})
}

func TestInvalidIDs(t *testing.T) {
	bad := []string{"", ".", "..", "../x", "a/b", `a\b`, ".tmp-x", "a b", "é", "a\x00", "a.b", strings.Repeat("a", blob.MaxIDLen+1)}
	forEach(t, func(t *testing.T, s blob.Store) {
		ctx := ctxT(t)
		for _, id := range bad {
			if _, err := s.Put(ctx, id, strings.NewReader("x"), 1); !errors.Is(err, blob.ErrInvalidID) {
				t.Errorf("Put(%q): %v, want ErrInvalidID", id, err)
			}
			if _, err := s.Open(ctx, id); !errors.Is(err, blob.ErrInvalidID) {
				t.Errorf("Open(%q): %v, want ErrInvalidID", id, err)
			}
			if err := s.Delete(ctx, id); !errors.Is(err, blob.ErrInvalidID) {
				t.Errorf("Delete(%q): %v, want ErrInvalidID", id, err)
			}
		}
		long := strings.Repeat("A-z_09", blob.MaxIDLen/6) + "xy"
		put(t, s, long, []byte("ok"))
		if got := listIDs(t, s); !slices.Equal(got, []string{long}) {
			t.Fatalf("list %q", got)
		}
	})
}

func TestOpenMissing(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		if _, err := s.Open(ctxT(t), "nope"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open missing: %v, want ErrNotFound", err)
		}
	})
}

func TestConcurrentPuts(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				b := data(uint64(100+i), 100<<10+i)
				if _, err := s.Put(ctxT(t), fmt.Sprintf("c%d", i), onlyReader{bytes.NewReader(b)}, -1); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range 8 {
			if got := readAll(t, s, fmt.Sprintf("c%d", i)); !bytes.Equal(got, data(uint64(100+i), 100<<10+i)) {
				t.Fatalf("c%d: wrong content", i)
			}
		}
	})
}

func TestPing(t *testing.T) {
	forEach(t, func(t *testing.T, s blob.Store) {
		if err := s.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLocalDirAndStaleTemps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	if _, err := blob.NewLocal(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Fatalf("dir mode %o, want 700", perm)
	}
	stale, fresh := filepath.Join(dir, ".tmp-stale"), filepath.Join(dir, ".tmp-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("ciphertext"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	s, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp file (a live upload) removed: %v", err)
	}
	if got := listIDs(t, s); len(got) != 0 {
		t.Fatalf("temp files listed as blobs: %q", got)
	}
}

func TestNewS3Config(t *testing.T) {
	base := blob.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b"}
	cases := []struct {
		name string
		mod  func(*blob.S3Config)
	}{
		{"no endpoint", func(c *blob.S3Config) { c.Endpoint = "" }},
		{"scheme in endpoint", func(c *blob.S3Config) { c.Endpoint = "http://127.0.0.1:1" }},
		{"no bucket", func(c *blob.S3Config) { c.Bucket = "" }},
		{"part size too small", func(c *blob.S3Config) { c.PartSize = 1 << 20 }},
		{"prefix escapes", func(c *blob.S3Config) { c.Prefix = "../x/" }},
		{"unreachable", func(c *blob.S3Config) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.mod(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := blob.NewS3(ctx, cfg); err == nil {
				t.Fatal("NewS3 accepted it")
			}
		})
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"abc", "../etc/passwd", "a/b", "", ".tmp-1", "A_-9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !blob.ValidID(id) {
			return
		}
		// A valid id must name a file directly inside the store's directory.
		dir := "/store"
		if p := filepath.Join(dir, id); filepath.Dir(p) != dir || filepath.Base(p) != id || strings.HasPrefix(id, ".") {
			t.Fatalf("valid id %q escapes or hides: %s", id, p)
		}
	})
}
