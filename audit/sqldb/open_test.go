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
// path, or sqlite:PATH, still opens SQLite.
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
		Close(db)
	}
}
