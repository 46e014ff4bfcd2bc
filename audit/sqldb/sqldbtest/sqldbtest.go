// Package sqldbtest gives tests a real database: a fresh SQLite file, or a
// fresh schema on the PostgreSQL server named by VAULT_TEST_DATABASE_URL
// (which scripts/test.sh starts). With CI=true a missing server fails the
// test instead of skipping it.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// Backends lists the database kinds every storage test should run on.
var Backends = []string{sqldb.SQLite, sqldb.Postgres}

// Require skips (or, under CI=true, fails) when a component is unavailable.
func Require(t testing.TB, what, envVar string) string {
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

// URL returns a database URL of the given dialect for a fresh, empty
// database that is removed when the test ends.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == sqldb.SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "vault.db")
	}
	base := Require(t, "PostgreSQL", "VAULT_TEST_DATABASE_URL")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sqldb.Open(context.Background(), base)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		sqldb.Close(admin)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse VAULT_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns an open, empty database of the dialect, closed at cleanup.
func Open(t testing.TB, dialect string) *gorm.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), URL(t, dialect))
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { sqldb.Close(db) })
	return db
}

// Name is a helper for subtest names.
func Name(dialect string) string { return fmt.Sprintf("db=%s", dialect) }
