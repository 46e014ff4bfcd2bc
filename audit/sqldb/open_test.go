package sqldb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesUnknownSchemes: a database URL with a scheme other than
// PostgreSQL's is refused, with the password kept out of the message,
// instead of being taken for a SQLite file path: "postgress://..." used to
// open a fresh, empty vault in a directory named after the password. A
// path, or sqlite:PATH, still opens SQLite, in files only their owner may
// read.
func TestOpenRefusesUnknownSchemes(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, url := range []string{
		"postgress://crvault:S3cret@127.0.0.1:5432/crvault",
		"Postgres://crvault:S3cret@127.0.0.1:5432/crvault",
		"pg://crvault:S3cret@db/crvault",
		"mysql://crvault:S3cret@db/crvault",
	} {
		db, err := Open(ctx, url)
		if err == nil {
			Close(db)
			t.Errorf("%s opened", url)
			continue
		}
		if !strings.Contains(err.Error(), "unknown database URL scheme") || strings.Contains(err.Error(), "S3cret") {
			t.Errorf("%s: %v", url, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused URLs left %v behind", ents)
	}
	for _, url := range []string{filepath.Join(dir, "a.db"), "sqlite:" + filepath.Join(dir, "b.db"), "c.db"} {
		db, err := Open(ctx, url)
		if err != nil {
			t.Errorf("%s: %v", url, err)
			continue
		}
		if Dialect(db) != SQLite {
			t.Errorf("%s opened %s", url, Dialect(db))
		}
		if err := db.Exec("CREATE TABLE t (x int)").Error; err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(url, "sqlite:")
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v %v, want mode 0600", p, fi.Mode(), err)
			}
		}
		Close(db)
	}
	// A database made before is made private when opened.
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	Close(db)
	if fi, err := os.Stat(old); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("an existing database: %v %v, want mode 0600", fi.Mode(), err)
	}
}
