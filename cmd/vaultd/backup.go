package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/blob"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/supervision"
	"gorm.io/gorm"
)

// Backup and restore (docs/operations.md). A backup is a directory:
//
//	manifest.json         what is in it, with the SHA-256 of every file
//	vault.db | vault.pgdump  the database: SQLite through VACUUM INTO (a
//	                      consistent copy of a live database, never a file
//	                      copy), PostgreSQL through pg_dump (one snapshot)
//	blobs/<id>            every blob of the store, as stored (ciphertext)
//	keys/                 <data>/keys: master key files, checkpoint signing key
//	checkpoint-mirror/    VAULT_CHECKPOINT_MIRROR_DIR, when set
//
// The database is copied before the blobs: blobs are written before the
// row that names them and never change, so every blob the copied database
// names is in the store when the copy of the store runs (blobs deleted in
// between belong to cases shredded in between). Blobs that no row of the
// copy names are harmless: the janitor reclaims them after a restore.
//
// The checkpoint mirror is copied before the database, so that its
// checkpoint (it keeps the newest, and a running server signs one every
// few seconds) covers no event the database copy lacks: one that did had
// the restored log refused as rolled back. The key files are copied before
// the database too, and again after the blobs: keys retire deletes a
// retired master's file, and a rotation finished during the hours a large
// store takes to copy left the backup without the master its database
// copy wraps the keys to. Keys go to --keys-out when given: keep them
// apart from the rest, since whoever holds both reads everything.

// backupManifest describes a backup.
type backupManifest struct {
	Format    int          `json:"format"`
	CreatedAt time.Time    `json:"created_at"`
	Database  string       `json:"database"` // sqlite or postgres
	DBFile    string       `json:"db_file"`
	DBSHA256  string       `json:"db_sha256"`
	Blobs     []backupFile `json:"blobs"`
	Keys      []string     `json:"keys"`
	KeysDir   string       `json:"keys_dir"`
	// Checkpoint is the latest signed checkpoint before the database was
	// copied: the copy's log extends it.
	Checkpoint string `json:"checkpoint,omitempty"`
	// AuditHead is the last sequence number of the database copy's audit
	// log, read from the copy's own snapshot: a witness holding a
	// checkpoint beyond it would refuse the restored log (restore checks
	// that first). Older binaries read it from the live database after the
	// copy, which could be beyond the copy's.
	AuditHead int64 `json:"audit_head,omitempty"`
	// Masters are the fingerprints of the masters the database copy
	// wraps its keys to, the active one among them (vault.MastersNamed):
	// restore refuses keys that lack one before it writes anything, as
	// the restored vault would not start. Nil in the manifests of older
	// binaries; empty for a vault with no key yet.
	Masters []string `json:"masters"`
}

type backupFile struct {
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

const manifestFile = "manifest.json"

// openBlobStore opens the configured blob store.
func openBlobStore(ctx context.Context, cfg config) (blob.Store, error) {
	if cfg.S3Endpoint != "" {
		return blob.NewS3(ctx, blob.S3Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey,
			SecretKey: cfg.S3SecretKey, TLS: cfg.S3TLS, Region: cfg.S3Region, ReadIdle: cfg.S3ReadIdle,
			WriteIdle: cfg.S3WriteIdle})
	}
	return blob.NewLocal(filepath.Join(cfg.DataDir, "blobs"))
}

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var out, keysOut string
	cfg, _, err := parse("backup", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "directory to write the backup to (must not exist or be empty)")
		fs.StringVar(&keysOut, "keys-out", "", "directory for the key files (default <out>/keys); keep it apart")
	})
	if err != nil {
		return err
	}
	if out == "" {
		return usageError{"backup needs --out DIR"}
	}
	if err := emptyDir(out); err != nil {
		return err
	}
	if keysOut == "" {
		keysOut = filepath.Join(out, "keys")
	} else if err := emptyDir(keysOut); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	a, err := openApp(ctx, cfg, log, withDB)
	if err != nil {
		return err
	}
	defer a.close(context.WithoutCancel(ctx))
	store, err := openBlobStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	m := backupManifest{Format: 1, CreatedAt: time.Now().UTC(), Database: dbKind(cfg.DatabaseURL)}
	if cp, err := a.audit.Checkpoint(ctx); err == nil {
		m.Checkpoint = string(cp)
	}
	// 0. The keys, before the database: a master key rotation finished
	// while the blobs copy (keys retire deletes the old master's file)
	// would otherwise leave the backup without the master its database
	// copy wraps the keys to. They are copied again at the end, for a
	// master made after this copy and named in the database's.
	if _, err := copyDir(cfg.keyDir(), keysOut); err != nil {
		return fmt.Errorf("copy keys: %w", err)
	}
	// The checkpoint mirror before the database too: it keeps the newest
	// checkpoint, and a running server signs one every few seconds. One of
	// events the database copy never saw would have the restored log
	// refused as rolled back.
	if cfg.MirrorDir != "" {
		if _, err := copyNewFiles(cfg.MirrorDir, filepath.Join(out, "checkpoint-mirror")); err != nil {
			return fmt.Errorf("copy checkpoint mirror: %w", err)
		}
	}
	// 1. The database, one consistent snapshot, and what the manifest says
	// of it (the masters it needs, its audit head) read from that very
	// snapshot: read from the live database before or after the copy, a
	// head beyond the copy's let restore pass a witness that had seen more
	// than the copy (a rolled-back log, refused only once restore had
	// written everything), and masters read around a pg_dump missed one
	// made and retired during it.
	if m.Database == "sqlite" {
		m.DBFile = "vault.db"
		dbPath := filepath.Join(out, m.DBFile)
		if err := a.db.WithContext(ctx).Exec("VACUUM INTO ?", dbPath).Error; err != nil {
			return fmt.Errorf("copy the database (VACUUM INTO): %w", err)
		}
		// SQLite writes it 0644; like every other file of a backup, it is
		// its owner's alone.
		if err := os.Chmod(dbPath, 0o600); err != nil {
			return fmt.Errorf("copy the database: %w", err)
		}
		if m.Masters, m.AuditHead, err = sqliteFileState(ctx, dbPath); err != nil {
			return err
		}
	} else {
		m.DBFile = "vault.pgdump"
		if m.Masters, m.AuditHead, err = pgDumpSnapshot(ctx, a.db, cfg.DatabaseURL, filepath.Join(out, m.DBFile)); err != nil {
			return err
		}
	}
	if m.DBSHA256, err = fileSHA256(filepath.Join(out, m.DBFile)); err != nil {
		return err
	}
	if m.Masters == nil {
		m.Masters = []string{} // recorded: none needed
	}
	// 2. The blobs, after the database.
	if err := os.MkdirAll(filepath.Join(out, "blobs"), 0o700); err != nil {
		return err
	}
	err = store.List(ctx, func(id string, _ time.Time) error {
		f, err := copyBlobOut(ctx, store, id, filepath.Join(out, "blobs", id))
		if errors.Is(err, blob.ErrNotFound) {
			return nil // deleted since it was listed
		}
		m.Blobs = append(m.Blobs, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("copy blobs: %w", err)
	}
	// 3. Keys made since step 0.
	if _, err := copyNewFiles(cfg.keyDir(), keysOut); err != nil {
		return fmt.Errorf("copy keys: %w", err)
	}
	if m.Keys, err = regularFiles(keysOut); err != nil {
		return fmt.Errorf("copy keys: %w", err)
	}
	if insideDir(out, keysOut) {
		m.KeysDir, _ = filepath.Rel(out, keysOut)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(out, manifestFile), append(b, '\n'), 0o600); err != nil {
		return err
	}
	e := actorCLI()
	e.Action, e.Outcome, e.Resource = "backup.create", audit.Allowed, "backup"
	e.Detail = fmt.Sprintf("%s database, %d blobs, %d key files", m.Database, len(m.Blobs), len(m.Keys))
	if _, err := a.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record in audit log: %w", err)
	}
	fmt.Fprintf(stdout, "backup written to %s: %s database, %d blobs, %d key files in %s\n", out, m.Database, len(m.Blobs), len(m.Keys), keysOut)
	if cfg.MasterKey != "" || len(cfg.masterFiles()) > 0 || cfg.MasterIdentityFile != "" {
		fmt.Fprintln(stdout, "note: master keys given by VAULT_MASTER_KEY, VAULT_MASTER_KEY_FILE or a token are not in it; back them up apart")
	}
	if k := cfg.auditKeyFile(); !insideDir(cfg.keyDir(), k) {
		fmt.Fprintf(stdout, "note: the checkpoint signing key %s (VAULT_AUDIT_KEY_FILE) is not in it; back it up apart: a restore needs it\n", k)
	}
	return nil
}

func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var from, keysFrom, escrowID string
	cfg, _, err := parse("restore", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "backup directory written by vaultd backup")
		fs.StringVar(&keysFrom, "keys-from", "", "directory of the key files (default <from>/keys)")
		fs.StringVar(&escrowID, "escrow-identity", "", "restore although a master the backup's keys are wrapped to is lost, "+
			"to recover them with this escrow identity file (vaultd keys recover) before the vault starts")
	})
	if err != nil {
		return err
	}
	if from == "" {
		return usageError{"restore needs --from DIR"}
	}
	b, err := os.ReadFile(filepath.Join(from, manifestFile))
	if err != nil {
		return fmt.Errorf("read backup manifest: %w", err)
	}
	var m backupManifest
	if err := json.Unmarshal(b, &m); err != nil || m.Format != 1 {
		return fmt.Errorf("backup manifest %s is not one this vaultd wrote", filepath.Join(from, manifestFile))
	}
	if keysFrom == "" {
		keysFrom = filepath.Join(from, "keys")
	}
	if got := dbKind(cfg.DatabaseURL); got != m.Database {
		return fmt.Errorf("the backup holds a %s database; VAULT_DATABASE_URL is %s", m.Database, got)
	}
	dbFile := filepath.Join(from, filepath.Base(m.DBFile))
	if sum, err := fileSHA256(dbFile); err != nil || sum != m.DBSHA256 {
		return fmt.Errorf("database file %s does not match the manifest", dbFile)
	}
	// Only into an empty environment: nothing is overwritten.
	if err := blobStoreEmpty(ctx, cfg); err != nil {
		return err
	}
	if ms, _ := filepath.Glob(filepath.Join(cfg.keyDir(), "*")); len(ms) > 0 {
		return fmt.Errorf("%s is not empty: restore only into an empty environment", cfg.keyDir())
	}
	// What would make the restored log fail to open is found before
	// anything is written: a failure half-way leaves an environment that
	// is no longer empty, and a second try is refused.
	if err := restoreKeysPresent(cfg, m, keysFrom); err != nil {
		return err
	}
	held, err := restoreHeldMasters(cfg, keysFrom, escrowID, stderr)
	if err != nil {
		return err
	}
	needed := m.Masters
	if needed == nil && m.Database == "sqlite" {
		// A manifest of an older vaultd: the backup's file says.
		if needed, err = sqliteFileMasters(ctx, dbFile); err != nil {
			return fmt.Errorf("list the masters the backup's database needs: %w", err)
		}
	}
	lost := notHeld(needed, held)
	if len(lost) > 0 && escrowID == "" {
		return fmt.Errorf("%s. Nothing was written", mastersNotHeld(lost, held, keysFrom))
	}
	if err := restoreWitnessesBehind(ctx, cfg, m, stderr); err != nil {
		return err
	}
	// From here on a failure leaves what was written, which a second try
	// refuses as a non-empty environment: its message says what that is.
	var wrote []string
	stopped := func(err error) error { return restoreStopped(err, wrote) }
	if m.Database == "sqlite" {
		path := strings.TrimPrefix(cfg.DatabaseURL, "sqlite:")
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: restore only into an empty environment", path)
		}
		// A file copy is right here: the source is a finished backup file,
		// not a live database, and nothing has the target open.
		wrote = append(wrote, "the database file "+path)
		if err := copyFile(dbFile, path, 0o600); err != nil {
			return stopped(fmt.Errorf("restore database: %w", err))
		}
	} else {
		if err := pgRestore(ctx, cfg.DatabaseURL, dbFile); err != nil {
			return err // one transaction: nothing was restored
		}
		_, schema, _ := libpqURL(cfg.DatabaseURL)
		wrote = append(wrote, fmt.Sprintf("the backup's database (pg_restore): drop what it restored (DROP SCHEMA %s CASCADE, "+
			"or the database of VAULT_DATABASE_URL)", cmp.Or(schema, "public")))
	}
	if m.Database != "sqlite" && m.Masters == nil {
		// A manifest of an older vaultd, and a pg_dump file only
		// PostgreSQL reads: the restored database says, before anything
		// else is written.
		if lost, err = restoredMastersNotHeld(ctx, cfg.DatabaseURL, held); err != nil {
			return stopped(err)
		}
		if len(lost) > 0 && escrowID == "" {
			_, schema, _ := libpqURL(cfg.DatabaseURL)
			return fmt.Errorf("%s. The backup's database was restored (pg_restore), and nothing else (no blob, no key file): "+
				"drop what it restored (DROP SCHEMA %s CASCADE, or the database of VAULT_DATABASE_URL) before you run the restore again",
				mastersNotHeld(lost, held, keysFrom), cmp.Or(schema, "public"))
		}
	}
	store, err := openBlobStore(ctx, cfg)
	if err != nil {
		return stopped(fmt.Errorf("open blob store: %w", err))
	}
	wrote = append(wrote, "blobs into the blob store")
	for _, f := range m.Blobs {
		if err := copyBlobIn(ctx, store, f, filepath.Join(from, "blobs", f.ID)); err != nil {
			return stopped(err)
		}
	}
	wrote = append(wrote, "key files into "+cfg.keyDir())
	if _, err := copyDir(keysFrom, cfg.keyDir()); err != nil {
		return stopped(fmt.Errorf("restore keys: %w", err))
	}
	if cfg.MirrorDir != "" {
		if _, err := copyDir(filepath.Join(from, "checkpoint-mirror"), cfg.MirrorDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return stopped(fmt.Errorf("restore checkpoint mirror: %w", err))
		}
	}
	// The restore itself goes into the restored log.
	a, err := openApp(ctx, cfg, newLogger(stderr, "warn"), withDB)
	if err != nil {
		return stopped(err)
	}
	defer a.close(context.WithoutCancel(ctx))
	e := actorCLI()
	e.Action, e.Outcome, e.Resource = "backup.restore", audit.Allowed, "backup"
	e.Detail = fmt.Sprintf("backup of %s: %d blobs", m.CreatedAt.Format(time.RFC3339), len(m.Blobs))
	if len(lost) > 0 {
		e.Detail += fmt.Sprintf("; masters %s not held, to recover from escrow", strings.Join(lost, ", "))
	}
	if _, err := a.audit.Append(ctx, e); err != nil {
		return stopped(fmt.Errorf("record in audit log: %w", err))
	}
	if len(lost) > 0 {
		fmt.Fprintf(stdout, "restored the backup of %s: %s database, %d blobs, but its keys are wrapped to master(s) %s, which it does not hold: "+
			"vaultd serve refuses to start until you run vaultd keys recover --escrow-identity %s; then run vaultd audit verify\n",
			m.CreatedAt.Format(time.RFC3339), m.Database, len(m.Blobs), strings.Join(lost, ", "), escrowID)
		return nil
	}
	fmt.Fprintf(stdout, "restored the backup of %s: %s database, %d blobs; now run vaultd audit verify\n", m.CreatedAt.Format(time.RFC3339), m.Database, len(m.Blobs))
	return nil
}

// restoreStopped says, with err, what a restore that stopped wrote before
// it did: a second try is refused until that is removed.
func restoreStopped(err error, wrote []string) error {
	if len(wrote) == 0 {
		return err
	}
	return fmt.Errorf("%w. The restore stopped after it wrote %s: remove what it wrote before you run the restore again, "+
		"as it restores only into an empty environment", err, strings.Join(wrote, "; "))
}

// blobStoreEmpty refuses a blob store that holds anything. A local store's
// directory is not made here: a refused restore leaves nothing behind.
func blobStoreEmpty(ctx context.Context, cfg config) error {
	if cfg.S3Endpoint == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "blobs")); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	store, err := openBlobStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	nonEmpty := errors.New("not empty")
	if err := store.List(ctx, func(string, time.Time) error { return nonEmpty }); err != nil {
		return fmt.Errorf("the blob store is not empty (%v): restore only into an empty environment", err)
	}
	return nil
}

// sqliteFileMasters lists the masters the SQLite database file at path
// needs (vault.MastersNamed), reading the file without writing it.
func sqliteFileMasters(ctx context.Context, path string) ([]string, error) {
	db, err := sqldb.OpenSQLiteFileReadOnly(ctx, path)
	if err != nil {
		return nil, err
	}
	defer sqldb.Close(db)
	return vault.MastersNamed(ctx, db, supervision.KeyTables()...)
}

// sqliteFileState reads what a backup's manifest says of the SQLite
// database file at path (copyState), without writing the file.
func sqliteFileState(ctx context.Context, path string) ([]string, int64, error) {
	db, err := sqldb.OpenSQLiteFileReadOnly(ctx, path)
	if err != nil {
		return nil, 0, fmt.Errorf("read the database copy: %w", err)
	}
	defer sqldb.Close(db)
	return copyState(ctx, db)
}

// copyState reads, from db (a database copy, or the transaction holding
// the snapshot a copy is made from), the masters it needs
// (vault.MastersNamed) and its audit log's last sequence number.
func copyState(ctx context.Context, db *gorm.DB) (masters []string, head int64, err error) {
	if masters, err = vault.MastersNamed(ctx, db, supervision.KeyTables()...); err != nil {
		return nil, 0, fmt.Errorf("list the masters the database copy needs: %w", err)
	}
	if err := db.WithContext(ctx).Raw("SELECT COALESCE(MAX(seq), 0) FROM audit_events").Scan(&head).Error; err != nil {
		return nil, 0, fmt.Errorf("read the audit log's head: %w", err)
	}
	return masters, head, nil
}

// pgDumpSnapshot dumps the PostgreSQL database into out, and reads
// copyState from the very snapshot the dump holds: a read-only repeatable
// read transaction exports its snapshot, which pg_dump imports
// (--snapshot). A pg_dump file cannot be read here, and the live database
// read at any other moment says more or less than the dump holds.
func pgDumpSnapshot(ctx context.Context, db *gorm.DB, dbURL, out string) (masters []string, head int64, err error) {
	tx := db.WithContext(ctx).Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if tx.Error != nil {
		return nil, 0, fmt.Errorf("open the snapshot to copy the database from: %w", tx.Error)
	}
	// It only read: ending it either way is the same, and it must outlive
	// pg_dump's import of its snapshot.
	defer tx.Rollback()
	var snapshot string
	if err := tx.Raw("SELECT pg_export_snapshot()").Scan(&snapshot).Error; err != nil {
		return nil, 0, fmt.Errorf("export the snapshot to copy the database from: %w", err)
	}
	// Idle while pg_dump runs, which a server's idle_in_transaction_session_timeout
	// would end, and the snapshot with it before pg_dump imported it.
	if err := tx.Exec("SET LOCAL idle_in_transaction_session_timeout = 0").Error; err != nil {
		return nil, 0, fmt.Errorf("keep the snapshot to copy the database from: %w", err)
	}
	if masters, head, err = copyState(ctx, tx); err != nil {
		return nil, 0, err
	}
	if err := pgDumpTo(ctx, dbURL, out, snapshot); err != nil {
		return nil, 0, err
	}
	return masters, head, nil
}

// restoredMastersNotHeld lists the masters the database restored at dbURL
// needs and held lacks.
func restoredMastersNotHeld(ctx context.Context, dbURL string, held []string) ([]string, error) {
	db, err := sqldb.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer sqldb.Close(db)
	needed, err := vault.MastersNamed(ctx, db, supervision.KeyTables()...)
	if err != nil {
		return nil, fmt.Errorf("list the masters the restored database needs: %w", err)
	}
	return notHeld(needed, held), nil
}

// restoreHeldMasters lists the fingerprints of the masters the restored
// environment will hold, as serve will load them: the master key files of
// keysFrom (installed as <data>/keys), VAULT_MASTER_KEY and
// VAULT_MASTER_KEY_FILE. A key file that cannot be opened (a sealed one
// without VAULT_MASTER_IDENTITY_FILE) fails here as it would at start. An
// escrow identity file, when given, must be one.
func restoreHeldMasters(cfg config, keysFrom, escrowID string, stderr io.Writer) ([]string, error) {
	log := newLogger(stderr, "warn")
	if escrowID != "" {
		if _, err := crypt.LoadMaster(escrowID); err != nil {
			return nil, fmt.Errorf("escrow identity: %w", err)
		}
	}
	unseal, err := unsealIdentities(cfg, log)
	if err != nil {
		return nil, err
	}
	ms, err := readMastersWith(cfg, keysFrom, unseal)
	if err != nil {
		return nil, fmt.Errorf("read the master keys the restored vault would hold: %w", err)
	}
	fps := make([]string, 0, len(ms))
	for _, m := range ms {
		fps = append(fps, m.Fingerprint())
	}
	slices.Sort(fps)
	return slices.Compact(fps), nil
}

// notHeld lists the masters of needed that held lacks.
func notHeld(needed, held []string) []string {
	var out []string
	for _, fp := range needed {
		if !slices.Contains(held, fp) {
			out = append(out, fp)
		}
	}
	return out
}

// mastersNotHeld says which masters a restore lacks and what to give.
func mastersNotHeld(lost, held []string, keysFrom string) string {
	has := "none"
	if len(held) > 0 {
		has = strings.Join(held, ", ")
	}
	return fmt.Sprintf("the backup's database wraps its keys to master(s) %s, which the restored vault would not hold "+
		"(the master key files of %s, VAULT_MASTER_KEY_FILE and VAULT_MASTER_KEY give %s): vaultd serve would refuse to start. "+
		"Give the keys the backup was written with (--keys-from DIR, where vaultd backup --keys-out wrote them) or the master's key file "+
		"(VAULT_MASTER_KEY_FILE); if that master is lost, restore with --escrow-identity FILE and then run vaultd keys recover --escrow-identity FILE",
		strings.Join(lost, ", "), keysFrom, has)
}

// restoreKeysPresent checks that the key files the backup lists are in
// keysFrom, and that the checkpoint signing key will be where the
// configuration says: without it the first command would refuse the
// restored log (it holds checkpoints signed with that key).
func restoreKeysPresent(cfg config, m backupManifest, keysFrom string) error {
	for _, k := range m.Keys {
		if _, err := os.Stat(filepath.Join(keysFrom, k)); err != nil {
			return fmt.Errorf("the backup's key file %s is not in %s: give --keys-from DIR (where vaultd backup --keys-out wrote them)", k, keysFrom)
		}
	}
	if m.Checkpoint == "" {
		return nil // nothing signed yet: a key can be made
	}
	key := cfg.auditKeyFile()
	if insideDir(cfg.keyDir(), key) {
		if rel, err := filepath.Rel(cfg.keyDir(), key); err == nil && slices.Contains(m.Keys, filepath.ToSlash(rel)) {
			return nil
		}
	} else if _, err := os.Stat(key); err == nil {
		return nil
	}
	return fmt.Errorf("the checkpoint signing key %s will not be there after the restore, and the backup's log holds checkpoints signed "+
		"with it: give its file (VAULT_AUDIT_KEY_FILE) or the backup's keys (--keys-from DIR)", key)
}

// restoreWitnessesBehind refuses a restore that a checkpoint witness
// outside the data directory would refuse once it is done: one holding a
// checkpoint beyond the backup's log. That is the usual case after a real
// loss, as the live log went on (if only with the backup's own record):
// restoring rolls the log back, which the witness exists to catch. The
// operator records the incident and restores against a fresh witness, and
// the old one keeps the evidence of what was lost. Backups whose manifest
// has no audit head are not checked here.
func restoreWitnessesBehind(ctx context.Context, cfg config, m backupManifest, stderr io.Writer) error {
	if m.AuditHead == 0 || (!cfg.s3Witness() && cfg.MirrorDir == "") {
		return nil // the default witness lives in the keys directory, which is empty
	}
	// Not read-only: a witness bucket not made yet is made, with its
	// object lock, as the restore's own audit record would make it.
	opts, err := auditOptions(ctx, cfg, newLogger(stderr, "warn"), false)
	if err != nil {
		return fmt.Errorf("open the checkpoint witnesses: %w", err)
	}
	sizeOnly := func(b []byte) error { _, err := audit.CheckpointSize(b); return err }
	for _, w := range opts.Witnesses {
		b, err := w.Latest(ctx, sizeOnly)
		if err != nil {
			return fmt.Errorf("read checkpoint witness %s: %w", w, err)
		}
		if b == nil {
			continue
		}
		if size, _ := audit.CheckpointSize(b); size > m.AuditHead {
			return fmt.Errorf("the checkpoint witness %s holds a checkpoint of %d events, beyond this backup's log (%d): the restored log "+
				"would be refused as rolled back, as the events after the backup are lost. If that is what happened, record the incident, "+
				"point the restore at a fresh witness (a new VAULT_CHECKPOINT_S3_PREFIX, or an empty VAULT_CHECKPOINT_MIRROR_DIR) and run it "+
				"again; the old witness keeps the evidence (README, \"Restoring a database backup\"). Nothing was written", w, size, m.AuditHead)
		}
	}
	return nil
}

// emptyDir makes dir (0700) or checks it is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

func copyBlobOut(ctx context.Context, store blob.Store, id, path string) (backupFile, error) {
	obj, err := store.Open(ctx, id)
	if err != nil {
		return backupFile{}, err
	}
	defer obj.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return backupFile{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.NewSectionReader(obj, 0, obj.Size()))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return backupFile{}, fmt.Errorf("copy blob %s: %w", id, err)
	}
	return backupFile{ID: id, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func copyBlobIn(ctx context.Context, store blob.Store, f backupFile, path string) error {
	if !blob.ValidID(f.ID) {
		return fmt.Errorf("backup names an invalid blob id %q", f.ID)
	}
	if sum, err := fileSHA256(path); err != nil || sum != f.SHA256 {
		return fmt.Errorf("blob %s in the backup is missing or damaged", f.ID)
	}
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := store.Put(ctx, f.ID, r, f.Size); err != nil {
		return fmt.Errorf("restore blob %s: %w", f.ID, err)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyDir copies the regular files of src into dst (0700), each 0600,
// never overwriting; a missing src copies nothing.
func copyDir(src, dst string) ([]string, error) {
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), 0o600); err != nil {
			return names, err
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// copyNewFiles is copyDir for the files of src that dst does not hold yet;
// a file removed while it runs (a retired master's, a checkpoint the
// mirror replaced) is not copied.
func copyNewFiles(src, dst string) ([]string, error) {
	have, err := regularFiles(dst)
	if err != nil {
		return nil, err
	}
	files, err := regularFiles(src)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range files {
		if slices.Contains(have, name) {
			continue
		}
		err := copyFile(filepath.Join(src, name), filepath.Join(dst, name), 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return names, err
		}
		names = append(names, name)
	}
	return names, nil
}

// regularFiles lists the names of dir's regular files, sorted, as copyDir
// copies them; none if dir does not exist.
func regularFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// pgTool finds pg_dump or pg_restore: on PATH, else the newest of
// Debian's /usr/lib/postgresql/*/bin.
func pgTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Strings(ms)
	if len(ms) == 0 {
		return "", fmt.Errorf("%s not found: install the PostgreSQL client of the server's version", name)
	}
	return ms[len(ms)-1], nil
}

// libpqURL turns a database URL into one libpq tools accept, and says
// which schema it names (search_path), if any.
func libpqURL(dbURL string) (string, string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", fmt.Errorf("database URL: %w", err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String(), schema, nil
}

// pgDumpTo dumps the database into out from the exported snapshot
// (pg_export_snapshot), which must stay open until pg_dump ends.
func pgDumpTo(ctx context.Context, dbURL, out, snapshot string) error {
	bin, err := pgTool("pg_dump")
	if err != nil {
		return err
	}
	u, schema, err := libpqURL(dbURL)
	if err != nil {
		return err
	}
	args := []string{"--format=custom", "--no-owner", "--no-privileges", "--snapshot=" + snapshot, "--file=" + out}
	if schema != "" {
		args = append(args, "--schema="+schema)
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "--dbname="+u)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

func pgRestore(ctx context.Context, dbURL, file string) error {
	// Only into an empty schema.
	db, err := sqldb.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	var n int64
	err = db.WithContext(ctx).Raw("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()").Scan(&n).Error
	sqldb.Close(db)
	if err != nil {
		return fmt.Errorf("inspect target database: %w", err)
	}
	if n > 0 {
		return errors.New("the target database is not empty: restore only into an empty environment")
	}
	bin, err := pgTool("pg_restore")
	if err != nil {
		return err
	}
	u, _, err := libpqURL(dbURL)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname="+u, file)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_restore: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}
