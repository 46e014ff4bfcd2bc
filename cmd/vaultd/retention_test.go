package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/crvault/crvault/audit/sqldb"
)

// Retention and crypto-shredding (issue 12, item 4).

func (s *server) env1(key string) string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}

// blobSnapshot copies every blob of the server's store, as a backup of
// the blobs would.
func blobSnapshot(t *testing.T, s *server) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if ep := s.env1("VAULT_S3_ENDPOINT"); ep != "" {
		mc, bucket := s3Client(t, s)
		ctx := context.Background()
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			obj, err := mc.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[o.Key] = b
		}
		return out
	}
	dir := filepath.Join(s.data, "blobs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// blobRestore puts a snapshot back into the store.
func blobRestore(t *testing.T, s *server, snap map[string][]byte) {
	t.Helper()
	if s.env1("VAULT_S3_ENDPOINT") != "" {
		mc, bucket := s3Client(t, s)
		for k, b := range snap {
			if _, err := mc.PutObject(context.Background(), bucket, k, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for k, b := range snap {
		if err := os.WriteFile(filepath.Join(s.data, "blobs", k), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func s3Client(t *testing.T, s *server) (*minio.Client, string) {
	t.Helper()
	mc, err := minio.New(s.env1("VAULT_S3_ENDPOINT"), &minio.Options{
		Creds: credentials.NewStaticV4(s.env1("VAULT_S3_ACCESS_KEY"), s.env1("VAULT_S3_SECRET_KEY"), ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return mc, s.env1("VAULT_S3_BUCKET")
}

// queryRows runs a query on the server's database.
func queryStrings(t *testing.T, s *server, q string, args ...any) []string {
	t.Helper()
	db, err := sqldb.Open(context.Background(), s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close(db)
	var out []string
	if err := db.Raw(q, args...).Scan(&out).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// endCase files a case, submits it, and has the office find that it needs
// no review (Art. 8): the case has ended, and its retention runs.
func endCase(t *testing.T, w *world, marker string) (string, map[string][]byte) {
	t.Helper()
	caseID, docs := w.newCase(t, marker)
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "not_required", "reason": "outside the Measures"})
	return caseID, docs
}

// TestRetentionWithAndWithoutLegalHold ends two cases under a very short
// retention; the office holds one. retention apply destroys the other: its
// key row and headers are gone, its blobs deleted, and even with a copy of
// the blobs taken before, put back into the store, nothing reads (no key
// opens them any more); the held case reads as before until the hold is
// lifted and retention applied again. What the audit log needs stays: the
// case is listed with its status, the log verifies and records each
// destruction and hold.
func TestRetentionWithAndWithoutLegalHold(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_RETENTION=1ms")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			open, openDocs := w.newCase(t, "still open")
			a, aDocs := endCase(t, w, "expired")
			b, bDocs := endCase(t, w, "held")
			var ret struct {
				ExpiresAt *time.Time `json:"expires_at"`
				LegalHold bool       `json:"legal_hold"`
				Retention string     `json:"retention"`
			}
			w.office.expect(200, "GET", "/cases/"+a+"/retention", nil).json(t, &ret)
			if ret.ExpiresAt == nil || ret.LegalHold || ret.Retention != "1ms" {
				t.Fatalf("retention of an ended case: %+v", ret)
			}
			w.op.expect(403, "GET", "/cases/"+a+"/retention", nil)
			w.office.expect(422, "PUT", "/cases/"+b+"/legal-hold", map[string]any{"reason": ""})
			w.office.expect(200, "PUT", "/cases/"+b+"/legal-hold", map[string]any{"reason": "court order 2031-17"}).json(t, &ret)
			if !ret.LegalHold {
				t.Fatal("legal hold not set")
			}
			snap := blobSnapshot(t, s)
			wrappedA := queryStrings(t, s, "SELECT master FROM case_keys WHERE case_id = ?", a)
			if len(wrappedA) != 1 {
				t.Fatalf("case key rows of %s before: %v", a, wrappedA)
			}

			out := s.mustCLI("", "retention", "apply", "--dry-run")
			if !strings.Contains(out, "expired  "+a) || !strings.Contains(out, "held     "+b) || strings.Contains(out, open) ||
				!strings.Contains(out, "dry run: 1 would be shredded, 1 held; nothing was destroyed") || strings.Contains(out, "0 shredded") {
				t.Fatalf("dry run:\n%s", out)
			}
			readAll(t, w.op, aDocs) // a dry run destroys nothing
			out = s.mustCLI("", "retention", "apply")
			if !strings.Contains(out, "shredded "+a) || !strings.Contains(out, "held     "+b) || !strings.Contains(out, "1 shredded, 1 held") {
				t.Fatalf("apply:\n%s", out)
			}
			if rows := queryStrings(t, s, "SELECT case_id FROM case_keys WHERE case_id = ?", a); len(rows) != 0 {
				t.Fatalf("case key of a shredded case survives: %v", rows)
			}
			if hs := queryStrings(t, s, "SELECT id FROM materials WHERE case_id = ? AND LENGTH(header) > 0", a); len(hs) != 0 {
				t.Fatalf("headers of a shredded case survive: %v", hs)
			}
			// Every instance refuses at once (the running server cached the
			// key a moment ago); then the blob backup goes back in.
			for id := range aDocs {
				w.op.expect(409, "GET", "/materials/"+id+"/content", nil)
			}
			blobRestore(t, s, snap)
			for id := range aDocs {
				r := w.op.do("GET", "/materials/"+id+"/content", nil)
				if r.Status == 200 || bytes.Contains(r.Body, aDocs[id][:20]) {
					t.Fatalf("shredded material %s read from restored blobs: %d", id, r.Status)
				}
			}
			readAll(t, w.op, bDocs)
			readAll(t, w.op, openDocs)
			var cs struct {
				ID, Status, Title string
			}
			w.op.expect(200, "GET", "/cases/"+a, nil).json(t, &cs)
			if cs.Status != "not_required" || cs.Title != "" {
				t.Fatalf("shredded case reads as %+v", cs)
			}
			w.office.expect(409, "PUT", "/cases/"+a+"/legal-hold", map[string]any{"reason": "too late"})

			w.office.expect(200, "DELETE", "/cases/"+b+"/legal-hold", map[string]any{"reason": "order lifted"})
			out = s.mustCLI("", "retention", "apply")
			if !strings.Contains(out, "shredded "+b) {
				t.Fatalf("apply after the hold was lifted:\n%s", out)
			}
			for id := range bDocs {
				w.op.expect(409, "GET", "/materials/"+id+"/content", nil)
			}
			if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "OK") {
				t.Fatalf("audit verify: %s", out)
			}
			var ev struct {
				Items []struct {
					CaseID string `json:"case_id"`
					Detail string `json:"detail"`
				} `json:"items"`
			}
			w.insp.expect(200, "GET", "/audit/events?action=case.shred", nil).json(t, &ev)
			if len(ev.Items) != 2 {
				t.Fatalf("shred events: %+v", ev.Items)
			}
			w.insp.expect(200, "GET", "/audit/events?action=case.legal_hold", nil).json(t, &ev)
			// set, refused on the shredded case, cleared
			if len(ev.Items) != 3 {
				t.Fatalf("legal hold events: %+v", ev.Items)
			}
		})
	}
}
