//go:build unix

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/witness"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/supervision"
)

// TestBackupManifestDescribesItsCopy: a backup's manifest says how far the
// log of its database copy goes (audit_head), and restore refuses, before
// it writes anything, a witness that has seen beyond it. The head was read
// from the live database after the copy: events appended in between (a
// busy vault) raised it past the copy's, a witness checkpoint of those
// events passed restore's check, and the restore failed only once it had
// written the database, the blobs and the keys, when the restored log was
// refused as rolled back. A restore that stops after it wrote the database
// says what to remove before the next try.
func TestBackupManifestDescribesItsCopy(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			sqlite := be.name == "sqlite+local"
			extra := []string{"VAULT_CHECKPOINT_INTERVAL=200ms"}
			if sqlite {
				// A witness outside the data directory, as the S3 one is:
				// restore checks those.
				extra = append(extra, "VAULT_CHECKPOINT_MIRROR_DIR="+filepath.Join(t.TempDir(), "witness"))
			}
			s := newServer(t, be, extra...)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, _ := w.newCase(t, "manifest-head")
			if sqlite {
				addJunkBlobs(t, s) // the blobs copy keeps the backup busy past its copy
			}

			b := startHeldBackup(t, s)
			out, keysOut := b.out, b.keysOut
			// The vault goes on serving, audited, past the copy, and its
			// witness signs what it did.
			held, _ := s.auditHead(t)
			deadline := time.Now().Add(time.Minute)
			var seen []byte // the newest checkpoint the witness holds meanwhile
			for {
				seen = witnessed(t, s.env)
				if size, _ := audit.CheckpointSize(seen); seen != nil && size > held {
					break
				}
				w.op.expect(200, "GET", "/cases/"+caseID, nil)
				time.Sleep(50 * time.Millisecond)
				if time.Now().After(deadline) {
					t.Fatalf("the witness saw nothing beyond %d while the backup was held", held)
				}
			}
			b.finish()
			m, copyDB := openBackupCopy(t, be, s, out)
			var copyHead int64
			if err := copyDB.Raw("SELECT COALESCE(MAX(seq), 0) FROM audit_events").Scan(&copyHead).Error; err != nil {
				t.Fatal(err)
			}
			if m.AuditHead != copyHead || copyHead == 0 || copyHead > held {
				t.Fatalf("the manifest's audit_head is %d, the copy's log ends at %d (the live log at %d when the backup was held)",
					m.AuditHead, copyHead, held)
			}

			// Restored against a witness as it stood while the backup was
			// held (the vault was lost then, or its witness lags), the log
			// would be refused as rolled back: refused before anything is
			// written. (The live witness has since seen the backup's own
			// record, beyond the head the manifest said.)
			r := emptyEnvironment(t, be, s)
			atHold := filepath.Join(t.TempDir(), "witness-at-hold")
			d, err := witness.NewDir(atHold)
			if err != nil {
				t.Fatal(err)
			}
			size, _ := audit.CheckpointSize(seen)
			if err := d.Store(context.Background(), size, seen, nil); err != nil {
				t.Fatal(err)
			}
			r.env = append(r.env, "VAULT_CHECKPOINT_MIRROR_DIR="+atHold)
			_, errs, code := r.cli("", "restore", "--from", out, "--keys-from", keysOut)
			if code == 0 || !strings.Contains(errs, "fresh witness") || !strings.Contains(errs, "Nothing was written") {
				t.Fatalf("restore behind the witness: exit %d: %s", code, errs)
			}
			if ents, _ := os.ReadDir(filepath.Join(r.data, "keys")); len(ents) != 0 {
				t.Fatalf("the refused restore wrote %d key files", len(ents))
			}
			if _, err := os.Stat(filepath.Join(r.data, "blobs")); err == nil {
				t.Fatal("the refused restore made the blob directory")
			}
			if n := restoredTables(t, r); n != 0 {
				t.Fatalf("the refused restore wrote the database: %d tables", n)
			}

			// Against a fresh witness, a restore that stops after it wrote
			// the database (a blob of the backup lost) says what to remove.
			if len(m.Blobs) == 0 {
				t.Fatal("the backup holds no blob")
			}
			lost := filepath.Join(out, "blobs", m.Blobs[0].ID)
			if err := os.Rename(lost, lost+".away"); err != nil {
				t.Fatal(err)
			}
			r.env = append(r.env, "VAULT_CHECKPOINT_MIRROR_DIR="+filepath.Join(t.TempDir(), "fresh-witness"))
			_, errs, code = r.cli("", "restore", "--from", out, "--keys-from", keysOut)
			want := "the database file"
			if !sqlite {
				want = "DROP SCHEMA"
			}
			if code == 0 || !strings.Contains(errs, "missing or damaged") || !strings.Contains(errs, want) ||
				!strings.Contains(errs, "before you run the restore again") {
				t.Fatalf("restore that stopped after the database: exit %d: %s", code, errs)
			}
			if restoredTables(t, r) == 0 {
				t.Fatal("the restore stopped before it wrote the database: the test checks nothing")
			}
		})
	}
}

// TestBackupManifestMastersAreTheCopys: on PostgreSQL the manifest's
// masters were those the live database named before and after pg_dump,
// not those of the dump: more than it needs after a rotation during the
// backup, and fewer when the rotations fell between the reads and the
// dump's snapshot. They are now read from the dump's own snapshot.
func TestBackupManifestMastersAreTheCopys(t *testing.T) {
	t.Parallel()
	be := backends[1]
	s := newServer(t, be)
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	w.newCase(t, "backup-masters")
	s.stop()
	b := startHeldBackup(t, s)
	out := b.out
	s.mustCLI("", "keys", "rotate")
	if msg := s.mustCLI("", "keys", "retire"); !strings.Contains(msg, "deleted") {
		t.Fatalf("retire said: %s", msg)
	}
	b.finish()
	m, copyDB := openBackupCopy(t, be, s, out)
	needed, err := vault.MastersNamed(context.Background(), copyDB, supervision.KeyTables()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(needed) == 0 || !slices.Equal(m.Masters, needed) {
		t.Fatalf("the manifest names masters %v, the copy needs %v", m.Masters, needed)
	}
}

// openBackupCopy reads the manifest of the backup in out, of a vault like
// s on be, and opens its database copy: the SQLite file itself, read-only,
// or the pg_dump file restored into a new database.
func openBackupCopy(t *testing.T, be backend, s *server, out string) (backupManifest, *gorm.DB) {
	t.Helper()
	var m backupManifest
	b, err := os.ReadFile(filepath.Join(out, manifestFile))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatalf("read the manifest: %v", err)
	}
	var db *gorm.DB
	if m.Database == "sqlite" {
		db, err = sqldb.OpenSQLiteFileReadOnly(context.Background(), filepath.Join(out, m.DBFile))
	} else {
		scratch := emptyEnvironment(t, be, s)
		if err := pgRestore(context.Background(), scratch.dbURL(), filepath.Join(out, m.DBFile)); err != nil {
			t.Fatal(err)
		}
		db, err = sqldb.Open(context.Background(), scratch.dbURL())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close(db) })
	return m, db
}

// witnessed is the newest checkpoint the witnesses outside the data
// directory of the configuration env hold, as restore reads them; nil when
// they hold none.
func witnessed(t *testing.T, env []string) []byte {
	t.Helper()
	getenv := func(name string) string {
		v := ""
		for _, e := range env {
			if val, ok := strings.CutPrefix(e, name+"="); ok {
				v = val
			}
		}
		return v
	}
	cfg, _, err := parse("test", nil, io.Discard, getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts, err := auditOptions(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	sizeOnly := func(b []byte) error { _, err := audit.CheckpointSize(b); return err }
	var newest []byte
	most := int64(-1)
	for _, w := range opts.Witnesses {
		b, err := w.Latest(ctx, sizeOnly)
		if err != nil {
			t.Fatalf("read witness %s: %v", w, err)
		}
		if size, _ := audit.CheckpointSize(b); b != nil && size > most {
			newest, most = b, size
		}
	}
	return newest
}

// restoredTables counts the tables of r's database: none before a restore
// wrote it.
func restoredTables(t *testing.T, r *server) int64 {
	t.Helper()
	if dbKind(r.dbURL()) == "sqlite" {
		if _, err := os.Stat(strings.TrimPrefix(r.dbURL(), "sqlite:")); err != nil {
			return 0
		}
		return 1
	}
	_, schema, err := libpqURL(r.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(context.Background(), r.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close(db)
	var n int64
	if err := db.Raw("SELECT count(*) FROM information_schema.tables WHERE table_schema = ?", cmp.Or(schema, "public")).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
