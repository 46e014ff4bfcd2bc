package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startJobs campaigns for the lead of the deployment and runs the periodic
// jobs while this process holds it: several vaultd sharing one PostgreSQL
// database sweep deadlines (and send their webhooks), write the notices a
// crash left pending, collect garbage and sign checkpoints once, not once
// per instance. When the leader dies,
// another instance takes the lead within seconds (sqldb.LeaderPoll) and
// runs every job at once. On SQLite the only process always leads.
func (a *app) startJobs(ctx context.Context) {
	leading := prometheus.NewGauge(prometheus.GaugeOpts{Name: "crvault_leader",
		Help: "1 while this instance leads the deployment and runs its background jobs (deadline watcher, pending notices, janitor, audit checkpoints)."})
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crvault_background_job_runs_total",
		Help: "Runs of the background jobs on this instance, by job and outcome (ok, failed)."}, []string{"job", "outcome"})
	for _, c := range []prometheus.Collector{leading, runs} {
		if err := a.reg.Register(c); err != nil {
			a.log.Error("register job metrics", "err", err)
		}
	}
	a.leader.OnChange = func(l bool) {
		if l {
			leading.Set(1)
		} else {
			leading.Set(0)
			a.log.Info("leader election: this instance no longer runs the background jobs")
		}
	}
	go a.leader.Run(ctx)
	every := func(name string, interval time.Duration, job func(context.Context) error) {
		for _, o := range []string{"ok", "failed"} {
			runs.WithLabelValues(name, o) // exported from the start, at 0
		}
		go a.leader.Every(ctx, interval, func(ctx context.Context) {
			err := job(ctx)
			if ctx.Err() != nil {
				return // shutting down: neither a run nor a failure
			}
			if err != nil {
				runs.WithLabelValues(name, "failed").Inc()
				a.log.Warn("background job failed", "job", name, "err", err)
				return
			}
			runs.WithLabelValues(name, "ok").Inc()
		})
	}
	deadlineEvery := a.cfg.DeadlineInterval
	if deadlineEvery <= 0 {
		deadlineEvery = time.Hour
	}
	every("deadlines", deadlineEvery, a.deadlineJob())
	every("notices", noticeInterval, a.notices)
	every("janitor", a.cfg.JanitorInterval, a.janitor)
}

// noticeInterval is how often the leader looks for written notices that
// committed decisions still owe (an indexed probe of a table that is
// empty but for moments): a notice lost to a crash reaches the party
// within a minute or two of the restart.
const noticeInterval = time.Minute

// notices writes the written notices a crash kept from being written after
// their decision committed (vault.WritePendingNotices).
func (a *app) notices(ctx context.Context) error {
	n, err := a.vault.WritePendingNotices(ctx)
	if n > 0 {
		a.log.Info("pending written notices written", "count", n)
	}
	if err != nil {
		return fmt.Errorf("pending notices: %w", err)
	}
	return nil
}

// janitor reclaims blobs whose upload never committed (a crash between the
// blob write and the material row) and unfinished uploads (multipart uploads
// and temp files that a crash, or a store down when a failed upload tried to
// abort, left behind), abandoned resumable uploads, and stale login
// throttle rows. Every part runs even when an earlier one failed.
func (a *app) janitor(ctx context.Context) error {
	var errs []error
	// A finished blob waits for its row for moments; an hour is ample.
	n, err := a.vault.CollectOrphans(ctx, time.Hour, a.super.ReferencedBlobs)
	if err != nil {
		errs = append(errs, fmt.Errorf("orphan collection: %w", err))
	} else if n > 0 {
		a.log.Info("orphan blobs reclaimed", "count", n)
	}
	// Resumable uploads abandoned past their expiry, blobs and rows.
	if n, err := a.vault.ExpireUploads(ctx, time.Now()); err != nil {
		errs = append(errs, fmt.Errorf("upload session expiry: %w", err))
	} else if n > 0 {
		a.log.Info("abandoned upload sessions removed", "count", n)
	}
	if _, err := a.access.PruneThrottle(ctx); err != nil {
		errs = append(errs, fmt.Errorf("login throttle pruning: %w", err))
	}
	if n, err := a.vault.CollectIncomplete(ctx, a.cfg.JanitorGrace); err != nil {
		errs = append(errs, fmt.Errorf("incomplete upload collection: %w", err))
	} else if n > 0 {
		a.log.Info("incomplete uploads removed", "count", n)
	}
	return errors.Join(errs...)
}
