package vault

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// gateReader yields first, then blocks until release is closed, then
// yields rest: a body still streaming while something else happens.
type gateReader struct {
	first, rest io.Reader
	started     chan struct{}
	release     chan struct{}
	waited      bool
}

func newGate(first, rest string) *gateReader {
	return &gateReader{first: strings.NewReader(first), rest: strings.NewReader(rest), started: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateReader) Read(p []byte) (int, error) {
	if n, err := g.first.Read(p); n > 0 || err != io.EOF {
		return n, err
	}
	if !g.waited {
		g.waited = true
		close(g.started)
		<-g.release
	}
	return g.rest.Read(p)
}

// TestShreddingWinsOverUploadInFlight: an upload admitted on an ended case
// whose retention has run out, still streaming when retention apply
// shreds the case, must not commit afterwards: the client would be told
// the document is stored, no key would ever open it, and its blob (written
// after the shredding purged the case's blobs) would stay for good. A
// one-shot upload and a resumable chunk are both refused case_shredded,
// and their blobs are gone.
func TestShreddingWinsOverUploadInFlight(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			ctx := context.Background()
			caseID := f.draft()
			f.submit(caseID)
			f.mustMove(caseID, "not_required", "", 0)
			f.svc.retention = Period{Duration: time.Hour}
			sess, err := f.svc.CreateUpload(ctx, f.office, caseID, NewUpload{Kind: "notice", Filename: "long.txt", ContentType: "text/plain"})
			if err != nil {
				t.Fatal(err)
			}

			oneShot, chunk := newGate("notice part one ", "and part two"), newGate("chunk part one ", "and part two")
			type result struct {
				what string
				err  error
			}
			done := make(chan result, 2)
			go func() {
				_, err := f.svc.Upload(ctx, f.office, caseID, Upload{Kind: "notice", Filename: "notice.txt", ContentType: "text/plain", Body: oneShot, Size: -1})
				done <- result{"upload", err}
			}()
			go func() {
				_, err := f.svc.AppendUpload(ctx, f.office, sess.ID, Chunk{Offset: 0, Length: -1, UploadLength: -1, Body: chunk})
				done <- result{"chunk", err}
			}()
			for _, g := range []*gateReader{oneShot, chunk} {
				select {
				case <-g.started:
				case r := <-done:
					t.Fatalf("%s ended before it streamed: %v", r.what, r.err)
				}
			}
			out, err := f.svc.ApplyRetention(ctx, audit.Event{Actor: "cli"}, time.Now().Add(24*365*time.Hour), false)
			if err != nil || len(out) != 1 || !out[0].Shredded {
				t.Fatalf("retention: %+v, %v", out, err)
			}
			close(oneShot.release)
			close(chunk.release)
			for range 2 {
				r := <-done
				var ve *Error
				if !errors.As(r.err, &ve) || ve.Code != "case_shredded" {
					t.Errorf("%s into a case shredded while it streamed: %v, want case_shredded", r.what, r.err)
				}
			}
			var rows, segs int64
			f.svc.db.Model(&materialRow{}).Where("case_id = ? AND kind = ?", caseID, "notice").Where("LENGTH(header) > 0").Count(&rows)
			f.svc.db.Model(&uploadSegmentRow{}).Where("upload_id = ?", sess.ID).Count(&segs)
			if rows != 0 || segs != 0 {
				t.Fatalf("after the shredding: %d notices with a header, %d segments", rows, segs)
			}
			var left []string
			if err := f.svc.blobs.List(ctx, func(id string, _ time.Time) error { left = append(left, id); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Fatalf("blobs left in the store of a shredded case: %v", left)
			}
		})
	}
}
