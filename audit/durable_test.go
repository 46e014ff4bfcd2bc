package audit

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestAppendCommitsDurablyWhateverTheServerSays runs the writer on
// connections whose own default is synchronous_commit=off (as a careless
// server or role configuration would give them) and records, from inside
// each audit transaction, the level that transaction commits with: it must
// be the configured one, never the connection's.
func TestAppendCommitsDurablyWhateverTheServerSays(t *testing.T) {
	for _, level := range []string{"", SyncOn, SyncRemoteApply} {
		want, name := level, level
		if level == "" {
			want, name = SyncOn, "default"
		}
		t.Run("level="+name, func(t *testing.T) {
			u, err := url.Parse(sqldbtest.URL(t, sqldb.Postgres))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("synchronous_commit", "off")
			u.RawQuery = q.Encode()
			ctx := context.Background()
			db, err := sqldb.Open(ctx, u.String())
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { sqldb.Close(db) })
			var def string
			if err := db.Raw("SHOW synchronous_commit").Scan(&def).Error; err != nil || def != "off" {
				t.Fatalf("connection default = %q (%v); the test needs off to mean anything", def, err)
			}
			if err := Migrate(ctx, db); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			exec(t, db, "CREATE TABLE sync_probe (level text NOT NULL)")
			exec(t, db, `CREATE FUNCTION sync_probe_fn() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN INSERT INTO sync_probe VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$`)
			exec(t, db, "CREATE TRIGGER sync_probe_t AFTER INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION sync_probe_fn()")

			l := openLog(t, db, Options{KeyDir: t.TempDir(), CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry(), SyncCommit: level})
			for i := range 20 {
				if _, err := l.Append(ctx, sampleEvent(i)); err != nil {
					t.Fatalf("append: %v", err)
				}
			}
			var levels []string
			if err := db.Raw("SELECT level FROM sync_probe").Scan(&levels).Error; err != nil {
				t.Fatal(err)
			}
			if len(levels) != 20 {
				t.Fatalf("probe saw %d inserts, want 20", len(levels))
			}
			for _, got := range levels {
				if got != want {
					t.Fatalf("an audit transaction committed with synchronous_commit=%s, want %s", got, want)
				}
			}
		})
	}
}

// TestConnectionsCommitDurablyByDefault: every other write of crvault (a
// material's row, a session) is acknowledged to a client too, so the
// connections themselves ask for synchronous_commit=on unless the URL says
// otherwise.
func TestConnectionsCommitDurablyByDefault(t *testing.T) {
	base := sqldbtest.Require(t, "PostgreSQL", "VAULT_TEST_DATABASE_URL")
	ctx := context.Background()
	admin, err := sqldb.Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close(admin) })
	// A role whose administrator turned durability off for it.
	role := "t_async_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")[:12] + time.Now().Format("150405")
	exec(t, admin, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() { admin.Exec("DROP ROLE IF EXISTS " + role) })
	exec(t, admin, "ALTER ROLE "+role+" SET synchronous_commit = off")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	db, err := sqldb.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("connect as %s (the test cluster trusts loopback): %v", role, err)
	}
	defer sqldb.Close(db)
	var got string
	if err := db.Raw("SHOW synchronous_commit").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if got != "on" {
		t.Fatalf("synchronous_commit = %q on a crvault connection of a role set to off, want on", got)
	}
}

func TestOpenRefusesUnknownSyncLevel(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	if err := Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	for _, level := range []string{"off", "local", "remote_write", "ON "} {
		_, err := Open(context.Background(), db, Options{KeyDir: t.TempDir(), SyncCommit: level})
		if err == nil || !strings.Contains(err.Error(), "synchronous commit level") {
			t.Fatalf("level %q: err = %v, want a refusal", level, err)
		}
	}
}
