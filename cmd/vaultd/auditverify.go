package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crvault/crvault/audit"
)

// verifiedStateFile is where `vaultd audit verify --incremental` keeps the
// last checkpoint it vouched for.
func (c config) verifiedStateFile(flag string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(c.DataDir, "audit-verified")
}

// auditVerifyIncremental checks the events after the checkpoint kept in
// state (the whole log when there is none) and keeps the newest checkpoint
// it vouched for. The file holds a signed checkpoint note: it needs no
// secrecy, and one forged without the checkpoint key does not verify, an
// older genuine one only makes the next run longer, and a newer genuine one
// is checked against the database like any other (a log shorter than it or
// not extending it is refused). It does need integrity against whoever
// holds the key: a note signed over a rewritten log makes the run skip the
// witnessed checkpoints below it, which only the full verify then reads.
// Hence the warning when it lies in the data directory.
func auditVerifyIncremental(ctx context.Context, log *audit.Log, state string, stdout io.Writer) error {
	prev, err := os.ReadFile(state)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		prev = nil
	case err != nil:
		return fmt.Errorf("read verification state: %w", err)
	}
	start := time.Now()
	rep, note, err := log.VerifySince(ctx, prev)
	if err != nil {
		var ve *audit.VerifyError
		if errors.As(err, &ve) {
			return exitError{1, fmt.Sprintf("audit log damaged at seq %d: %s", ve.Seq, ve.Reason)}
		}
		return fmt.Errorf("verify audit log: %w", err)
	}
	if note != nil {
		if err := writeFileAtomic(state, note); err != nil {
			return fmt.Errorf("keep verification state: %w", err)
		}
	}
	n := rep.To - rep.From + 1
	fmt.Fprintf(stdout, "audit log OK: %s (%d new events checked in %s)\n", rep, max(n, 0), time.Since(start).Round(time.Millisecond))
	return nil
}

// insideDir reports whether path lies inside dir (both as given, made
// absolute).
func insideDir(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// writeFileAtomic replaces path with data: written to a temporary file
// beside it, synced, then renamed over it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-verified-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
