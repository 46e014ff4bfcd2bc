package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// signer makes genuine checkpoint notes for the tests; roots are random,
// which the witnesses do not look at.
type signer struct {
	s    note.Signer
	vkey string
}

func newSigner(t testing.TB) *signer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, audit.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{s: s, vkey: vkey}
}

func (g *signer) at(t testing.TB, size int64) []byte {
	t.Helper()
	root := make([]byte, 32)
	_, _ = rand.Read(root)
	b, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", audit.DefaultOrigin, size, base64.StdEncoding.EncodeToString(root))}, g.s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (g *signer) accept(b []byte) error {
	_, err := audit.ParseCheckpoint(b, g.vkey)
	return err
}

// conformance runs what every witness must do on w.
func conformance(t *testing.T, w audit.Witness, g *signer) {
	t.Helper()
	ctx := context.Background()
	if b, err := w.Latest(ctx, g.accept); err != nil || b != nil {
		t.Fatalf("empty witness: %q %v", b, err)
	}
	c5, c9, c7 := g.at(t, 5), g.at(t, 9), g.at(t, 7)
	for _, c := range [][]byte{c5, c9} {
		if err := w.Store(ctx, mustSize(t, c), c, g.accept); err != nil {
			t.Fatalf("store: %v", err)
		}
	}
	if err := w.Store(ctx, 7, c7, g.accept); !errors.Is(err, audit.ErrStale) {
		t.Fatalf("storing 7 over 9: %v, want ErrStale", err)
	}
	if err := w.Store(ctx, 9, c9, g.accept); err != nil {
		t.Fatalf("storing the newest again: %v", err)
	}
	if err := w.Store(ctx, 9, g.at(t, 9), g.accept); err == nil || errors.Is(err, audit.ErrStale) {
		t.Fatalf("a different checkpoint of the same size was taken: %v", err)
	}
	if err := w.Store(ctx, 10, c9, g.accept); err == nil {
		t.Fatal("a note stored under another size was taken")
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || !bytes.Equal(b, c9) {
		t.Fatalf("latest = %q, %v; want the size 9 checkpoint", b, err)
	}
	// History starts with the newest, goes down, and stops at after.
	if sizes, notes := history(t, w, -1); len(sizes) == 0 || sizes[0] != 9 || !bytes.Equal(notes[0], c9) {
		t.Fatalf("history starts with %v, want the size 9 checkpoint", sizes)
	}
	if sizes, _ := history(t, w, 9); len(sizes) != 0 {
		t.Fatalf("history above 9: %v", sizes)
	}
	stop := errors.New("stop")
	if err := w.History(ctx, -1, func(audit.Held) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("history did not return fn's error: %v", err)
	}
	// Evidence is kept below the newest, and of its size with another
	// root, where Store refuses both; nothing it keeps moves the newest.
	e7, e9 := g.at(t, 7), g.at(t, 9)
	for _, c := range [][]byte{e7, e9} {
		if err := w.Keep(ctx, mustSize(t, c), c); err != nil {
			t.Fatalf("keep: %v", err)
		}
	}
	if err := w.Keep(ctx, 10, e7); err == nil {
		t.Fatal("evidence kept under another size")
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || !bytes.Equal(b, c9) {
		t.Fatalf("latest after evidence: %v", err)
	}
	var kept [][]byte
	if err := w.Evidence(ctx, func(h audit.Held) error {
		if h.Signed == nil || h.Size != mustSize(t, h.Signed) || !h.NamedRoot || h.Root != rootOf(t, h.Signed) {
			t.Errorf("evidence passed as %+v", h)
		}
		kept = append(kept, h.Signed)
		return nil
	}); err != nil {
		t.Fatalf("evidence: %v", err)
	}
	if len(kept) != 2 || !slices.ContainsFunc(kept, func(b []byte) bool { return bytes.Equal(b, e7) }) ||
		!slices.ContainsFunc(kept, func(b []byte) bool { return bytes.Equal(b, e9) }) {
		t.Fatalf("evidence holds %d notes, want the two kept", len(kept))
	}
	if err := w.Evidence(ctx, func(audit.Held) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("evidence did not return fn's error: %v", err)
	}
}

// history collects what w.History passes above after, and checks the
// order, that the first (the newest) and every one named without a root
// was read, and that a root named beside a note read is the note's.
func history(t *testing.T, w audit.Witness, after int64) ([]int64, [][]byte) {
	t.Helper()
	held := heldHistory(t, w, after)
	sizes, notes := make([]int64, len(held)), make([][]byte, len(held))
	for i, h := range held {
		sizes[i], notes[i] = h.Size, h.Signed
	}
	return sizes, notes
}

func heldHistory(t *testing.T, w audit.Witness, after int64) []audit.Held {
	t.Helper()
	var held []audit.Held
	err := w.History(context.Background(), after, func(h audit.Held) error {
		if h.Size <= after || len(held) > 0 && h.Size > held[len(held)-1].Size {
			t.Errorf("history passed size %d after %v (above %d)", h.Size, held, after)
		}
		if h.Signed == nil && (len(held) == 0 || !h.NamedRoot) {
			t.Errorf("history passed size %d unread (first: %v, named: %v)", h.Size, len(held) == 0, h.NamedRoot)
		}
		held = append(held, h)
		return nil
	})
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	return held
}

// rootOf is the root a checkpoint note holds.
func rootOf(t testing.TB, b []byte) tlog.Hash {
	t.Helper()
	_, root, err := audit.CheckpointSizeRoot(b)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func mustSize(t *testing.T, b []byte) int64 {
	t.Helper()
	n, err := audit.CheckpointSize(b)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDirWitness(t *testing.T) {
	g := newSigner(t)
	dir := t.TempDir()
	w, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, w, g)
	// Only the newest is kept, and is all History has.
	files, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*"))
	if len(files) != 1 || !strings.Contains(files[0], fmt.Sprintf("%020d-", 9)) {
		t.Fatalf("files %v, want only size 9", files)
	}
	if sizes, _ := history(t, w, -1); !slices.Equal(sizes, []int64{9}) {
		t.Fatalf("history %v, want [9]", sizes)
	}
	// A second process (another handle on the same directory) sees it and
	// cannot go back either.
	w2, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Store(context.Background(), 6, g.at(t, 6), g.accept); !errors.Is(err, audit.ErrStale) {
		t.Fatalf("second handle stored backwards: %v", err)
	}
	// A newest file that is not genuine is an error, never skipped back
	// to an older one.
	forged := newSigner(t).at(t, 11)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d", 11)), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Latest(context.Background(), g.accept); err == nil {
		t.Fatal("a checkpoint signed by another key was accepted")
	}
}

// TestDirWitnessReadsOldMirror: the checkpoint mirror of earlier releases
// (every checkpoint as checkpoint-<size>) is read as a witness.
func TestDirWitnessReadsOldMirror(t *testing.T) {
	g := newSigner(t)
	dir := t.TempDir()
	for _, n := range []int64{3, 8, 12} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d", n)), g.at(t, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Latest(context.Background(), g.accept)
	if err != nil || mustSize(t, b) != 12 {
		t.Fatalf("latest of an old mirror: %q %v", b, err)
	}
	// Every checkpoint of the old mirror is in its history.
	if sizes, _ := history(t, w, -1); !slices.Equal(sizes, []int64{12, 8, 3}) {
		t.Fatalf("history of an old mirror: %v", sizes)
	}
	if sizes, _ := history(t, w, 5); !slices.Equal(sizes, []int64{12, 8}) {
		t.Fatalf("history of an old mirror above 5: %v", sizes)
	}
	if err := w.Store(context.Background(), 10, g.at(t, 10), g.accept); !errors.Is(err, audit.ErrStale) {
		t.Fatalf("store under the old newest: %v", err)
	}
}

// TestDirWitnessConcurrentWriters: many writers racing end with the
// largest, never a smaller one written last.
func TestDirWitnessConcurrentWriters(t *testing.T) {
	g := newSigner(t)
	dir := t.TempDir()
	notes := make([][]byte, 64)
	for i := range notes {
		notes[i] = g.at(t, int64(i+1))
	}
	var wg sync.WaitGroup
	for i := range notes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := NewDir(dir)
			if err != nil {
				t.Error(err)
				return
			}
			if err := w.Store(context.Background(), int64(i+1), notes[i], g.accept); err != nil && !errors.Is(err, audit.ErrStale) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	w, _ := NewDir(dir)
	b, err := w.Latest(context.Background(), g.accept)
	if err != nil || !bytes.Equal(b, notes[len(notes)-1]) {
		t.Fatalf("latest after the race: size %d, %v; want 64", mustSize(t, b), err)
	}
}

type s3env struct {
	endpoint, access, secret string
	mc                       *minio.Client
}

func newS3Env(t testing.TB) s3env {
	t.Helper()
	e := s3env{endpoint: sqldbtest.Require(t, "S3 (versitygw)", "VAULT_TEST_S3_ENDPOINT"),
		access: os.Getenv("VAULT_TEST_S3_ACCESS_KEY"), secret: os.Getenv("VAULT_TEST_S3_SECRET_KEY")}
	mc, err := minio.New(e.endpoint, &minio.Options{Creds: credentials.NewStaticV4(e.access, e.secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	e.mc = mc
	return e
}

func randomBucket(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func (e s3env) config(bucket string) S3Config {
	return S3Config{Endpoint: e.endpoint, Bucket: bucket, Prefix: "vault-a/checkpoints/", AccessKey: e.access, SecretKey: e.secret, Retention: 2 * time.Hour}
}

// TestS3ObjectLockWitness runs against the real versitygw: the bucket is
// created with object lock, each checkpoint is a COMPLIANCE-locked object
// that neither a delete nor an overwrite with the vault's own credentials
// removes, planted junk that sorts first is passed over, and the newest's
// lock is extended when handed over again.
func TestS3ObjectLockWitness(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	g := newSigner(t)
	bucket := randomBucket("crv-witness-")
	w, err := NewS3(ctx, e.config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, w, g)
	// Every checkpoint stays, and History passes them all.
	if sizes, _ := history(t, w, -1); !slices.Equal(sizes, []int64{9, 5}) {
		t.Fatalf("history %v, want [9 5]", sizes)
	}

	c9 := must(w.Latest(ctx, g.accept))
	key := w.key(9, rootOf(t, c9))
	mode, until := lockOf(t, e, bucket, key)
	if mode != minio.Compliance || until.Before(time.Now().Add(time.Hour)) {
		t.Fatalf("retention of %s: %v %v", key, mode, until)
	}
	// The holder of the credentials (a sysadmin) cannot remove or replace it.
	if err := e.mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err == nil {
		t.Fatal("a locked checkpoint was deleted")
	}
	if _, err := e.mc.PutObject(ctx, bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err == nil {
		t.Fatal("a locked checkpoint was overwritten")
	}
	if err := e.mc.PutObjectRetention(ctx, bucket, key, minio.PutObjectRetentionOptions{
		Mode: &mode, RetainUntilDate: ptr(time.Now().Add(time.Minute))}); err == nil {
		t.Fatal("a COMPLIANCE lock was shortened")
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || mustSize(t, b) != 9 {
		t.Fatalf("latest after the attempts: %v", err)
	}

	// Handed over again with less than half its retention left, the
	// newest's lock is pushed out.
	w.now = func() time.Time { return time.Now().Add(90 * time.Minute) }
	if err := w.Store(ctx, 9, c9, g.accept); err != nil {
		t.Fatal(err)
	}
	if _, until2 := lockOf(t, e, bucket, key); !until2.After(until.Add(time.Hour)) {
		t.Fatalf("lock not extended: %v -> %v", until, until2)
	}

	// Junk that sorts before the genuine newest: a forged checkpoint of
	// size 20 and an object under a size-30 name holding the size-9 note.
	forged := newSigner(t).at(t, 20)
	if _, err := e.mc.PutObject(ctx, bucket, w.key(20, rootOf(t, forged)), bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mc.PutObject(ctx, bucket, w.key(30, rootOf(t, c9)), bytes.NewReader(c9), int64(len(c9)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || !bytes.Equal(b, c9) {
		t.Fatalf("latest with junk ahead: %q %v", b, err)
	}
	// Nor does the junk hold the witness back.
	c10 := g.at(t, 10)
	if err := w.Store(ctx, 10, c10, g.accept); err != nil {
		t.Fatalf("store behind planted junk: %v", err)
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || !bytes.Equal(b, c10) {
		t.Fatalf("latest after storing behind junk: %q %v", b, err)
	}
	// History passes the junk too, unchecked, as the names say: telling
	// it apart is the log's work, and a witness holding what the log does
	// not match is what the log looks for. The newest is read; the others
	// are passed by the roots their names carry.
	held := heldHistory(t, w, -1)
	if len(held) != 5 || held[0].Size != 30 || !bytes.Equal(held[0].Signed, c9) ||
		held[1].Size != 20 || held[1].Signed != nil || !held[1].NamedRoot || held[1].Root != rootOf(t, forged) {
		t.Fatalf("history with junk: %v", held)
	}
	w.readAll = true
	if sizes, notes := history(t, w, -1); !slices.Equal(sizes, []int64{30, 20, 10, 9, 5}) || !bytes.Equal(notes[1], forged) {
		t.Fatalf("history with junk, every object read: %v", sizes)
	}
	w.readAll = false
	if sizes, _ := history(t, w, 9); !slices.Equal(sizes, []int64{30, 20, 10}) {
		t.Fatalf("history above 9: %v", sizes)
	}
	// Page by page, the same.
	w.page = 2
	if sizes, _ := history(t, w, -1); !slices.Equal(sizes, []int64{30, 20, 10, 9, 5}) {
		t.Fatalf("history in pages of 2: %v", sizes)
	}
	w.page = historyPage

	// A vault whose checkpoint key was swapped (a rewritten log signed
	// with a new key beside it) does not take the genuine checkpoints for
	// junk and start as if the witness were empty.
	if b, err := w.Latest(ctx, newSigner(t).accept); err == nil {
		t.Fatalf("a witness whose every checkpoint another key signed answered %q, nil", b)
	}

	// Another handle (a second vaultd, or a restart) sees the same newest.
	w2, err := NewS3(ctx, e.config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Store(ctx, 8, g.at(t, 8), g.accept); !errors.Is(err, audit.ErrStale) {
		t.Fatalf("second handle stored backwards: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// lockOf reads an object's lock from its headers (versitygw 1.8's
// GetObjectRetention answer does not parse in minio-go).
func lockOf(t *testing.T, e s3env, bucket, key string) (minio.RetentionMode, time.Time) {
	t.Helper()
	info, err := e.mc.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	until, err := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	if err != nil {
		t.Fatalf("lock of %s: %v (headers %v)", key, err, info.Metadata)
	}
	return minio.RetentionMode(info.Metadata.Get("X-Amz-Object-Lock-Mode")), until
}

// TestS3WitnessRefusesUnlockedBucket: a bucket without object lock is no
// witness; the error says how to get one.
func TestS3WitnessRefusesUnlockedBucket(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	bucket := randomBucket("crv-plain-")
	if err := e.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.mc.RemoveBucket(context.Background(), bucket) })
	_, err := NewS3(ctx, e.config(bucket))
	if err == nil || !strings.Contains(err.Error(), "object lock") || !strings.Contains(err.Error(), "VAULT_CHECKPOINT_S3_BUCKET") {
		t.Fatalf("unlocked bucket: %v", err)
	}
}

// TestS3HistoryReadsAheadInOrder: History reads several checkpoints at once
// but hands them over newest first, across pages of the listing, stops at
// after, and returns fn's error at once without leaving reads behind.
func TestS3HistoryReadsAheadInOrder(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	g := newSigner(t)
	w, err := NewS3(ctx, e.config(randomBucket("crv-history-")))
	if err != nil {
		t.Fatal(err)
	}
	w.page = 7 // several pages of the listing, each smaller than the read-ahead
	w.readAll = true
	const n = 60
	want := make([]int64, 0, n)
	notes := map[int64][]byte{}
	for size := int64(1); size <= n; size++ {
		c := g.at(t, size)
		if err := w.Store(ctx, size, c, g.accept); err != nil {
			t.Fatal(err)
		}
		want = append([]int64{size}, want...)
		notes[size] = c
	}
	sizes, got := history(t, w, -1)
	if !slices.Equal(sizes, want) {
		t.Fatalf("history %v, want %v", sizes, want)
	}
	for i, size := range sizes {
		if !bytes.Equal(got[i], notes[size]) {
			t.Fatalf("history passed another note for size %d", size)
		}
	}
	if sizes, _ := history(t, w, 45); !slices.Equal(sizes, want[:15]) {
		t.Fatalf("history above 45: %v", sizes)
	}
	// Without readAll, the newest is read and the rest passed by name,
	// with their own roots.
	w.readAll = false
	for i, h := range heldHistory(t, w, -1) {
		if h.Size != want[i] || !h.NamedRoot || h.Root != rootOf(t, notes[h.Size]) || (i == 0) != (h.Signed != nil) {
			t.Fatalf("history by name, #%d: %+v", i, h)
		}
	}
	stop := errors.New("stop")
	seen := 0
	err = w.History(ctx, -1, func(audit.Held) error {
		if seen++; seen == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 3 {
		t.Fatalf("history after fn failed at the third: %v, %d calls", err, seen)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.History(cancelled, -1, func(audit.Held) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("history on a cancelled context: %v", err)
	}
}

// TestS3WitnessOldNames: checkpoints written by an earlier release, under
// keys without a root, are still the witness's: Latest finds them, Store
// extends the newest of them and goes on past it under the new naming,
// newest first across both namings, and History reads each of them (their
// keys say nothing of their content). Two checkpoints of one size with
// different roots (a rewrite signed with the genuine key) get distinct
// keys, and History passes both.
func TestS3WitnessOldNames(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	g := newSigner(t)
	bucket := randomBucket("crv-oldnames-")
	w, err := NewS3(ctx, e.config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	old := map[int64][]byte{}
	for _, n := range []int64{3, 8} {
		old[n] = g.at(t, n)
		key := fmt.Sprintf("%scheckpoint-%019d", w.prefix, int64(math.MaxInt64)-n)
		if _, err := e.mc.PutObject(ctx, bucket, key, bytes.NewReader(old[n]), int64(len(old[n])), minio.PutObjectOptions{
			Mode: minio.Compliance, RetainUntilDate: time.Now().Add(time.Hour).UTC().Truncate(time.Second), SendContentMd5: true}); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || !bytes.Equal(b, old[8]) {
		t.Fatalf("latest of old names: %q %v", b, err)
	}
	if err := w.Store(ctx, 8, old[8], g.accept); err != nil {
		t.Fatalf("the newest under an old name handed over again: %v", err)
	}
	if err := w.Store(ctx, 6, g.at(t, 6), g.accept); !errors.Is(err, audit.ErrStale) {
		t.Fatalf("stored under the old newest: %v", err)
	}
	c12 := g.at(t, 12)
	if err := w.Store(ctx, 12, c12, g.accept); err != nil {
		t.Fatal(err)
	}
	if b, err := w.Latest(ctx, g.accept); err != nil || !bytes.Equal(b, c12) {
		t.Fatalf("latest past old names: %q %v", b, err)
	}
	held := heldHistory(t, w, -1)
	if len(held) != 3 || held[0].Size != 12 || !held[0].NamedRoot || !bytes.Equal(held[0].Signed, c12) ||
		held[1].Size != 8 || held[1].NamedRoot || !bytes.Equal(held[1].Signed, old[8]) ||
		held[2].Size != 3 || held[2].NamedRoot || !bytes.Equal(held[2].Signed, old[3]) {
		t.Fatalf("history across namings: %+v", held)
	}

	// A second checkpoint of size 12 over another root, added as the
	// holder of the credentials can: its own key, beside the genuine one.
	other := g.at(t, 12)
	if _, err := e.mc.PutObject(ctx, bucket, w.key(12, rootOf(t, other)), bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	held = heldHistory(t, w, -1)
	roots := map[tlog.Hash]bool{}
	for _, h := range held {
		if h.Size == 12 {
			roots[h.Root] = true
		}
	}
	if len(held) != 4 || !roots[rootOf(t, c12)] || !roots[rootOf(t, other)] {
		t.Fatalf("history with two checkpoints of size 12: %+v", held)
	}
}

// TestDirWitnessNames: the directory witness names its file after the size
// and root, reads a file named by an earlier release, and passes a file
// whose name carries a root without reading it unless it is the newest.
func TestDirWitnessNames(t *testing.T) {
	g := newSigner(t)
	dir := t.TempDir()
	c5, c9 := g.at(t, 5), g.at(t, 9)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d", 5)), c5, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Store(context.Background(), 5, c5, g.accept); err != nil {
		t.Fatalf("the old-named newest handed over again: %v", err)
	}
	if held := heldHistory(t, w, -1); len(held) != 1 || held[0].NamedRoot || !bytes.Equal(held[0].Signed, c5) {
		t.Fatalf("history of an old name: %+v", held)
	}
	if err := w.Store(context.Background(), 9, c9, g.accept); err != nil {
		t.Fatal(err)
	}
	named := filepath.Join(dir, fmt.Sprintf("checkpoint-%020d-%s", 9, rootHex(t, c9)))
	if files, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*")); !slices.Equal(files, []string{named}) {
		t.Fatalf("files %v, want %s", files, named)
	}
	// A genuine older file kept beside it (a write-once mount where the
	// removal fails) is passed by its name.
	c7 := g.at(t, 7)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d-%s", 7, rootHex(t, c7))), c7, 0o600); err != nil {
		t.Fatal(err)
	}
	held := heldHistory(t, w, -1)
	if len(held) != 2 || !bytes.Equal(held[0].Signed, c9) || held[1].Size != 7 || held[1].Signed != nil || held[1].Root != rootOf(t, c7) {
		t.Fatalf("history by name: %+v", held)
	}
	// The newest file must hold the root its name says.
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d-%s", 11, rootHex(t, c9))), g.at(t, 11), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Latest(context.Background(), g.accept); err == nil {
		t.Fatal("a newest file under another root's name was taken")
	}
}

func rootHex(t testing.TB, b []byte) string {
	root := rootOf(t, b)
	return hex.EncodeToString(root[:])
}

// TestDirWitnessKeepsEvidenceAcrossStores: the directory witness removes
// older checkpoints once a newer one is durable, never evidence.
func TestDirWitnessKeepsEvidenceAcrossStores(t *testing.T) {
	g := newSigner(t)
	ctx := context.Background()
	w, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Store(ctx, 5, g.at(t, 5), g.accept); err != nil {
		t.Fatal(err)
	}
	e4 := g.at(t, 4)
	if err := w.Keep(ctx, 4, e4); err != nil {
		t.Fatal(err)
	}
	if err := w.Store(ctx, 8, g.at(t, 8), g.accept); err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	if err := w.Evidence(ctx, func(h audit.Held) error { kept = append(kept, h.Signed); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || !bytes.Equal(kept[0], e4) {
		t.Fatalf("evidence after a newer store: %d notes, want the one kept", len(kept))
	}
	if sizes, _ := history(t, w, -1); !slices.Equal(sizes, []int64{8}) {
		t.Fatalf("history %v: evidence is not a checkpoint", sizes)
	}
}
