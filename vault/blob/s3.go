package blob

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where the S3 store lives.
type S3Config struct {
	Endpoint  string // host[:port], no scheme; TLS selects https
	Bucket    string
	AccessKey string
	SecretKey string
	TLS       bool
	Region    string // default us-east-1
	// PartSize is the multipart part size, default 8 MiB, at least 5 MiB (an
	// S3 rule). It bounds memory per upload of unknown size: one part is
	// buffered at a time. With at most 10000 parts it also bounds the largest
	// blob of unknown size (80 GB at the default).
	PartSize uint64
	// Parallel is how many parts of one upload are in flight at once,
	// counting the one being read (and encrypted upstream), default 3: two
	// upload while the next is read. The store's own write of a part is
	// what limits an upload (versitygw used a core where vaultd used a
	// third of one), so two parts at the store at once beat one; memory is
	// bounded by PartBuffers either way.
	Parallel uint
	// PartBuffers bounds the part buffers of all uploads of the process
	// together, default 4: memory for uploads is at most PartBuffers ×
	// PartSize however many run at once.
	PartBuffers int
	// Prefix is put in front of every object key (e.g. "blobs/"), so the vault
	// can share a bucket; List reports ids without it.
	Prefix string
	// Logger hears about multipart uploads that could not be aborted
	// (default slog.Default()).
	Logger *slog.Logger
	// ReadIdle bounds each wait for the next bytes of an object being read
	// (default 30 s): a store that holds a GET open and sends nothing for
	// this long fails the read with ErrUnavailable (after one retry of a
	// streaming read) instead of holding it forever.
	ReadIdle time.Duration
	// WriteIdle bounds each wait of an upload request on the store (default
	// 30 s): for it to take the bytes last handed to it, or to answer once
	// it has them all. A store that does neither for this long fails the
	// Put with ErrUnavailable instead of holding it, and a multipart
	// upload's part buffers, forever. Time spent waiting on the Put's own
	// source (a slow client) does not count.
	WriteIdle time.Duration
}

const (
	defaultPartSize = 8 << 20
	minPartSize     = 5 << 20
	// defaultOpTimeout bounds the calls that move no blob bytes (stat,
	// delete, bucket checks) and the whole read of a small blob.
	defaultOpTimeout = 30 * time.Second
	// skipLimit is how far forward a ReadAt may jump and still continue the
	// open stream by discarding bytes, which beats a new round trip.
	skipLimit = 256 << 10
)

// S3 stores blobs as objects in one bucket, under Prefix.
type S3 struct {
	core     *minio.Core
	bucket   string
	prefix   string
	partSize uint64
	parallel uint
	parts    *partPool
	log      *slog.Logger
	gets     atomic.Int64 // GET requests issued by objects, for tests of stream reuse

	// inflight holds the upload ids of multipart uploads this process is
	// making, which SweepIncomplete must leave alone however old they are.
	inflight sync.Map
	// aborts counts background retries of aborts; Close waits for them.
	aborts  sync.WaitGroup
	closing chan struct{}
	once    sync.Once
	// abortRetry is the first pause between abort attempts (doubling).
	abortRetry time.Duration
	// readIdle and writeIdle are S3Config's; opTimeout is defaultOpTimeout
	// (a field so that tests need not wait it out).
	readIdle, writeIdle, opTimeout time.Duration
}

var _ Store = (*S3)(nil)

// NewS3 connects to the bucket, creating it if missing.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("s3 blob store: endpoint not set")
	case strings.Contains(cfg.Endpoint, "://"):
		return nil, fmt.Errorf("s3 blob store: endpoint %q must be host:port without a scheme (TLS chooses https)", cfg.Endpoint)
	case cfg.Bucket == "":
		return nil, errors.New("s3 blob store: bucket not set")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = defaultPartSize
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 3
	}
	if cfg.PartBuffers <= 0 {
		cfg.PartBuffers = 4
	}
	if cfg.ReadIdle <= 0 {
		cfg.ReadIdle = defaultReadIdle
	}
	if cfg.WriteIdle <= 0 {
		cfg.WriteIdle = defaultWriteIdle
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("s3 blob store: part size %d below the S3 minimum of 5 MiB", cfg.PartSize)
	}
	if cfg.Prefix != "" && !validPrefix(cfg.Prefix) {
		return nil, fmt.Errorf("s3 blob store: invalid prefix %q", cfg.Prefix)
	}
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.TLS,
		Region:    cfg.Region,
		Transport: newTransport(),
	})
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &S3{core: core, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: cfg.PartSize, parallel: cfg.Parallel,
		parts: newPartPool(cfg.PartSize, cfg.PartBuffers), log: cfg.Logger, closing: make(chan struct{}), abortRetry: time.Second,
		readIdle: cfg.ReadIdle, writeIdle: cfg.WriteIdle, opTimeout: defaultOpTimeout}
	if err := s.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, err
	}
	return s, nil
}

func validPrefix(p string) bool {
	for _, part := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return len(p) <= 512
}

// newTransport bounds every phase of a request except the body: a blob of
// gigabytes may legitimately stream for a long time, a silent server may not
// hold a connection or a header forever. A response body that stops moving
// is cut by idleBody. A request body that the server stops taking is not
// bounded here at all (ResponseHeaderTimeout starts only once the whole body
// is written): uploads are cut by writeWatch, which also bounds their wait
// for the answer.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		// Generous: completing a large multipart upload can take the server a while.
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: 1 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		// Ciphertext does not compress, and transparent gzip would break byte ranges.
		DisableCompression: true,
	}
}

func (s *S3) ensureBucket(ctx context.Context, region string) error {
	octx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	ok, err := s.core.BucketExists(octx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 blob store: check bucket %s: %w", s.bucket, s3Fault(ctx, err))
	}
	if ok {
		return nil
	}
	err = s.core.MakeBucket(octx, s.bucket, minio.MakeBucketOptions{Region: region})
	if code := minio.ToErrorResponse(err).Code; code == minio.BucketAlreadyOwnedByYou {
		// Another instance created it between our check and our create.
		return nil
	}
	if err != nil {
		return fmt.Errorf("s3 blob store: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

func (s *S3) key(id string) string { return s.prefix + id }

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound
}

// s3Fault marks err as the store's unavailability (ErrUnavailable) unless it
// is the server's answer about the request itself, or the caller's ctx ended
// (which explains it). No answer at all (refused, reset, timed out, cut
// short) is unavailability; so are server errors, throttling and refused
// credentials, none of which the vault's client can do anything about.
//
// ctx must be the caller's context, never one the store derived with its
// own deadline (opTimeout): that deadline running out is the store not
// answering in time, an outage, and must not come out as a bare
// context.DeadlineExceeded, which reads as nobody's (or the database's).
func s3Fault(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	r := minio.ToErrorResponse(err)
	if r.StatusCode == 0 && r.Code == "" {
		return unavailable(err)
	}
	switch {
	case r.StatusCode >= 500, r.StatusCode == http.StatusForbidden, r.StatusCode == http.StatusRequestTimeout,
		r.StatusCode == http.StatusTooManyRequests:
		return unavailable(err)
	}
	switch r.Code {
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "XMinioStorageFull",
		"XMinioServerNotInitialized", "InsufficientStorage", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return unavailable(err)
	}
	return err
}

// Put uploads with a single PUT when the size is known and at most PartSize,
// else with a multipart upload that buffers one part at a time. S3 makes an
// object visible only when the PUT or the multipart completion succeeds; a
// failed multipart upload is aborted by minio-go.
func (s *S3) Put(ctx context.Context, id string, r io.Reader, size int64) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	if size < -1 {
		return 0, fmt.Errorf("put blob %s: negative size %d", id, size)
	}
	g := newGuardReader(ctx, r, size)
	if size < 0 || size > int64(s.partSize) {
		n, err := s.putMultipart(ctx, s.key(id), g)
		if err != nil {
			return n, fmt.Errorf("put blob %s: %w", id, g.fault(err))
		}
		return n, nil
	}
	w := watchWrite(ctx, g, s.writeIdle)
	info, err := s.core.Client.PutObject(w.ctx, s.bucket, s.key(id), w.Body(), size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
	})
	err = w.End(ctx, err)
	if err != nil {
		return g.n, fmt.Errorf("put blob %s: %w", id, g.fault(s3Fault(ctx, err)))
	}
	if size >= 0 && info.Size != size {
		return info.Size, fmt.Errorf("put blob %s: stored %d bytes: %w", id, info.Size, ErrSizeMismatch)
	}
	return info.Size, nil
}

// Open stats the object. Reads then go through streaming GETs bound to ctx
// and to the object's ETag, so a concurrent replacement fails the read
// instead of mixing two versions.
func (s *S3) Open(ctx context.Context, id string) (Object, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	info, err := s.core.StatObject(sctx, s.bucket, s.key(id), minio.StatObjectOptions{})
	if isNotFound(err) {
		return nil, fmt.Errorf("open blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, s3Fault(ctx, err))
	}
	return &s3Object{s: s, ctx: ctx, id: id, etag: info.ETag, size: info.Size}, nil
}

// Delete removes the object; S3 deletes are idempotent already.
func (s *S3) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	err := s.core.RemoveObject(octx, s.bucket, s.key(id), minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete blob %s: %w", id, s3Fault(ctx, err))
	}
	return nil
}

// List pages through the objects under the prefix. Keys that are not valid
// ids (someone else's objects sharing the prefix) are skipped.
func (s *S3) List(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	// Cancelling stops minio-go's listing goroutine when fn stops early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list blobs: %w", s3Fault(ctx, obj.Err))
		}
		id := strings.TrimPrefix(obj.Key, s.prefix)
		if !ValidID(id) {
			continue
		}
		if err := fn(id, obj.LastModified); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Ping checks that the bucket is reachable with our credentials.
func (s *S3) Ping(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	ok, err := s.core.BucketExists(octx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 blob store: %w", s3Fault(ctx, err))
	}
	if !ok {
		return fmt.Errorf("s3 blob store: bucket %s missing: %w", s.bucket, ErrUnavailable)
	}
	return nil
}

// s3Object serves ReadAt from an open streaming GET: a read that starts where
// the previous one ended continues the same response body, so reading a blob
// front to back costs one round trip, not one per call. A jump opens a new
// ranged GET. Concurrent ReadAt calls each take their own stream.
type s3Object struct {
	s    *S3
	ctx  context.Context
	id   string
	etag string
	size int64

	mu     sync.Mutex
	cur    *s3Stream // idle stream ready to continue, if any
	closed bool
	stalls atomic.Int32 // streams of this object the store stalled
}

type s3Stream struct {
	body io.ReadCloser
	pos  int64
}

var errObjectClosed = errors.New("blob object closed")

func (o *s3Object) Size() int64 { return o.size }

func (o *s3Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.cur != nil {
		_ = o.cur.body.Close()
		o.cur = nil
	}
	return nil
}

// take returns the idle stream if it can serve a read at off.
func (o *s3Object) take(off int64) (*s3Stream, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, errObjectClosed
	}
	if s := o.cur; s != nil && s.pos <= off && off-s.pos <= skipLimit {
		o.cur = nil
		return s, nil
	}
	return nil, nil
}

// park keeps s as the idle stream, replacing (and closing) an older one.
func (o *s3Object) park(s *s3Stream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || s.pos >= o.size {
		_ = s.body.Close()
		return
	}
	if o.cur != nil {
		_ = o.cur.body.Close()
	}
	o.cur = s
}

func (o *s3Object) open(off int64) (*s3Stream, error) {
	var opts minio.GetObjectOptions
	if o.etag != "" {
		if err := opts.SetMatchETag(o.etag); err != nil {
			return nil, err
		}
	}
	if off > 0 {
		// Open-ended, so that later sequential reads continue this response.
		if err := opts.SetRange(off, 0); err != nil {
			return nil, err
		}
	}
	o.s.gets.Add(1)
	// The stream's own context, so that a stalled body can be cut without
	// ending the object's other streams.
	sctx, cancel := context.WithCancelCause(o.ctx)
	// Until the answer's headers arrive the GET moves no blob bytes, so it
	// has opTimeout like any such call (the transport alone would wait two
	// minutes); from then on idleBody watches the body.
	noAnswer := time.AfterFunc(o.s.opTimeout, func() { cancel(errNoAnswer) })
	body, _, _, err := o.s.core.GetObject(sctx, o.s.bucket, o.s.key(o.id), opts)
	if !noAnswer.Stop() {
		if err == nil {
			_ = body.Close()
		}
		cancel(nil)
		return nil, unavailable(fmt.Errorf("%w within %v", errNoAnswer, o.s.opTimeout))
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	return &s3Stream{body: newIdleBody(body, o.s.readIdle, cancel), pos: off}, nil
}

func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read blob %s: negative offset", o.id)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= o.size {
		return 0, io.EOF
	}
	want := p
	if rest := o.size - off; int64(len(p)) > rest {
		want = p[:rest]
	}
	s, err := o.take(off)
	if err != nil {
		return 0, err
	}
	n, failures := 0, 0
	for n < len(want) {
		pos := off + int64(n)
		if s == nil {
			if s, err = o.open(pos); err != nil {
				return n, fmt.Errorf("read blob %s: %w", o.id, s3Fault(o.ctx, err))
			}
		}
		if s.pos < pos {
			if _, err = io.CopyN(io.Discard, s.body, pos-s.pos); err == nil {
				s.pos = pos
			}
		}
		var m int
		if err == nil {
			m, err = io.ReadFull(s.body, want[n:])
			n += m
			s.pos += int64(m)
		}
		if err != nil {
			_ = s.body.Close()
			s = nil
			// A dropped connection mid-stream is retried from where it broke,
			// but a server that keeps failing without progress is not. A
			// stall is retried once per object, whatever came before it:
			// each costs readIdle, and a store that sends a little and then
			// stalls on every new connection would otherwise hold the read
			// for as many rounds as the blob has pieces.
			if m == 0 {
				failures++
			}
			stalledAgain := errors.Is(err, errStalled) && o.stalls.Add(1) > 1
			if failures >= 2 || stalledAgain || o.ctx.Err() != nil {
				return n, fmt.Errorf("read blob %s at %d: %w", o.id, pos, s3Fault(o.ctx, err))
			}
			err = nil
		}
	}
	o.park(s)
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}
