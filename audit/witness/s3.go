package witness

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/crvault/crvault/audit"
)

// S3Config says where the object-locked witness lives.
type S3Config struct {
	Endpoint  string // host[:port], no scheme; TLS selects https
	Bucket    string // created with object lock enabled when missing
	Prefix    string // key prefix, e.g. "crvault/audit-checkpoints/"
	AccessKey string
	SecretKey string
	TLS       bool
	Region    string // default us-east-1
	// Retention is how long each checkpoint object stays locked in
	// COMPLIANCE mode, default 90 days. The newest one's lock is extended
	// whenever the log hands it over again (at least daily while it runs),
	// so it never lapses under a running vault.
	Retention time.Duration
	Logger    *slog.Logger
	// ReadOnly does not create a missing bucket (for verification).
	ReadOnly bool
}

// DefaultRetention is S3Config.Retention's default.
const DefaultRetention = 90 * 24 * time.Hour

// S3 keeps checkpoints as write-once objects. Their keys sort newest first
// (the size is stored inverted), so the newest is found with one short
// listing however many the bucket holds, and carry the checkpoint's root,
// so History passes the older ones from the listing alone.
type S3 struct {
	mc        *minio.Client
	bucket    string
	prefix    string
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time
	page      int // keys History asks for at a time
	fetches   int // checkpoint objects History reads at once
	// readAll makes History read every object, as for names without a
	// root (BenchmarkS3History compares the two).
	readAll bool
}

var _ audit.Witness = (*S3)(nil)

const (
	s3Timeout = 30 * time.Second
	// scanLimit bounds how many objects Latest looks at past ones that are
	// not genuine checkpoints (planted by someone with write access, who
	// cannot remove the real ones).
	scanLimit = 1000
)

// NewS3 connects to the witness bucket, creating it with object lock enabled
// when it is missing, and refuses a bucket without object lock: a witness
// the holder of the credentials could rewrite would be no witness.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("s3 checkpoint witness: endpoint not set")
	case strings.Contains(cfg.Endpoint, "://"):
		return nil, fmt.Errorf("s3 checkpoint witness: endpoint %q must be host:port without a scheme", cfg.Endpoint)
	case cfg.Bucket == "":
		return nil, errors.New("s3 checkpoint witness: bucket not set")
	case cfg.Retention < 0:
		return nil, errors.New("s3 checkpoint witness: negative retention")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	mc, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.TLS,
		Region:    cfg.Region,
		Transport: newTransport(),
	})
	if err != nil {
		return nil, fmt.Errorf("s3 checkpoint witness: %w", err)
	}
	s := &S3{mc: mc, bucket: cfg.Bucket, prefix: cfg.Prefix, retention: cfg.Retention, log: cfg.Logger, now: time.Now, page: historyPage, fetches: historyFetches}
	ctx, cancel := context.WithTimeout(ctx, s3Timeout)
	defer cancel()
	ok, err := mc.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 checkpoint witness: bucket %s: %w", cfg.Bucket, err)
	}
	if !ok && cfg.ReadOnly {
		return nil, fmt.Errorf("s3 checkpoint witness: bucket %s does not exist", cfg.Bucket)
	}
	if !ok {
		err := mc.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region, ObjectLocking: true})
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("s3 checkpoint witness: create bucket %s with object lock: %w", cfg.Bucket, err)
		}
	}
	lock, _, _, _, err := mc.GetObjectLockConfig(ctx, cfg.Bucket)
	if err != nil || lock != "Enabled" {
		return nil, fmt.Errorf("s3 checkpoint witness: bucket %s does not have object lock enabled (%v); "+
			"object lock can only be turned on when a bucket is created: name a new bucket in VAULT_CHECKPOINT_S3_BUCKET "+
			"and the vault creates it with object lock", cfg.Bucket, errOrNone(err))
	}
	return s, nil
}

func errOrNone(err error) any {
	if err == nil {
		return "not enabled"
	}
	return err
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: s3Timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
	}
}

func (s *S3) String() string { return "s3://" + s.bucket + "/" + s.prefix }

// key sorts newest first: the digits are MaxInt64 minus the size. The root
// follows (names.go).
func (s *S3) key(size int64, root tlog.Hash) string {
	return fmt.Sprintf("%scheckpoint-%019d%s", s.prefix, int64(math.MaxInt64)-size, rootSuffix(root))
}

// parseKey reads the size, and the root when the key carries one, from a
// checkpoint object's key; ok is false for a key that is not a
// checkpoint's.
func (s *S3) parseKey(key string) (size int64, root tlog.Hash, named, ok bool) {
	name, ok := strings.CutPrefix(key, s.prefix+"checkpoint-")
	if !ok || len(name) < 19 {
		return 0, tlog.Hash{}, false, false
	}
	inv, err := strconv.ParseUint(name[:19], 10, 63)
	if err != nil {
		return 0, tlog.Hash{}, false, false
	}
	if root, named, ok = parseRootSuffix(name[19:]); !ok {
		return 0, tlog.Hash{}, false, false
	}
	return math.MaxInt64 - int64(inv), root, named, true
}

// holds says whether b is the checkpoint a key of that size (and root, when
// named) says it is; the signature is the caller's to check.
func holds(b []byte, size int64, root tlog.Hash, named bool) bool {
	n, r, err := audit.CheckpointSizeRoot(b)
	return err == nil && n == size && (!named || r == root)
}

// newest walks the objects newest first and returns the first that holds a
// checkpoint of the size (and root) its key names and that accept takes,
// with its key. Others are
// logged and passed over: write access to the bucket lets someone add
// objects, not remove the genuine ones. But if the bucket holds
// checkpoints and none of them verifies, it is an error, not an empty
// witness: the checkpoint key was swapped (perhaps with a rewritten log
// beside it), and passing over every genuine checkpoint would let that
// pass as a new vault's first start.
func (s *S3) newest(ctx context.Context, accept func([]byte) error) (int64, string, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s3Timeout)
	defer cancel() // also ends the listing goroutine when we stop early
	seen := 0
	var refused error // the last well-formed checkpoint accept refused
	for obj := range s.mc.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "checkpoint-", MaxKeys: 100}) {
		if obj.Err != nil {
			return 0, "", nil, fmt.Errorf("list %s: %w", s, obj.Err)
		}
		if seen++; seen > scanLimit {
			return 0, "", nil, fmt.Errorf("%s: none of the newest %d objects is a valid checkpoint", s, scanLimit)
		}
		size, root, named, ok := s.parseKey(obj.Key)
		if !ok {
			continue
		}
		b, err := s.get(ctx, obj.Key)
		if err != nil {
			return 0, "", nil, err
		}
		if !holds(b, size, root, named) {
			s.log.Warn("checkpoint witness: object is not the checkpoint its name says; passed over", "witness", s.String(), "key", obj.Key)
			continue
		}
		if err := accept(b); err != nil {
			s.log.Warn("checkpoint witness: object does not verify; passed over", "witness", s.String(), "key", obj.Key, "err", err)
			refused = err
			continue
		}
		return size, obj.Key, b, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, "", nil, fmt.Errorf("list %s: %w", s, err)
	}
	if refused != nil {
		return 0, "", nil, fmt.Errorf("%s holds checkpoints, and none verifies with this vault's checkpoint key (the key was changed, or this is another vault's witness): %w", s, refused)
	}
	return -1, "", nil, nil
}

// History passes every checkpoint object above after, newest first (the
// keys sort so), and stops listing at the first at or below it, so a run
// that starts from the last verified size lists only what came since, a
// page of keys at a time. It lists object versions, not objects: object
// lock keeps versioning on, and there the vault's credentials can hide a
// locked checkpoint from a plain listing without removing it (a delete
// marker) or put a new version of its key in front of it; every version is
// passed.
//
// A busy log is checkpointed every few seconds, so a day can leave
// thousands of objects, and a year millions. Only the first object passed
// (the newest above after) and those whose key carries no root (written by
// an earlier release, or planted) are read; the others are passed as their
// keys name them, size and root, which commit to the content as well as
// the content itself (see audit.Held), so a full verification costs a
// listing, a page of keys per request, not a read per checkpoint ever
// witnessed. What must be read is read historyFetches objects at once,
// ahead of fn, which still gets them in order (BenchmarkS3History measures
// both).
func (s *S3) History(ctx context.Context, after int64, fn func(audit.Held) error) error {
	// Whatever way this returns, the lister and the reads are stopped
	// (cancel), then waited for.
	var running sync.WaitGroup
	defer running.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetch struct {
		held audit.Held
		err  error
		done chan struct{}
	}
	// The window: a fetch is queued before it starts, so at most s.fetches
	// are in flight or done and waiting: the one fn waits for, and those
	// queued behind it.
	window := make(chan *fetch, max(s.fetches-1, 0))
	running.Add(1)
	go func() {
		defer running.Done()
		defer close(window)
		failed := func(err error) {
			f := &fetch{err: err, done: make(chan struct{})}
			close(f.done)
			// Room in the window: the reader gets it, even when the
			// error is a cancelled context. Otherwise wait for room
			// unless the reader has gone.
			select {
			case window <- f:
				return
			default:
			}
			select {
			case window <- f:
			case <-ctx.Done():
			}
		}
		var prevKey, prevVersion string
		first := true
		for obj := range s.mc.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
			Prefix: s.prefix + "checkpoint-", WithVersions: true, MaxKeys: s.page}) {
			if obj.Err != nil {
				failed(fmt.Errorf("list %s: %w", s, obj.Err))
				return
			}
			// versitygw 1.8 starts each page of versions with the last of
			// the page before.
			if obj.Key == prevKey && obj.VersionID == prevVersion {
				continue
			}
			prevKey, prevVersion = obj.Key, obj.VersionID
			size, root, named, ok := s.parseKey(obj.Key)
			if !ok || obj.IsDeleteMarker {
				continue
			}
			if size <= after {
				return
			}
			f := &fetch{held: audit.Held{Size: size, Root: root, NamedRoot: named}, done: make(chan struct{})}
			read := first || !named || s.readAll
			first = false
			if !read {
				close(f.done)
				select {
				case window <- f:
				case <-ctx.Done():
					return
				}
				continue
			}
			version := obj.VersionID
			if version == "null" && obj.IsLatest {
				// Unversioned (a store without versioning, like versitygw
				// on plain posix, refuses versionId=null): the key's
				// current object is this one.
				version = ""
			}
			select {
			case window <- f:
			case <-ctx.Done():
				return
			}
			running.Add(1)
			go func(key string) {
				defer running.Done()
				defer close(f.done)
				f.held.Signed, f.err = s.getVersion(ctx, key, version)
			}(obj.Key)
		}
		if err := ctx.Err(); err != nil {
			failed(fmt.Errorf("list %s: %w", s, err))
		}
	}()
	for f := range window {
		<-f.done
		if f.err != nil {
			return f.err
		}
		if err := fn(f.held); err != nil {
			return err
		}
	}
	return nil
}

// historyPage is how many keys History asks for at a time: a page is held
// in memory while its checkpoints are read.
const historyPage = 500

// historyFetches is how many checkpoint objects History reads at once.
const historyFetches = 16

// getVersion reads one version of a checkpoint object, within s3Timeout.
func (s *S3) getVersion(ctx context.Context, key, version string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s3Timeout)
	defer cancel()
	b, err := s.read(ctx, key, minio.GetObjectOptions{VersionID: version})
	if err != nil && version != "" {
		return nil, fmt.Errorf("%w (version %s)", err, version)
	}
	return b, err
}

func (s *S3) get(ctx context.Context, key string) ([]byte, error) {
	return s.read(ctx, key, minio.GetObjectOptions{})
}

func (s *S3) read(ctx context.Context, key string, opts minio.GetObjectOptions) ([]byte, error) {
	obj, err := s.mc.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, maxCheckpoint+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if len(b) > maxCheckpoint {
		return nil, fmt.Errorf("get %s: too large for a checkpoint", key)
	}
	return b, nil
}

// Latest returns the newest checkpoint accept takes, nil when none.
func (s *S3) Latest(ctx context.Context, accept func([]byte) error) ([]byte, error) {
	_, _, b, err := s.newest(ctx, accept)
	return b, err
}

// Store writes signed as a new object locked in COMPLIANCE mode, unless a
// newer checkpoint is there (audit.ErrStale). Offered the newest again, it
// extends that object's lock instead.
func (s *S3) Store(ctx context.Context, size int64, signed []byte, accept func([]byte) error) error {
	n, root, err := audit.CheckpointSizeRoot(signed)
	if err != nil || n != size {
		return fmt.Errorf("checkpoint witness: offered a note that is not a checkpoint of size %d", size)
	}
	cur, curKey, held, err := s.newest(ctx, accept)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s3Timeout)
	defer cancel()
	until := s.now().Add(s.retention).UTC().Truncate(time.Second)
	switch {
	case size < cur:
		return fmt.Errorf("%w: %s holds size %d, offered %d", audit.ErrStale, s, cur, size)
	case size == cur:
		if !bytes.Equal(held, signed) {
			return fmt.Errorf("%s holds a different checkpoint of size %d than the one offered (two signers, or a fork)", s, size)
		}
		return s.extend(ctx, curKey, until)
	}
	key := s.key(size, root)
	_, err = s.mc.PutObject(ctx, s.bucket, key, bytes.NewReader(signed), int64(len(signed)), minio.PutObjectOptions{
		ContentType:     "text/plain; charset=utf-8",
		Mode:            minio.Compliance,
		RetainUntilDate: until,
		SendContentMd5:  true, // S3 requires an integrity header on object-lock writes
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Keep writes signed as a locked evidence object ("evidence-" and the
// size and root, named like a checkpoint), whatever the newest is. Nobody
// can remove it before its retention ends, which is long enough for a
// verification to find it.
func (s *S3) Keep(ctx context.Context, size int64, signed []byte) error {
	n, root, err := audit.CheckpointSizeRoot(signed)
	if err != nil || n != size {
		return fmt.Errorf("checkpoint witness: offered a note that is not a checkpoint of size %d", size)
	}
	ctx, cancel := context.WithTimeout(ctx, s3Timeout)
	defer cancel()
	key := fmt.Sprintf("%sevidence-%019d%s", s.prefix, int64(math.MaxInt64)-size, rootSuffix(root))
	_, err = s.mc.PutObject(ctx, s.bucket, key, bytes.NewReader(signed), int64(len(signed)), minio.PutObjectOptions{
		ContentType:     "text/plain; charset=utf-8",
		Mode:            minio.Compliance,
		RetainUntilDate: s.now().Add(s.retention).UTC().Truncate(time.Second),
		SendContentMd5:  true,
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Evidence passes every version of every evidence object, read: a delete
// marker cannot hide one. There is one per halt of a writer, so they are
// few.
func (s *S3) Evidence(ctx context.Context, fn func(audit.Held) error) error {
	ctx, cancel := context.WithTimeout(ctx, s3Timeout)
	defer cancel()
	prefix := s.prefix + "evidence-"
	var prevKey, prevVersion string
	for obj := range s.mc.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, WithVersions: true, MaxKeys: s.page}) {
		if obj.Err != nil {
			return fmt.Errorf("list %s evidence: %w", s, obj.Err)
		}
		if obj.Key == prevKey && obj.VersionID == prevVersion {
			continue // versitygw 1.8 repeats the last version of a page
		}
		prevKey, prevVersion = obj.Key, obj.VersionID
		if obj.IsDeleteMarker {
			continue
		}
		size, root, named, ok := s.parseKey(s.prefix + "checkpoint-" + strings.TrimPrefix(obj.Key, prefix))
		if !ok {
			continue
		}
		version := obj.VersionID
		if version == "null" && obj.IsLatest {
			version = ""
		}
		b, err := s.getVersion(ctx, obj.Key, version)
		if err != nil {
			return err
		}
		if err := fn(audit.Held{Size: size, Root: root, NamedRoot: named, Signed: b}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s evidence: %w", s, err)
	}
	return nil
}

// extend pushes the lock of the newest checkpoint out to until when less
// than half the retention is left, so an idle log's newest checkpoint stays
// locked. COMPLIANCE locks can be extended, never shortened.
func (s *S3) extend(ctx context.Context, key string, until time.Time) error {
	// The lock is read from the object's headers: versitygw 1.8 answers
	// GetObjectRetention with an XML element minio-go does not parse.
	info, err := s.mc.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("read lock of %s: %w", key, err)
	}
	mode := info.Metadata.Get("X-Amz-Object-Lock-Mode")
	cur, err := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	if err == nil && minio.RetentionMode(mode) == minio.Compliance && cur.After(s.now().Add(s.retention/2)) {
		return nil
	}
	c := minio.Compliance
	if err := s.mc.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{Mode: &c, RetainUntilDate: &until}); err != nil {
		return fmt.Errorf("extend lock of %s: %w", key, err)
	}
	return nil
}
