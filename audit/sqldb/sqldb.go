// Package sqldb opens crvault's relational database (SQLite embedded, or
// PostgreSQL) through GORM and runs versioned, per-component schema
// migrations. It knows no domain: each package that owns tables hands it its
// own numbered steps. It lives under audit/ because audit is the innermost
// package and every other package may depend on it.
package sqldb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names, as GORM's Dialector.Name reports them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// ErrSchemaTooNew means the database was migrated by a newer binary; running
// an older one against it could corrupt data, so callers must refuse to start.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// Open connects to url, which is "sqlite:PATH" (or a bare path) or
// "postgres://...". Errors never include the URL, which may carry a password.
func Open(ctx context.Context, url string) (*gorm.DB, error) {
	cfg := &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	var dial gorm.Dialector
	dsn := url
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		dsn = durableCommits(url)
		dial = postgres.Open(dsn)
	case hasScheme(url) && !strings.HasPrefix(url, "sqlite:"):
		// A mistyped "postgress://..." read as a file path would open a
		// fresh SQLite vault (a new master key, a setup link) in a
		// directory named after the password.
		return nil, fmt.Errorf("open database: unknown database URL scheme in %q: use postgres://, postgresql:// or sqlite:PATH",
			redactURL(url))
	default:
		path := strings.TrimPrefix(url, "sqlite:")
		if path == "" {
			return nil, errors.New("open database: empty sqlite path")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("open database: %w", err)
			}
		}
		// SQLite makes the file with 0644, and its -wal and -shm files
		// take the file's mode: the database (sealed texts, the audit log
		// with its addresses) is for vaultd alone.
		if err := ownerOnly(path); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		// WAL lets readers proceed while the audit writer commits;
		// synchronous=FULL makes a commit survive power loss, which the
		// audit log's "durable before release" promise depends on.
		dsn := "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_synchronous=FULL&_txlock=immediate"
		dial = sqlite.Open(dsn)
	}
	db, err := gorm.Open(dial, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialName(url), redact(redact(err, dsn), url))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialName(url), err)
	}
	if Dialect(db) == Postgres {
		// As many idle as open: with fewer, a burst beyond the idle count
		// closed each connection it returned and opened a new one (a
		// server process) for the next query; at 64 clients that churn
		// held GET /me to 1,500 requests/s with a p99 of 400 ms.
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
	} else {
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	}
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		return nil, fmt.Errorf("reach %s database: %w", dialName(url), redact(redact(err, dsn), url))
	}
	return db, nil
}

// OpenSQLiteFileReadOnly opens the SQLite file at path to read it, and
// never writes it: not even its header, which Open's WAL mode would
// rewrite, nor a -wal or -shm file beside it. For finished files (a
// backup, read before it is restored), which nothing else writes.
func OpenSQLiteFileReadOnly(ctx context.Context, path string) (*gorm.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database file: %w", err)
	}
	db, err := gorm.Open(sqlite.Open("file:"+path+"?mode=ro&immutable=1"), &gorm.Config{TranslateError: true, Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("open database file %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err == nil {
		err = sqlDB.PingContext(ctx)
	}
	if err != nil {
		_ = Close(db)
		return nil, fmt.Errorf("open database file %s: %w", path, err)
	}
	return db, nil
}

// durableCommits makes every connection commit with synchronous_commit=on
// (a startup parameter, which outranks the server's and the role's
// defaults) unless the URL sets the parameter itself: a write acknowledged
// to a client must survive a crash of the database server, whatever its
// administrator chose for other applications. The audit log sets its own
// level in each transaction on top of this.
func durableCommits(dsn string) string {
	u, err := neturl.Parse(dsn)
	if err != nil {
		return dsn // the driver reports the malformed URL
	}
	q := u.Query()
	if q.Has("synchronous_commit") || strings.Contains(q.Get("options"), "synchronous_commit") {
		return dsn
	}
	q.Set("synchronous_commit", "on")
	u.RawQuery = q.Encode()
	return u.String()
}

func dialName(url string) string {
	if strings.HasPrefix(url, "postgres") {
		return Postgres
	}
	return SQLite
}

// redact strips the connection URL from driver errors.
func redact(err error, url string) error {
	if url == "" || !strings.Contains(err.Error(), url) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), url, "<database-url>"))
}

// Dialect reports SQLite or Postgres.
func Dialect(db *gorm.DB) string { return db.Dialector.Name() }

// Close releases the connection pool.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Step is one numbered schema change of a component. Versions start at 1 and
// are never renumbered or edited once released; a change is a new step.
type Step struct {
	Version int
	Name    string
	// Up runs inside the migration transaction; dialect is SQLite or Postgres.
	Up func(tx *gorm.DB, dialect string) error
	// KeepsOlder marks a step that instances of older binaries may keep
	// serving beside (it only adds what they never read). Every other step
	// stops them (watchSchema in cmd/vaultd): the safe default, since an
	// old instance beside a step that binds rows with tags, or derives
	// columns it does not maintain, writes what the new schema refuses.
	KeepsOlder bool
}

type schemaMigration struct {
	Component string    `gorm:"primaryKey;size:64"`
	Version   int       `gorm:"primaryKey"`
	Name      string    `gorm:"size:200;not null"`
	AppliedAt time.Time `gorm:"not null"`
	// StopsOlder is the step's !KeepsOlder, for the older instances still
	// serving, which cannot know the step. Rows from before the column
	// default to true; they are below every serving instance's version.
	StopsOlder bool `gorm:"not null;default:true"`
}

func (schemaMigration) TableName() string { return "schema_migrations" }

type loggerKey struct{}

// WithLogger returns ctx carrying the logger that Migrate reports the steps
// it applies to: the process's own, so that a migration run by any command
// is logged as that command logs (JSON lines), not through slog's default.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// loggerFrom is the logger WithLogger put in ctx, or slog's default.
func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}

// Migrate applies the component's steps that the database lacks, each in its
// own transaction, and refuses (ErrSchemaTooNew) when the database holds a
// version this binary does not know.
func Migrate(ctx context.Context, db *gorm.DB, component string, steps []Step) error {
	for i, s := range steps {
		if s.Version != i+1 {
			return fmt.Errorf("migrate %s: step %d has version %d", component, i+1, s.Version)
		}
	}
	db = db.WithContext(ctx)
	if err := db.AutoMigrate(&schemaMigration{}); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", component, err)
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if Dialect(tx) == Postgres {
			// Several instances may start at once; one migrates, the rest wait.
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(?))", "crvault-migrate-"+component).Error; err != nil {
				return fmt.Errorf("migrate %s: lock: %w", component, err)
			}
		}
		var current int
		if err := tx.Model(&schemaMigration{}).Where("component = ?", component).
			Select("COALESCE(MAX(version), 0)").Scan(&current).Error; err != nil {
			return fmt.Errorf("migrate %s: read version: %w", component, err)
		}
		if current > len(steps) {
			return fmt.Errorf("%w: %s is at version %d, this vaultd knows up to %d; upgrade vaultd",
				ErrSchemaTooNew, component, current, len(steps))
		}
		for _, s := range steps[current:] {
			if err := s.Up(tx, Dialect(tx)); err != nil {
				return fmt.Errorf("migrate %s to version %d (%s): %w", component, s.Version, s.Name, err)
			}
			// Not through Create: GORM puts a field's default (true) in
			// place of its zero value, so a false StopsOlder would be lost.
			if err := tx.Exec("INSERT INTO schema_migrations (component, version, name, applied_at, stops_older) VALUES (?, ?, ?, ?, ?)",
				component, s.Version, s.Name, time.Now().UTC(), !s.KeepsOlder).Error; err != nil {
				return fmt.Errorf("migrate %s: record version %d: %w", component, s.Version, err)
			}
			loggerFrom(ctx).InfoContext(ctx, "schema migrated", "component", component, "version", s.Version, "name", s.Name)
		}
		return nil
	})
}

// hasScheme reports whether url starts with a URL scheme and "://"
// (RFC 3986: a letter, then letters, digits, "+", "-" or ".").
func hasScheme(url string) bool {
	i := strings.Index(url, "://")
	if i < 1 {
		return false
	}
	for j, r := range url[:i] {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case j > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// redactURL is url with any password in it replaced, for messages.
func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i+3] + "..."
		}
		return "..."
	}
	if _, ok := u.User.Password(); ok {
		u.User = neturl.UserPassword(u.User.Username(), "xxxxxx")
	}
	return u.String()
}

// ownerOnly makes the SQLite file at path, and the -wal and -shm files
// beside it if they exist, readable by their owner only, creating the
// database file empty (which SQLite takes as a new database) if there is
// none.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
