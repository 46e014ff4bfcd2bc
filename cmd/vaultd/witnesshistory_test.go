package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/crvault/crvault/audit"
)

// auditHead returns the last seq and the newest stored checkpoint note (nil
// when none is stored).
func (s *server) auditHead(t *testing.T) (int64, []byte) {
	t.Helper()
	db, err := openSQL(s.dbURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	seqs, err := db.strings(`SELECT CAST(MAX(seq) AS TEXT) FROM audit_events`)
	if err != nil || len(seqs) != 1 {
		t.Fatalf("max seq: %v %v", seqs, err)
	}
	n, err := parseInt(seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	notes, err := db.strings(`SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1`)
	if err != nil || len(notes) > 1 {
		t.Fatalf("newest checkpoint: %v %v", notes, err)
	}
	if len(notes) == 0 {
		// A log cut below its first checkpoint: the first command of a
		// data directory appends its start-up events (the row-tag
		// backfills) and signs once, after them.
		return n, nil
	}
	return n, []byte(notes[0])
}

// plantWitnessed puts a checkpoint at the server's witness as the insider
// can: an object added with the vault's own S3 credentials (it cannot
// remove or replace the locked ones), or a file in the witness directory,
// named as vaultd names it (after its size and root).
func (s *server) plantWitnessed(t *testing.T, size int64, note []byte) string {
	t.Helper()
	_, root, err := audit.CheckpointSizeRoot(note)
	if err != nil {
		t.Fatal(err)
	}
	if envOf(s, "VAULT_S3_ENDPOINT") == "" {
		dir := filepath.Join(s.data, "keys", "checkpoint-witness")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d-%s", size, hex.EncodeToString(root[:]))), note, 0o600); err != nil {
			t.Fatal(err)
		}
		return "directory " + dir
	}
	bucket := envOf(s, "VAULT_S3_BUCKET") + "-audit"
	mc, err := minio.New(envOf(s, "VAULT_S3_ENDPOINT"), &minio.Options{
		Creds: credentials.NewStaticV4(envOf(s, "VAULT_S3_ACCESS_KEY"), envOf(s, "VAULT_S3_SECRET_KEY"), ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := fmt.Sprintf("audit-checkpoints/checkpoint-%019d-%s", int64(math.MaxInt64)-size, hex.EncodeToString(root[:]))
	if _, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(note), int64(len(note)), minio.PutObjectOptions{SendContentMd5: true}); err != nil {
		t.Fatalf("plant %s: %v", key, err)
	}
	return "s3://" + bucket + "/audit-checkpoints/"
}

// TestAuditRewriteWithGenuineKeyIsCaught plays the insider who holds the
// checkpoint signing key (it lives in the data directory) and can add to
// the witness (the vault's S3 credentials, or the witness directory): the
// log is rewritten after its second event, regrown past its old size by
// vaultd commands whose checkpoints, signed with the genuine key, go to
// another witness, and the newest of them is put at the server's witness.
// The rewritten log is consistent with every stored checkpoint and with the
// witness's newest; `vaultd audit verify`, full and incremental, still
// fails, naming the witness and the size of the older checkpoint it holds.
func TestAuditRewriteWithGenuineKeyIsCaught(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			// Every command appends and signs a checkpoint as it closes,
			// and hands it to the witness.
			for _, name := range []string{"Grid Co", "Acme", "Inspectorate"} {
				s.mustCLI("", "org", "add", "--name", name, "--kind", "operator")
			}
			genuine, _ := s.auditHead(t)
			if out := s.mustCLI("", "audit", "verify"); !strings.Contains(out, "audit log OK") {
				t.Fatalf("verify before the attack: %s", out)
			}

			s.truncateAuditTail(t, 2)
			insider := append([]string(nil), s.env...)
			s.env = append(s.env, "VAULT_CHECKPOINT_S3_PREFIX=insider/", "VAULT_CHECKPOINT_MIRROR_DIR="+filepath.Join(t.TempDir(), "insider"))
			for i := 0; ; i++ {
				if n, _ := s.auditHead(t); n > genuine {
					break
				}
				if i == 30 {
					t.Fatalf("the log did not grow past %d", genuine)
				}
				s.mustCLI("", "org", "add", "--name", fmt.Sprintf("Shell %d", i), "--kind", "provider")
			}
			s.env = insider
			size, forged := s.auditHead(t)
			witness := s.plantWitnessed(t, size, forged)

			want := fmt.Sprintf("witnessed (%s) checkpoint at size %d does not match the log's tree root", witness, genuine)
			out, errs, code := s.cli("", "audit", "verify")
			if code != 1 || !strings.Contains(out+errs, want) {
				t.Fatalf("audit verify of the rewritten log: exit %d: %s %s\nwant %q", code, out, errs, want)
			}
			state := filepath.Join(t.TempDir(), "verified")
			out, errs, code = s.cli("", "audit", "verify", "--incremental", "--state", state)
			if code != 1 || !strings.Contains(out+errs, want) {
				t.Fatalf("incremental audit verify of the rewritten log: exit %d: %s %s\nwant %q", code, out, errs, want)
			}
			if _, err := os.Stat(state); err == nil {
				t.Fatal("a failed run kept a verified checkpoint")
			}
		})
	}
}
