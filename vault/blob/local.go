package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tmpPrefix marks in-progress writes. A dot can never start a valid id, so a
// temp file can never be mistaken for, or collide with, a blob.
const tmpPrefix = ".tmp-"

// staleTmpAge is how old an abandoned temp file (left by a crash mid-Put) must
// be before NewLocal removes it; no live upload takes this long.
const staleTmpAge = 24 * time.Hour

// Local stores blobs as files in one directory, the embedded default.
type Local struct {
	dir string
	// inflight holds the temp files of Puts in progress, which
	// SweepIncomplete leaves alone however long the upload takes.
	inflight sync.Map
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating it with mode 0700 if needed) the blob directory.
// It removes temp files that crashed writers left more than a day ago.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("blob: local directory not set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create blob dir: %w", err)
	}
	l := &Local{dir: dir}
	if _, err := l.SweepIncomplete(context.Background(), time.Now().Add(-staleTmpAge)); err != nil {
		return nil, err
	}
	return l, nil
}

// fsFault marks the errors that say the filesystem cannot take or give the
// bytes now (full, over quota, read-only, failing, a lost network mount,
// out of file descriptors) as ErrUnavailable; anything else (permissions)
// is a fault of the setup and stays as it is.
func fsFault(err error) error {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO, syscall.ENOTCONN, syscall.ESTALE, syscall.ETIMEDOUT,
		syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, e) {
			return unavailable(err)
		}
	}
	return err
}

// SweepIncomplete removes temp files (a crashed Put's) older than before
// that no Put of this process is writing.
func (l *Local) SweepIncomplete(ctx context.Context, before time.Time) (int, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return 0, fmt.Errorf("read blob dir: %w", fsFault(err))
	}
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		path := filepath.Join(l.dir, e.Name())
		if _, live := l.inflight.Load(path); live {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("remove stale temp blob: %w", fsFault(err))
		}
		n++
	}
	return n, nil
}

func (l *Local) path(id string) string { return filepath.Join(l.dir, id) }

// Put writes to a temp file in the same directory, fsyncs it, renames it over
// the id and fsyncs the directory, so a crash leaves the old blob or the new
// one, never a torn one.
func (l *Local) Put(ctx context.Context, id string, r io.Reader, size int64) (n int64, err error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	if size < -1 {
		return 0, fmt.Errorf("put blob %s: negative size %d", id, size)
	}
	f, err := os.CreateTemp(l.dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		// The store's directory itself is gone (an unmounted volume, say):
		// the store cannot take bytes now, as /readyz says too.
		err = unavailable(err)
	}
	if err != nil {
		return 0, fmt.Errorf("put blob %s: %w", id, fsFault(err))
	}
	tmp := f.Name()
	l.inflight.Store(tmp, struct{}{})
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
		l.inflight.Delete(tmp)
	}()
	buf := make([]byte, 256<<10)
	g := newGuardReader(ctx, r, size)
	// CopyBuffer would use f.ReadFrom and skip our buffer; wrap to keep one bounded copy loop.
	n, err = io.CopyBuffer(struct{ io.Writer }{f}, g, buf)
	if err != nil {
		return n, fmt.Errorf("put blob %s: %w", id, g.fault(fsFault(err)))
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("put blob %s: sync: %w", id, fsFault(err))
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("put blob %s: close: %w", id, fsFault(err))
	}
	if err = ctx.Err(); err != nil {
		return n, fmt.Errorf("put blob %s: %w", id, err)
	}
	if err = os.Rename(tmp, l.path(id)); err != nil {
		return n, fmt.Errorf("put blob %s: rename: %w", id, fsFault(err))
	}
	if err = syncDir(l.dir); err != nil {
		// The rename happened; report the failure but the blob is in place.
		return n, fmt.Errorf("put blob %s: sync dir: %w", id, fsFault(err))
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// rootGone tells a blob that is missing from a store that is missing: when
// the store's directory itself is gone (an unmounted volume), a blob's
// absence says nothing about the blob, and the store is unavailable, as
// Put and /readyz say; a read must not call the material damaged.
func (l *Local) rootGone() error {
	info, err := os.Stat(l.dir)
	switch {
	case err == nil && info.IsDir():
		return nil
	case err == nil:
		return unavailable(fmt.Errorf("blob store %s is not a directory", l.dir))
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return unavailable(err)
	default:
		return fsFault(err)
	}
}

// Open opens the blob's file; the Object is the file itself.
func (l *Local) Open(ctx context.Context, id string) (Object, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	f, err := os.Open(l.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		if err := l.rootGone(); err != nil {
			return nil, fmt.Errorf("open blob %s: %w", id, err)
		}
		return nil, fmt.Errorf("open blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, fsFault(err))
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open blob %s: %w", id, fsFault(err))
	}
	if !info.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("open blob %s: not a regular file", id)
	}
	return &localObject{f: f, size: info.Size()}, nil
}

type localObject struct {
	f    *os.File
	size int64
}

func (o *localObject) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fsFault(err)
	}
	return n, err
}
func (o *localObject) Size() int64  { return o.size }
func (o *localObject) Close() error { return o.f.Close() }

// Delete removes the file and syncs the directory so the removal is durable.
func (l *Local) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	err := os.Remove(l.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		// Gone with the store's directory is not gone: the blob is still
		// on the volume that is not there now.
		return l.rootGone()
	}
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", id, fsFault(err))
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("delete blob %s: sync dir: %w", id, fsFault(err))
	}
	return nil
}

// List reads the directory in batches so a large store never sits in memory.
func (l *Local) List(ctx context.Context, fn func(id string, modTime time.Time) error) error {
	d, err := os.Open(l.dir)
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	defer d.Close()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			if !ValidID(e.Name()) || !e.Type().IsRegular() {
				continue
			}
			info, ierr := e.Info()
			if errors.Is(ierr, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if ierr != nil {
				return fmt.Errorf("list blobs: %w", ierr)
			}
			if ferr := fn(e.Name(), info.ModTime()); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
	}
}

// Ping checks that the directory exists and a file can be created in it.
func (l *Local) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(l.dir, tmpPrefix+"ping-*")
	if err != nil {
		return fmt.Errorf("blob dir not writable: %w", fsFault(err))
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("blob dir: %w", err)
	}
	return nil
}
