package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crvault/crvault/audit/sqldb"
)

// TestRestoreRefusesKeysWithoutTheirMaster: a backup whose keys lack the
// master its database wraps keys to (one an older vaultd took during a
// keys rotate and keys retire, or restored with the wrong --keys-from)
// restored into an environment that then refused to start, and the retry
// was refused as the environment was no longer empty. Restore refuses it
// before it writes anything, naming the master, whether the manifest
// lists the masters or (older manifests) not; on PostgreSQL an older
// manifest is checked right after pg_restore, which the message says. With
// the escrow identity the restore runs, and keys recover makes the vault
// whole.
func TestRestoreRefusesKeysWithoutTheirMaster(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			escrowEnv, escrowID := escrowFiles(t)
			s := newServer(t, be, escrowEnv)
			s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
			// Rotated: every key is wrapped to the new master. The old one,
			// whose file stays in the backup, opens none of them.
			s.mustCLI("", "keys", "rotate")
			out := filepath.Join(t.TempDir(), "backup")
			s.mustCLI("", "backup", "--out", out)
			rotated, _ := filepath.Glob(filepath.Join(out, "keys", "master-*.age-key"))
			if len(rotated) != 1 {
				t.Fatalf("rotated master key files in the backup: %v", rotated)
			}
			active := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(rotated[0]), "master-"), ".age-key")
			manifest := filepath.Join(out, manifestFile)
			var m map[string]any
			b, err := os.ReadFile(manifest)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(m["masters"]); string(got) != `["`+active+`"]` {
				t.Fatalf("manifest masters: %s, want [%s]", got, active)
			}
			// The backup without the active master's key file, as the
			// manifest says (as if keys retire had run and an older vaultd
			// had copied the keys before keys rotate).
			if err := os.Remove(rotated[0]); err != nil {
				t.Fatal(err)
			}
			var keys []any
			for _, k := range m["keys"].([]any) {
				if k != filepath.Base(rotated[0]) {
					keys = append(keys, k)
				}
			}
			m["keys"] = keys
			save := func() {
				t.Helper()
				b, _ := json.Marshal(m)
				if err := os.WriteFile(manifest, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			save()

			r := emptyEnvironment(t, be, s)
			r.env = append(r.env, escrowEnv)
			empty := func(when string, dbToo bool) {
				t.Helper()
				for _, dir := range []string{filepath.Join(r.data, "keys"), filepath.Join(r.data, "blobs")} {
					if ents, _ := os.ReadDir(dir); len(ents) != 0 {
						t.Fatalf("%s: %s holds %d entries", when, dir, len(ents))
					}
				}
				if _, err := os.Stat(filepath.Join(r.data, "vault.db")); err == nil {
					t.Fatalf("%s: the database was written", when)
				}
				if dbToo && dbKind(r.dbURL()) == "postgres" {
					db, err := sqldb.Open(context.Background(), r.dbURL())
					if err != nil {
						t.Fatal(err)
					}
					var n int64
					err = db.Raw("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()").Scan(&n).Error
					sqldb.Close(db)
					if err != nil || n != 0 {
						t.Fatalf("%s: the database holds %d tables (%v)", when, n, err)
					}
				}
			}
			refused := func(errs string, code int, want ...string) {
				t.Helper()
				for _, w := range append([]string{active, "--keys-from", "--escrow-identity"}, want...) {
					if code == 0 || !strings.Contains(errs, w) {
						t.Fatalf("restore without the active master: exit %d, want %q in: %s", code, w, errs)
					}
				}
			}
			_, errs, code := r.cli("", "restore", "--from", out)
			refused(errs, code, "Nothing was written")
			empty("after the restore without the active master", true)

			// A manifest of an older vaultd lists no masters.
			delete(m, "masters")
			save()
			_, errs, code = r.cli("", "restore", "--from", out)
			if dbKind(r.dbURL()) == "sqlite" {
				refused(errs, code, "Nothing was written")
				empty("after the restore of an older manifest", true)
			} else {
				refused(errs, code, "DROP SCHEMA", "nothing else")
				empty("after the restore of an older manifest", false)
				u, _ := url.Parse(r.dbURL())
				r.sql(t, "DROP SCHEMA "+u.Query().Get("search_path")+" CASCADE")
			}

			// The master lost, its keys escrowed: restored, and recovered.
			msg := r.mustCLI("", "restore", "--from", out, "--escrow-identity", escrowID)
			if !strings.Contains(msg, "keys recover") || !strings.Contains(msg, active) {
				t.Fatalf("restore with the escrow identity said: %s", msg)
			}
			if dbKind(r.dbURL()) != "sqlite" {
				return // the rest does not depend on the database, and takes PostgreSQL long
			}
			r.mustCLI("", "keys", "recover", "--escrow-identity", escrowID)
			if v := r.mustCLI("", "audit", "verify"); !strings.Contains(v, "OK") {
				t.Fatalf("audit verify after the recovery: %s", v)
			}
			r.start() // fails the test unless it serves
		})
	}
}
