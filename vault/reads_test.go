package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/crypt"
)

// sealedDoc uploads a document of n bytes and returns its row and case key.
func sealedDoc(t *testing.T, f *wfFixture, n int) (materialRow, *crypt.CaseKey, []byte) {
	t.Helper()
	c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
	if err != nil {
		t.Fatal(err)
	}
	return sealedDocIn(t, f, c.ID, n, "doc.bin")
}

func sealedDocIn(t *testing.T, f *wfFixture, caseID string, n int, name string) (materialRow, *crypt.CaseKey, []byte) {
	t.Helper()
	c := struct{ ID string }{caseID}
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(data)
	m, err := f.svc.Upload(f.ctx, f.op, c.ID, Upload{Kind: "other", Filename: name, Body: bytes.NewReader(data), Size: int64(n)})
	if err != nil {
		t.Fatal(err)
	}
	var row materialRow
	if err := f.svc.db.Where("id = ?", m.ID).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	key, err := f.svc.caseKey(f.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return row, key, data
}

// Every size and range reads back exactly, on both paths (read whole and
// streamed), whatever the reader's buffer.
func TestOpenSealedSizesAndRanges(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	for _, n := range []int{0, 1, 4 << 10, 64<<10 - 1, 64 << 10, 64<<10 + 1, 1 << 20, 1<<20 + 1, 3<<20 + 5} {
		row, key, want := sealedDoc(t, f, n)
		ranges := []*Range{nil}
		if n > 0 {
			ranges = append(ranges, &Range{0, 1}, &Range{int64(n - 1), 1}, &Range{int64(n / 3), int64(n/3 + 1)})
		}
		for _, r := range ranges {
			body, closeFn, err := f.svc.OpenSealed(f.ctx, key, row.Header, row.BlobID, row.Size, r)
			if err != nil {
				t.Fatalf("%d bytes, range %v: %v", n, r, err)
			}
			got, err := io.ReadAll(body)
			closeFn()
			exp := want
			if r != nil {
				exp = want[r.Start : r.Start+r.Length]
			}
			if err != nil || !bytes.Equal(got, exp) {
				t.Fatalf("%d bytes, range %v: got %d bytes, %v", n, r, len(got), err)
			}
			// Again through io.Copy, which takes the body's WriteTo.
			body, closeFn, err = f.svc.OpenSealed(f.ctx, key, row.Header, row.BlobID, row.Size, r)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = io.Copy(&buf, body)
			closeFn()
			got = buf.Bytes()
			if err != nil || !bytes.Equal(got, exp) {
				t.Fatalf("%d bytes, range %v: got %d bytes, %v", n, r, len(got), err)
			}
		}
	}
}

// A small read allocates little beyond the document: no read-ahead blocks,
// no stream buffers (each of those is 256 KiB to 1 MiB). The bound is on
// bytes allocated, counted by the runtime, not on time.
func TestSmallReadAllocatesLittle(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	row, key, want := sealedDoc(t, f, 4<<10)
	read := func() {
		body, closeFn, err := f.svc.OpenSealed(f.ctx, key, row.Header, row.BlobID, row.Size, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, body); err != nil || n != int64(len(want)) {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		closeFn()
	}
	read()
	const reads = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range reads {
		read()
	}
	runtime.ReadMemStats(&after)
	// Even with the file key not cached (its hybrid decapsulation
	// allocates about 14 KiB) a read stays under 32 KiB; age's chunk
	// buffer alone is 64 KiB, a read-ahead block 256 KiB.
	if per := (after.TotalAlloc - before.TotalAlloc) / reads; per > 32<<10 {
		t.Fatalf("a 4 KiB read allocated %d bytes, want at most 32 KiB", per)
	}
}

// The pooled buffer of a small read holds plaintext: Close wipes it before
// it goes back to the pool, and the body reads nothing after Close.
func TestSmallReadWipesItsBuffer(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	row, key, want := sealedDoc(t, f, 5000)
	body, closeFn, err := f.svc.OpenSealed(f.ctx, key, row.Header, row.BlobID, row.Size, nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, ok := body.(*pooledBody)
	if !ok {
		t.Fatalf("a 5000-byte document took the streaming path (%T)", body)
	}
	buf := pb.buf[:cap(pb.buf)]
	if !bytes.Contains(buf, want[:64]) {
		t.Fatal("the buffer does not hold the plaintext")
	}
	closeFn()
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("Close left plaintext in the pooled buffer")
	}
	if _, err := body.Read(make([]byte, 10)); !errors.Is(err, errBodyClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// A blob cut short, padded or with a changed byte does not authenticate:
// ErrCorrupt, never plaintext, on the small path as on the streaming one.
func TestSmallReadRefusesAlteredBlobs(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	row, key, _ := sealedDoc(t, f, 4<<10)
	path := filepath.Join(f.blobDir, row.BlobID)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("blob file: %v", err)
	}
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/2] ^= 1
	for name, b := range map[string][]byte{"truncated": orig[:len(orig)-1], "padded": append(bytes.Clone(orig), 0), "flipped": flipped} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.OpenSealed(f.ctx, key, row.Header, row.BlobID, row.Size, nil); !errors.Is(err, crypt.ErrCorrupt) {
			t.Errorf("%s blob: err %v, want ErrCorrupt", name, err)
		}
	}
}

// The keyring caches materials' file keys like case keys: within the TTL
// (on an injected clock) a header is opened once, after it again; the
// cache holds at most Size keys; Forget (crypto-shredding) drops them; a
// keyring with the cache off never keeps one.
func TestKeyringFileKeyCache(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
	if err != nil {
		t.Fatal(err)
	}
	var headers [][]byte
	var key *crypt.CaseKey
	for i := range 3 {
		row, k, _ := sealedDocIn(t, f, c.ID, 100, fmt.Sprintf("doc%d.bin", i))
		headers, key = append(headers, row.Header), k
	}
	now := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	kr := NewKeyring(f.svc.db, f.svc.master, KeyringConfig{TTL: time.Minute, Size: 2, Now: func() time.Time { return now }})
	a, err := kr.FileKey(key, headers[0])
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := kr.FileKey(key, headers[0]); again != a {
		t.Fatal("a header opened again within the TTL was unwrapped again")
	}
	now = now.Add(59 * time.Second)
	if again, _ := kr.FileKey(key, headers[0]); again != a {
		t.Fatal("expired before its TTL")
	}
	now = now.Add(time.Second)
	b, _ := kr.FileKey(key, headers[0])
	if b == a {
		t.Fatal("a file key outlived its TTL")
	}
	kr.FileKey(key, headers[1])
	kr.FileKey(key, headers[2])
	if n := len(kr.files); n != 2 {
		t.Fatalf("cache holds %d file keys, bound 2", n)
	}
	kr.Forget("any case")
	if n := len(kr.files); n != 0 {
		t.Fatalf("Forget left %d file keys", n)
	}
	if _, err := kr.FileKey(key, []byte("not a header")); err == nil {
		t.Fatal("a bad header opened")
	}
	off := NewKeyring(f.svc.db, f.svc.master, KeyringConfig{TTL: -1})
	x, _ := off.FileKey(key, headers[0])
	y, _ := off.FileKey(key, headers[0])
	if x == y || len(off.files) != 0 {
		t.Fatal("a keyring with the cache off cached a file key")
	}
}
