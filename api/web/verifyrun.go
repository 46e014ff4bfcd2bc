package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/crvault/crvault/audit"
)

// Verifier runs the audit page's "verify the whole log" in the background,
// one run at a time for the whole server. A full verification reads every
// event and every witnessed checkpoint: with millions of events it runs for
// minutes, far longer than a request may, so the button starts a run (or,
// while one runs, shows that one: a second press never starts a second
// reading of the whole log), and the audit page shows its progress, then
// its result, with who started it and when. The run has its own context,
// bounded by a timeout and ended by Close when the server stops, never the
// request's.
//
// The state is this process's: instances sharing a database each keep
// their own (a press on another instance starts a run there).
type Verifier struct {
	verify  VerifyFunc
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	// record writes an ended run's result to the audit log
	// (RecordResults); nil: results go to the server log only.
	record func(context.Context, VerifyRun) error

	base context.Context
	stop context.CancelFunc
	runs sync.WaitGroup

	mu     sync.Mutex
	seq    int64
	cur    *VerifyRun // running, or nil
	done   chan struct{}
	last   *VerifyRun // the last that ended, or nil
	closed bool
}

// VerifyFunc verifies the whole log, telling progress how far it has got
// (audit.(*Log).VerifyProgress).
type VerifyFunc func(ctx context.Context, progress func(checked, total int64)) (audit.Report, error)

// VerifyRun is one background verification as the audit page shows it.
type VerifyRun struct {
	ID int64
	// By and ByOrg are the account and organisation that started it.
	By, ByOrg      string
	Started, Ended time.Time // Ended is zero while it runs
	// Checked of Total events so far (Total: the log's length when it
	// started).
	Checked, Total int64
	Report         *audit.Report // when it succeeded
	// Failure says why it did not succeed: the first bad entry (Broken),
	// or why it could not finish (a timeout, the database, a witness, the
	// server stopping).
	Failure string
	Broken  bool
}

// Running says whether the run has not ended yet.
func (r *VerifyRun) Running() bool { return r.Ended.IsZero() }

// Percent is how far the run has got, 0..100.
func (r *VerifyRun) Percent() int64 {
	if r.Total <= 0 {
		return 0
	}
	return min(100, r.Checked*100/r.Total)
}

// ErrVerifierClosed is returned by Start once the server is stopping.
var ErrVerifierClosed = errors.New("web: the audit verifier is stopped")

// NewVerifier makes a Verifier whose runs live under ctx (the server's: its
// end stops them, as Close does) and each end after timeout.
func NewVerifier(ctx context.Context, verify VerifyFunc, timeout time.Duration, log *slog.Logger) *Verifier {
	if log == nil {
		log = slog.Default()
	}
	base, stop := context.WithCancel(ctx)
	return &Verifier{verify: verify, timeout: timeout, log: log, now: time.Now, base: base, stop: stop}
}

// RecordResults has record write every ended run's result to the audit
// log, so that the trail itself says when it was last found whole, or not:
// the press is recorded before the run, the result after it. Call it before
// Start.
func (v *Verifier) RecordResults(record func(context.Context, VerifyRun) error) *Verifier {
	v.record = record
	return v
}

// Start starts a run for the account by (of organisation org), unless one
// is running: then it returns that one and false.
func (v *Verifier) Start(by, org string) (VerifyRun, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.base.Err() != nil {
		return VerifyRun{}, false, ErrVerifierClosed
	}
	if v.cur != nil {
		return *v.cur, false, nil
	}
	v.seq++
	run := &VerifyRun{ID: v.seq, By: by, ByOrg: org, Started: v.now()}
	v.cur, v.done = run, make(chan struct{})
	ctx, cancel := context.WithTimeout(v.base, v.timeout)
	v.runs.Add(1)
	go func(done chan struct{}) {
		defer v.runs.Done()
		defer cancel()
		v.log.Info("audit verification started", "run", run.ID, "by", by)
		rep, err := v.verify(ctx, func(checked, total int64) {
			v.mu.Lock()
			run.Checked, run.Total = checked, total
			v.mu.Unlock()
		})
		// The result is recorded before it is shown: whoever sees it on
		// the page finds it in the trail.
		v.mu.Lock()
		res := *run
		v.mu.Unlock()
		res.Ended = v.now()
		var verr *audit.VerifyError
		switch {
		case err == nil:
			res.Report, res.Checked = &rep, rep.TreeSize
			v.log.Info("audit verification passed", "run", run.ID, "by", by, "report", rep.String())
		case v.base.Err() != nil:
			// First: a run cut short proves nothing either way, whatever
			// error the cut gave.
			res.Failure = "stopped: the server is shutting down"
		case errors.As(err, &verr):
			res.Failure, res.Broken = err.Error(), true
			v.log.Error("AUDIT VERIFICATION FAILED", "run", run.ID, "by", by, "err", err)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			res.Failure = fmt.Sprintf("not finished within %s: %v", v.timeout, err)
			v.log.Error("audit verification did not finish in time", "run", run.ID, "by", by, "timeout", v.timeout, "err", err)
		default:
			res.Failure = err.Error()
			v.log.Error("audit verification could not finish", "run", run.ID, "by", by, "err", err)
		}
		v.recordResult(res)
		v.mu.Lock()
		v.cur, v.last = nil, &res
		v.mu.Unlock()
		close(done)
	}(v.done)
	return *run, true, nil
}

// recordResult hands the ended run to record, on a context of its own: the
// run's may be over, and the server's is when it stops (the audit log
// closes after the verifier).
func (v *Verifier) recordResult(run VerifyRun) {
	if v.record == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(v.base), 10*time.Second)
	defer cancel()
	if err := v.record(ctx, run); err != nil {
		v.log.Error("audit verification result not recorded in the audit log", "run", run.ID, "err", err)
	}
}

// Wait waits up to d for the running run with that ID to end, so a short
// log's result comes back with the page that started it.
func (v *Verifier) Wait(ctx context.Context, id int64, d time.Duration) {
	v.mu.Lock()
	if v.cur == nil || v.cur.ID != id {
		v.mu.Unlock()
		return
	}
	done := v.done
	v.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// Status returns copies of the running run and of the last that ended
// (nil when none).
func (v *Verifier) Status() (running, last *VerifyRun) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur != nil {
		r := *v.cur
		running = &r
	}
	if v.last != nil {
		r := *v.last
		last = &r
	}
	return running, last
}

// Close stops a run in progress and waits for it to end.
func (v *Verifier) Close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.stop()
	v.runs.Wait()
}
