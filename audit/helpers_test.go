package audit

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
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

// memWitness is a Witness in memory that keeps every checkpoint, answers
// with the newest and refuses to go backwards, like the S3 one in
// audit/witness (which cannot be imported here without a cycle, and is
// tested there).
type memWitness struct {
	mu     sync.Mutex
	size   int64
	signed []byte
	stores int
	all    []heldCheckpoint // in the order stored
	// evidence is what Keep kept, apart from all: Store never sees it.
	evidence []heldCheckpoint
	// named: History passes all but the newest by the size and root
	// their names carry, unread, as the witnesses of this release do;
	// otherwise it reads them all, as for names of earlier releases.
	named bool
}

type heldCheckpoint struct {
	size   int64
	signed []byte
}

// History passes what it holds above after, largest first.
func (w *memWitness) History(_ context.Context, after int64, fn func(Held) error) error {
	w.mu.Lock()
	held, named := slices.Clone(w.all), w.named
	w.mu.Unlock()
	slices.SortStableFunc(held, func(a, b heldCheckpoint) int { return cmp.Compare(b.size, a.size) })
	for i, h := range held {
		if h.size <= after {
			return nil
		}
		p := Held{Size: h.size, Signed: h.signed}
		if named {
			// Named as the witnesses name them: after the note's own
			// size and root (plant can put a note under another size).
			if _, root, err := CheckpointSizeRoot(h.signed); err == nil {
				p.Root, p.NamedRoot = root, true
				if i > 0 {
					p.Signed = nil
				}
			}
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// plant adds a checkpoint as someone with write access to the witness
// would (the S3 credentials add objects): one larger than the newest
// becomes the newest.
func (w *memWitness) plant(size int64, signed []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size > w.size {
		w.size, w.signed = size, slices.Clone(signed)
	}
	w.all = append(w.all, heldCheckpoint{size, slices.Clone(signed)})
}

// plantNewest adds a checkpoint that becomes the newest, and the first
// History passes among those of its size, whatever its size: the order in
// which a store lists two objects of one size depends on their names.
func (w *memWitness) plantNewest(signed []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	size, err := CheckpointSize(signed)
	if err != nil {
		panic(err)
	}
	w.size, w.signed = size, slices.Clone(signed)
	w.all = append([]heldCheckpoint{{size, slices.Clone(signed)}}, w.all...)
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
	w.stores++
	if w.signed != nil && size == w.size && bytes.Equal(signed, w.signed) {
		return nil // held already
	}
	w.size, w.signed = size, append([]byte(nil), signed...)
	w.all = append(w.all, heldCheckpoint{size, w.signed})
	return nil
}

func (w *memWitness) Keep(_ context.Context, size int64, signed []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evidence = append(w.evidence, heldCheckpoint{size, slices.Clone(signed)})
	return nil
}

func (w *memWitness) Evidence(_ context.Context, fn func(Held) error) error {
	w.mu.Lock()
	kept := slices.Clone(w.evidence)
	w.mu.Unlock()
	for _, h := range kept {
		if err := fn(Held{Size: h.size, Signed: h.signed}); err != nil {
			return err
		}
	}
	return nil
}

func (w *memWitness) String() string { return "memory" }

func (w *memWitness) latest() (int64, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.signed
}
