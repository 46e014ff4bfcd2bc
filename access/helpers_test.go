package access

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/crypt"
)

// cheapArgon2id keeps tests fast; the PHC test exercises the real defaults.
var cheapArgon2id = Argon2id{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// countingHasher counts the hashing work a login does.
type countingHasher struct {
	PasswordHasher
	hashes, verifies atomic.Int64
}

func (c *countingHasher) Hash(p string) (string, error) {
	c.hashes.Add(1)
	return c.PasswordHasher.Hash(p)
}

// Decoy passes the wrapped hasher's decoys through, as vaultd's Argon2id
// makes them: Login checks unknown usernames against one.
func (c *countingHasher) Decoy() (string, error) {
	if d, ok := c.PasswordHasher.(decoyMaker); ok {
		return d.Decoy()
	}
	return c.Hash(newID(time.Now()))
}

func (c *countingHasher) Verify(p, h string) (bool, error) {
	c.verifies.Add(1)
	return c.PasswordHasher.Verify(p, h)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	db     *gorm.DB
	svc    *Service
	clock  *clock
	hasher *countingHasher
	opts   Options
}

func newFixture(t *testing.T, dialect string, tweak func(*Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	db := sqldbtest.Open(t, dialect)
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	f := &fixture{db: db, clock: &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)},
		hasher: &countingHasher{PasswordHasher: cheapArgon2id}}
	// The tests hand notices over themselves (HandleNotice); the trust in
	// them that Listen earns is tested in notify_test.go.
	f.opts = Options{Now: f.clock.Now, Hasher: f.hasher, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), trustNotices: true,
		RowTagger: testTagger{key: []byte("access tests' row key")}}
	if tweak != nil {
		tweak(&f.opts)
	}
	f.svc = f.restart(t)
	return f
}

// restart builds a new Service over the same database, as a process restart would.
func (f *fixture) restart(t *testing.T) *Service {
	t.Helper()
	s, err := New(context.Background(), f.db, f.opts)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	return s
}

func (f *fixture) org(t *testing.T, name string, kind OrgKind) Org {
	t.Helper()
	o, err := f.svc.CreateOrg(context.Background(), name, kind)
	if err != nil {
		t.Fatalf("create org %s: %v", name, err)
	}
	return o
}

const testPassword = "correct horse battery"

func (f *fixture) user(t *testing.T, username string, org Org, roles ...Role) Principal {
	t.Helper()
	u, err := f.svc.CreateUser(context.Background(), NewUser{Username: username, Org: org.ID, Password: testPassword, Roles: roles})
	if err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
	return Principal{User: u, OrgKind: org.Kind}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, dialect string)) {
	t.Helper()
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) { fn(t, d) })
	}
}

// testTagger tags rows as *crypt.CaseKey does (an HMAC over the table and
// the length-prefixed fields), under a fixed key: access's tests need no
// vault key.
type testTagger struct{ key []byte }

func (t testTagger) RowTag(table string, fields ...string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(table))
	for _, f := range fields {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

func (t testTagger) CheckRowTag(tag []byte, table string, fields ...string) bool {
	return hmac.Equal(tag, t.RowTag(table, fields...))
}

func (t testTagger) RowTagChecker(table string) RowTagChecker {
	return &testTagChecker{t: t, table: table}
}

// testTagChecker checks through testTagger.CheckRowTag: the tests of the
// fast path use vaultd's (crypt.RowTagChecker).
type testTagChecker struct {
	t      testTagger
	table  string
	fields []string
}

func (c *testTagChecker) Field(b []byte)       { c.fields = append(c.fields, string(b)) }
func (c *testTagChecker) FieldString(s string) { c.fields = append(c.fields, s) }
func (c *testTagChecker) FieldInt(i int64)     { c.fields = append(c.fields, strconv.FormatInt(i, 10)) }

func (c *testTagChecker) Check(tag []byte) bool {
	ok := c.t.CheckRowTag(tag, c.table, c.fields...)
	c.fields = c.fields[:0]
	return ok
}

// caseKeyTagger is vaultd's RowTagger (cmd/vaultd's rowTagger): a vault
// key's tags and its crypt.RowTagChecker, for the tests and benchmarks of
// the path a start takes.
type caseKeyTagger struct{ *crypt.CaseKey }

func (k caseKeyTagger) RowTagChecker(table string) RowTagChecker { return k.NewRowTagChecker(table) }

func newCaseKeyTagger(tb testing.TB) caseKeyTagger {
	tb.Helper()
	m, err := crypt.GenerateMaster()
	if err != nil {
		tb.Fatal(err)
	}
	wrapped, err := m.NewCaseKey()
	if err != nil {
		tb.Fatal(err)
	}
	k, err := m.OpenCaseKey(wrapped)
	if err != nil {
		tb.Fatal(err)
	}
	return caseKeyTagger{k}
}
