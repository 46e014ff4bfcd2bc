package vault

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/blob"
)

// deletesFail is a blob store whose deletes fail once allowed of them went
// through: a store that goes down in the middle of a purge.
type deletesFail struct {
	blob.Store
	allowed atomic.Int32
}

func (d *deletesFail) Delete(ctx context.Context, id string) error {
	if d.allowed.Add(-1) < 0 {
		return errors.New("store down")
	}
	return d.Store.Delete(ctx, id)
}

// TestShredPurgeInterruptedSparesOtherCases: shredding deletes committed
// blobs in bulk, the only code that does. A purge cut short (the store went
// down, or the process died after the shredding committed) leaves the case
// shredded and its remaining blobs for the next run, which finishes them;
// neither run touches a blob of another case, a segmented material's
// included, nor an upload in progress on another case.
func TestShredPurgeInterruptedSparesOtherCases(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			ctx := context.Background()
			ended := f.draft()
			kept := f.draft()
			// The ended case has a segmented material and an upload in
			// progress too; so has the case that is kept.
			doc := randomDoc(t, 3000)
			size := int64(len(doc))
			type upload struct {
				material, session string
			}
			segmented := func(caseID string) upload {
				var u upload
				s, err := f.svc.CreateUpload(ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "segmented.bin", Size: &size})
				if err != nil {
					t.Fatal(err)
				}
				for _, part := range [][]byte{doc[:1000], doc[1000:]} {
					if s, err = f.svc.AppendUpload(ctx, f.op, s.ID, Chunk{Offset: s.Offset, Length: int64(len(part)), UploadLength: -1, Body: bytes.NewReader(part)}); err != nil {
						t.Fatal(err)
					}
				}
				u.material = s.Material.ID
				open, err := f.svc.CreateUpload(ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "unfinished.bin", Size: &size})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.AppendUpload(ctx, f.op, open.ID, Chunk{Offset: 0, Length: 1000, UploadLength: -1, Body: bytes.NewReader(doc[:1000])}); err != nil {
					t.Fatal(err)
				}
				u.session = open.ID
				return u
			}
			segmented(ended)
			keptUp := segmented(kept)
			f.submit(ended)
			f.mustMove(ended, "not_required", "", 0)

			keptMaterials, err := f.svc.ListMaterials(ctx, f.op, kept)
			if err != nil || len(keptMaterials) != 4 {
				t.Fatalf("materials of the kept case: %d, %v", len(keptMaterials), err)
			}
			keptDocs := map[string][]byte{}
			for _, m := range keptMaterials {
				keptDocs[m.ID] = f.readRange(f.op, m.ID, nil)
			}
			blobsOf := func(caseID string) []string {
				var ids, more []string
				f.db.Model(&materialRow{}).Where("case_id = ?", caseID).Pluck("blob_id", &ids)
				f.db.Raw(`SELECT s.blob_id FROM material_segments s JOIN materials m ON m.id = s.material_id WHERE m.case_id = ?
					UNION SELECT s.blob_id FROM upload_segments s JOIN upload_sessions u ON u.id = s.upload_id WHERE u.case_id = ?`, caseID, caseID).Scan(&more)
				return append(ids, more...)
			}
			endedBlobs := blobsOf(ended)
			if len(endedBlobs) < 6 {
				t.Fatalf("the ended case has %d blobs, want its materials', segments' and upload's", len(endedBlobs))
			}

			down := &deletesFail{Store: f.blobs}
			down.allowed.Store(1)
			cut := New(f.db, down, f.master, f.acc, f.log, f.cfg)
			cut.retention = Period{Duration: time.Hour}
			later := time.Now().Add(24 * time.Hour)
			if _, err := cut.ApplyRetention(ctx, audit.Event{Actor: "cli"}, later, false); err == nil {
				t.Fatal("a purge whose store went down reported no error")
			}
			var row caseRow
			f.db.Where("id = ?", ended).Take(&row)
			if row.ShreddedAt == nil || row.BlobsPurgedAt != nil {
				t.Fatalf("after the cut purge: shredded %v, purged %v", row.ShreddedAt, row.BlobsPurgedAt)
			}

			f.svc.retention = Period{Duration: time.Hour}
			out, err := f.svc.ApplyRetention(ctx, audit.Event{Actor: "cli"}, later, false)
			if err != nil || len(out) != 1 || out[0].CaseID != ended || out[0].BlobsDeleted < len(endedBlobs)-1 {
				t.Fatalf("the next run: %+v, %v", out, err)
			}
			for _, id := range endedBlobs {
				if _, err := f.blobs.Open(ctx, id); !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("blob %s of the shredded case survived: %v", id, err)
				}
			}
			for id, want := range keptDocs {
				if got := f.readRange(f.op, id, nil); !bytes.Equal(got, want) {
					t.Fatalf("material %s of the kept case changed", id)
				}
			}
			// The kept case's upload in progress still completes.
			s, err := f.svc.AppendUpload(ctx, f.op, keptUp.session, Chunk{Offset: 1000, Length: size - 1000, UploadLength: -1, Body: bytes.NewReader(doc[1000:])})
			if err != nil || s.Material == nil {
				t.Fatalf("the kept case's upload: %+v, %v", s, err)
			}
			if got := f.readRange(f.op, s.Material.ID, nil); !bytes.Equal(got, doc) {
				t.Fatal("the kept case's upload completed damaged")
			}
		})
	}
}
