package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// assertNoPlaintext proves that the marker written into every document never
// reached the data directory, the server's temp directory or its log.
func assertNoPlaintext(t *testing.T, s *server, marker string) {
	t.Helper()
	m := []byte(marker)
	for _, dir := range []string{s.data, s.tmp} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, m) {
				t.Errorf("plaintext marker found in %s", path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s: %v", dir, err)
		}
	}
	if strings.Contains(s.log.String(), marker) {
		t.Errorf("plaintext marker found in the server log")
	}
}
