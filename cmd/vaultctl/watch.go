package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/crvault/crvault/audit"
)

// auditWatchCmd is an outside witness of the audit log, run by operators,
// providers and inspectors on their own machines: it keeps the newest
// checkpoint it has seen in a state file and proves each new one extends
// it (a consistency proof from the server, checked against both signed
// roots). A log that shrank or was rewritten fails the check (exit 1),
// naming the sizes; the server cannot hide it by re-signing, because the
// old checkpoint is here. A server that is down or refuses the session is
// an error of its own kind, not evidence: in a loop the watcher says so
// and keeps watching.
func auditWatchCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	key := fs.String("key", "", `checkpoint verifier key (as printed by "vaultd audit pubkey"), or a file holding it`)
	state := fs.String("state", "", "file keeping the newest checkpoint seen (created on the first run)")
	once := fs.Bool("once", false, "check once and exit (for cron and tests)")
	interval := fs.Duration("interval", 5*time.Minute, "time between checks when not --once")
	return func(ctx context.Context, e *env, args []string) error {
		if *key == "" || *state == "" || len(args) > 0 || *interval <= 0 {
			return usagef("audit watch needs --key and --state, a positive --interval, and takes no arguments")
		}
		vkey, err := readKey(*key)
		if err != nil {
			return err
		}
		c, _, err := newClient(ctx, e, true)
		if err != nil {
			return err
		}
		w := &watcher{c: c, vkey: vkey, state: *state, out: e.stdout}
		for {
			err := w.check(ctx)
			var ve verifyError
			switch {
			case errors.As(err, &ve), err != nil && *once:
				return err
			case err != nil:
				fmt.Fprintf(e.stderr, "vaultctl audit watch: %s: %v (will retry)\n", time.Now().UTC().Format(time.RFC3339), err)
			}
			if *once {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(*interval):
			}
		}
	}
}

type watcher struct {
	c           *client
	vkey, state string
	out         io.Writer
}

// check runs one round: fetch, compare with the state, prove, save.
func (w *watcher) check(ctx context.Context) error {
	signed, err := w.getText(ctx, "/audit/checkpoint")
	if err != nil {
		return err
	}
	cur, err := audit.ParseCheckpoint(signed, w.vkey)
	if err != nil {
		return verifyError{fmt.Sprintf("the server's checkpoint does not verify with the key: %v", err)}
	}
	oldSigned, err := os.ReadFile(w.state)
	if errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(w.state, signed, 0o600); err != nil {
			return localError{fmt.Errorf("save state: %w", err)}
		}
		fmt.Fprintf(w.out, "OK: first checkpoint seen: size %d; kept in %s, every later one must extend it\n", cur.Size, w.state)
		return nil
	}
	if err != nil {
		return localError{fmt.Errorf("read state: %w", err)}
	}
	old, err := audit.ParseCheckpoint(oldSigned, w.vkey)
	if err != nil {
		return localError{fmt.Errorf("state file %s does not hold a checkpoint signed with the key: %w", w.state, err)}
	}
	switch {
	case cur.Size < old.Size:
		return verifyError{fmt.Sprintf("the audit log shrank: the server's checkpoint covers %d events, but a checkpoint of size %d was seen before: events %d..%d are gone (log truncated or rolled back)",
			cur.Size, old.Size, cur.Size+1, old.Size)}
	case cur.Size == old.Size:
		if cur.Root != old.Root {
			return verifyError{fmt.Sprintf("two different checkpoints of size %d: the one seen before and the server's now (log rewritten)", cur.Size)}
		}
		fmt.Fprintf(w.out, "OK: checkpoint size %d, unchanged\n", cur.Size)
		return nil
	}
	if old.Size > 0 {
		var p audit.ConsistencyProof
		path := "/audit/proofs/consistency?from=" + strconv.FormatInt(old.Size, 10) + "&to=" + strconv.FormatInt(cur.Size, 10)
		if _, err := w.c.do(ctx, "GET", path, nil, &p); err != nil {
			return err
		}
		// The proof must connect exactly the two signed roots.
		if p.From != old.Size || p.To != cur.Size || p.FromRoot != old.Root || p.ToRoot != cur.Root || p.Check() != nil {
			return verifyError{fmt.Sprintf("the server's checkpoint of size %d is not an extension of the checkpoint of size %d seen before (log rewritten or rolled back and regrown)",
				cur.Size, old.Size)}
		}
	}
	if err := writeFileAtomic(w.state, signed, 0o600); err != nil {
		return localError{fmt.Errorf("save state: %w", err)}
	}
	fmt.Fprintf(w.out, "OK: checkpoint size %d extends size %d seen before\n", cur.Size, old.Size)
	return nil
}

// getText fetches a small text answer (a checkpoint).
func (w *watcher) getText(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := w.c.request(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	res, err := w.c.hc.Do(req)
	if err != nil {
		return nil, netError("GET", req.URL, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return nil, readProblem(res)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return nil, netError("GET", req.URL, err)
	}
	return b, nil
}
