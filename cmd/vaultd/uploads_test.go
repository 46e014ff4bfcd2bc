package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

type uploadSession struct {
	ID       string `json:"id"`
	Offset   int64  `json:"offset"`
	Size     *int64 `json:"size"`
	Status   string `json:"status"`
	Material *struct {
		ID     string `json:"id"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"material"`
}

// headOffset asks HEAD /uploads/{id}; status and offset (-1 without one).
func (c *client) headOffset(id string) (int, int64) {
	c.t.Helper()
	r := c.s.do(c.t, c.token, "HEAD", "/uploads/"+id, nil, nil)
	off, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		off = -1
	}
	return r.Status, off
}

// patchChunk sends one chunk as a plain client would.
func (c *client) patchChunk(id string, offset int64, body []byte, ctype string) resp {
	c.t.Helper()
	return c.s.do(c.t, c.token, "PATCH", "/uploads/"+id, bytes.NewReader(body),
		map[string]string{"Content-Type": ctype, "Upload-Offset": strconv.FormatInt(offset, 10)})
}

// cutPatch starts a PATCH declaring the whole rest of the document, sends
// only part of it and closes the connection, as a client whose network
// fails does.
func (c *client) cutPatch(id string, offset int64, declared int64, part []byte) {
	c.t.Helper()
	conn, err := net.Dial("tcp", c.s.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH /api/v1/uploads/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n",
		id, c.s.addr, c.token, offset, declared)
	if _, err := conn.Write(part); err != nil {
		c.t.Fatalf("write partial chunk: %v", err)
	}
	conn.Close()
}

// waitOffset polls HEAD until the session's offset leaves from (the server
// commits a cut chunk once it sees the connection end).
func (c *client) waitOffset(id string, from int64) int64 {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, off := c.headOffset(id)
		if st != 200 {
			c.t.Fatalf("HEAD upload %s: %d", id, st)
		}
		if off != from {
			return off
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("upload %s stayed at offset %d", id, from)
	return 0
}

// TestResumableUploadHTTP, on both backends: a chunk cut mid-way keeps every
// byte that arrived; a chunk at the wrong offset is refused with the right
// one; the completed material reads (whole and in ranges across segments)
// exactly as the document, with its SHA-256; nothing is a material, or on
// disk in plaintext, on the way; and the janitor reclaims an abandoned
// session, blobs and rows.
func TestResumableUploadHTTP(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_UPLOAD_EXPIRY=1s")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "resumable")
			const marker = "RESUMABLE-PLAINTEXT-MARKER-6b1f"
			size := int64(20<<20 + 4321)
			gen := newGen(size, 7, marker)
			doc, err := io.ReadAll(gen)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(doc)

			var u uploadSession
			w.op.expect(201, "POST", "/cases/"+caseID+"/uploads", map[string]any{"kind": "other", "filename": "topology.bin",
				"content_type": "application/octet-stream", "size": size}).json(t, &u)
			if u.Offset != 0 || u.Status != "open" {
				t.Fatalf("new session %+v", u)
			}
			// The network fails 7 MiB and a bit into the chunk.
			cut := int64(7<<20 + 123)
			w.op.cutPatch(u.ID, 0, size, doc[:cut])
			if off := w.op.waitOffset(u.ID, 0); off != cut {
				t.Fatalf("after the cut the server holds %d bytes, want every byte that arrived (%d)", off, cut)
			}
			// Not a material yet.
			var list struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &list)
			if len(list.Items) != len(docs) {
				t.Fatalf("%d materials listed mid-upload, want %d", len(list.Items), len(docs))
			}
			// A client that did not ask where to go on is told.
			r := w.op.patchChunk(u.ID, 0, doc[:1000], "application/offset+octet-stream")
			p := r.problem(t)
			if r.Status != 409 || p["code"] != "upload_offset_mismatch" || r.Header.Get("Upload-Offset") != strconv.FormatInt(cut, 10) || p["offset"] != float64(cut) {
				t.Fatalf("wrong offset: %d %s (Upload-Offset %q)", r.Status, r.Body, r.Header.Get("Upload-Offset"))
			}
			if r := w.op.patchChunk(u.ID, cut, doc[cut:], "application/octet-stream"); r.Status != 415 {
				t.Fatalf("chunk with the wrong media type: %d", r.Status)
			}
			// Others never see the session.
			if st, _ := w.op2.headOffset(u.ID); st != 404 {
				t.Fatalf("another operator's HEAD: %d", st)
			}
			if r := w.op2.patchChunk(u.ID, cut, doc[cut:cut+10], "application/offset+octet-stream"); r.Status != 404 {
				t.Fatalf("another operator's PATCH: %d", r.Status)
			}
			// The rest completes it.
			r = w.op.patchChunk(u.ID, cut, doc[cut:], "application/offset+octet-stream")
			if r.Status != 200 {
				t.Fatalf("last chunk: %d %s", r.Status, r.Body)
			}
			r.json(t, &u)
			if u.Status != "completed" || u.Material == nil || u.Material.SHA256 != hex.EncodeToString(sum[:]) || u.Material.Size != size {
				t.Fatalf("completed upload %s, want sha256 %x", r.Body, sum)
			}
			if r.Header.Get("Content-Location") != "/api/v1/materials/"+u.Material.ID {
				t.Fatalf("Content-Location %q", r.Header.Get("Content-Location"))
			}
			c := w.op.expect(200, "GET", "/materials/"+u.Material.ID+"/content", nil)
			if got := sha256.Sum256(c.Body); got != sum || c.Header.Get("X-Content-SHA256") != hex.EncodeToString(sum[:]) {
				t.Fatalf("content differs: %x, header %s", got, c.Header.Get("X-Content-SHA256"))
			}
			for _, rg := range [][2]int64{{cut - 10, cut + 10}, {0, 0}, {size - 1, size - 1}, {5 << 20, 9 << 20}} {
				r := w.op.s.do(t, w.op.token, "GET", "/materials/"+u.Material.ID+"/content", nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", rg[0], rg[1])})
				if r.Status != 206 || !bytes.Equal(r.Body, doc[rg[0]:rg[1]+1]) {
					t.Fatalf("range %v: %d, %d bytes, differ", rg, r.Status, len(r.Body))
				}
			}
			var done uploadSession
			w.op.expect(200, "GET", "/uploads/"+u.ID, nil).json(t, &done)
			if done.Status != "completed" || done.Material == nil || done.Material.ID != u.Material.ID {
				t.Fatalf("the session does not name its material: %+v", done)
			}
			assertNoPlaintext(t, s, marker)

			// An abandoned session: the janitor takes it, blobs and rows,
			// once it is older than VAULT_UPLOAD_EXPIRY (it runs at start).
			var ab uploadSession
			w.op.expect(201, "POST", "/cases/"+caseID+"/uploads", map[string]any{"kind": "other", "filename": "abandoned.bin"}).json(t, &ab)
			if r := w.op.patchChunk(ab.ID, 0, doc[:1<<20], "application/offset+octet-stream"); r.Status != 200 {
				t.Fatalf("chunk: %d %s", r.Status, r.Body)
			}
			blobs := s.query(t, "SELECT blob_id FROM upload_segments WHERE upload_id = '"+ab.ID+"'")
			if len(blobs) != 1 || !s.blobExists(t, blobs[0]) {
				t.Fatalf("segment blobs %v", blobs)
			}
			s.stop()
			time.Sleep(1100 * time.Millisecond) // past the expiry of 1 s
			s.start()
			deadline := time.Now().Add(60 * time.Second)
			for {
				st, _ := w.op.headOffset(ab.ID)
				if st == 404 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("abandoned session still answers %d", st)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if s.blobExists(t, blobs[0]) {
				t.Fatal("the abandoned session's segment blob survived")
			}
			if left := s.query(t, "SELECT blob_id FROM upload_segments"); len(left) != 0 {
				t.Fatalf("segment rows left: %v", left)
			}
			// The completed one's material is untouched.
			c = w.op.expect(200, "GET", "/materials/"+u.Material.ID+"/content", nil)
			if got := sha256.Sum256(c.Body); got != sum {
				t.Fatal("the material changed after the janitor ran")
			}
		})
	}
}

// query runs a read-only SQL query on the server's database.
func (s *server) query(t testing.TB, q string) []string {
	t.Helper()
	c, err := openSQL(s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	out, err := c.strings(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// blobExists looks in the server's blob store itself.
func (s *server) blobExists(t testing.TB, id string) bool {
	t.Helper()
	env := map[string]string{}
	for _, e := range s.env {
		if k, v, ok := strings.Cut(e, "="); ok {
			env[k] = v
		}
	}
	if env["VAULT_S3_ENDPOINT"] == "" {
		_, err := os.Stat(filepath.Join(s.data, "blobs", id))
		return err == nil
	}
	mc, err := minio.New(env["VAULT_S3_ENDPOINT"], &minio.Options{
		Creds: credentials.NewStaticV4(env["VAULT_S3_ACCESS_KEY"], env["VAULT_S3_SECRET_KEY"], ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = mc.StatObject(ctx, env["VAULT_S3_BUCKET"], id, minio.StatObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).StatusCode != http.StatusNotFound {
		t.Fatalf("stat blob %s: %v", id, err)
	}
	return err == nil
}
