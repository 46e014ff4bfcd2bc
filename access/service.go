package access

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/configs"
)

// Options configures a Service. Zero values take the documented defaults.
type Options struct {
	// IdleTimeout ends a session not used for this long (default 8h).
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a session this long after login (default 24h).
	AbsoluteTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives events; never secrets (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, receives the package's Prometheus metrics.
	Registerer prometheus.Registerer
	// LoginRate throttles failed logins.
	LoginRate LoginRate
	// Hasher hashes passwords (default DefaultArgon2id).
	Hasher PasswordHasher
	// Sealer seals TOTP secrets at rest; without one, TOTP enrolment and
	// sign-in with TOTP answer ErrTOTPUnavailable (the command-line tools
	// need neither).
	Sealer Sealer
	// TOTPRequiredRoles must use TOTP. nil means DefaultTOTPRequiredRoles;
	// an empty, non-nil slice turns the requirement off.
	TOTPRequiredRoles []Role
	// ResyncInterval is how often Listen re-reads recent grant changes as
	// a safety net behind notifications (default 30s).
	ResyncInterval time.Duration
	// AccountCacheTTL is how long Authenticate may reuse an account and
	// its organisation as read (default 2s; negative: never). See
	// accountcache.go.
	AccountCacheTTL time.Duration
	// CaseSealer encrypts declarations' statements with their case's key
	// (default: stored as given; cmd/vaultd always sets it).
	CaseSealer CaseSealer
	// RowTagger tags the rows that decide access and checks their tags
	// (rowtags.go); nil: neither (cmd/vaultd always sets it when it holds
	// the keys). Run TagUntaggedRows once before the first New with one.
	RowTagger RowTagger
	// TrailEnds reads from the audit trail which grants the office ended
	// after an event (trailends.go): all of them before New returns (an
	// error fails New), then what was appended since, at every load of the
	// index, notice and resync. Nil: none (tests, and commands that decide
	// nothing).
	TrailEnds func(ctx context.Context, after int64) (TrailEnds, error)
	// LoadInBackground makes New return before every assignment is read
	// into memory: until the index is complete (Loaded), Decide reads the
	// caller's grants on the case from the database, so a start answers at
	// once whatever the number of assignments. Close stops the load.
	LoadInBackground bool

	// afterLoad, for tests, runs when a background load has read the tables
	// and before it catches up on changes made meanwhile and installs them.
	afterLoad func()
	// splitLoadAt, for tests, overrides how many assignments make a start
	// read the table in two halves (0: 100,000).
	splitLoadAt int
	// noticePing, for tests, overrides noticePingInterval.
	noticePing time.Duration
	// trustNotices, for tests of the index that hand notices over
	// themselves (HandleNotice) instead of running Listen: the index is
	// trusted as though Listen had a live connection for good.
	trustNotices bool
}

// Service is safe for concurrent use.
type Service struct {
	db        *gorm.DB
	now       func() time.Time
	log       *slog.Logger
	idle, abs time.Duration
	hasher    PasswordHasher
	caseSeal  CaseSealer
	tags      RowTagger
	trailEnds func(ctx context.Context, after int64) (TrailEnds, error)
	ends      ends
	// trailMu serialises the trail's reads; trailThrough is the number of
	// the last event read.
	trailMu      sync.Mutex
	trailThrough int64
	trailReadAt  time.Time
	dummyHash    string
	rate         LoginRate
	seal         Sealer
	totpRoles    []Role
	resync       time.Duration

	// shared: the database is PostgreSQL, which other instances may
	// change; the index is then trusted only while Listen proves its
	// notices arrive (noticesStale).
	shared bool
	// epoch is when New ran; notice proofs are measured from it (by the
	// monotonic clock when now is time.Now, so a wall-clock step cannot
	// stretch a proof).
	epoch time.Time
	// trustUntil (nanoseconds since epoch) is when the last proof that
	// the notice connection is alive lapses: Decide trusts the index for
	// other instances' changes only before it. 0 (never proven, or the
	// connection lost) means now. Only Listen's goroutine stores it.
	trustUntil atomic.Int64
	// noticePing is how often Listen proves its connection alive.
	noticePing time.Duration

	subMu sync.RWMutex
	subs  map[string][]func(ctx context.Context, key string)

	accounts *accountCache
	sessions *sessionStmt
	// attempts serialise the credential checks of each (username,
	// client) pair in this process (throttle.go).
	attempts *attemptStripes

	// mu guards enf and grants, the in-memory view of every unrevoked
	// assignment that Decide reads; Casbin's g rules hold the unsuspended
	// ones. Casbin has its own lock too; mu makes a change of both atomic.
	mu     sync.RWMutex
	enf    *casbin.SyncedEnforcer
	grants grantIndex
	// ready (guarded by mu) says grants hold every unrevoked assignment;
	// until then Decide reads from the database (readGrants).
	ready bool
	// writeMu serialises assignment changes so that check-then-insert is
	// atomic within this process.
	writeMu sync.Mutex
	// dirty (guarded by writeMu), while a background load runs, names the
	// (case, user) pairs changed since it began, here or on another
	// instance: the load's snapshot may predate them, so they are re-read
	// before it is installed. nil when no load runs.
	dirty map[caseUser]struct{}

	afterLoad   func()
	splitLoadAt int
	loaded      chan struct{} // closed once grants are ready
	stopLoad    context.CancelFunc
	loadDone    chan struct{} // closed when the background load ends

	logins         *prometheus.CounterVec
	decisions      *prometheus.CounterVec
	rowTagRefusals *prometheus.CounterVec
	trailRefusals  prometheus.Counter
	indexLoaded    prometheus.Gauge
}

type caseUser struct{ caseID, userID string }

// grant is the in-memory state of one unrevoked assignment.
type grant struct {
	user              string // the assignee (the case is the index's key)
	id, role, purpose string
	expiresAt         time.Time // zero: no expiry
	declared          bool      // a conflict:false declaration exists
	suspended         bool      // a conflict:true declaration exists
}

func (g grant) status(now time.Time) string {
	switch {
	case g.suspended:
		return StatusSuspended
	case !g.expiresAt.IsZero() && !now.Before(g.expiresAt):
		return StatusExpired
	}
	return StatusActive
}

// New builds the Service: it loads the Casbin model and role policy from
// configs.Casbin and indexes every unrevoked assignment in one bulk load,
// before it returns or, with Options.LoadInBackground, after. The database
// must already be migrated (Migrate).
func New(ctx context.Context, db *gorm.DB, opts Options) (*Service, error) {
	s := &Service{db: db, now: opts.Now, log: opts.Logger, idle: opts.IdleTimeout, abs: opts.AbsoluteTimeout, hasher: opts.Hasher,
		seal: opts.Sealer, tags: opts.RowTagger, trailEnds: opts.TrailEnds, totpRoles: opts.TOTPRequiredRoles, resync: opts.ResyncInterval, rate: opts.LoginRate.withDefaults(),
		subs: map[string][]func(context.Context, string){}, afterLoad: opts.afterLoad, loaded: make(chan struct{}),
		splitLoadAt: cmp.Or(opts.splitLoadAt, 100_000), attempts: newAttemptStripes(),
		shared: sqldb.Dialect(db) == sqldb.Postgres, noticePing: cmp.Or(opts.noticePing, noticePingInterval)}
	ttl := opts.AccountCacheTTL
	if ttl == 0 {
		ttl = accountCacheTTL
	}
	s.accounts = newAccountCache(ttl)
	s.sessions = newSessionStmt(db)
	if s.totpRoles == nil {
		s.totpRoles = DefaultTOTPRequiredRoles
	}
	if s.resync <= 0 {
		s.resync = 30 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.epoch = s.now()
	if opts.trustNotices {
		s.trustUntil.Store(math.MaxInt64)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.idle <= 0 {
		s.idle = 8 * time.Hour
	}
	if s.abs <= 0 {
		s.abs = 24 * time.Hour
	}
	if s.hasher == nil {
		s.hasher = DefaultArgon2id
	}
	if s.caseSeal = opts.CaseSealer; s.caseSeal == nil {
		s.caseSeal = plainCaseSealer{}
	}
	bounded := newBoundedHasher(s.hasher, runtime.GOMAXPROCS(0))
	s.hasher = bounded

	// Unknown usernames are verified against this hash so that they cost
	// the same work as known ones.
	var err error
	if s.dummyHash, err = bounded.decoy(newID(s.now())); err != nil {
		return nil, fmt.Errorf("access: dummy hash: %w", err)
	}

	s.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crvault_access_logins_total", Help: "Login attempts by outcome.",
	}, []string{"outcome"})
	s.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crvault_access_decisions_total", Help: "Case authorisation decisions by outcome.",
	}, []string{"outcome"})
	s.rowTagRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crvault_access_row_tag_refusals_total",
		Help: "Rows refused because their row tag did not check (written or changed outside vaultd), by table.",
	}, []string{"table"})
	s.trailRefusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crvault_access_trail_refusals_total",
		Help: "Assignments the database holds in force and the audit trail says the office ended (revoked, recused or suspended by a declared conflict): rows put back outside vaultd; the trail prevails.",
	})
	s.indexLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "crvault_access_grants_loaded",
		Help: "1 once every assignment is indexed in memory; 0 while a start still loads them (decisions then read the database).",
	})
	noticesLive := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "crvault_access_notices_live",
		Help: "1 while grant changes made on other instances are known to reach this one (PostgreSQL: the notice listener proved its connection within the last few seconds; SQLite: always); 0 while decisions read grants from the database instead.",
	}, func() float64 {
		if s.noticesStale() {
			return 0
		}
		return 1
	})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.logins, s.decisions, s.rowTagRefusals, s.trailRefusals, s.indexLoaded, noticesLive} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("access: register metrics: %w", err)
			}
		}
	}

	// The trail's ends before anything is decided, in the background load
	// too: until then a replayed row would decide (review h30h F4). A
	// start that cannot read them does not start.
	if err := s.refreshTrail(ctx); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	if !opts.LoadInBackground {
		if err := s.Reload(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err := s.buildEnforcer(grantIndex{}, false); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopLoad, s.loadDone = cancel, make(chan struct{})
	go s.loadInBackground(lctx)
	return s, nil
}

// Loaded is closed once every assignment is indexed in memory (at once
// unless Options.LoadInBackground).
func (s *Service) Loaded() <-chan struct{} { return s.loaded }

// Close stops a background load still running and waits for it.
func (s *Service) Close(ctx context.Context) error {
	if s.stopLoad == nil {
		return nil
	}
	s.stopLoad()
	select {
	case <-s.loadDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("access: stop loading grants: %w", ctx.Err())
	}
}

// loadInBackground loads the grants until it succeeds or ctx ends, retrying
// a failed load; decisions read the database meanwhile.
func (s *Service) loadInBackground(ctx context.Context) {
	defer close(s.loadDone)
	backoff := time.Second
	for {
		start := time.Now()
		n, err := s.loadConcurrently(ctx)
		if err == nil {
			s.log.InfoContext(ctx, "access: assignments indexed", "cases", n, "took", time.Since(start).Round(time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.ErrorContext(ctx, "access: loading assignments failed; decisions read the database until a retry succeeds",
			"err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// loadConcurrently reads every grant without holding writeMu, so that
// assignment changes go on meanwhile, then re-reads the pairs they touched
// (dirty) and installs the result: whatever the load's snapshot missed is
// caught up before a decision reads the index. It returns the number of
// cases with grants.
func (s *Service) loadConcurrently(ctx context.Context) (int, error) {
	s.writeMu.Lock()
	s.dirty = map[caseUser]struct{}{}
	s.writeMu.Unlock()
	grants, err := s.loadGrants(ctx)
	if err != nil {
		return 0, err
	}
	if s.afterLoad != nil {
		s.afterLoad()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	for k := range s.dirty {
		gs, err := s.readGrants(ctx, k.caseID, k.userID)
		if err != nil {
			return 0, err
		}
		grants.set(k.caseID, k.userID, gs)
	}
	s.dirty = nil
	s.install(grants)
	return len(grants), nil
}

// install makes grants the complete index. Caller holds writeMu.
func (s *Service) install(grants grantIndex) {
	s.mu.Lock()
	s.grants, s.ready = grants, true
	s.mu.Unlock()
	s.indexLoaded.Set(1)
	select {
	case <-s.loaded:
	default:
		close(s.loaded)
	}
}

// touched records, while a background load runs, that the grants of k
// changed. Caller holds writeMu.
func (s *Service) touched(k caseUser) {
	if s.dirty != nil {
		s.dirty[k] = struct{}{}
	}
}

// Reload rebuilds the in-memory grants and the enforcer from the tables.
// New calls it. Instances sharing a PostgreSQL database learn of each
// other's changes through Listen, incrementally; Reload is the big hammer.
func (s *Service) Reload(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	grants, err := s.loadGrants(ctx)
	if err != nil {
		return err
	}
	if err := s.buildEnforcer(grants, true); err != nil {
		return err
	}
	// A background load still running catches up on what changes after
	// this point only; what it missed before is in grants already, and it
	// re-reads whatever it noted as changed.
	s.install(grants)
	return nil
}

// buildEnforcer loads the model and the role policy through an in-memory
// adapter. The model's grouping g(user, role, case) is answered from grants
// (grouped), not from Casbin role links.
func (s *Service) buildEnforcer(grants grantIndex, ready bool) error {
	m, err := loadModel()
	if err != nil {
		return err
	}
	policy, err := fs.ReadFile(configs.Casbin, "casbin/policy.csv")
	if err != nil {
		return fmt.Errorf("access: read casbin policy: %w", err)
	}
	enf, err := casbin.NewSyncedEnforcer(m, &memAdapter{policy: string(policy)})
	if err != nil {
		return fmt.Errorf("access: load casbin policy: %w", err)
	}
	// The tables are the truth; Casbin is an in-memory index of them.
	enf.EnableAutoSave(false)
	s.mu.Lock()
	s.enf, s.grants, s.ready = enf, grants, ready
	s.mu.Unlock()
	return nil
}

func loadModel() (model.Model, error) {
	text, err := fs.ReadFile(configs.Casbin, "casbin/model.conf")
	if err != nil {
		return nil, fmt.Errorf("access: read casbin model: %w", err)
	}
	m, err := model.NewModelFromString(string(text))
	if err != nil {
		return nil, fmt.Errorf("access: parse casbin model: %w", err)
	}
	return m, nil
}

// memAdapter feeds the embedded role policy to Casbin once.
type memAdapter struct {
	policy string
}

func (a *memAdapter) LoadPolicy(m model.Model) error {
	sc := bufio.NewScanner(strings.NewReader(a.policy))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "p,") {
			if line != "" && !strings.HasPrefix(line, "#") {
				// Only role permissions belong in policy.csv; grants
				// come from assignments.
				return fmt.Errorf("policy.csv: unexpected line %q", line)
			}
			continue
		}
		if err := persist.LoadPolicyLine(line, m); err != nil {
			return fmt.Errorf("policy.csv: %w", err)
		}
	}
	return nil
}

var errReadOnly = errors.New("access: casbin adapter is read-only")

func (*memAdapter) SavePolicy(model.Model) error                { return errReadOnly }
func (*memAdapter) AddPolicy(string, string, []string) error    { return nil }
func (*memAdapter) RemovePolicy(string, string, []string) error { return nil }
func (*memAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return nil
}

// loadGrants reads every unrevoked assignment with its declarations, in
// plain scans (no ORM reflection per row: a start reads a million). A large
// table is read in two halves at once, on two connections: most of a start
// is the drivers' work per row, which then runs on two cores. The halves
// are two snapshots; a change between them is one the background load
// notes as dirty and re-reads, as it does for any change after its
// snapshot.
func (s *Service) loadGrants(ctx context.Context) (grantIndex, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("access: load assignments: %w", err)
	}
	// The trail first: a row it names is refused as it is read.
	if err := s.refreshTrail(ctx); err != nil {
		return nil, fmt.Errorf("access: load assignments: %w", err)
	}
	flags, err := s.loadDeclarationFlags(ctx, sqlDB)
	if err != nil {
		return nil, err
	}
	n, ranges := s.assignmentRanges(ctx, sqlDB)
	parts := make([]*indexBuilder, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i, where := range ranges {
		wg.Go(func() { parts[i], errs[i] = s.scanGrants(ctx, sqlDB, where, flags, n/len(ranges)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return buildIndex(parts...), nil
}

// loadDeclarationFlags reads, per assignment id, whether it has a
// conflict:false declaration and a conflict:true one whose tags check.
func (s *Service) loadDeclarationFlags(ctx context.Context, sqlDB *sql.DB) (map[string][2]bool, error) {
	// The scans run on a context without cancellation, checked every few
	// thousand rows instead: given one that can be cancelled, the SQLite
	// driver starts a goroutine and a channel for every row it steps, which
	// made a background start half again as long as a blocking one.
	rows, err := sqlDB.QueryContext(context.WithoutCancel(ctx), "SELECT id, assignment_id, case_id, user_id, conflict, row_tag FROM access_declarations")
	if err != nil {
		return nil, fmt.Errorf("access: load declarations: %w", err)
	}
	defer rows.Close()
	flags := map[string][2]bool{}
	// Byte views, valid until the next row: only an assignment id that
	// becomes a key of flags is copied.
	var id, assignmentID, caseID, userID, tag sql.RawBytes
	var conflict bool
	var chk RowTagChecker
	if s.tags != nil {
		chk = s.tags.RowTagChecker(tagDeclarations)
	}
	for n := 0; rows.Next(); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("access: load declarations: %w", ctx.Err())
		}
		if err := rows.Scan(&id, &assignmentID, &caseID, &userID, &conflict, &tag); err != nil {
			return nil, fmt.Errorf("access: load declarations: %w", err)
		}
		if chk != nil && !checkDeclarationTag(chk, id, assignmentID, caseID, userID, conflict, tag) {
			s.tagRefused(ctx, tagDeclarations, string(id))
			continue
		}
		f := flags[string(assignmentID)]
		if conflict {
			f[1] = true
		} else {
			f[0] = true
		}
		flags[string(assignmentID)] = f
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access: load declarations: %w", err)
	}
	return flags, nil
}

// scanGrants reads the unrevoked assignments that where (a condition on
// the assignment's id) selects, about n of them.
func (s *Service) scanGrants(ctx context.Context, sqlDB *sql.DB, where string, flags map[string][2]bool, n int) (*indexBuilder, error) {
	// The five ids and the purpose come as one text column, joined by the
	// unit separator (0x1f): each column costs the drivers an allocation or
	// two and SQLite's a few cgo calls, which were a third of a start. The
	// ids, generated here and in vault, never hold a control character;
	// the purpose, free text, comes last and may. The row tag comes apart,
	// as bytes.
	sep := "char(31)"
	if s.db.Dialector.Name() == "postgres" {
		sep = "chr(31)"
	}
	rows, err := sqlDB.QueryContext(context.WithoutCancel(ctx), `SELECT a.id || `+sep+` || a.case_id || `+sep+` || a.user_id || `+sep+` || a.role || `+sep+` || a.granted_by || `+sep+` || a.purpose,
		a.expires_at, a.row_tag FROM access_assignments a
		WHERE `+where+` AND NOT EXISTS (SELECT 1 FROM access_assignment_revocations r WHERE r.assignment_id = a.id)`)
	if err != nil {
		return nil, fmt.Errorf("access: load assignments: %w", err)
	}
	defer rows.Close()
	grants := newIndexBuilder(n)
	var line, tag sql.RawBytes
	var expires sql.NullTime
	unitSep := []byte{0x1f}
	refused := 0
	// One checker for this goroutine's rows: one HMAC per row, here where
	// rows enter the index, never per decision, and no allocation.
	var chk RowTagChecker
	if s.tags != nil {
		chk = s.tags.RowTagChecker(tagAssignments)
	}
	for n := 0; rows.Next(); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("access: load assignments: %w", ctx.Err())
		}
		if err := rows.Scan(&line, &expires, &tag); err != nil {
			return nil, fmt.Errorf("access: load assignments: %w", err)
		}
		var r grantRow
		var grantedBy []byte
		var ok [5]bool
		r.id, r.purpose, ok[0] = bytes.Cut(line, unitSep)
		r.caseID, r.purpose, ok[1] = bytes.Cut(r.purpose, unitSep)
		r.userID, r.purpose, ok[2] = bytes.Cut(r.purpose, unitSep)
		r.role, r.purpose, ok[3] = bytes.Cut(r.purpose, unitSep)
		grantedBy, r.purpose, ok[4] = bytes.Cut(r.purpose, unitSep)
		if ok != [5]bool{true, true, true, true, true} {
			return nil, fmt.Errorf("access: load assignments: a row without its six fields")
		}
		f := flags[string(r.id)]
		r.declared, r.suspended = f[0], f[1]
		if expires.Valid {
			r.expires = expires.Time
		}
		if chk != nil && !checkGrantTag(chk, &r, grantedBy, expires.Valid, tag) {
			s.tagRefused(ctx, tagAssignments, string(r.id))
			refused++
			continue
		}
		if ended, suspend := s.trailOf(ctx, r.id, r.caseID, r.userID, r.expires, r.suspended); ended {
			continue
		} else if suspend {
			r.suspended = true
		}
		grants.add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access: load assignments: %w", err)
	}
	if refused > 0 {
		s.log.ErrorContext(ctx, "access: assignments refused for their row tags while loading", "count", refused)
	}
	return grants, nil
}

// checkDeclarationTag checks a declaration's tag from the bytes scanned:
// the fields of declarationTagFields, in its order.
func checkDeclarationTag(chk RowTagChecker, id, assignmentID, caseID, userID []byte, conflict bool, tag []byte) bool {
	chk.Field(id)
	chk.Field(assignmentID)
	chk.Field(caseID)
	chk.Field(userID)
	chk.FieldString(tagBool(conflict))
	return chk.Check(tag)
}

// checkGrantTag checks an unrevoked assignment's tag as scanGrants read
// it: the fields of assignmentTagFields, in its order, from the bytes
// scanned.
func checkGrantTag(chk RowTagChecker, r *grantRow, grantedBy []byte, hasExpiry bool, tag []byte) bool {
	chk.Field(r.id)
	chk.Field(r.caseID)
	chk.Field(r.userID)
	chk.Field(r.role)
	chk.Field(r.purpose)
	chk.Field(grantedBy)
	if hasExpiry {
		chk.FieldInt(r.expires.UnixMicro()) // tagOptTime
	} else {
		chk.FieldString(tagOptTime(nil))
	}
	chk.FieldString(assignmentState(false, r.suspended))
	return chk.Check(tag)
}

func rowGrant(r assignmentRow, f [2]bool) grant {
	g := grant{id: r.ID, role: r.Role, purpose: r.Purpose, declared: f[0], suspended: f[1]}
	if r.ExpiresAt != nil {
		g.expiresAt = r.ExpiresAt.UTC()
	}
	return g
}

// assignmentRanges guesses how many assignments there are without
// counting them (SQLite's largest rowid, PostgreSQL's planner statistics),
// and from s.splitLoadAt of them on splits the table in two halves by the
// last character of the assignment's id (random in the ids newID makes).
// The split is on the id, never on where a row lies (rowid, ctid), which a
// VACUUM between the two halves' snapshots could change: each row is in
// exactly one half whatever happens meanwhile. A wrong guess only costs
// map growth.
func (s *Service) assignmentRanges(ctx context.Context, sqlDB *sql.DB) (n int, where []string) {
	last := "substr(a.id, -1)"
	q := "SELECT COALESCE(MAX(rowid), 0) FROM access_assignments"
	if s.db.Dialector.Name() == "postgres" {
		last = "right(a.id, 1)"
		q = "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass('access_assignments')"
	}
	var guess int64
	if err := sqlDB.QueryRowContext(ctx, q).Scan(&guess); err != nil || guess < 0 {
		guess = 0
	}
	if guess == 0 && s.db.Dialector.Name() == "postgres" {
		// Never analysed (a table just filled or restored): counting costs
		// a scan, far less than growing the map (a quarter of the load
		// when measured).
		if err := sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM access_assignments").Scan(&guess); err != nil {
			guess = 0
		}
	}
	n = int(min(guess, 1<<24))
	if n < s.splitLoadAt {
		return n, []string{"1 = 1"}
	}
	return n, []string{last + " < '8'", last + " >= '8'"}
}
