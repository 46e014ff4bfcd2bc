package vault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/blob/blobtest"
	"github.com/crvault/crvault/vault/crypt"
)

// largeDoc seals a document of n bytes through the service and returns its
// file key, its stored payload and its plaintext.
func largeDoc(t *testing.T, f *wfFixture, n int) (*crypt.FileKey, []byte, []byte) {
	t.Helper()
	row, key, want := sealedDoc(t, f, n)
	payload, err := os.ReadFile(filepath.Join(f.blobDir, row.BlobID))
	if err != nil {
		t.Fatal(err)
	}
	fk, err := key.OpenHeader(row.Header)
	if err != nil {
		t.Fatal(err)
	}
	return fk, payload, want
}

// storedBlob puts payload into st (a fresh local store if nil) and opens
// it; the test closes it.
func storedBlob(t *testing.T, st blob.Store, payload []byte) blob.Object {
	t.Helper()
	if st == nil {
		var err error
		if st, err = blob.NewLocal(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	id := NewID()
	if _, err := st.Put(context.Background(), id, bytes.NewReader(payload), int64(len(payload))); err != nil {
		t.Fatal(err)
	}
	obj, err := st.Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// openedDoc seals a document of n bytes, stores it in a fresh local store
// and authenticates it, for tests that drive a chunkStream on the object
// themselves. The object is closed at the test's end.
func openedDoc(t *testing.T, n int64) (*crypt.FileKey, blob.Object, *crypt.ChunkOpener, []byte) {
	t.Helper()
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	fk, payload, want := largeDoc(t, f, int(n))
	obj := storedBlob(t, nil, payload)
	t.Cleanup(func() { obj.Close() })
	o, err := openChunks(fk, obj, n)
	if err != nil {
		t.Fatal(err)
	}
	return fk, obj, o, want
}

// openStream opens a chunkStream of the range on the payload stored in st.
func openStream(t *testing.T, st blob.Store, fk *crypt.FileKey, payload []byte, size, start, length int64) (*chunkStream, blob.Object, error) {
	t.Helper()
	obj := storedBlob(t, st, payload)
	o, err := openChunks(fk, obj, size)
	if err != nil {
		obj.Close()
		return nil, nil, err
	}
	return newChunkStream(obj, o, spanOf(start, length)), obj, nil
}

// The streamed path reads back every range exactly on both stores, across
// chunk and block boundaries, through Read and through WriteTo.
func TestChunkStreamRanges(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	const n = 2*chunkBlockChunks*ageChunkSize + 3*ageChunkSize + 11 // 2 blocks, 3 chunks and a short final one
	fk, payload, want := largeDoc(t, f, n)
	block := int64(chunkBlockChunks * ageChunkSize)
	for name, st := range blobtest.Stores(t) {
		for _, r := range []Range{{0, n}, {0, 1}, {n - 1, 1}, {ageChunkSize - 1, 2}, {block - 5, 10}, {block, block},
			{7, n - 7}, {block + 3, n - block - 3}, {2*block + ageChunkSize + 1, 100}} {
			for _, via := range []string{"Read", "WriteTo"} {
				cs, obj, err := openStream(t, st, fk, payload, n, r.Start, r.Length)
				if err != nil {
					t.Fatalf("%s %v: %v", name, r, err)
				}
				var got []byte
				if via == "Read" {
					got, err = io.ReadAll(struct{ io.Reader }{cs})
				} else {
					var buf bytes.Buffer
					_, err = cs.WriteTo(&buf)
					got = buf.Bytes()
				}
				cs.Close()
				obj.Close()
				if err != nil || !bytes.Equal(got, want[r.Start:r.Start+r.Length]) {
					t.Fatalf("%s %v via %s: %d bytes, %v", name, r, via, len(got), err)
				}
			}
		}
	}
}

// A blob cut, padded, or with its final chunk changed fails at open, before
// any plaintext; a changed or misplaced chunk further in stops the stream
// at its block, after only the authenticated blocks before it.
func TestChunkStreamRefusesAlteredBlobs(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	const n = 3*chunkBlockChunks*ageChunkSize + 100
	fk, payload, want := largeDoc(t, f, n)
	st, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flip := func(off int64) []byte { p := bytes.Clone(payload); p[off] ^= 1; return p }
	enc := int64(ageEncChunkSize)
	cut := payload[:len(payload)-100-16] // the final chunk gone: a payload that ends on a full chunk
	for name, p := range map[string][]byte{
		"one byte short":  payload[:len(payload)-1],
		"final chunk cut": cut, "padded": append(bytes.Clone(payload), 0),
		"final chunk changed": flip(int64(len(payload)) - 3), "nonce changed": flip(3),
	} {
		if _, _, err := openStream(t, st, fk, p, n, 0, n); !errors.Is(err, crypt.ErrCorrupt) {
			t.Errorf("%s: open gave %v, want ErrCorrupt", name, err)
		}
	}
	// The final chunk cut and the size recorded to match: the new last
	// chunk was not sealed as final.
	if _, _, err := openStream(t, st, fk, cut, n-100, 0, n-100); !errors.Is(err, crypt.ErrCorrupt) {
		t.Errorf("truncated at a chunk boundary: open gave %v, want ErrCorrupt", err)
	}
	swapped := bytes.Clone(payload)
	c := func(i int64) []byte { return swapped[crypt.ChunkOffset(i) : crypt.ChunkOffset(i)+enc] }
	tmp := bytes.Clone(c(2*chunkBlockChunks + 1))
	copy(c(2*chunkBlockChunks+1), c(2*chunkBlockChunks+2))
	copy(c(2*chunkBlockChunks+2), tmp)
	for name, p := range map[string][]byte{
		"chunk changed": flip(crypt.ChunkOffset(2*chunkBlockChunks+5) + 7), "chunks swapped": swapped,
	} {
		cs, obj, err := openStream(t, st, fk, p, n, 0, n)
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		got, err := io.ReadAll(struct{ io.Reader }{cs})
		cs.Close()
		obj.Close()
		if !errors.Is(err, crypt.ErrCorrupt) || !bytes.Equal(got, want[:2*chunkBlockChunks*ageChunkSize]) {
			t.Errorf("%s: %d bytes, %v; want the first two blocks, then ErrCorrupt", name, len(got), err)
		}
	}
}

// Blocks hold plaintext: Close clears every one it can reach (the one being
// read and those waiting), the filler clears the one it holds, and the
// filler stops.
func TestChunkStreamCloseClearsItsBlocks(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	const n = 8 * chunkBlockChunks * ageChunkSize
	fk, payload, want := largeDoc(t, f, n)
	st, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs, obj, err := openStream(t, st, fk, payload, n, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(cs, head); err != nil || !bytes.Equal(head, want[:1000]) {
		t.Fatalf("first read: %v", err)
	}
	// With one block held, the filler decrypts chunkStreamDepth more and
	// waits for a free one.
	deadline := time.Now().Add(10 * time.Second)
	for len(cs.filled) < chunkStreamDepth {
		if time.Now().After(deadline) {
			t.Fatal("the filler did not fill its blocks")
		}
		time.Sleep(time.Millisecond)
	}
	blocks := [][]byte{cs.held[:cap(cs.held)]}
	var waiting []plainBlock
	for range chunkStreamDepth {
		b := <-cs.filled
		waiting = append(waiting, b)
		blocks = append(blocks, b.buf[:cap(b.buf)])
	}
	for _, b := range waiting {
		cs.filled <- b
	}
	for i, b := range blocks {
		if !bytes.Contains(b, want[int64(i)*chunkBlockChunks*ageChunkSize:][:64]) {
			t.Fatalf("block %d does not hold its plaintext", i)
		}
	}
	cs.Close()
	<-cs.exited
	for i, b := range blocks {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("block %d holds data after Close", i)
		}
	}
	if _, err := cs.Read(head); !errors.Is(err, errBodyClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// gatedObject holds every ReadAt until its gate opens, and keeps the
// buffers it was given.
type gatedObject struct {
	blob.Object
	entered chan struct{}
	gate    chan struct{}
	bufs    chan []byte
}

func (g *gatedObject) ReadAt(p []byte, off int64) (int, error) {
	g.entered <- struct{}{}
	<-g.gate
	g.bufs <- p[:cap(p)]
	return g.Object.ReadAt(p, off)
}

// Close does not wait for a store that stalls; when the read finally
// returns, the filler clears its block and stops.
func TestChunkStreamCloseWhileTheStoreStalls(t *testing.T) {
	const n = 4 * chunkBlockChunks * ageChunkSize
	_, obj, o, _ := openedDoc(t, n)
	g := &gatedObject{Object: obj, entered: make(chan struct{}, 1), gate: make(chan struct{}), bufs: make(chan []byte, 1)}
	cs := newChunkStream(g, o, spanOf(0, n))
	<-g.entered
	closed := make(chan struct{})
	go func() { cs.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the stalled store")
	}
	close(g.gate)
	buf := <-g.bufs
	<-cs.exited
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("the filler's block holds data after it stopped")
	}
}

// recordingObject keeps every buffer a read was given.
type recordingObject struct {
	blob.Object
	mu   sync.Mutex
	bufs [][]byte
}

func (r *recordingObject) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.bufs = append(r.bufs, p[:cap(p)])
	r.mu.Unlock()
	return r.Object.ReadAt(p, off)
}

// A block that fails to authenticate stops the reader as well as the
// decrypter, without waiting for Close, and every block either of them
// held is cleared; the caller's own block is cleared by Close.
func TestChunkStreamFailureStopsBothStages(t *testing.T) {
	f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
	const blocks = 4 * (chunkStreamDepth + 1)
	const n = blocks * chunkBlockChunks * ageChunkSize
	fk, payload, want := largeDoc(t, f, n)
	payload[crypt.ChunkOffset(2*chunkBlockChunks)+100] ^= 1
	obj := storedBlob(t, nil, payload)
	defer obj.Close()
	o, err := openChunks(fk, obj, n)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingObject{Object: obj}
	cs := newChunkStream(rec, o, spanOf(0, n))
	var got []byte
	read := make(chan error, 1)
	go func() {
		var err error
		got, err = io.ReadAll(struct{ io.Reader }{cs})
		read <- err
	}()
	select {
	case err := <-read:
		if !errors.Is(err, crypt.ErrCorrupt) || !bytes.Equal(got, want[:2*chunkBlockChunks*ageChunkSize]) {
			t.Fatalf("%d bytes, %v; want two blocks, then ErrCorrupt", len(got), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failure never reached the caller")
	}
	select {
	case <-cs.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader and the decrypter did not stop after the failure")
	}
	rec.mu.Lock()
	fetched := len(rec.bufs)
	rec.mu.Unlock()
	if fetched >= blocks {
		t.Errorf("the reader fetched all %d blocks after the failure", fetched)
	}
	cs.Close()
	for i, b := range rec.bufs {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("block %d of %d holds data after the stream stopped", i, fetched)
		}
	}
}

// spanOf maps a plaintext range to the chunks that hold it.
func TestSpanOf(t *testing.T) {
	c := int64(ageChunkSize)
	for _, tc := range []struct {
		start, length int64
		want          chunkSpan
	}{
		{0, 1, chunkSpan{0, 0, 0, 1}},
		{0, c, chunkSpan{0, 0, 0, c}},
		{0, c + 1, chunkSpan{0, 1, 0, c + 1}},
		{c - 1, 2, chunkSpan{0, 1, c - 1, 2}},
		{5*c + 3, 10 * c, chunkSpan{5, 15, 3, 10 * c}},
	} {
		if got := spanOf(tc.start, tc.length); got != tc.want {
			t.Errorf("spanOf(%d, %d) = %+v, want %+v", tc.start, tc.length, got, tc.want)
		}
	}
}

// failingObject fails every ReadAt from off on.
type failingObject struct {
	blob.Object
	from int64
	err  error
}

func (f *failingObject) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.from {
		return 0, f.err
	}
	return f.Object.ReadAt(p, off)
}

// A store that fails midway is an I/O error, reported as itself after the
// blocks before it, never as a damaged blob.
func TestChunkStreamPassesStoreErrors(t *testing.T) {
	const n = 3 * chunkBlockChunks * ageChunkSize
	fk, obj, o, want := openedDoc(t, n)
	reset := errors.New("connection reset")
	cs := newChunkStream(&failingObject{Object: obj, from: crypt.ChunkOffset(chunkBlockChunks), err: reset}, o, spanOf(0, n))
	defer cs.Close()
	got, err := io.ReadAll(struct{ io.Reader }{cs})
	if !errors.Is(err, reset) || errors.Is(err, crypt.ErrCorrupt) || !bytes.Equal(got, want[:chunkBlockChunks*ageChunkSize]) {
		t.Fatalf("%d bytes, %v; want the first block, then the store's error", len(got), err)
	}
	if _, err := openChunks(fk, &failingObject{Object: obj, err: reset}, n); !errors.Is(err, reset) || errors.Is(err, crypt.ErrCorrupt) {
		t.Fatalf("open on a failing store: %v", err)
	}
}

// An upload whose body disagrees with its declared size, runs over the
// limit, or fails, is refused as the client's error, on both stores, and
// leaves no blob and no material; one that matches reads back.
func TestSealBlobRefusesABadBody(t *testing.T) {
	for name, st := range blobtest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newWF(t, sqldb.SQLite, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			f.svc.blobs = st
			caseID := f.draft()
			count := func() int {
				n := 0
				if err := st.List(f.ctx, func(string, time.Time) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before := count()
			const size = 2*ageChunkSize + 7
			plain := make([]byte, size+1)
			for i := range plain {
				plain[i] = byte(i)
			}
			reset := errors.New("connection reset")
			for body, want := range map[string]struct {
				r    io.Reader
				code string
			}{
				"short": {bytes.NewReader(plain[:size-1]), "content_length_mismatch"},
				"long":  {bytes.NewReader(plain), "content_length_mismatch"},
				"cut":   {io.MultiReader(bytes.NewReader(plain[:ageChunkSize+3]), iotest.ErrReader(&BodyError{Err: reset})), "malformed_body"},
			} {
				_, err := f.svc.Upload(f.ctx, f.op, caseID, Upload{Kind: "other", Filename: body + ".bin", Body: want.r, Size: size})
				var ve *Error
				if !errors.As(err, &ve) || ve.Code != want.code {
					t.Fatalf("%s body: %v, want %s", body, err, want.code)
				}
			}
			key, err := f.svc.caseKey(f.ctx, caseID)
			if err != nil {
				t.Fatal(err)
			}
			var ve *Error
			if _, err := f.svc.SealBlob(f.ctx, key, NewID(), bytes.NewReader(plain[:size]), -1, size-1); !errors.As(err, &ve) || ve.Code != "too_large" {
				t.Fatalf("a body of unknown size over the limit: %v", err)
			}
			if sealed, err := f.svc.SealBlob(f.ctx, key, NewID(), bytes.NewReader(plain[:size]), -1, size); err != nil || sealed.Size != size {
				t.Fatalf("a body of unknown size at the limit: %+v, %v", sealed, err)
			} else {
				before++
			}
			n := count()
			var rows int64
			if err := f.svc.db.Model(&materialRow{}).Where("case_id = ? AND kind = ?", caseID, "other").Count(&rows).Error; err != nil {
				t.Fatal(err)
			}
			m, err := f.svc.Upload(f.ctx, f.op, caseID, Upload{Kind: "other", Filename: "good.bin", Body: bytes.NewReader(plain[:size]), Size: size})
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.svc.OpenContent(f.ctx, f.op, m.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c.Body)
			c.Close()
			if err != nil || !bytes.Equal(got, plain[:size]) {
				t.Fatalf("the good upload reads back %d bytes, %v", len(got), err)
			}
			if after := count(); rows != 0 || n != before || after != before+1 {
				t.Fatalf("%d materials of kind other and %d blobs after the refused uploads (%d before), %d after one good upload", rows, n, before, after)
			}
		})
	}
}
