package vault

import (
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestOverlappingSweepsRaiseEachFlagOnce: the leader's jobs may overlap
// (a leader that lost the lead finishes its sweep while the new one runs
// its first at once); each flag is still raised, audited and sent once
// (review h28d, finding 4). On PostgreSQL the two sweeps are two instances
// over one database; SQLite is one process's, so there they are one
// instance's two.
func TestOverlappingSweepsRaiseEachFlagOnce(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 9, 1, 2, 0, 0, 0, time.UTC), true)
			dueMix(t, f)
			f.at("2026-12-31")
			other := f.svc
			if sqldb.Dialect(f.svc.db) == sqldb.Postgres {
				other = f.restart()
			}
			var wg sync.WaitGroup
			sws := make([]Sweep, 2)
			for i, s := range []*Service{f.svc, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sw, err := s.SweepDeadlines(f.ctx)
					if err != nil {
						t.Errorf("sweep %d: %v", i, err)
					}
					sws[i] = sw
				}()
			}
			wg.Wait()
			var rows []deadlineFlagRow
			if err := f.svc.db.Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "deadline.flag", Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			f.hookMu.Lock()
			hooks := len(f.hooks)
			f.hookMu.Unlock()
			if len(rows) == 0 {
				t.Fatal("no flag raised: the fixture has nothing due")
			}
			if len(evs) != len(rows) || hooks != len(rows) || sws[0].Flagged+sws[1].Flagged != len(rows) {
				t.Errorf("%d flags raised, but %d deadline.flag audit events, %d webhooks and sweeps %+v / %+v",
					len(rows), len(evs), hooks, sws[0], sws[1])
			}
		})
	}
}
