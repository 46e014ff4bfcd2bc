package audit

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// appendOnlyTables are refused UPDATE and DELETE by the database itself.
var appendOnlyTables = []string{"audit_events", "audit_hashes", "audit_checkpoints"}

var steps = []sqldb.Step{
	{Version: 1, Name: "events, tree hashes, checkpoints; append-only triggers", Up: migrate1},
	{Version: 2, Name: "indexes for queries by action, outcome and time at scale", Up: migrate2},
}

// Migrate creates or upgrades the audit tables and their append-only
// triggers (component "audit").
func Migrate(ctx context.Context, db *gorm.DB) error {
	return sqldb.Migrate(ctx, db, "audit", steps)
}

func migrate1(tx *gorm.DB, dialect string) error {
	blob, bigint := "BLOB", "INTEGER"
	if dialect == sqldb.Postgres {
		blob, bigint = "BYTEA", "BIGINT"
	}
	stmts := []string{
		`CREATE TABLE audit_events (
			seq ` + bigint + ` PRIMARY KEY,
			at_us BIGINT NOT NULL,
			actor TEXT NOT NULL,
			actor_org TEXT NOT NULL,
			action TEXT NOT NULL,
			outcome TEXT NOT NULL,
			case_id TEXT NOT NULL,
			resource TEXT NOT NULL,
			purpose TEXT NOT NULL,
			ip TEXT NOT NULL,
			request_id TEXT NOT NULL,
			detail TEXT NOT NULL,
			prev_hash TEXT NOT NULL,
			hash TEXT NOT NULL)`,
		`CREATE INDEX audit_events_case ON audit_events (case_id, seq)`,
		`CREATE INDEX audit_events_actor ON audit_events (actor, seq)`,
		`CREATE INDEX audit_events_time ON audit_events (at_us)`,
		// idx is tlog's stored-hash index; hash is the 32-byte node hash.
		`CREATE TABLE audit_hashes (idx ` + bigint + ` PRIMARY KEY, hash ` + blob + ` NOT NULL)`,
		`CREATE TABLE audit_checkpoints (
			size ` + bigint + ` PRIMARY KEY,
			root ` + blob + ` NOT NULL,
			note TEXT NOT NULL,
			created_us BIGINT NOT NULL)`,
	}
	if dialect == sqldb.Postgres {
		stmts = append(stmts, `CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$`)
		for _, t := range appendOnlyTables {
			stmts = append(stmts,
				`CREATE TRIGGER `+t+`_append_only BEFORE UPDATE OR DELETE ON `+t+` FOR EACH ROW EXECUTE FUNCTION audit_append_only()`,
				`CREATE TRIGGER `+t+`_no_truncate BEFORE TRUNCATE ON `+t+` FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`)
		}
	} else {
		for _, t := range appendOnlyTables {
			for _, op := range []string{"UPDATE", "DELETE"} {
				stmts = append(stmts, fmt.Sprintf(
					`CREATE TRIGGER %s_no_%s BEFORE %s ON %s BEGIN SELECT RAISE(ABORT, 'audit log is append-only: %s on %s refused'); END`,
					t, op, op, t, op, t))
			}
		}
	}
	for _, s := range stmts {
		if err := tx.Exec(s).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrate2 gives every filter of Query an index that also orders by seq, so
// a page is a short index range scan however large the log: (action, seq)
// and (outcome, seq) beside the (case_id, seq) and (actor, seq) of step 1,
// and (at_us, seq), which turns a time range into a range of sequence
// numbers (times never go backwards along the log).
func migrate2(tx *gorm.DB, _ string) error {
	for _, s := range []string{
		`CREATE INDEX audit_events_action ON audit_events (action, seq)`,
		`CREATE INDEX audit_events_outcome ON audit_events (outcome, seq)`,
		`CREATE INDEX audit_events_at_seq ON audit_events (at_us, seq)`,
		`DROP INDEX audit_events_time`,
	} {
		if err := tx.Exec(s).Error; err != nil {
			return err
		}
	}
	return nil
}
