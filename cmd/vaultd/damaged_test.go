package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDamagedBlobAnswersMaterialDamaged: a document whose stored blob was
// altered outside crvault answers 500 with the stable code
// material_damaged as problem+json (not the generic internal), and no byte
// of it; the server log names the blob to restore.
func TestDamagedBlobAnswersMaterialDamaged(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0]) // the local blob store, whose files the test can alter
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "damaged")
	files, err := filepath.Glob(filepath.Join(s.data, "blobs", "*"))
	if err != nil {
		t.Fatal(err)
	}
	altered := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue // a directory, or not a blob
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		altered++
	}
	if altered < len(docs) {
		t.Fatalf("altered %d blob files under %s, want at least %d", altered, filepath.Join(s.data, "blobs"), len(docs))
	}
	for id := range docs {
		r := w.op.expect(500, "GET", "/materials/"+id+"/content", nil)
		if p := r.problem(t); p["code"] != "material_damaged" {
			t.Fatalf("damaged material %s of case %s: %v", id, caseID, p)
		}
		break
	}
	if _, ok := s.waitLog(t, "stored material damaged", "blob"); !ok {
		t.Fatalf("no log line names the damaged blob:\n%s", s.log.String())
	}
}
