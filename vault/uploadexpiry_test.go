package vault

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestChunkLongerThanExpiryKeepsSession: a chunk that streams for longer
// than the session's expiry (a large document sent as one PATCH over a
// slow link, with VAULT_UPLOAD_EXPIRY set short) keeps its session alive
// while its bytes arrive. Marking the session in use only when the chunk
// began let the janitor expire it mid-chunk: the bytes already
// acknowledged were deleted with the session, and the chunk, hours of
// transfer, ended in 404.
func TestChunkLongerThanExpiryKeepsSession(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			cfg := f.cfg
			cfg.UploadExpiry = 2 * time.Second
			svc := New(f.db, f.blobs, f.master, f.acc, f.log, cfg)
			doc := randomDoc(t, 3000)
			size := int64(len(doc))
			u, err := svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "long.bin", Size: &size})
			if err != nil {
				t.Fatal(err)
			}
			// The first chunk is acknowledged: the client counts on it.
			if u, err = svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 0, Length: 1000, UploadLength: -1, Body: bytes.NewReader(doc[:1000])}); err != nil || u.Offset != 1000 {
				t.Fatalf("first chunk: %+v, %v", u, err)
			}
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
			type result struct {
				u   UploadSession
				err error
			}
			res := make(chan result, 1)
			go func() {
				u, err := svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 1000, Length: 2000, UploadLength: -1, Body: pr})
				res <- result{u, err}
			}()
			// The chunk arrives steadily, never idle, for twice the expiry.
			rest := doc[1000:]
			step := len(rest) / 20
			for i := 0; i < 19; i++ {
				if _, err := pw.Write(rest[i*step : (i+1)*step]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(cfg.UploadExpiry / 10)
			}
			// The janitor runs now, in real time: the session's last chunk
			// began two expiries ago, but it is still arriving.
			if n, err := svc.ExpireUploads(f.ctx, time.Now()); err != nil || n != 0 {
				t.Fatalf("expired %d (%v) while a chunk was arriving", n, err)
			}
			if _, err := pw.Write(rest[19*step:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			r := <-res
			if r.err != nil || r.u.Material == nil || r.u.Offset != size {
				t.Fatalf("the long chunk: %+v, %v", r.u, r.err)
			}
			if got := f.readRange(f.op, r.u.Material.ID, nil); !bytes.Equal(got, doc) {
				t.Fatal("the completed document differs from what was sent")
			}
		})
	}
}
