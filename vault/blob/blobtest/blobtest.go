// Package blobtest gives tests real blob stores: a local directory, and the
// S3 server named by VAULT_TEST_S3_* (scripts/test.sh starts a versitygw),
// each test under its own fresh key prefix that is emptied at cleanup.
// Outside CI a missing S3 server leaves "s3" out; with CI=true it fails the
// test, the same rule as sqldbtest.Require.
package blobtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/blob"
)

// Stores returns every available store, keyed "local" and "s3", each empty.
func Stores(t testing.TB) map[string]blob.Store {
	t.Helper()
	local, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatalf("local blob store: %v", err)
	}
	stores := map[string]blob.Store{"local": local}
	if os.Getenv("VAULT_TEST_S3_ENDPOINT") == "" && os.Getenv("CI") != "true" {
		t.Log("s3 blob store not tested: set VAULT_TEST_S3_* or run scripts/test.sh")
		return stores
	}
	stores["s3"] = S3(t)
	return stores
}

// S3 returns an S3 store under a fresh prefix; its objects are removed at cleanup.
func S3(t testing.TB) *blob.S3 {
	t.Helper()
	cfg := S3Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := blob.NewS3(ctx, cfg)
	if err != nil {
		t.Fatalf("s3 blob store: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var ids []string
		err := s.List(ctx, func(id string, _ time.Time) error {
			ids = append(ids, id)
			return nil
		})
		for _, id := range ids {
			if derr := s.Delete(ctx, id); derr != nil && err == nil {
				err = derr
			}
		}
		if err != nil {
			t.Errorf("clean up s3 prefix %s: %v", cfg.Prefix, err)
		}
	})
	return s
}

// S3Config returns the test S3 server's configuration with a fresh Prefix.
// Without VAULT_TEST_S3_ENDPOINT it skips the test, or fails it under CI=true.
func S3Config(t testing.TB) blob.S3Config {
	t.Helper()
	endpoint := require(t, "S3 (versitygw)", "VAULT_TEST_S3_ENDPOINT")
	bucket := os.Getenv("VAULT_TEST_S3_BUCKET")
	if bucket == "" {
		bucket = "crvault-test"
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return blob.S3Config{
		Endpoint:  endpoint,
		Bucket:    bucket,
		AccessKey: os.Getenv("VAULT_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("VAULT_TEST_S3_SECRET_KEY"),
		Region:    "us-east-1",
		Prefix:    "t-" + hex.EncodeToString(b) + "/",
	}
}

// require has sqldbtest.Require's semantics, without pulling the database
// packages into every blob test.
func require(t testing.TB, what, envVar string) string {
	t.Helper()
	v := os.Getenv(envVar)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true but %s is not set (run scripts/test.sh)", what, envVar)
		}
		t.Skipf("%s not available: set %s or run scripts/test.sh", what, envVar)
	}
	return v
}

// Tmpfs mounts a fresh tmpfs of size bytes and returns its directory,
// unmounted at cleanup: a filesystem a test can fill up. Mounting needs
// root; without it the test is skipped, or fails under CI=true.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	MountTmpfs(t, dir, size)
	return dir
}

// MountTmpfs mounts a tmpfs of size bytes on dir (created if missing) until
// the test ends, with Tmpfs's rules.
func MountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (needs root): %v: %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}
