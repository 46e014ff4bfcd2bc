package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/crvault/crvault/audit"
)

// Dir keeps the newest checkpoint as the file checkpoint-<size, 20
// digits>-<root, hex> in a directory (names.go; it reads the names without
// a root of earlier releases and their checkpoint mirror). Older files are removed once a newer one is durable: keeping
// them would add no evidence, as whoever can write the directory can also
// remove them (S3 keeps every checkpoint because there nobody can). History
// still reads every checkpoint file there is: an earlier release's mirror,
// or a directory on a write-once mount where the removal fails.
type Dir struct {
	dir string
}

var _ audit.Witness = (*Dir)(nil)

const dirPrefix = "checkpoint-"

// maxCheckpoint bounds what a witness reads: a checkpoint note is a few
// hundred bytes.
const maxCheckpoint = 64 << 10

// NewDir opens (creating, mode 0700) a directory witness.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("checkpoint witness: directory not set")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint witness %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint witness: %w", err)
	}
	return &Dir{dir: abs}, nil
}

func (d *Dir) String() string { return "directory " + d.dir }

// names returns the checkpoint file names, oldest first (the size digits
// come first, in fixed width).
func (d *Dir) names() ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.dir, err)
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), dirPrefix)
		if !ok || e.IsDir() || len(n) < 20 {
			continue
		}
		if _, _, ok := parseRootSuffix(n[20:]); ok {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// parse reads the size, and the root when the name carries one, from a
// name names returned.
func (d *Dir) parse(name string) (audit.Held, error) {
	n := strings.TrimPrefix(name, dirPrefix)
	size, err := strconv.ParseUint(n[:20], 10, 63)
	if err != nil {
		return audit.Held{}, fmt.Errorf("%s: malformed checkpoint file name %s", d.dir, name)
	}
	root, named, _ := parseRootSuffix(n[20:])
	return audit.Held{Size: int64(size), Root: root, NamedRoot: named}, nil
}

// newest returns the size and name of the newest checkpoint file, -1 when
// there is none.
func (d *Dir) newest() (audit.Held, string, error) {
	names, err := d.names()
	if err != nil || len(names) == 0 {
		return audit.Held{Size: -1}, "", err
	}
	name := names[len(names)-1]
	h, err := d.parse(name)
	if err != nil {
		return audit.Held{}, "", err
	}
	return h, name, nil
}

// History passes every checkpoint file above after, newest first (one, as a
// rule: see Dir). Like S3's, it reads the newest and those named without a
// root, and passes the others by name.
func (d *Dir) History(_ context.Context, after int64, fn func(audit.Held) error) error {
	names, err := d.names()
	if err != nil {
		return err
	}
	first := true
	for i := len(names) - 1; i >= 0; i-- {
		h, err := d.parse(names[i])
		if err != nil {
			return err
		}
		if h.Size <= after {
			return nil
		}
		if first || !h.NamedRoot {
			b, err := readBounded(filepath.Join(d.dir, names[i]))
			if errors.Is(err, fs.ErrNotExist) {
				continue // replaced by a newer one since the listing
			}
			if err != nil {
				return err
			}
			h.Signed = b
		}
		first = false
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// Latest returns the newest checkpoint. A newest file that is not a
// checkpoint of the size its name says, or that accept refuses, is an
// error, not skipped: in a directory only someone who can write it can
// have put it there, and that needs a human.
func (d *Dir) Latest(_ context.Context, accept func([]byte) error) ([]byte, error) {
	h, name, err := d.newest()
	if err != nil || h.Size < 0 {
		return nil, err
	}
	b, err := readBounded(filepath.Join(d.dir, name))
	if err != nil {
		return nil, err
	}
	if !holds(b, h.Size, h.Root, h.NamedRoot) {
		return nil, fmt.Errorf("%s/%s does not hold the checkpoint its name says (size %d)", d.dir, name, h.Size)
	}
	if err := accept(b); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", d.dir, name, err)
	}
	return b, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxCheckpoint+1)
	n, err := f.Read(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if n > maxCheckpoint {
		return nil, fmt.Errorf("%s is too large for a checkpoint", path)
	}
	return b[:n], nil
}

// Store writes signed as the newest checkpoint unless a newer one is there
// (audit.ErrStale). Writers in several processes are serialised by a lock
// file, so the comparison and the rename are one step.
func (d *Dir) Store(_ context.Context, size int64, signed []byte, accept func([]byte) error) error {
	n, root, err := audit.CheckpointSizeRoot(signed)
	if err != nil || n != size {
		return fmt.Errorf("checkpoint witness: offered a note that is not a checkpoint of size %d", size)
	}
	unlock, err := lockDir(d.dir)
	if err != nil {
		return fmt.Errorf("lock %s: %w", d.dir, err)
	}
	defer unlock()
	h, name, err := d.newest()
	if err != nil {
		return err
	}
	cur := h.Size
	if cur >= 0 {
		// What is there must be genuine before it can hold us back, and
		// a forged newest file needs a human, not an overwrite.
		if _, err := d.Latest(context.Background(), accept); err != nil {
			return err
		}
	}
	switch {
	case size < cur:
		return fmt.Errorf("%w: %s holds size %d, offered %d", audit.ErrStale, d.dir, cur, size)
	case size == cur:
		old, err := readBounded(filepath.Join(d.dir, name))
		if err != nil {
			return err
		}
		if !bytes.Equal(old, signed) {
			return fmt.Errorf("%s holds a different checkpoint of size %d than the one offered (two signers, or a fork)", d.dir, size)
		}
		return nil
	}
	final := filepath.Join(d.dir, fmt.Sprintf("%s%020d%s", dirPrefix, size, rootSuffix(root)))
	if err := writeDurably(d.dir, final, signed); err != nil {
		return err
	}
	// The new file is durable: the smaller ones say nothing more.
	names, err := d.names()
	if err != nil {
		return nil
	}
	for _, old := range names {
		if h, err := d.parse(old); err == nil && h.Size < size {
			_ = os.Remove(filepath.Join(d.dir, old))
		}
	}
	return nil
}

// evidencePrefix names the files Keep writes: "evidence-<size, 20
// digits>-<root, hex>". Store never removes them, and names (the newest,
// History) never sees them.
const evidencePrefix = "evidence-"

// Keep writes signed as evidence beside the newest, whatever its size.
func (d *Dir) Keep(_ context.Context, size int64, signed []byte) error {
	n, root, err := audit.CheckpointSizeRoot(signed)
	if err != nil || n != size {
		return fmt.Errorf("checkpoint witness: offered a note that is not a checkpoint of size %d", size)
	}
	final := filepath.Join(d.dir, fmt.Sprintf("%s%020d%s", evidencePrefix, size, rootSuffix(root)))
	return writeDurably(d.dir, final, signed)
}

// Evidence passes every file Keep wrote, read.
func (d *Dir) Evidence(_ context.Context, fn func(audit.Held) error) error {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.dir, err)
	}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), evidencePrefix)
		if !ok || e.IsDir() || len(n) < 20 {
			continue
		}
		size, err := strconv.ParseUint(n[:20], 10, 63)
		if err != nil {
			continue
		}
		root, named, ok := parseRootSuffix(n[20:])
		if !ok {
			continue
		}
		b, err := readBounded(filepath.Join(d.dir, e.Name()))
		if err != nil {
			return err
		}
		if err := fn(audit.Held{Size: int64(size), Root: root, NamedRoot: named, Signed: b}); err != nil {
			return err
		}
	}
	return nil
}

// writeDurably writes then renames, and syncs the file and the directory, so
// a crash leaves either the old newest or the new one, whole.
func writeDurably(dir, final string, b []byte) error {
	tmp, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("write checkpoint witness: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write checkpoint witness: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write checkpoint witness: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write checkpoint witness: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("write checkpoint witness: %w", err)
	}
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		df.Close()
	}
	return nil
}
