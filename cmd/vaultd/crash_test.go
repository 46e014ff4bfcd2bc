package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slowReader hands out a generated stream and signals once a threshold is
// passed, so the test can kill the server mid-upload.
type slowReader struct {
	r       io.Reader
	n       int64
	trigger int64
	passed  chan struct{}
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.n >= s.trigger && s.passed != nil {
		close(s.passed)
		s.passed = nil
		time.Sleep(200 * time.Millisecond) // let the server write what it has
	}
	return n, err
}

// TestCrashMidUpload kills vaultd with SIGKILL during an upload, restarts it
// and checks that no half material exists, that every earlier material still
// reads back intact, and that the audit log still verifies.
func TestCrashMidUpload(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-CRASH")
			var before struct {
				Items []map[string]any `json:"items"`
			}
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &before)

			size := int64(256 << 20)
			body := &slowReader{r: newGen(size, 3, "MARKER-CRASH"), trigger: 24 << 20, passed: make(chan struct{})}
			passed := body.passed
			req, _ := http.NewRequest("POST", s.base+"/api/v1/cases/"+caseID+"/materials?kind=other&filename=half.bin", body)
			req.ContentLength = size
			req.Header.Set("Authorization", "Bearer "+w.op.token)
			req.Header.Set("Content-Type", "application/octet-stream")
			done := make(chan error, 1)
			go func() {
				res, err := http.DefaultClient.Do(req)
				if err == nil {
					res.Body.Close()
					if res.StatusCode == 201 {
						err = io.ErrUnexpectedEOF // the upload must not have completed
					}
				}
				done <- err
			}()
			select {
			case <-passed:
			case err := <-done:
				t.Fatalf("upload ended before the crash: %v", err)
			case <-time.After(2 * time.Minute):
				t.Fatal("upload never got going")
			}
			s.kill()
			if err := <-done; err == io.ErrUnexpectedEOF {
				t.Fatal("the upload completed although the server was killed")
			}

			s.start()
			w.loginAll(t)
			var after struct {
				Items []struct {
					ID       string `json:"id"`
					Filename string `json:"filename"`
				} `json:"items"`
			}
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &after)
			if len(after.Items) != len(before.Items) {
				t.Fatalf("%d materials after the crash, %d before", len(after.Items), len(before.Items))
			}
			for _, m := range after.Items {
				if m.Filename == "half.bin" {
					t.Fatal("a half-uploaded material is listed")
				}
			}
			for id, want := range docs {
				r := w.op.expect(200, "GET", "/materials/"+id+"/content", nil)
				sum := sha256.Sum256(want)
				if !bytes.Equal(r.Body, want) || r.Header.Get("X-Content-SHA256") != hex.EncodeToString(sum[:]) {
					t.Fatalf("material %s changed across the crash", id)
				}
			}
			// What the crash left in the local blob directory is only a temp
			// file the store reclaims, never a blob under a real id.
			if be.name == "sqlite+local" {
				entries, _ := os.ReadDir(filepath.Join(s.data, "blobs"))
				blobs := 0
				for _, e := range entries {
					if !strings.HasPrefix(e.Name(), ".tmp-") {
						blobs++
					}
				}
				if blobs != len(docs) {
					t.Errorf("%d blobs on disk for %d materials", blobs, len(docs))
				}
			}
			s.stop()
			if out, errs, code := s.cli("", "audit", "verify"); code != 0 {
				t.Fatalf("audit verify after crash: exit %d: %s %s", code, out, errs)
			}
		})
	}
}
