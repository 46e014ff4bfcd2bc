package vault

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/blob"
)

// brokenBody yields n bytes of data and then fails, as a request body does
// when the client's connection drops.
type brokenBody struct {
	data []byte
	n    int
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, errors.New("connection reset by peer")
	}
	k := copy(p[:min(len(p), b.n)], b.data)
	b.data, b.n = b.data[k:], b.n-k
	return k, nil
}

func randomDoc(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func codeOf(err error) string {
	var ve *Error
	if errors.As(err, &ve) {
		return ve.Code
	}
	return ""
}

func offsetOf(t *testing.T, err error) int64 {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) || ve.Offset == nil {
		t.Fatalf("error %v carries no offset", err)
	}
	return *ve.Offset
}

func (f *wfFixture) readRange(a Actor, id string, r *Range) []byte {
	f.t.Helper()
	c, err := f.svc.OpenContent(f.ctx, a, id, func(RangeTarget) (*Range, error) { return r, nil })
	if err != nil {
		f.t.Fatalf("open %s: %v", id, err)
	}
	defer c.Close()
	b, err := io.ReadAll(c.Body)
	if err != nil {
		f.t.Fatalf("read %s: %v", id, err)
	}
	return b
}

// TestResumableUpload: chunks at the right offsets make one material whose
// content, ranges (across segment boundaries) and SHA-256 are the whole
// document's; a chunk cut mid-way keeps what arrived; a wrong offset is
// refused with the right one; nothing is a material before the end.
func TestResumableUpload(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			doc := randomDoc(t, 300<<10+123)
			size := int64(len(doc))
			u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "拓扑 diagram.bin", ContentType: "application/octet-stream", Size: &size})
			if err != nil {
				t.Fatal(err)
			}
			if u.Offset != 0 || u.Status != "open" || u.Size == nil || *u.Size != size {
				t.Fatalf("new session %+v", u)
			}
			before, err := f.svc.ListMaterials(f.ctx, f.op, caseID)
			if err != nil {
				t.Fatal(err)
			}
			// First chunk: 100 KiB, whole.
			u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 0, Length: 100 << 10, UploadLength: -1, Body: bytes.NewReader(doc[:100<<10])})
			if err != nil || u.Offset != 100<<10 || u.Status != "open" || u.Material != nil {
				t.Fatalf("first chunk: %+v, %v", u, err)
			}
			// Second chunk: the rest declared, but the connection drops
			// after 70000 bytes; they are kept.
			_, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 100 << 10, Length: size - 100<<10, UploadLength: -1,
				Body: &brokenBody{data: doc[100<<10:], n: 70000}})
			if codeOf(err) != "malformed_body" || offsetOf(t, err) != 100<<10+70000 {
				t.Fatalf("cut chunk: %v", err)
			}
			// Nothing of it is a material yet.
			mid, err := f.svc.ListMaterials(f.ctx, f.op, caseID)
			if err != nil || len(mid) != len(before) {
				t.Fatalf("a half-finished upload is listed: %d materials, was %d (%v)", len(mid), len(before), err)
			}
			// A chunk from the old offset (a client that did not ask) is
			// refused with where the upload stands.
			_, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 100 << 10, Length: 10, UploadLength: -1, Body: bytes.NewReader(doc[100<<10 : 100<<10+10])})
			if codeOf(err) != "upload_offset_mismatch" || offsetOf(t, err) != 100<<10+70000 {
				t.Fatalf("wrong offset: %v", err)
			}
			got, err := f.svc.GetUpload(f.ctx, f.op, u.ID)
			if err != nil || got.Offset != 100<<10+70000 {
				t.Fatalf("status after cut: %+v, %v", got, err)
			}
			// Another user, even of the same organisation, does not see it.
			other := f.user("operator1b", access.Org{ID: f.op.P.User.OrgID, Kind: "operator"}, "operator")
			if _, err := f.svc.GetUpload(f.ctx, other, u.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("another user reads the session: %v", err)
			}
			if _, err := f.svc.AppendUpload(f.ctx, other, u.ID, Chunk{Offset: got.Offset, Length: 1, UploadLength: -1, Body: bytes.NewReader([]byte{1})}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("another user appends: %v", err)
			}
			// The rest, in one request: completes.
			rest := doc[got.Offset:]
			u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: got.Offset, Length: int64(len(rest)), UploadLength: -1, Body: bytes.NewReader(rest)})
			if err != nil || u.Status != "completed" || u.Material == nil {
				t.Fatalf("last chunk: %+v, %v", u, err)
			}
			m := u.Material
			sum := sha256.Sum256(doc)
			if m.SHA256 != hex.EncodeToString(sum[:]) || m.Size != size || m.Filename != "拓扑 diagram.bin" || m.Kind != "other" {
				t.Fatalf("material %+v, want sha256 %x size %d", m, sum, size)
			}
			if b := f.readRange(f.op, m.ID, nil); !bytes.Equal(b, doc) {
				t.Fatalf("content differs from the document (%d bytes read)", len(b))
			}
			// Ranges inside one segment, across a boundary, across all three.
			for _, r := range []Range{{0, 10}, {100<<10 - 5, 10}, {100<<10 + 69990, 20}, {1, size - 2}, {size - 1, 1}, {150 << 10, 1000}} {
				if b := f.readRange(f.op, m.ID, &r); !bytes.Equal(b, doc[r.Start:r.Start+r.Length]) {
					t.Fatalf("range %+v differs", r)
				}
			}
			var row materialRow
			if err := f.svc.db.Where("id = ?", m.ID).Take(&row).Error; err != nil || row.Segments != 3 {
				t.Fatalf("material row segments %d, %v; want 3", row.Segments, err)
			}
			// Listed once, and the session now names it.
			after, _ := f.svc.ListMaterials(f.ctx, f.op, caseID)
			if len(after) != len(before)+1 {
				t.Fatalf("%d materials after completion, want %d", len(after), len(before)+1)
			}
			got, err = f.svc.GetUpload(f.ctx, f.op, u.ID)
			if err != nil || got.Status != "completed" || got.Material == nil || got.Material.ID != m.ID {
				t.Fatalf("completed session %+v, %v", got, err)
			}
			if _, err := f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: size, Length: 0, UploadLength: -1, Body: bytes.NewReader(nil)}); codeOf(err) != "upload_completed" {
				t.Fatalf("chunk after completion: %v", err)
			}
			// Every chunk is in the audit log, the cut one as an error too,
			// and the completion as the material's upload.
			evs, _, err := f.log.Query(f.ctx, audit.Filter{CaseID: caseID, Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, e := range evs {
				count[e.Action+"/"+string(e.Outcome)]++
			}
			if count["upload.create/allowed"] != 1 || count["upload.chunk/allowed"] != 3 || count["upload.chunk/error"] != 1 ||
				count["upload.chunk/denied"] < 2 || count["material.upload/allowed"] != 4 {
				t.Fatalf("audit counts %v", count)
			}
		})
	}
}

// TestResumableUploadUnknownLength: a session opened without a size is
// completed by the chunk that declares Upload-Length; an empty document
// completes too, as one sealed empty stream.
func TestResumableUploadUnknownLength(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	caseID := f.draft()
	doc := randomDoc(t, 200<<10)
	u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "pipe.bin"})
	if err != nil || u.Size != nil {
		t.Fatalf("session %+v, %v", u, err)
	}
	if u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 0, Length: -1, UploadLength: -1, Body: bytes.NewReader(doc[:128<<10])}); err != nil || u.Status != "open" {
		t.Fatalf("chunk: %+v, %v", u, err)
	}
	if _, err := f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: u.Offset, Length: 0, UploadLength: 100, Body: bytes.NewReader(nil)}); codeOf(err) != "invalid_upload_length" {
		t.Fatalf("length below the offset: %v", err)
	}
	u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: u.Offset, Length: -1, UploadLength: int64(len(doc)), Body: bytes.NewReader(doc[128<<10:])})
	if err != nil || u.Material == nil || u.Material.Size != int64(len(doc)) {
		t.Fatalf("completing chunk: %+v, %v", u, err)
	}
	if b := f.readRange(f.op, u.Material.ID, nil); !bytes.Equal(b, doc) {
		t.Fatal("content differs")
	}

	e, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "empty.txt"})
	if err != nil {
		t.Fatal(err)
	}
	e, err = f.svc.AppendUpload(f.ctx, f.op, e.ID, Chunk{Offset: 0, Length: 0, UploadLength: 0, Body: bytes.NewReader(nil)})
	if err != nil || e.Material == nil || e.Material.Size != 0 || e.Material.SHA256 != hex.EncodeToString(sha256.New().Sum(nil)) {
		t.Fatalf("empty upload: %+v, %v", e, err)
	}
	if b := f.readRange(f.op, e.Material.ID, nil); len(b) != 0 {
		t.Fatalf("empty material reads %d bytes", len(b))
	}
	// A chunk longer than the declared rest is refused whole.
	sz := int64(10)
	l, _ := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "ten.txt", Size: &sz})
	if _, err := f.svc.AppendUpload(f.ctx, f.op, l.ID, Chunk{Offset: 0, Length: -1, UploadLength: -1, Body: bytes.NewReader(make([]byte, 11))}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("overlong chunk: %v", err)
	}
	if got, _ := f.svc.GetUpload(f.ctx, f.op, l.ID); got.Offset != 0 {
		t.Fatalf("overlong chunk left offset %d", got.Offset)
	}
}

// TestResumableUploadRefusals: the case decides at creation and at every
// chunk; classified materials are refused before a byte is sent.
func TestResumableUploadRefusals(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	caseID := f.draft()
	if _, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "declaration", Filename: "机密 网络拓扑.pdf"}); codeOf(err) != "classified_material" {
		t.Fatalf("classified: %v", err)
	}
	if _, err := f.svc.CreateUpload(f.ctx, f.rev, caseID, NewUpload{Kind: "declaration", Filename: "x.pdf"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unrelated reviewer: %v", err)
	}
	if _, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "nonsense", Filename: "x.pdf"}); codeOf(err) != "invalid_kind" {
		t.Fatalf("bad kind: %v", err)
	}
	u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "declaration", Filename: "late.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	// The case is submitted meanwhile: declarations can no longer be added.
	if _, err := f.svc.Submit(f.ctx, f.op, caseID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 0, Length: 3, UploadLength: -1, Body: bytes.NewReader([]byte("abc"))}); codeOf(err) != "case_not_editable" {
		t.Fatalf("chunk after submission: %v", err)
	}
	if got, _ := f.svc.GetUpload(f.ctx, f.op, u.ID); got.Offset != 0 {
		t.Fatalf("refused chunk stored: offset %d", got.Offset)
	}
	if err := f.svc.CancelUpload(f.ctx, f.op, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetUpload(f.ctx, f.op, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled session still there: %v", err)
	}
}

// TestExpireUploads: the janitor removes sessions idle past the expiry,
// their blobs and rows, and audits it; a completed session goes too, its
// material stays.
func TestExpireUploads(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			doc := randomDoc(t, 1000)
			open, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "abandoned.bin"})
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range [][]byte{doc[:400], doc[400:700]} {
				cur, _ := f.svc.GetUpload(f.ctx, f.op, open.ID)
				if _, err := f.svc.AppendUpload(f.ctx, f.op, open.ID, Chunk{Offset: cur.Offset, Length: int64(len(part)), UploadLength: -1, Body: bytes.NewReader(part)}); err != nil {
					t.Fatal(err)
				}
			}
			var segBlobs []string
			f.svc.db.Model(&uploadSegmentRow{}).Where("upload_id = ?", open.ID).Pluck("blob_id", &segBlobs)
			if len(segBlobs) != 2 {
				t.Fatalf("%d segments, want 2", len(segBlobs))
			}
			sz := int64(len(doc))
			done, _ := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "done.bin", Size: &sz})
			done, err = f.svc.AppendUpload(f.ctx, f.op, done.ID, Chunk{Offset: 0, Length: sz, UploadLength: -1, Body: bytes.NewReader(doc)})
			if err != nil || done.Material == nil {
				t.Fatalf("complete: %v", err)
			}
			// Not yet expired.
			if n, err := f.svc.ExpireUploads(f.ctx, time.Now()); err != nil || n != 0 {
				t.Fatalf("expired %d (%v) before the expiry", n, err)
			}
			n, err := f.svc.ExpireUploads(f.ctx, time.Now().Add(f.svc.UploadExpiry()+time.Minute))
			if err != nil || n != 1 {
				t.Fatalf("expired %d, %v; want the open one", n, err)
			}
			for _, b := range segBlobs {
				if _, err := f.svc.blobs.Open(f.ctx, b); !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("segment blob %s survived: %v", b, err)
				}
			}
			var left int64
			f.svc.db.Model(&uploadRow{}).Count(&left)
			var segs int64
			f.svc.db.Model(&uploadSegmentRow{}).Count(&segs)
			if left != 0 || segs != 0 {
				t.Fatalf("%d sessions and %d segments left", left, segs)
			}
			if b := f.readRange(f.op, done.Material.ID, nil); !bytes.Equal(b, doc) {
				t.Fatal("the completed upload's material was damaged by the expiry")
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "upload.expire", Limit: 10})
			if err != nil || len(evs) != 1 || evs[0].Actor != "system" || evs[0].Resource != "upload/"+open.ID {
				t.Fatalf("expiry audit %+v, %v", evs, err)
			}
		})
	}
}

// TestUploadSessionSealed: neither the filename nor the running hash (which
// holds the document's last bytes) is stored in plaintext.
func TestUploadSessionSealed(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	caseID := f.draft()
	name := "UNIQUE-NAME-4711 拓扑.pdf"
	u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: name})
	if err != nil {
		t.Fatal(err)
	}
	tail := []byte("PLAINTEXT-TAIL-0815")
	body := append(bytes.Repeat([]byte{'x'}, 64*3), tail...)
	if _, err := f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 0, Length: int64(len(body)), UploadLength: -1, Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	var row uploadRow
	if err := f.svc.db.Where("id = ?", u.ID).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(row.Filename, []byte("UNIQUE-NAME")) || bytes.Contains(row.HashState, tail) || len(row.HashState) == 0 {
		t.Fatalf("session row holds plaintext: filename %q, hash state %q", row.Filename, row.HashState)
	}
	// The database file itself.
	var seq int
	var dbName, dbFile string
	if err := f.svc.db.Raw("PRAGMA database_list").Row().Scan(&seq, &dbName, &dbFile); err != nil || dbFile == "" {
		t.Fatalf("database file: %q, %v", dbFile, err)
	}
	dir := filepath.Dir(dbFile)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && (bytes.Contains(b, []byte("UNIQUE-NAME-4711")) || bytes.Contains(b, tail)) {
			t.Fatalf("%s holds the filename or the document's bytes", e.Name())
		}
	}
}

// TestSegmentedMaterialDamaged: a segment row that goes missing makes the
// read fail rather than serve a shorter document.
func TestSegmentedMaterialDamaged(t *testing.T) {
	f := newWF(t, "sqlite", time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
	caseID := f.draft()
	doc := randomDoc(t, 3000)
	sz := int64(len(doc))
	u, _ := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "d.bin", Size: &sz})
	for off := int64(0); off < sz; off += 1000 {
		var err error
		if u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: off, Length: 1000, UploadLength: -1, Body: bytes.NewReader(doc[off : off+1000])}); err != nil {
			t.Fatal(err)
		}
	}
	if u.Material == nil {
		t.Fatal("not completed")
	}
	if err := f.svc.db.Where("material_id = ? AND seq = 1", u.Material.ID).Delete(&materialSegmentRow{}).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.OpenContent(f.ctx, f.op, u.Material.ID, nil); err == nil {
		t.Fatal("a material missing a segment opened")
	}
}

// TestChunkInFlightKeepsSessionAlive: a chunk begun near its session's
// expiry marks the session in use when it begins, so the janitor expiring
// sessions while the chunk streams leaves this one, and the chunk lands.
func TestChunkInFlightKeepsSessionAlive(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			doc := randomDoc(t, 2000)
			u, err := f.svc.CreateUpload(f.ctx, f.op, caseID, NewUpload{Kind: "other", Filename: "slow.bin"})
			if err != nil {
				t.Fatal(err)
			}
			if u, err = f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 0, Length: 1000, UploadLength: -1, Body: bytes.NewReader(doc[:1000])}); err != nil {
				t.Fatal(err)
			}
			lastChunk := u.ExpiresAt.Add(-f.svc.UploadExpiry())
			time.Sleep(300 * time.Millisecond)
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
			type result struct {
				u   UploadSession
				err error
			}
			res := make(chan result, 1)
			go func() {
				u, err := f.svc.AppendUpload(f.ctx, f.op, u.ID, Chunk{Offset: 1000, Length: 1000, UploadLength: -1, Body: pr})
				res <- result{u, err}
			}()
			// Half the chunk arrives; the rest is slow to come.
			if _, err := pw.Write(doc[1000:1500]); err != nil {
				t.Fatal(err)
			}
			// The janitor runs as if the session had been idle past its
			// expiry since the first chunk, but not since the second began.
			if n, err := f.svc.ExpireUploads(f.ctx, lastChunk.Add(f.svc.UploadExpiry()+100*time.Millisecond)); err != nil || n != 0 {
				t.Fatalf("expired %d (%v) while a chunk was arriving", n, err)
			}
			if _, err := pw.Write(doc[1500:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			r := <-res
			if r.err != nil || r.u.Offset != 2000 {
				t.Fatalf("the chunk in flight: %+v, %v", r.u, r.err)
			}
		})
	}
}

// TestUploadKindsFollowTheRules: the kinds a form offers are those the
// upload rules admit for the caller's roles in the case's status, and a
// listing application only on a case listing abroad.
func TestUploadKindsFollowTheRules(t *testing.T) {
	as := func(r access.Role) access.Principal {
		return access.Principal{User: access.User{Roles: []access.Role{r}}}
	}
	for _, c := range []struct {
		role        access.Role
		status, typ string
		want        string
	}{
		{"operator", "draft", "procurement", "declaration impact_analysis procurement other evidence"},
		{"operator", "draft", "listing_abroad", "declaration impact_analysis procurement listing_application other evidence"},
		{"operator", "awaiting_supplement", "procurement", "other supplementary evidence"},
		{"provider", "special_review", "procurement", "supplementary evidence"},
		{"operator", "concluded", "procurement", "evidence"},
		{"reviewer", "under_review", "procurement", "recommendation"},
		{"reviewer", "soliciting_opinions", "procurement", ""},
		{"member_unit", "special_review", "procurement", "opinion"},
		{"member_unit", "under_review", "procurement", ""},
		{"office_admin", "awaiting_supplement", "procurement", "notice"},
		{"inspector", "under_review", "procurement", ""},
	} {
		got := strings.Join(UploadKinds(as(c.role), Case{Status: c.status, Type: c.typ}), " ")
		if got != c.want {
			t.Errorf("%s in %s (%s): %q, want %q", c.role, c.status, c.typ, got, c.want)
		}
	}
}
