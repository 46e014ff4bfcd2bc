package main

import (
	"context"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// schemaWatchEvery is how often a serving instance checks that nobody
// migrated its database past the schema it started on.
const schemaWatchEvery = 2 * time.Second

// watchSchema reports on moved when a newer vaultd migrates the database
// this instance serves. An upgrade must stop the old instances first, and
// nothing else makes it: an old instance left running writes rows the new
// schema's checks refuse (row tags it does not know) and reads columns
// moved under its prepared statements. So it stops serving, within
// schemaWatchEvery of the migration; a restart on the old binary is then
// refused with ErrSchemaTooNew, which names the fix. A database it cannot
// read for a while is logged, not taken for a move: the requests fail on
// their own then. A newer step marked to keep older instances
// (sqldb.Step.KeepsOlder) lets this one serve on, for a rolling upgrade.
func watchSchema(ctx context.Context, db *gorm.DB, started map[string]int, every time.Duration, log *slog.Logger, moved chan<- sqldb.SchemaMove) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, every)
		now, err := sqldb.StoppingVersions(qctx, db)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("schema watch: the database's schema versions could not be read", "err", err)
			}
			continue
		}
		if mv, ok := sqldb.SchemaMoved(started, now); ok {
			moved <- mv
			return
		}
	}
}
