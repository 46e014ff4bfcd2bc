package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/supervision"
)

func auditVerifyCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	exportPath := fs.String("export", "", "NDJSON export (GET /api/v1/audit/export, or vaultctl audit export); - for stdin")
	ckPath := fs.String("checkpoint", "", "signed checkpoint (GET /api/v1/audit/checkpoint)")
	key := fs.String("key", "", `checkpoint verifier key (as printed by "vaultd audit pubkey"), or a file holding it`)
	oldPath := fs.String("old-checkpoint", "", "an older checkpoint that must be a prefix of the log")
	return func(ctx context.Context, e *env, args []string) error {
		if *exportPath == "" || *ckPath == "" || *key == "" || len(args) > 0 {
			return usagef("audit verify needs --export, --checkpoint and --key, and takes no arguments")
		}
		ck, err := os.ReadFile(*ckPath)
		if err != nil {
			return localError{fmt.Errorf("read checkpoint: %w", err)}
		}
		var old []byte
		if *oldPath != "" {
			if old, err = os.ReadFile(*oldPath); err != nil {
				return localError{fmt.Errorf("read old checkpoint: %w", err)}
			}
		}
		vkey, err := readKey(*key)
		if err != nil {
			return err
		}
		in, err := openInput(e, *exportPath)
		if err != nil {
			return localError{fmt.Errorf("open export: %w", err)}
		}
		defer in.Close()
		rep, err := audit.VerifyExport(bufio.NewReaderSize(in, 1<<20), ck, vkey, old)
		var ve *audit.VerifyError
		switch {
		case errors.As(err, &ve):
			if ve.Seq > 0 {
				return verifyError{fmt.Sprintf("first bad entry seq %d: %s", ve.Seq, ve.Reason)}
			}
			return verifyError{ve.Reason}
		case err != nil:
			return localError{err}
		}
		fmt.Fprintf(e.stdout, "OK: events %d..%d verified, tree size %d, root %s, checkpoints matched %d\n",
			rep.From, rep.To, rep.TreeSize, rep.Root, rep.Checkpoints)
		if rep.Covered < rep.TreeSize {
			fmt.Fprintf(e.stdout, "note: events %d..%d are chained but newer than the checkpoint (size %d)\n",
				rep.Covered+1, rep.TreeSize, rep.Covered)
		}
		return nil
	}
}

// readKey accepts the key text itself or a file holding it.
func readKey(k string) (string, error) {
	if b, err := os.ReadFile(k); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if strings.Count(k, "+") >= 2 {
		return strings.TrimSpace(k), nil
	} else {
		return "", localError{fmt.Errorf("read key: %w", err)}
	}
}

// evidenceVerifyCmd checks a complaint's evidence bundle (GET
// /complaints/{id}/evidence?format=file): the checkpoint's signature and
// every event's inclusion proof against it.
func evidenceVerifyCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	path := fs.String("file", "", "evidence bundle; - for stdin")
	key := fs.String("key", "", "checkpoint verifier key, or a file holding it")
	return func(ctx context.Context, e *env, args []string) error {
		if *path == "" || *key == "" || len(args) > 0 {
			return usagef("evidence verify needs --file and --key, and takes no arguments")
		}
		vkey, err := readKey(*key)
		if err != nil {
			return err
		}
		in, err := openInput(e, *path)
		if err != nil {
			return localError{fmt.Errorf("open evidence: %w", err)}
		}
		defer in.Close()
		rep, err := supervision.VerifyEvidence(in, vkey)
		if err != nil {
			return verifyError{err.Error()}
		}
		fmt.Fprintf(e.stdout, "OK: complaint %s: %d events proven in the log of size %d, %d newer than the checkpoint\n",
			rep.ComplaintID, rep.Proven, rep.TreeSize, rep.Pending)
		return nil
	}
}

// openInput opens a file, or standard input for "-".
func openInput(e *env, path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(e.stdin), nil
	}
	return os.Open(path)
}

// auditExportCmd writes the audit export (what audit verify checks) to a
// file, whole or not at all, or to standard output.
func auditExportCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	from := fs.Int64("from", 0, "first event sequence number (default: the first)")
	to := fs.Int64("to", 0, "last event sequence number (default: the newest)")
	output := fs.String("o", "-", "file to write, or - for standard output")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usagef("audit export takes no arguments")
		}
		if *from < 0 || *to < 0 || (*to > 0 && *to < *from) {
			return usagef("--from and --to must be sequence numbers with from <= to")
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		q := url.Values{}
		if *from > 0 {
			q.Set("from", strconv.FormatInt(*from, 10))
		}
		if *to > 0 {
			q.Set("to", strconv.FormatInt(*to, 10))
		}
		path := "/audit/export"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		req, err := c.request(ctx, "GET", path, nil)
		if err != nil {
			return err
		}
		res, err := c.hc.Do(req)
		if err != nil {
			return netError("GET", req.URL, err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			return readProblem(res)
		}
		var dst io.Writer = e.stdout
		var tmp *os.File
		if *output != "-" {
			if tmp, err = os.CreateTemp(filepath.Dir(*output), "."+filepath.Base(*output)+".vaultctl-*.part"); err != nil {
				return localError{err}
			}
			defer func() {
				if tmp != nil {
					tmp.Close()
					os.Remove(tmp.Name())
				}
			}()
			dst = tmp
		}
		lines := &lineCounter{w: dst}
		if _, err := io.Copy(lines, res.Body); err != nil {
			var le localError
			if errors.As(err, &le) {
				return err
			}
			return fmt.Errorf("export cut short after %d events: %w", lines.n, err)
		}
		if tmp != nil {
			if err := tmp.Sync(); err != nil {
				return localError{err}
			}
			if err := tmp.Close(); err != nil {
				return localError{err}
			}
			if err := os.Rename(tmp.Name(), *output); err != nil {
				return localError{err}
			}
			tmp = nil
		}
		fmt.Fprintf(e.stderr, "vaultctl audit export: %d events\n", lines.n)
		return nil
	}
}

// lineCounter counts the lines (events) it writes; a write failure is the
// local side's.
type lineCounter struct {
	w io.Writer
	n int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	for _, b := range p[:n] {
		if b == '\n' {
			l.n++
		}
	}
	if err != nil {
		return n, localError{err}
	}
	return n, nil
}
