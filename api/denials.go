package api

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// DenialLog writes refusals of unauthenticated requests (bad tokens, failed
// sign-ins, rate-limited requests) to the audit log without letting a flood
// of them flood the log: the first of each kind from a client in a minute is
// written before the answer leaves, like any other denial; identical ones
// that follow in the same minute are counted, and written as one event with
// the exact count ("<detail>;repeated=N;since=<minute>") once the minute is
// over (Run), or at Close. Nothing is dropped: a count whose write fails is
// kept and written later.
type DenialLog struct {
	audit *audit.Log
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	m  map[denialKey]*denialWindow
}

type denialKey struct{ client, actor, action, resource, detail string }

type denialWindow struct {
	minute  time.Time
	written bool // the minute's first event is in the log
	repeats int
	last    audit.Event
}

// maxDenialWindows bounds memory under a spray from many addresses; past it
// every denial is written on its own, which is slower but loses nothing.
const maxDenialWindows = 100_000

// NewDenialLog builds a DenialLog over log. now may be nil (time.Now).
func NewDenialLog(log *audit.Log, logger *slog.Logger, now func() time.Time) *DenialLog {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &DenialLog{audit: log, log: logger, now: now, m: map[denialKey]*denialWindow{}}
}

// Record writes e (a denial) or counts it as a repeat of one written this
// minute. An error means it could not be written: the request must fail.
// The client is e.IP (grouped as access.ClientKey does).
func (d *DenialLog) Record(ctx context.Context, e audit.Event) error {
	key := denialKey{client: access.ClientKey(e.IP), actor: e.Actor, action: e.Action, resource: e.Resource, detail: e.Detail}
	minute := d.now().UTC().Truncate(time.Minute)
	d.mu.Lock()
	w := d.m[key]
	if w != nil && w.minute.Equal(minute) && w.written {
		w.repeats++
		w.last = e
		d.mu.Unlock()
		audit.MarkRecorded(ctx) // counted, and written with the minute's count
		return nil
	}
	var stale *denialWindow
	if w != nil && !w.minute.Equal(minute) {
		stale, w = w, nil
	}
	if w == nil && len(d.m) < maxDenialWindows {
		w = &denialWindow{minute: minute}
		d.m[key] = w
	}
	d.mu.Unlock()
	if stale != nil && stale.repeats > 0 {
		if err := d.writeSummary(ctx, stale); err != nil {
			d.keep(key, stale)
			return err
		}
	}
	if _, err := d.audit.Append(ctx, e); err != nil {
		return err
	}
	if w != nil {
		d.mu.Lock()
		w.written = true
		d.mu.Unlock()
	}
	return nil
}

// keep puts back a window whose summary could not be written, merging it
// into whatever window replaced it so that no count is lost.
func (d *DenialLog) keep(key denialKey, old *denialWindow) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur := d.m[key]; cur != nil && cur != old {
		// Carry the unwritten repeats into the current window's count; they
		// are written with it, under its minute.
		cur.repeats += old.repeats
		if cur.last.Action == "" {
			cur.last = old.last
		}
		return
	}
	d.m[key] = old
}

func (d *DenialLog) writeSummary(ctx context.Context, w *denialWindow) error {
	e := w.last
	e.Seq, e.Hash, e.Time = 0, "", time.Time{}
	e.Detail = fmt.Sprintf("%s;repeated=%d;since=%s", e.Detail, w.repeats, w.minute.Format(time.RFC3339))
	if _, err := d.audit.Append(ctx, e); err != nil {
		return err
	}
	return nil
}

// Flush writes the counts of every minute that is over (all of them if
// everything is true). A count that cannot be written stays for the next
// Flush.
func (d *DenialLog) Flush(ctx context.Context, everything bool) error {
	minute := d.now().UTC().Truncate(time.Minute)
	d.mu.Lock()
	var due []denialKey
	for k, w := range d.m {
		if everything || w.minute.Before(minute) {
			due = append(due, k)
		}
	}
	d.mu.Unlock()
	var firstErr error
	for _, k := range due {
		d.mu.Lock()
		w := d.m[k]
		if w == nil || (!everything && !w.minute.Before(minute)) {
			d.mu.Unlock()
			continue
		}
		delete(d.m, k)
		d.mu.Unlock()
		if w.repeats == 0 {
			continue
		}
		if err := d.writeSummary(ctx, w); err != nil {
			d.keep(k, w)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// Run flushes the minutes that are over every few seconds until ctx ends.
// Once the server has stopped taking requests, call Flush(ctx, true) before
// closing the audit log.
func (d *DenialLog) Run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Flush(ctx, false); err != nil && ctx.Err() == nil {
				d.log.Warn("denial counts not written yet; will retry", "err", err)
			}
		}
	}
}
