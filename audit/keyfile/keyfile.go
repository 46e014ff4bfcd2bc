// Package keyfile writes key files so that a crash never leaves one half
// written and a power cut never loses one that something already depends
// on: a synced temporary file linked into place, then the directory synced.
// The checkpoint signer key (package audit) and the master keys (package
// vault/crypt) are written through it.
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteOnce writes content at path, mode 0600, atomically and only if path
// does not exist yet (the error then wraps fs.ErrExist): two processes
// starting at once never overwrite each other's key, and the loser reads a
// complete file.
func WriteOnce(path string, content []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if _, err := tmp.Write(content); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close key file: %w", err)
	}
	// Link, unlike rename, refuses to replace an existing key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write key file %s: %w", path, err)
		}
		// Filesystems without hard links: rename after checking absence.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("write key file %s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("write key file %s: %w", path, err)
		}
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of dir durable (new or renamed files in it).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	return nil
}
