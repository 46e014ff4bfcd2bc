package sqldb_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestSchemaMovedByANewerBinary: an instance's own schema is what it
// migrated; a newer binary's step moves it unless that step is marked to
// keep older instances, and a component the instance never had moves it
// too.
func TestSchemaMovedByANewerBinary(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := sqldbtest.Open(t, dialect)
			step := func(v int, keeps bool) sqldb.Step {
				return sqldb.Step{Version: v, Name: "step", KeepsOlder: keeps, Up: func(*gorm.DB, string) error { return nil }}
			}
			// The table as binaries before StopsOlder made it, with a
			// row of theirs.
			for _, q := range []string{
				"CREATE TABLE schema_migrations (component varchar(64), version integer, name varchar(200) NOT NULL, applied_at timestamp NOT NULL, PRIMARY KEY (component, version))",
				"INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ('legacy', 1, 'step', CURRENT_TIMESTAMP)",
			} {
				if err := db.Exec(q).Error; err != nil {
					t.Fatal(err)
				}
			}
			old := []sqldb.Step{step(1, false), step(2, false)}
			if err := sqldb.Migrate(ctx, db, "c", old); err != nil {
				t.Fatal(err)
			}
			if now, err := sqldb.StoppingVersions(ctx, db); err != nil || now["legacy"] != 1 {
				t.Fatalf("an older binary's step after the table gained stops_older: %v, %v", now, err)
			}
			started, err := sqldb.SchemaVersions(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			moved := func() (sqldb.SchemaMove, bool) {
				t.Helper()
				now, err := sqldb.StoppingVersions(ctx, db)
				if err != nil {
					t.Fatal(err)
				}
				return sqldb.SchemaMoved(started, now)
			}
			if mv, ok := moved(); ok {
				t.Fatalf("own schema taken for a move: %+v", mv)
			}
			// A newer binary adds a step the old instances may serve
			// beside: no move.
			if err := sqldb.Migrate(ctx, db, "c", append(old, step(3, true))); err != nil {
				t.Fatal(err)
			}
			if mv, ok := moved(); ok {
				t.Fatalf("a step that keeps older instances taken for a move: %+v", mv)
			}
			// Then one they may not.
			if err := sqldb.Migrate(ctx, db, "c", append(old, step(3, true), step(4, false))); err != nil {
				t.Fatal(err)
			}
			mv, ok := moved()
			if !ok || mv != (sqldb.SchemaMove{Component: "c", From: 2, To: 4}) {
				t.Fatalf("after a stopping step: %+v, %v", mv, ok)
			}
			if !errors.Is(mv, sqldb.ErrSchemaTooNew) {
				t.Errorf("a move does not wrap ErrSchemaTooNew: %v", mv)
			}
			// A component this instance never migrated.
			started["c"] = 4
			if err := sqldb.Migrate(ctx, db, "d", []sqldb.Step{step(1, false)}); err != nil {
				t.Fatal(err)
			}
			if mv, ok := moved(); !ok || mv.Component != "d" {
				t.Fatalf("a new component: %+v, %v", mv, ok)
			}
		})
	}
}
