package sqldb

import (
	"context"
	"fmt"
	"sort"

	"gorm.io/gorm"
)

// SchemaVersions is the version of every component's schema in db.
func SchemaVersions(ctx context.Context, db *gorm.DB) (map[string]int, error) {
	return schemaVersions(ctx, db.WithContext(ctx).Model(&schemaMigration{}))
}

// StoppingVersions is, for every component, the last version applied by a
// step that older instances must not serve beside (Step.KeepsOlder unset).
func StoppingVersions(ctx context.Context, db *gorm.DB) (map[string]int, error) {
	return schemaVersions(ctx, db.WithContext(ctx).Model(&schemaMigration{}).Where("stops_older"))
}

func schemaVersions(ctx context.Context, q *gorm.DB) (map[string]int, error) {
	var rows []struct {
		Component string
		Version   int
	}
	if err := q.Select("component, MAX(version) AS version").Group("component").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read schema versions: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Component] = r.Version
	}
	return out, nil
}

// SchemaMove is a component migrated past the version a process started on.
type SchemaMove struct {
	Component string
	From, To  int
}

func (m SchemaMove) Error() string {
	return fmt.Sprintf("%v: %s was migrated from version %d to %d by a newer vaultd", ErrSchemaTooNew, m.Component, m.From, m.To)
}

func (m SchemaMove) Unwrap() error { return ErrSchemaTooNew }

// SchemaMoved compares the versions a process started on (its own schema,
// as it migrated it: SchemaVersions) with the stopping versions now in the
// database (StoppingVersions): a component at a higher one, or a new one,
// was migrated by a newer binary, and this process may write rows that
// schema refuses (a row it leaves untagged) or read columns moved under
// its prepared statements. The first such component, by name, is returned.
func SchemaMoved(started, now map[string]int) (SchemaMove, bool) {
	names := make([]string, 0, len(now))
	for c := range now {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		if now[c] > started[c] {
			return SchemaMove{Component: c, From: started[c], To: now[c]}, true
		}
	}
	return SchemaMove{}, false
}
