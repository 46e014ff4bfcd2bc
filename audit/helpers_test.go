package audit

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

type fixture struct {
	db      *gorm.DB
	log     *Log
	opts    Options
	witness *memWitness
}

func newFixture(t testing.TB, dialect string) *fixture {
	t.Helper()
	db := sqldbtest.Open(t, dialect)
	if err := Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	w := &memWitness{}
	opts := Options{KeyDir: t.TempDir(), Witnesses: []Witness{w}, CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry()}
	return &fixture{db: db, log: openLog(t, db, opts), opts: opts, witness: w}
}

func openLog(t testing.TB, db *gorm.DB, opts Options) *Log {
	t.Helper()
	l, err := Open(context.Background(), db, opts)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func sampleEvent(i int) Event {
	return Event{
		Actor: fmt.Sprintf("user-%d", i%3), ActorOrg: "org-a", Action: []string{"material.read", "case.read", "audit.query"}[i%3],
		Outcome: []Outcome{Allowed, Denied, Errored}[i%3], CaseID: fmt.Sprintf("case-%d", i%2), Resource: fmt.Sprintf("mat-%d", i),
		Purpose: "review", IP: "127.0.0.1", RequestID: fmt.Sprintf("req-%d", i),
	}
}

func (f *fixture) appendN(t *testing.T, n int) []Event {
	t.Helper()
	var out []Event
	for i := range n {
		e, err := f.log.Append(context.Background(), sampleEvent(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

// exec runs tamper SQL, failing the test on error.
func exec(t testing.TB, db *gorm.DB, q string, args ...any) {
	t.Helper()
	if err := db.Exec(q, args...).Error; err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

// dropTriggers plays the attacker with database access: the guard rails are
// in the database, so a superuser can remove them; detection must not
// depend on them.
func dropTriggers(t *testing.T, db *gorm.DB) {
	t.Helper()
	for _, tbl := range appendOnlyTables {
		if sqldb.Dialect(db) == sqldb.Postgres {
			exec(t, db, "ALTER TABLE "+tbl+" DISABLE TRIGGER USER")
			continue
		}
		for _, op := range []string{"UPDATE", "DELETE"} {
			exec(t, db, fmt.Sprintf("DROP TRIGGER %s_no_%s", tbl, op))
		}
	}
}

// reopen gives a second, independent pool on the same database, standing
// in for a second vaultd process.
func reopen(t *testing.T, db *gorm.DB) *gorm.DB {
	t.Helper()
	var u string
	if sqldb.Dialect(db) == sqldb.Postgres {
		var schema string
		if err := db.Raw("SELECT current_schema()").Row().Scan(&schema); err != nil {
			t.Fatal(err)
		}
		base, err := url.Parse(os.Getenv("VAULT_TEST_DATABASE_URL"))
		if err != nil {
			t.Fatal(err)
		}
		q := base.Query()
		q.Set("search_path", schema)
		base.RawQuery = q.Encode()
		u = base.String()
	} else {
		var seq int
		var name, file string
		if err := db.Raw("PRAGMA database_list").Row().Scan(&seq, &name, &file); err != nil {
			t.Fatal(err)
		}
		u = "sqlite:" + file
	}
	db2, err := sqldb.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close(db2) })
	return db2
}

// memWitness is a Witness in memory that keeps the newest checkpoint and
// refuses to go backwards, like the real ones in audit/witness (which
// cannot be imported here without a cycle, and are tested there).
type memWitness struct {
	mu     sync.Mutex
	size   int64
	signed []byte
	stores int
}

func (w *memWitness) Latest(_ context.Context, accept func([]byte) error) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.signed == nil {
		return nil, nil
	}
	if err := accept(w.signed); err != nil {
		return nil, err
	}
	return append([]byte(nil), w.signed...), nil
}

func (w *memWitness) Store(_ context.Context, size int64, signed []byte, _ func([]byte) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.signed != nil && size < w.size {
		return fmt.Errorf("%w: holds %d, offered %d", ErrStale, w.size, size)
	}
	w.size, w.signed = size, append([]byte(nil), signed...)
	w.stores++
	return nil
}

func (w *memWitness) String() string { return "memory" }

func (w *memWitness) latest() (int64, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.signed
}
