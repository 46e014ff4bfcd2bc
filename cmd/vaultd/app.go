package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/api"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/supervision"
)

// app holds every opened piece; close releases them in reverse order.
type app struct {
	cfg     config
	log     *slog.Logger
	reg     *prometheus.Registry
	db      *gorm.DB
	audit   *audit.Log
	access  *access.Service
	masters *crypt.Masters
	keys    *vault.Keyring
	blobs   blob.Store
	vault   *vault.Service
	super   *supervision.Service
	// leader says whether this process runs the periodic jobs (see
	// jobs.go); serve campaigns, other commands never lead.
	leader  *sqldb.Leader
	closers []func(context.Context) error
}

func (a *app) close(ctx context.Context) error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i](ctx))
	}
	return errors.Join(errs...)
}

// parts says how much of the system a command needs.
type parts int

const (
	withDB    parts = iota // database, migrations, audit log, accounts (read only: rows neither tagged nor checked)
	withKeys               // plus the keys: accounts written and checked with row tags
	withVault              // plus the blob store and the services
)

func openApp(ctx context.Context, cfg config, log *slog.Logger, need parts) (_ *app, err error) {
	// Migrations here and in the services opened below log through this
	// command's logger (JSON, at its level), not through slog's default.
	ctx = sqldb.WithLogger(ctx, log)
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			_ = a.close(context.WithoutCancel(ctx))
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.db, err = sqldb.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func(context.Context) error { return sqldb.Close(a.db) })
	for _, m := range []func(context.Context, *gorm.DB) error{audit.Migrate, access.Migrate, vault.Migrate, supervision.Migrate} {
		if err = m(ctx, a.db); err != nil {
			return nil, err
		}
	}
	auditOpts, err := auditOptions(ctx, cfg, log, false)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	auditOpts.Registerer = a.reg
	a.leader = sqldb.NewLeader(cfg.DatabaseURL, log)
	auditOpts.Leading = a.leader.Leading
	a.audit, err = audit.Open(ctx, a.db, auditOpts)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a.closers = append(a.closers, a.audit.Close)
	aopts := access.Options{IdleTimeout: cfg.SessionIdle, AbsoluteTimeout: cfg.SessionMax, Logger: log, Registerer: a.reg,
		TOTPRequiredRoles: cfg.totpRoles(),
		// What the trail says the office ended prevails over the tables,
		// which a database administrator can put back as they were.
		TrailEnds: func(ctx context.Context, after int64) (access.TrailEnds, error) {
			return vault.GrantEnds(ctx, a.audit, after)
		}}
	if need >= withKeys {
		// TOTP secrets are sealed under a key of the vault's own (wrapped
		// to the master and escrow like every key), declarations'
		// statements with their case's key (the vault's keyring); commands
		// that only bootstrap accounts touch neither.
		recorded, err := vault.RecordedActiveMaster(ctx, a.db)
		if err != nil {
			return nil, err
		}
		if a.masters, err = loadMasters(cfg, log, recorded); err != nil {
			return nil, err
		}
		a.keys = vault.NewKeyring(a.db, nil, vault.KeyringConfig{Masters: a.masters, Logger: log})
		if err = a.keys.Init(ctx, supervision.KeyTables()...); err != nil && !(cfg.recovery && errors.Is(err, vault.ErrMasterNotHeld)) {
			return nil, fmt.Errorf("master key: %w", err)
		}
		if !cfg.recovery {
			// Rows older binaries wrote carry no row tag: tagged once,
			// before any key is opened (a key opened finds its tag
			// checked). Recovery skips it: it may not hold the master the
			// keys are wrapped to, and rewraps without reading any.
			if err := a.keys.TagLegacyRows(ctx, a.audit, supervision.KeyTables()...); err != nil {
				return nil, fmt.Errorf("tag rows written before row tags: %w", err)
			}
			secrets, err := a.keys.VaultKey(ctx, secretsKeyName)
			if err != nil {
				return nil, fmt.Errorf("open the secrets key: %w", err)
			}
			aopts.Sealer = secretSealer{key: secrets, masters: a.masters}
			// The rows that decide who a caller is and what they may do
			// carry tags under a key the database never holds, so that a
			// database administrator's edit of them is refused.
			key, err := a.keys.VaultKey(ctx, rowsKeyName)
			if err != nil {
				return nil, fmt.Errorf("open the rows key: %w", err)
			}
			rows := rowTagger{key}
			aopts.RowTagger = rows
			if err := a.tagUntaggedRows(ctx, rows); err != nil {
				return nil, err
			}
		}
		aopts.CaseSealer = a.keys
	}
	// Grants are indexed in the background, beside the rest of the start:
	// decisions read the tables until then, so a start answers within
	// indexWait however many there are.
	aopts.LoadInBackground = true
	a.access, err = access.New(ctx, a.db, aopts)
	if err != nil {
		return nil, fmt.Errorf("open accounts: %w", err)
	}
	a.closers = append(a.closers, a.access.Close)
	if need < withVault {
		return a, nil
	}
	if cfg.S3Endpoint != "" {
		var s3 *blob.S3
		s3, err = blob.NewS3(ctx, blob.S3Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey,
			SecretKey: cfg.S3SecretKey, TLS: cfg.S3TLS, Region: cfg.S3Region, Logger: log, ReadIdle: cfg.S3ReadIdle,
			WriteIdle: cfg.S3WriteIdle})
		if err == nil {
			a.blobs = s3
			// Aborts of failed uploads still being retried get a last chance.
			a.closers = append(a.closers, s3.Close)
		}
	} else {
		a.blobs, err = blob.NewLocal(filepath.Join(cfg.DataDir, "blobs"))
	}
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	if cfg.recovery {
		// Recovery rewraps keys and nothing else.
		return a, nil
	}
	a.vault = vault.New(a.db, a.blobs, nil, a.access, a.audit, vault.Config{MaxMaterialSize: cfg.MaxUpload, Logger: log,
		WebhookURL: cfg.WebhookURL, RulesEdition: cfg.RulesEdition, Keyring: a.keys, UploadExpiry: cfg.UploadExpiry, Retention: cfg.retention(),
		CiphertextCache: cfg.ciphertextCache()})
	if err := registerAll(a.reg, a.vault.Collectors()); err != nil {
		return nil, err
	}
	a.super, err = supervision.New(a.db, a.vault, a.access, a.audit, nil, a.blobs, supervision.Config{Logger: log, Registerer: a.reg, Keyring: a.keys})
	if err != nil {
		return nil, fmt.Errorf("open supervision: %w", err)
	}
	// Commitments, and their urges and findings, older binaries wrote
	// carry no tag: tagged once per table, before anything is served (the
	// vault's own rows were tagged above).
	if err := a.super.TagLegacyRows(ctx); err != nil {
		return nil, fmt.Errorf("tag commitments, urges and findings written before row tags: %w", err)
	}
	if err := a.super.TagLegacyComplaints(ctx); err != nil {
		return nil, fmt.Errorf("tag complaints and their changes written before row tags: %w", err)
	}
	// Text written in plaintext by binaries from before sealing is sealed
	// once, before anything is served.
	for _, seal := range []func(context.Context) error{a.vault.SealLegacy, a.access.SealLegacy, a.super.SealLegacy} {
		if err = seal(ctx); err != nil {
			return nil, fmt.Errorf("seal legacy text: %w", err)
		}
	}
	// TOTP secrets sealed directly under a master (before they moved under
	// the secrets key) move once, so that retiring that master loses none.
	if n, err := a.access.ResealSecrets(ctx); err != nil {
		return nil, fmt.Errorf("reseal account secrets: %w", err)
	} else if n > 0 {
		log.Info("account secrets resealed under the secrets key", "count", n)
	}
	return a, nil
}

// secretsKeyName names the vault key that seals account secrets (TOTP).
const secretsKeyName = "secrets"

// rowsKeyName names the vault key that tags authorisation rows; the vault
// tags cases' parties with it too.
const rowsKeyName = vault.RowsKeyName

// rowTagger is the rows key as access's RowTagger: access names no vault
// type, so its checker is returned as access's interface.
type rowTagger struct{ *crypt.CaseKey }

func (r rowTagger) RowTagChecker(table string) access.RowTagChecker {
	return r.NewRowTagChecker(table)
}

// rowsTaggedAction records, once, that the access rows written before row
// tags existed were tagged. It is the marker: while it is in the audit
// log, the tagging never runs again, so a database administrator who
// blanks tags and restarts gets his rows refused, not tagged.
const rowsTaggedAction = "access.rows_tagged"

// tagUntaggedRows tags the access rows of an upgraded database once, before
// access reads any, and records it in the audit log. The marker is looked
// up by action, on the (action, seq) index: one short index read however
// long the log. Tagging twice at once (two instances upgraded together) is
// harmless: each tags what is still untagged, and both record it.
func (a *app) tagUntaggedRows(ctx context.Context, tags access.RowTagger) error {
	done, _, err := a.audit.Query(ctx, audit.Filter{Action: rowsTaggedAction, Limit: 1})
	if err != nil {
		return fmt.Errorf("row tags: look for the record of their first tagging: %w", err)
	}
	if len(done) > 0 {
		return nil
	}
	n, err := access.TagUntaggedRows(ctx, a.db, tags)
	if err != nil {
		return err
	}
	e := audit.Event{Actor: "system", Action: rowsTaggedAction, Outcome: audit.Allowed, Resource: "access", Detail: n.String()}
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("row tags: record their first tagging in the audit log: %w", err)
	}
	a.log.Info("access rows written before row tags were tagged, once", "count", n.Total(), "detail", n.String())
	return nil
}

// secretSealer seals access's small secrets under the vault's secrets key.
// Values sealed before, directly under a master (crypt.Master.SealValue),
// still open, and are Stale so that access re-seals them.
type secretSealer struct {
	key     *crypt.CaseKey
	masters *crypt.Masters
}

func (s secretSealer) Seal(label string, plaintext []byte) ([]byte, error) {
	return s.key.SealField(label, plaintext)
}

func (s secretSealer) Open(label string, sealed []byte) ([]byte, error) {
	if crypt.IsMasterValue(sealed) {
		return s.masters.OpenValue(label, sealed)
	}
	return s.key.OpenField(label, sealed)
}

func (s secretSealer) Stale(sealed []byte) bool { return crypt.IsMasterValue(sealed) }

// ready reports whether every dependency can serve, for /readyz: the
// database answers, the blob store answers, the active master key (which
// another instance may have rotated to) is held, and the audit writer takes
// appends. A failure is an *api.NotReady naming the parts that failed.
func (a *app) ready(ctx context.Context) error {
	// At once, so that a dependency that hangs until the deadline does not
	// make the ones checked after it look failed too.
	names := []string{"database", "store", "keys", "audit"}
	checks := []func() error{
		func() error {
			sqlDB, err := a.db.DB()
			if err != nil {
				return err
			}
			return sqlDB.PingContext(ctx)
		},
		func() error { return a.blobs.Ping(ctx) },
		func() error { return a.activeMasterHeld(ctx) },
		func() error { return a.audit.Ping(ctx) },
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = check() }()
	}
	wg.Wait()
	var failed []string
	var reasons []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, names[i])
			reasons = append(reasons, fmt.Errorf("%s: %w", names[i], err))
		}
	}
	if len(failed) > 0 {
		return &api.NotReady{Failed: failed, Err: errors.Join(reasons...)}
	}
	return nil
}

// activeMasterHeld says whether this process holds the master new keys are
// wrapped to: after a rotation on another instance, one not given the new
// key file cannot open the keys of new cases.
func (a *app) activeMasterHeld(ctx context.Context) error {
	fp, err := vault.RecordedActiveMaster(ctx, a.db)
	if err != nil {
		return err
	}
	if fp == "" {
		return nil
	}
	if _, err := a.masters.Get(fp); err != nil {
		return fmt.Errorf("active master %s not held: %w", fp, err)
	}
	return nil
}

// actorCLI is who the audit log names for bootstrap commands run on the host.
func actorCLI() audit.Event {
	return audit.Event{Actor: "cli", ActorOrg: "", IP: "local"}
}

// registerAll registers a package's collectors.
func registerAll(reg prometheus.Registerer, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
