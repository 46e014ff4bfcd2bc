package main

import (
	"bytes"
	"io"
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
	for _, dir := range []string{s.data, s.tmp} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			found, err := fileContains(path, []byte(marker))
			if err != nil {
				return err
			}
			if found {
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

// fileContains scans a file of any size in bounded memory.
func fileContains(path string, needle []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	keep := 0
	for {
		n, err := f.Read(buf[keep:])
		if bytes.Contains(buf[:keep+n], needle) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		total := keep + n
		keep = min(len(needle)-1, total)
		copy(buf, buf[total-keep:total])
	}
}
