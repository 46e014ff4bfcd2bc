package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// Options configures Open.
type Options struct {
	KeyDir          string        // where the Ed25519 checkpoint signer key is generated (0600) when KeyFile is empty
	Origin          string        // checkpoint origin line, default DefaultOrigin
	CheckpointEvery time.Duration // default 10s
	// KeyFile is the checkpoint signer key, default DefaultKeyFile(KeyDir);
	// generated there on first start if absent. It can live apart from the
	// data directory (a secrets mount), and be age-encrypted (to an age
	// plugin, say): UnwrapKey then decrypts it.
	KeyFile   string
	UnwrapKey func(ciphertext []byte) ([]byte, error)
	// VerifierKey, when set, pins the checkpoint verifier key (the line
	// `vaultd audit pubkey` prints), configured apart from the data
	// directory that holds the key file: Open refuses a key file that is
	// not its private half (ErrKeyNotPinned) rather than verify, or sign,
	// with a key swapped in beside a rewritten log, and never generates
	// one. A ReadOnly open whose key file is missing verifies with it
	// alone, so the log can be checked where the signing key is not.
	VerifierKey string
	// Witnesses keep the newest checkpoint where the database administrator
	// cannot rewrite it (see Witness and package audit/witness).
	Witnesses  []Witness
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// SyncCommit is the synchronous_commit level every audit transaction
	// commits with on PostgreSQL, whatever the server or role is configured
	// with: SyncOn (the default: the commit is flushed to the primary's WAL
	// before Append returns) or SyncRemoteApply (also applied on the
	// synchronous standbys, for deployments with synchronous_standby_names).
	// SQLite always commits with synchronous=FULL.
	SyncCommit string
	// ReadOnly opens the log for Verify, Query, proofs and export only: no
	// writer, no checkpointer, and Close signs nothing. Use it for
	// `vaultd audit verify`, so that checking a suspect database never
	// signs a checkpoint over it.
	ReadOnly bool
	// Leading, when set, says whether this process runs the periodic
	// checkpointer now: of several processes sharing one database only the
	// elected leader (sqldb.Leader) signs checkpoints on schedule. Nil:
	// always (a single process). Close's final checkpoint is made either
	// way; checkpoints are serialised across processes regardless.
	Leading func() bool

	// now is the clock; tests pin it for golden files.
	now func() time.Time
	// afterHead, in tests, runs between the checkpointer's read of the
	// head and of the latest stored checkpoint, where another process may
	// append and sign.
	afterHead func()
	// beforeReread, in tests, runs before the checkpointer reads the head
	// a second time, where a lost connection must not pass for a rollback.
	beforeReread func()
}

const (
	// maxBatch bounds one group commit; bigger batches amortise the fsync
	// but hold appenders longer.
	maxBatch = 512
	// commitTimeout bounds one batch so a hung database turns into
	// ErrUnavailable rather than requests waiting forever.
	commitTimeout = 30 * time.Second
	// pgLockKey serialises writers of several vaultd processes on one
	// PostgreSQL so the chain never forks.
	pgLockKey = 0x63727661756c74 // "crvault"
	// pgCheckpointLockClass, with the schema's hash, serialises checkpoint
	// signing across processes, so that each reads the head and the latest
	// checkpoint only after the previous signer stored its own.
	pgCheckpointLockClass = 0x63727602
)

// Levels of Options.SyncCommit.
const (
	SyncOn          = "on"
	SyncRemoteApply = "remote_apply"
)

// Log is an open audit log: a single writer committing batches, and a
// checkpointer. Safe for concurrent use.
type Log struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
	signer  note.Signer
	vkey    string
	opts    Options
	logger  *slog.Logger
	now     func() time.Time
	m       *metrics

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *appendReq
	quit   chan struct{}
	wg     sync.WaitGroup
	// preserving counts halts still keeping their evidence (halt).
	preserving sync.WaitGroup

	failing atomic.Bool // the last commit failed

	// anchor is the newest checkpoint known genuine; the log must extend it.
	anchor      anchor
	lastWitness atomic.Int64 // unix micros of the last hand-over to the witnesses

	// Owned by the writer goroutine.
	tree     *builder
	spare    *builder // the tree before the last commit, refilled by the next batch
	head     logHead
	failures int64 // appends refused since the last successful commit
	wconn    *writerConn
}

// logHead is the last event this writer committed: the next batch chains
// on it unless another process appended since (the pipelined commit checks).
type logHead struct {
	known bool
	hash  string
	us    int64
}

type appendReq struct {
	ev   Event
	done chan appendResult
}

type appendResult struct {
	ev  Event
	err error
}

type metrics struct {
	appended, failures, ckFailures prometheus.Counter
	ckSigned                       prometheus.Counter
	rolledBack                     prometheus.Gauge
	batch, commitSeconds           prometheus.Histogram
	// headReads counts batches that read the log head in their transaction
	// instead of chaining on this writer's last commit (PostgreSQL): the
	// first, and each after another instance appended.
	headReads prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_audit_events_appended_total",
			Help: "Audit events durably appended."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_audit_append_failures_total",
			Help: "Audit appends refused because the database did not commit them (callers failed closed)."}),
		rolledBack: prometheus.NewGauge(prometheus.GaugeOpts{Name: "crvault_audit_rolled_back",
			Help: "1 once the running server found the audit log truncated or rewritten under it (alert on it)."}),
		ckFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_audit_checkpoint_failures_total",
			Help: "Checkpoints that could not be made, stored or witnessed, and rollbacks detected."}),
		ckSigned: prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_audit_checkpoints_signed_total",
			Help: "Checkpoints this instance signed and stored."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "crvault_audit_batch_size",
			Help: "Events per group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		headReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_audit_head_reads_total",
			Help: "Group commits that read the log head first (the first one, and those after another instance appended; every one on SQLite)."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "crvault_audit_commit_seconds",
			Help:    "Duration of one group commit of the audit log (what every audited request waits for), failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.appended, err = register(reg, m.appended); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.rolledBack, err = register(reg, m.rolledBack); err != nil {
		return nil, err
	}
	if m.ckFailures, err = register(reg, m.ckFailures); err != nil {
		return nil, err
	}
	if m.batch, err = register(reg, m.batch); err != nil {
		return nil, err
	}
	if m.ckSigned, err = register(reg, m.ckSigned); err != nil {
		return nil, err
	}
	if m.commitSeconds, err = register(reg, m.commitSeconds); err != nil {
		return nil, err
	}
	if m.headReads, err = register(reg, m.headReads); err != nil {
		return nil, err
	}
	return m, nil
}

// register shares an existing collector when a second Log registers on the
// same registry (tests, or a restart within one process).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register audit metrics: %w", err)
	}
	return c, nil
}

// Open starts the single writer and the checkpointer on a database already
// migrated with Migrate. The checkpoint key is created in opts.KeyDir on
// first start.
func Open(ctx context.Context, db *gorm.DB, opts Options) (*Log, error) {
	if opts.Origin == "" {
		opts.Origin = DefaultOrigin
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	switch opts.SyncCommit {
	case "":
		opts.SyncCommit = SyncOn
	case SyncOn, SyncRemoteApply:
	default:
		return nil, fmt.Errorf("open audit log: synchronous commit level %q is neither %q nor %q", opts.SyncCommit, SyncOn, SyncRemoteApply)
	}
	if opts.KeyFile == "" {
		if opts.KeyDir == "" {
			return nil, errors.New("open audit log: Options.KeyDir or KeyFile is required")
		}
		opts.KeyFile = DefaultKeyFile(opts.KeyDir)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	// Is the table there, and does it hold a checkpoint? (One row at most,
	// never a count.)
	var n int64
	if err := sqlDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM audit_checkpoints LIMIT 1) t").Scan(&n); err != nil {
		return nil, fmt.Errorf("open audit log (was audit.Migrate run?): %w", err)
	}
	// A key is made only for a log nothing has signed yet: beside
	// checkpoints signed with another, a new key would sign on and make
	// every earlier signature read as forged (a restore without its keys,
	// a key mount missing).
	signer, vkey, err := openKey(opts, !opts.ReadOnly && n == 0)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{
		db: db, sqlDB: sqlDB, dialect: sqldb.Dialect(db), signer: signer, vkey: vkey,
		opts: opts, logger: opts.Logger, now: opts.now, m: m,
		reqs: make(chan *appendReq, 4*maxBatch), quit: make(chan struct{}),
	}
	if opts.ReadOnly {
		l.closed = true
		close(l.reqs)
		close(l.quit)
		return l, nil
	}
	// The writer refuses to start on a log shorter than, or inconsistent
	// with, any checkpoint it can see: appending to a rolled-back log and
	// signing over it would launder the rollback.
	if err := l.startupCheck(ctx); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l.wg.Add(2)
	go l.writer()
	go l.checkpointer()
	if l.dialect == sqldb.SQLite {
		l.wg.Add(1)
		go l.walCheckpointer()
	}
	return l, nil
}

// PublicKey returns the note verifier key of the checkpoints.
func (l *Log) PublicKey() string { return l.vkey }

// Append writes e and returns it with Seq, Time (UTC) and Hash set, only once
// it is durable. Any failure wraps ErrUnavailable (or ErrInvalid for a
// malformed event): the caller must not go on to serve the request.
func (l *Log) Append(ctx context.Context, e Event) (Event, error) {
	e, err := normalize(e)
	if err != nil {
		return Event{}, err
	}
	if err := l.anchor.haltErr(); err != nil {
		return Event{}, err
	}
	r := &appendReq{ev: e, done: make(chan appendResult, 1)}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Event{}, fmt.Errorf("%w: log closed", ErrUnavailable)
	}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		l.mu.RUnlock()
		return Event{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	l.mu.RUnlock()
	select {
	case res := <-r.done:
		if res.err == nil {
			MarkRecorded(ctx)
		}
		return res.ev, res.err
	case <-ctx.Done():
		// The event may still commit; the caller fails closed regardless.
		return Event{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// AppendAll writes evs as Append writes each, in order, but queues them
// together so that the writer commits them in as few batches as it can: a
// request that records many events (a list page, one per case it shows)
// waits for about one commit rather than one per event. It returns them with
// Seq, Time and Hash set once every one is durable. On failure (wrapping
// ErrUnavailable, or ErrInvalid for a malformed event, when none is queued)
// some may have been written: the caller fails closed as for Append.
func (l *Log) AppendAll(ctx context.Context, evs []Event) ([]Event, error) {
	reqs := make([]*appendReq, len(evs))
	for i, e := range evs {
		e, err := normalize(e)
		if err != nil {
			return nil, err
		}
		reqs[i] = &appendReq{ev: e, done: make(chan appendResult, 1)}
	}
	if err := l.anchor.haltErr(); err != nil {
		return nil, err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, fmt.Errorf("%w: log closed", ErrUnavailable)
	}
	for _, r := range reqs {
		select {
		case l.reqs <- r:
		case <-ctx.Done():
			l.mu.RUnlock()
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	l.mu.RUnlock()
	out := make([]Event, len(reqs))
	for i, r := range reqs {
		select {
		case res := <-r.done:
			if res.err != nil {
				return nil, res.err
			}
			out[i] = res.ev
		case <-ctx.Done():
			// Those queued may still commit; the caller fails closed regardless.
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	if len(out) > 0 {
		MarkRecorded(ctx)
	}
	return out, nil
}

func (l *Log) writer() {
	defer l.wg.Done()
	defer l.closeWriterConn()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	lastBatch := 0
	for {
		var batch []*appendReq
		select {
		case r, ok := <-l.reqs:
			if !ok {
				if l.failures > 0 {
					l.commitAndRelease(nil)
				}
				return
			}
			batch = append(batch, r)
		case <-retry.C:
			// Record earlier failures even if no request comes along.
			if l.failures > 0 {
				l.commitAndRelease(nil)
			}
			continue
		}
		batch = l.gather(batch, lastBatch)
		lastBatch = len(batch)
		l.commitAndRelease(batch)
	}
}

// linger bounds how long the writer waits for the callers it just released
// to come back before committing a smaller batch.
const linger = 300 * time.Microsecond

// gather adds queued requests to batch. The callers of the previous batch
// were released together and usually append again at once; committing
// before they are back would split one group into a large and a small
// batch and halve throughput, so it waits (briefly, and only while below
// the previous batch size) for them.
func (l *Log) gather(batch []*appendReq, lastBatch int) []*appendReq {
	deadline := time.Now().Add(linger)
	for len(batch) < maxBatch {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			continue
		default:
		}
		if len(batch) >= lastBatch || time.Now().After(deadline) {
			return batch
		}
		runtime.Gosched()
	}
	return batch
}

func (l *Log) commitAndRelease(batch []*appendReq) {
	if err := l.anchor.haltErr(); err != nil {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
		return
	}
	events := make([]Event, 0, len(batch)+1)
	if l.failures > 0 {
		events = append(events, Event{
			Actor: "crvault", Action: "audit.append_failed", Outcome: Errored,
			Resource: "failed_events=" + strconv.FormatInt(l.failures, 10), Detail: "append_failed",
		})
	}
	for _, r := range batch {
		events = append(events, r.ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	start := time.Now()
	out, err := l.commit(ctx, events)
	l.m.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		l.haltOn(err)
		if herr := l.anchor.haltErr(); herr != nil {
			err = herr
		}
		l.failing.Store(true)
		l.failures += int64(len(batch))
		l.m.failures.Add(float64(len(batch)))
		l.logger.Error("audit append failed; requests fail closed", "events", len(batch), "err", err)
		for _, r := range batch {
			r.done <- appendResult{err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
		}
		return
	}
	if l.failures > 0 {
		l.logger.Warn("audit log recovered", "failed_events", l.failures)
	}
	l.failing.Store(false)
	l.failures = 0
	l.m.appended.Add(float64(len(out)))
	l.m.batch.Observe(float64(len(out)))
	out = out[len(out)-len(batch):]
	for i, r := range batch {
		r.done <- appendResult{ev: out[i]}
	}
}

func (l *Log) ph(i int) string {
	if l.dialect == sqldb.Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// commit writes events as one transaction and returns them with Seq, Time
// and Hash set. The in-memory tree frontier and head change only on
// success. On PostgreSQL a batch following this writer's own last commit
// goes out in a single round trip (commitPipelined); anything else, or a
// head that moved, takes the general path.
func (l *Log) commit(ctx context.Context, events []Event) ([]Event, error) {
	if l.dialect == sqldb.Postgres && l.tree != nil && l.head.known && len(events) <= pipelineMax {
		out, done, err := l.commitPipelined(ctx, events)
		if done || err != nil {
			return out, err
		}
	}
	return l.commitGeneral(ctx, events)
}

// sealed is a batch ready to store: events with Seq, Time and Hash set, the
// previous hash of each, and the tree hashes they add.
type sealed struct {
	out      []Event
	prevs    []string
	hashes   []tlog.Hash
	firstIdx int64
	tree     *builder
	// root is the tree's root after the batch, when computed while the
	// transaction could still supply frontier hashes not in memory.
	root   tlog.Hash
	rooted bool
}

// seal chains events after the head (size, prev, lastUs) on a copy of tree.
func (l *Log) seal(events []Event, tree *builder, size int64, prev string, lastUs int64) (sealed, error) {
	now := l.now().UTC().Truncate(time.Microsecond)
	if last := time.UnixMicro(lastUs).UTC(); now.Before(last) {
		// Times never go backwards along the log, whatever the clocks of
		// the instances sharing it do: Query turns a time range into a
		// range of sequence numbers on that promise.
		now = last
	}
	b := sealed{out: make([]Event, len(events)), prevs: make([]string, len(events)),
		firstIdx: tlog.StoredHashCount(size), tree: tree}
	for i, e := range events {
		e.Seq, e.Time = size+int64(i)+1, now
		c := Canonical(e, prev)
		e.Hash = hashHex(c)
		hs, err := tree.add(tlog.RecordHash(c))
		if err != nil {
			return sealed{}, fmt.Errorf("tree hashes for seq %d: %w", e.Seq, err)
		}
		b.hashes = append(b.hashes, hs...)
		b.prevs[i], prev, b.out[i] = prev, e.Hash, e
	}
	return b, nil
}

// committed records the new head once a batch is durable, and the tree's
// root as this process's own anchor. The root comes from the frontier the
// batch was sealed on (its fallback still set, for frontier hashes not yet
// in memory); if it cannot be had, the anchor stays where it was, which
// only weakens the check until the next commit.
func (l *Log) committed(b sealed) {
	root, err := b.root, error(nil)
	if !b.rooted {
		root, err = b.tree.root()
	}
	if err == nil {
		l.anchor.setOwn(b.tree.size, root)
	} else {
		l.logger.Warn("audit: root of the committed tree not computed; the next commit anchors it", "size", b.tree.size, "err", err)
	}
	b.tree.fallback = nil
	if l.tree != b.tree {
		// The builder just replaced takes the next batch's copy.
		l.spare, l.tree = l.tree, b.tree
	}
	last := b.out[len(b.out)-1]
	l.head = logHead{known: true, hash: last.Hash, us: last.Time.UnixMicro()}
}

// commitGeneral reads the head inside the transaction (under the advisory
// lock on PostgreSQL): the first batch, one after another process appended,
// and every batch on SQLite.
func (l *Log) commitGeneral(ctx context.Context, events []Event) ([]Event, error) {
	l.head.known = false
	l.m.headReads.Inc()
	var tx *sql.Tx
	if l.dialect == sqldb.SQLite {
		c, err := l.sqliteWriterConn(ctx)
		if err != nil {
			return nil, err
		}
		if tx, err = c.BeginTx(ctx, nil); err != nil {
			l.closeWriterConn()
			return nil, fmt.Errorf("begin: %w", err)
		}
	} else {
		var err error
		if tx, err = l.sqlDB.BeginTx(ctx, nil); err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	defer tx.Rollback()
	if l.dialect == sqldb.Postgres {
		// The event must be durable before Append releases the caller (a
		// read then sends bytes), so the transaction sets its own commit
		// level: a server or role running with synchronous_commit=off would
		// otherwise acknowledge a commit that a crash then loses. set_config
		// with is_local is SET LOCAL, in the same round trip as the lock.
		if _, err := tx.ExecContext(ctx, lockSQL, l.opts.SyncCommit, int64(pgLockKey)); err != nil {
			return nil, fmt.Errorf("lock log head: %w", err)
		}
	}
	size, prev, lastUs, err := headAt(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := l.checkHead(size); err != nil {
		return nil, err
	}
	tree := l.tree
	if tree == nil || tree.size != size {
		// First batch, or another process appended: rebuild the frontier
		// lazily from the stored hashes, once they are proven to extend
		// what this process committed (a rewrite that also added events
		// looks like another process's appends).
		if own := l.anchor.getOwn(); own.Size > 0 {
			hr := dbHashes{ctx: ctx, q: tx, ph: l.ph}
			root, err := tlog.TreeHash(size, hr)
			if err != nil {
				return nil, fmt.Errorf("tree at the moved head %d: %w", size, err)
			}
			if err := l.checkExtendsOwn(ctx, size, root, own, hr); err != nil {
				return nil, err
			}
		}
		tree = newBuilder(size, nil)
	} else {
		tree = tree.cloneInto(l.spare)
	}
	tree.fallback = dbHashes{ctx: ctx, q: tx, ph: l.ph}
	b, err := l.seal(events, tree, size, prev, lastUs)
	if err != nil {
		return nil, err
	}
	out := b.out
	if l.dialect == sqldb.Postgres && len(out) <= 1024 {
		// One round trip instead of two: a data-modifying CTE.
		evSQL, evArgs := l.eventsInsert(out, b.prevs, 0)
		hSQL, hArgs := l.hashesInsert(b.firstIdx, b.hashes, len(evArgs))
		if _, err := tx.ExecContext(ctx, "WITH ev AS ("+evSQL+") "+hSQL, append(evArgs, hArgs...)...); err != nil {
			return nil, fmt.Errorf("insert events %d..%d: %w", out[0].Seq, out[len(out)-1].Seq, err)
		}
	} else {
		if err := l.insertEvents(ctx, tx, out, b.prevs); err != nil {
			return nil, err
		}
		if err := l.insertHashes(ctx, tx, b.firstIdx, b.hashes); err != nil {
			return nil, err
		}
	}
	// The frontier may still lack hashes the root needs, which only the
	// transaction can read before it ends.
	if b.root, err = b.tree.root(); err != nil {
		return nil, fmt.Errorf("tree root at %d: %w", b.tree.size, err)
	}
	b.rooted = true
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	l.committed(b)
	return out, nil
}

// lockSQL sets the audit transaction's commit level and takes the writers'
// advisory lock.
const lockSQL = "SELECT set_config('synchronous_commit', $1, true), pg_advisory_xact_lock($2)"

func head(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, string, error) {
	var size int64
	var prev string
	err := q.QueryRowContext(ctx, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").Scan(&size, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, zeroHash, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read log head: %w", err)
	}
	return size, prev, nil
}

// headAt is head with the time of the last event (0 for an empty log).
func headAt(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, string, int64, error) {
	var size, us int64
	var prev string
	err := q.QueryRowContext(ctx, "SELECT seq, hash, at_us FROM audit_events ORDER BY seq DESC LIMIT 1").Scan(&size, &prev, &us)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, zeroHash, 0, nil
	}
	if err != nil {
		return 0, "", 0, fmt.Errorf("read log head: %w", err)
	}
	return size, prev, us, nil
}

const eventCols = 14

// eventColumns are the stored columns of an event, in appendEventRow's order.
const eventColumns = "seq, at_us, actor, actor_org, action, outcome, case_id, resource, purpose, ip, request_id, detail, prev_hash, hash"

// appendEventRow appends the eventCols values stored for e.
func appendEventRow(args []any, e Event, prev string) []any {
	return append(args, e.Seq, e.Time.UnixMicro(), e.Actor, e.ActorOrg, e.Action, string(e.Outcome),
		e.CaseID, e.Resource, e.Purpose, e.IP, e.RequestID, e.Detail, prev, e.Hash)
}

// eventsInsert builds one multi-row INSERT; placeholders start after argBase.
func (l *Log) eventsInsert(evs []Event, prevs []string, argBase int) (string, []any) {
	var sb strings.Builder
	sb.WriteString("INSERT INTO audit_events (" + eventColumns + ") VALUES ")
	args := make([]any, 0, len(evs)*eventCols)
	for i, e := range evs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for c := 0; c < eventCols; c++ {
			if c > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(l.ph(argBase + len(args) + c + 1))
		}
		sb.WriteByte(')')
		args = appendEventRow(args, e, prevs[i])
	}
	return sb.String(), args
}

func (l *Log) hashesInsert(first int64, hs []tlog.Hash, argBase int) (string, []any) {
	var sb strings.Builder
	sb.WriteString("INSERT INTO audit_hashes (idx, hash) VALUES ")
	args := make([]any, 0, 2*len(hs))
	for i := range hs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(" + l.ph(argBase+len(args)+1) + "," + l.ph(argBase+len(args)+2) + ")")
		args = append(args, first+int64(i), hs[i][:])
	}
	return sb.String(), args
}

// insertEvents and insertHashes chunk big batches to stay under the
// databases' bound-parameter limits.
func (l *Log) insertEvents(ctx context.Context, tx *sql.Tx, evs []Event, prevs []string) error {
	const chunk = 256
	for start := 0; start < len(evs); start += chunk {
		end := min(start+chunk, len(evs))
		q, args := l.eventsInsert(evs[start:end], prevs[start:end], 0)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert events %d..%d: %w", evs[start].Seq, evs[end-1].Seq, err)
		}
	}
	return nil
}

func (l *Log) insertHashes(ctx context.Context, tx *sql.Tx, first int64, hs []tlog.Hash) error {
	const chunk = 1000
	for start := 0; start < len(hs); start += chunk {
		end := min(start+chunk, len(hs))
		q, args := l.hashesInsert(first+int64(start), hs[start:end], 0)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert tree hashes: %w", err)
		}
	}
	return nil
}

// Ping reports whether the log can take appends: the writer is running, the
// last commit did not fail and the database answers.
func (l *Log) Ping(ctx context.Context) error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return fmt.Errorf("%w: log closed", ErrUnavailable)
	}
	if err := l.anchor.haltErr(); err != nil {
		return err
	}
	if l.failing.Load() {
		return fmt.Errorf("%w: last append failed", ErrUnavailable)
	}
	if _, _, err := head(ctx, l.sqlDB); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close stops taking appends, commits those already queued, and makes a
// final checkpoint.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil // already closed, or read-only
	}
	l.closed = true
	close(l.reqs)
	close(l.quit)
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("close audit log: %w", ctx.Err())
	}
	if err := l.anchor.haltErr(); err != nil {
		// Never sign over a log found rolled back; keep what the halt
		// keeps.
		l.preserving.Wait()
		return fmt.Errorf("close audit log: no final checkpoint: %w", err)
	}
	if _, err := l.makeCheckpoint(ctx); err != nil {
		// A halt keeps its evidence in the background (halt): wait for
		// it before the process goes.
		l.preserving.Wait()
		return fmt.Errorf("close audit log: final checkpoint: %w", err)
	}
	return nil
}

func (l *Log) checkpointer() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
			if l.opts.Leading != nil && !l.opts.Leading() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			if _, err := l.makeCheckpoint(ctx); err != nil {
				l.logger.Error("audit checkpoint failed", "err", err)
			}
			cancel()
		}
	}
}

// witnessRefresh is how often the latest checkpoint is handed to the
// witnesses again while the log is idle, so a witness's retention (an S3
// object lock) never runs out under the newest checkpoint.
const witnessRefresh = 24 * time.Hour

// makeCheckpoint signs and stores a checkpoint of the committed log unless
// the latest stored one already covers it, hands it to the witnesses, and
// returns the latest checkpoint note. Before signing it proves that the
// tree extends the newest checkpoint known genuine; if not, the log halts.
func (l *Log) makeCheckpoint(ctx context.Context) ([]byte, error) {
	if l.dialect == sqldb.Postgres {
		// Held by an otherwise idle transaction for the whole signing; its
		// end (or the process's death) releases it.
		tx, err := l.sqlDB.BeginTx(ctx, nil)
		if err != nil {
			l.m.ckFailures.Inc()
			return nil, fmt.Errorf("checkpoint: lock: %w", err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", int32(pgCheckpointLockClass)); err != nil {
			l.m.ckFailures.Inc()
			return nil, fmt.Errorf("checkpoint: lock: %w", err)
		}
	}
	return l.makeCheckpointLocked(ctx)
}

func (l *Log) makeCheckpointLocked(ctx context.Context) ([]byte, error) {
	if err := l.anchor.haltErr(); err != nil {
		return nil, err
	}
	// Before the head: what this process had committed then is in the
	// database the head is read from (a commit is durable before it is
	// recorded), so the tree read must extend it.
	own := l.anchor.getOwn()
	size, _, err := head(ctx, l.sqlDB)
	if err != nil {
		l.m.ckFailures.Inc()
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if l.opts.afterHead != nil {
		l.opts.afterHead()
	}
	var latest []byte
	var latestSize int64 = -1
	err = l.sqlDB.QueryRowContext(ctx, "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").Scan(&latestSize, &latest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		l.m.ckFailures.Inc()
		return nil, fmt.Errorf("checkpoint: read latest: %w", err)
	}
	if latestSize > size {
		// On SQLite the two reads are not one snapshot: another process
		// on the same file (vaultd user add, say) may have appended and
		// signed between them. Only a head that still ends before the
		// checkpoint when read again was rolled back.
		if l.opts.beforeReread != nil {
			l.opts.beforeReread()
		}
		again, _, err := head(ctx, l.sqlDB)
		if err != nil {
			// Not read is not short: a lost connection here must not pass
			// for a rollback, which halts the log for good (review h29i).
			l.m.ckFailures.Inc()
			return nil, fmt.Errorf("checkpoint: read the head again: %w", err)
		}
		if again >= latestSize {
			size = again
		}
	}
	if latestSize > size {
		return nil, l.halt(bad(size+1, "log ends at seq %d but the stored checkpoint covers %d events: events %d..%d were removed under the running server",
			size, latestSize, size+1, latestSize))
	}
	if latestSize == size {
		ck, err := ParseCheckpoint(latest, l.vkey)
		if err != nil {
			l.m.ckFailures.Inc()
			return nil, fmt.Errorf("checkpoint: latest stored: %w", err)
		}
		if err := l.checkExtends(ctx, ck.Size, ck.Root); err != nil {
			l.m.ckFailures.Inc()
			return nil, err
		}
		if err := l.checkExtendsOwn(ctx, ck.Size, ck.Root, own, dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}); err != nil {
			l.m.ckFailures.Inc()
			return nil, err
		}
		l.anchor.raise(ck, "latest stored")
		if l.now().Sub(time.UnixMicro(l.lastWitness.Load())) > witnessRefresh {
			l.lastWitness.Store(l.now().UnixMicro())
			_ = l.witness(ctx, ck.Size, latest)
		}
		return latest, nil
	}
	root, err := tlog.TreeHash(size, dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph})
	if err != nil {
		l.m.ckFailures.Inc()
		return nil, fmt.Errorf("checkpoint at size %d: %w", size, err)
	}
	if err := l.checkExtends(ctx, size, root); err != nil {
		l.m.ckFailures.Inc()
		return nil, err
	}
	if err := l.checkExtendsOwn(ctx, size, root, own, dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}); err != nil {
		l.m.ckFailures.Inc()
		return nil, err
	}
	signed, err := signCheckpoint(l.signer, size, root)
	if err != nil {
		l.m.ckFailures.Inc()
		return nil, fmt.Errorf("sign checkpoint at size %d: %w", size, err)
	}
	if _, err := l.sqlDB.ExecContext(ctx,
		"INSERT INTO audit_checkpoints (size, root, note, created_us) VALUES ("+l.ph(1)+","+l.ph(2)+","+l.ph(3)+","+l.ph(4)+") ON CONFLICT (size) DO NOTHING",
		size, root[:], string(signed), l.now().UnixMicro()); err != nil {
		l.m.ckFailures.Inc()
		return nil, fmt.Errorf("store checkpoint at size %d: %w", size, err)
	}
	l.m.ckSigned.Inc()
	l.anchor.raise(Checkpoint{Origin: l.signer.Name(), Size: size, Root: root}, "latest signed")
	// A witness that is down is logged and counted by witness; the
	// checkpoint itself is made, and the next one goes to it again.
	l.lastWitness.Store(l.now().UnixMicro())
	_ = l.witness(ctx, size, signed)
	return signed, nil
}

// Checkpoint returns the latest signed checkpoint, making one if none exists.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	var signed []byte
	err := l.sqlDB.QueryRowContext(ctx, "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").Scan(&signed)
	if err == nil {
		return signed, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: read checkpoint: %w", ErrUnavailable, err)
	}
	if l.opts.ReadOnly {
		return nil, fmt.Errorf("%w: no checkpoint yet", ErrNotFound)
	}
	signed, err = l.makeCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return signed, nil
}

func (l *Log) size(ctx context.Context) (int64, error) {
	n, _, err := head(ctx, l.sqlDB)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n, nil
}

// InclusionProof proves event seq is in the tree of the given size (the
// current size when size <= 0).
func (l *Log) InclusionProof(ctx context.Context, seq, size int64) (InclusionProof, error) {
	cur, err := l.size(ctx)
	if err != nil {
		return InclusionProof{}, err
	}
	if size <= 0 {
		size = cur
	}
	if size > cur || seq < 1 || seq > size {
		return InclusionProof{}, fmt.Errorf("%w: inclusion of seq %d in size %d (tree size %d)", ErrInvalid, seq, size, cur)
	}
	evs, prevs, err := l.readEvents(ctx, seq, seq)
	if err != nil {
		return InclusionProof{}, err
	}
	if len(evs) != 1 {
		return InclusionProof{}, fmt.Errorf("%w: event %d", ErrNotFound, seq)
	}
	r := dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}
	proof, err := tlog.ProveRecord(size, seq-1, r)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove seq %d in size %d: %w", seq, size, err)
	}
	leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, seq-1)})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove seq %d: %w", seq, err)
	}
	root, err := tlog.TreeHash(size, r)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove seq %d: root of %d: %w", seq, size, err)
	}
	return InclusionProof{Seq: seq, TreeSize: size, Leaf: string(Canonical(evs[0], prevs[0])),
		LeafHash: leaf[0], Root: root, Proof: proof}, nil
}

// ConsistencyProof proves the tree of size from is a prefix of the tree of
// size to (the current size when to <= 0).
func (l *Log) ConsistencyProof(ctx context.Context, from, to int64) (ConsistencyProof, error) {
	cur, err := l.size(ctx)
	if err != nil {
		return ConsistencyProof{}, err
	}
	if to <= 0 {
		to = cur
	}
	if from < 1 || from > to || to > cur {
		return ConsistencyProof{}, fmt.Errorf("%w: consistency %d..%d (tree size %d)", ErrInvalid, from, to, cur)
	}
	r := dbHashes{ctx: ctx, q: l.sqlDB, ph: l.ph}
	proof, err := tlog.ProveTree(to, from, r)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove %d..%d: %w", from, to, err)
	}
	fr, err := tlog.TreeHash(from, r)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove %d..%d: %w", from, to, err)
	}
	tr, err := tlog.TreeHash(to, r)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove %d..%d: %w", from, to, err)
	}
	return ConsistencyProof{From: from, To: to, FromRoot: fr, ToRoot: tr, Proof: proof}, nil
}
