package vault

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/blob"
)

// TestCollectOrphans: only blobs that no owner references and that are older
// than the grace period go; materials and other owners' blobs stay readable.
func TestCollectOrphans(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			ctx := context.Background()
			caseID := f.draft()
			for _, id := range []string{"orphan1", "svheld"} {
				if _, err := f.svc.blobs.Put(ctx, id, strings.NewReader("ciphertext"), -1); err != nil {
					t.Fatal(err)
				}
			}
			held := func(ctx context.Context, ids []string) ([]string, error) {
				var out []string
				for _, id := range ids {
					if id == "svheld" {
						out = append(out, id)
					}
				}
				return out, nil
			}
			// Within the grace period nothing is touched.
			if n, err := f.svc.CollectOrphans(ctx, time.Hour, held); err != nil || n != 0 {
				t.Fatalf("young blobs collected: %d, %v", n, err)
			}
			n, err := f.svc.CollectOrphans(ctx, -time.Minute, held)
			if err != nil || n != 1 {
				t.Fatalf("collected %d (%v), want exactly the orphan", n, err)
			}
			if _, err := f.svc.blobs.Open(ctx, "orphan1"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("orphan still there: %v", err)
			}
			if obj, err := f.svc.blobs.Open(ctx, "svheld"); err != nil {
				t.Fatalf("another owner's blob was taken: %v", err)
			} else {
				obj.Close()
			}
			list, err := f.svc.ListMaterials(ctx, f.op, caseID)
			if err != nil || len(list) != 3 {
				t.Fatalf("materials: %d, %v", len(list), err)
			}
			for _, m := range list {
				c, err := f.svc.OpenContent(ctx, f.op, m.ID, nil)
				if err != nil {
					t.Fatalf("material %s after collection: %v", m.ID, err)
				}
				b, err := io.ReadAll(c.Body)
				c.Close()
				if err != nil || string(b) != m.Kind+" document" {
					t.Fatalf("material %s reads %q, %v", m.ID, b, err)
				}
			}
		})
	}
}

// TestCollectOrphansWhileUploadCompletes: completing a resumable upload
// moves its segments' blobs from the session to the material in one
// transaction. Whenever that commits while the janitor is matching blobs
// to their owners (here: after the first, second or third statement it
// runs), every blob of the new material stays, and the material reads back.
func TestCollectOrphansWhileUploadCompletes(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			var (
				mu      sync.Mutex
				armed   bool
				seen    int
				fireAt  int
				inHook  bool
				pending func()
			)
			hook := func(db *gorm.DB) {
				mu.Lock()
				if !armed || inHook || !strings.Contains(db.Statement.SQL.String(), "blob_id IN") {
					mu.Unlock()
					return
				}
				seen++
				if seen != fireAt || pending == nil {
					mu.Unlock()
					return
				}
				complete := pending
				pending, inHook = nil, true
				mu.Unlock()
				complete()
				mu.Lock()
				inHook = false
				mu.Unlock()
			}
			if err := f.svc.db.Callback().Query().After("gorm:query").Register("test:complete_upload", hook); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.db.Callback().Row().After("gorm:row").Register("test:complete_upload", hook); err != nil {
				t.Fatal(err)
			}
			for at := 1; at <= 3; at++ {
				doc := randomDoc(t, 200<<10)
				size := int64(len(doc))
				u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "late.bin", Size: &size})
				if err != nil {
					t.Fatal(err)
				}
				// Two chunks already stored: two segment blobs that the
				// janitor lists, older than its grace.
				for _, part := range [][]byte{doc[:64<<10], doc[64<<10 : 128<<10]} {
					if u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: u.Offset, Length: int64(len(part)), UploadLength: -1, Body: bytes.NewReader(part)}); err != nil {
						t.Fatal(err)
					}
				}
				var done UploadSession
				var doneErr error
				complete := func() {
					rest := doc[u.Offset:]
					done, doneErr = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: u.Offset, Length: int64(len(rest)), UploadLength: -1, Body: bytes.NewReader(rest)})
				}
				mu.Lock()
				armed, seen, fireAt, pending = true, 0, at, complete
				mu.Unlock()
				_, err = f.svc.CollectOrphans(f.ctx, -time.Minute)
				mu.Lock()
				fired := pending == nil
				armed, pending = false, nil
				mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				if !fired {
					complete() // the janitor ran fewer statements than at
				}
				if doneErr != nil || done.Material == nil {
					t.Fatalf("completion after statement %d: %+v, %v", at, done, doneErr)
				}
				c, err := f.svc.OpenContent(f.ctx, f.op, done.Material.ID, nil)
				if err != nil {
					t.Fatalf("completed during statement %d of the janitor: %v", at, err)
				}
				got, err := io.ReadAll(c.Body)
				c.Close()
				if err != nil || !bytes.Equal(got, doc) {
					t.Fatalf("completed during statement %d of the janitor: read %d bytes, %v", at, len(got), err)
				}
			}
		})
	}
}

// TestFailedRowKeepsBlobWhenCommitUnknown: an upload whose row fails to
// commit deletes its blob at once when the database refused the row, but
// leaves it when the failure says nothing of the commit (a connection
// lost during COMMIT, which may have made the row durable): the janitor,
// which keeps what is referenced, collects it later.
func TestFailedRowKeepsBlobWhenCommitUnknown(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			var inject error
			if err := f.svc.db.Callback().Create().After("gorm:create").Register("test:fail_material", func(db *gorm.DB) {
				if inject != nil && db.Statement.Table == "materials" {
					_ = db.AddError(inject)
				}
			}); err != nil {
				t.Fatal(err)
			}
			blobs := func() int {
				n := 0
				if err := f.svc.blobs.List(f.ctx, func(string, time.Time) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before := blobs()
			for _, tc := range []struct {
				err  error
				kept bool
			}{
				{gorm.ErrCheckConstraintViolated, false},
				{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
				{driver.ErrBadConn, true},
				{context.DeadlineExceeded, true},
			} {
				inject = tc.err
				_, err := f.svc.Upload(f.ctx, f.op, caseID, Upload{Kind: "other", Filename: "x.bin", Body: strings.NewReader("ciphertext to be"), Size: 16})
				inject = nil
				if err == nil {
					t.Fatalf("%v: the upload succeeded", tc.err)
				}
				want := before
				if tc.kept {
					want++
				}
				if got := blobs(); got != want {
					t.Fatalf("after a row that failed with %v: %d blobs, want %d", tc.err, got, want)
				}
				if n, err := f.svc.CollectOrphans(f.ctx, -time.Minute); err != nil || blobs() != before || n != want-before {
					t.Fatalf("the janitor collected %d (%v), leaving %d blobs, want %d", n, err, blobs(), before)
				}
			}
		})
	}
}

// TestCollectOrphansInBatches: more blobs than one batch are matched to
// their owners a batch at a time, the last partial batch included; every
// orphan goes and every owned blob stays.
func TestCollectOrphansInBatches(t *testing.T) {
	f := newWF(t, sqldbtest.Backends[0], time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	caseID := f.draft()
	const orphans = orphanBatch + 3
	for range orphans {
		if _, err := f.svc.blobs.Put(f.ctx, NewID(), strings.NewReader("x"), -1); err != nil {
			t.Fatal(err)
		}
	}
	held := NewID()
	if _, err := f.svc.blobs.Put(f.ctx, held, strings.NewReader("held"), -1); err != nil {
		t.Fatal(err)
	}
	var batches []int
	other := func(_ context.Context, ids []string) ([]string, error) {
		batches = append(batches, len(ids))
		for _, id := range ids {
			if id == held {
				return []string{held}, nil
			}
		}
		return nil, nil
	}
	n, err := f.svc.CollectOrphans(f.ctx, -time.Minute, other)
	if err != nil || n != orphans {
		t.Fatalf("collected %d (%v), want %d", n, err, orphans)
	}
	total := 0
	for _, b := range batches {
		if b > orphanBatch {
			t.Fatalf("an owner was asked about %d blobs at once", b)
		}
		total += b
	}
	if total != orphans+1+3 { // the orphans, the held blob, the draft's three materials
		t.Fatalf("owners were asked about %d blobs in %v", total, batches)
	}
	if obj, err := f.svc.blobs.Open(f.ctx, held); err != nil {
		t.Fatalf("the held blob went: %v", err)
	} else {
		obj.Close()
	}
	list, err := f.svc.ListMaterials(f.ctx, f.op, caseID)
	if err != nil || len(list) != 3 {
		t.Fatalf("materials: %d, %v", len(list), err)
	}
	for _, m := range list {
		c, err := f.svc.OpenContent(f.ctx, f.op, m.ID, nil)
		if err != nil {
			t.Fatalf("material %s after collection: %v", m.ID, err)
		}
		c.Close()
	}
}

// TestOrphanTakenOnlyAfterGraceUnreferenced: S3 dates a multipart object
// from when its upload began, so a large document that took longer than the
// grace to arrive is "old" the moment it is complete, before the row that
// references it commits. A blob is therefore taken only when passes a grace
// apart both found it unreferenced: one referenced in between (its row
// committed) stays, and is suspected afresh if it is ever let go.
func TestOrphanTakenOnlyAfterGraceUnreferenced(t *testing.T) {
	f := newWF(t, sqldbtest.Backends[0], time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	ctx := context.Background()
	old := time.Now().Add(-3 * time.Hour)
	for _, id := range []string{"completed", "orphan"} {
		if _, err := f.svc.blobs.Put(ctx, id, strings.NewReader("ciphertext"), -1); err != nil {
			t.Fatal(err)
		}
		// As S3 dates a multipart upload begun three hours ago.
		if err := os.Chtimes(filepath.Join(f.blobDir, id), old, old); err != nil {
			t.Fatal(err)
		}
	}
	var rowCommitted atomic.Bool
	rows := func(ctx context.Context, ids []string) ([]string, error) {
		if rowCommitted.Load() && slices.Contains(ids, "completed") {
			return []string{"completed"}, nil
		}
		return nil, nil
	}
	pass := func(after time.Duration, want int) {
		t.Helper()
		f.mu.Lock()
		f.now = f.now.Add(after)
		f.mu.Unlock()
		if n, err := f.svc.CollectOrphans(ctx, time.Hour, rows); err != nil || n != want {
			t.Fatalf("pass %v later: collected %d (%v), want %d", after, n, err, want)
		}
	}
	exists := func(id string) bool {
		obj, err := f.svc.blobs.Open(ctx, id)
		if err == nil {
			obj.Close()
		}
		return err == nil
	}
	pass(0, 0) // both found old and unreferenced: suspected, not taken
	rowCommitted.Store(true)
	pass(30*time.Minute, 0) // within the grace of the first sighting
	pass(time.Hour, 1)      // the orphan, unreferenced a grace apart
	if !exists("completed") || exists("orphan") {
		t.Fatalf("after the passes: completed %v, orphan %v", exists("completed"), exists("orphan"))
	}
	// Let go later (a shredded case's row, say): suspected afresh.
	rowCommitted.Store(false)
	pass(time.Hour, 0)
	pass(time.Hour, 1)
	if exists("completed") {
		t.Fatal("a blob unreferenced for a grace stayed")
	}
}

// TestOrphanGraceCountsFromSighting: a pass over a large store takes long
// (a listing page at a time, a query per batch), so a blob it reaches late
// was found unreferenced then, not when the pass began. Dated from the
// pass's start, a blob reached fifty-nine minutes into one pass and again
// two minutes into the next counted as unreferenced for an hour, and a
// completed upload whose row committed just after was taken.
func TestOrphanGraceCountsFromSighting(t *testing.T) {
	f := newWF(t, sqldbtest.Backends[0], time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	ctx := context.Background()
	old := time.Now().Add(-3 * time.Hour)
	if _, err := f.svc.blobs.Put(ctx, "completing", strings.NewReader("ciphertext"), -1); err != nil {
		t.Fatal(err)
	}
	// As S3 dates a multipart upload begun three hours ago.
	if err := os.Chtimes(filepath.Join(f.blobDir, "completing"), old, old); err != nil {
		t.Fatal(err)
	}
	advance := func(d time.Duration) {
		f.mu.Lock()
		f.now = f.now.Add(d)
		f.mu.Unlock()
	}
	var slow, rowCommitted atomic.Bool
	rows := func(ctx context.Context, ids []string) ([]string, error) {
		if slow.Swap(false) {
			advance(59 * time.Minute) // the pass reaches the blob this late
		}
		if rowCommitted.Load() && slices.Contains(ids, "completing") {
			return []string{"completing"}, nil
		}
		return nil, nil
	}
	pass := func(want int) {
		t.Helper()
		if n, err := f.svc.CollectOrphans(ctx, time.Hour, rows); err != nil || n != want {
			t.Fatalf("collected %d (%v), want %d", n, err, want)
		}
	}
	slow.Store(true)
	pass(0) // sighted unreferenced 59 minutes into the pass
	advance(2 * time.Minute)
	pass(0) // two minutes later: not yet a grace
	rowCommitted.Store(true)
	if obj, err := f.svc.blobs.Open(ctx, "completing"); err != nil {
		t.Fatalf("the blob whose row committed was taken: %v", err)
	} else {
		obj.Close()
	}
	// Let go for a grace from its sighting, it goes.
	rowCommitted.Store(false)
	pass(0)
	advance(time.Hour)
	pass(1)
}
