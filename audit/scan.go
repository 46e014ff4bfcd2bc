package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
)

// ActionScan selects the events EachOfAction reads: those of one action
// after a seq, narrowed by their detail in the query itself, so that a
// reader after a few rare events among many (a start of the access index
// looks for the conflicts among every declaration ever made) reads only
// those.
type ActionScan struct {
	Action string
	After  int64 // only events numbered above it
	// Until, when above 0, keeps only events numbered up to it: several
	// scans bounded by one Size read see one prefix of the log, so that a
	// reader resuming after Until misses nothing appended between them.
	Until int64
	// AllowedDetail keeps, of the allowed events, those whose detail is
	// exactly it ("": all of them).
	AllowedDetail string
	// OtherDetailContains keeps, of the denied and errored events, those
	// whose detail contains it ("": all of them), and every errored one
	// too when OtherErrors.
	OtherDetailContains string
	OtherErrors         bool
}

// Size is the number of events in the log as stored now.
func (l *Log) Size(ctx context.Context) (int64, error) {
	n, _, err := head(ctx, l.sqlDB)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n, nil
}

// EachOfAction calls fn with every event sc selects, in seq order, with
// the fields that say who did what to which case and in which request
// (Seq, Time, Actor, Action, Outcome, CaseID, Resource, RequestID, Detail);
// the others are left empty. One query over the action's index, not pages
// of Query. The events are as stored: Verify, not this, says whether the
// log was rewritten. It stops at, and returns, the first error fn returns.
func (l *Log) EachOfAction(ctx context.Context, sc ActionScan, fn func(Event) error) error {
	if clean(sc.Action) != sc.Action {
		return nil // nothing stored matches (see Query)
	}
	// Placeholders are numbered in the order they appear, as SQLite's
	// "?" needs.
	args := []any{sc.Action, sc.After}
	next := func(v any) string { args = append(args, v); return l.ph(len(args)) }
	q := "SELECT seq, at_us, actor, outcome, case_id, resource, request_id, detail FROM audit_events WHERE action = " + l.ph(1) + " AND seq > " + l.ph(2)
	if sc.Until > 0 {
		q += " AND seq <= " + next(sc.Until)
	}
	q += " AND (outcome = " + next(string(Allowed))
	if sc.AllowedDetail != "" {
		q += " AND detail = " + next(sc.AllowedDetail)
	}
	q += " OR outcome <> " + next(string(Allowed))
	if sc.OtherDetailContains != "" {
		// instr/strpos: a substring, with no LIKE pattern to escape.
		fn := "instr"
		if l.dialect == sqldb.Postgres {
			fn = "strpos"
		}
		cond := fn + "(detail, " + next(sc.OtherDetailContains) + ") > 0"
		if sc.OtherErrors {
			cond = "(" + cond + " OR outcome = " + next(string(Errored)) + ")"
		}
		q += " AND " + cond
	}
	q += ") ORDER BY seq"
	rows, err := l.sqlDB.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%w: read %s events: %w", ErrUnavailable, sc.Action, err)
	}
	defer rows.Close()
	for rows.Next() {
		e := Event{Action: sc.Action}
		var us int64
		var outcome string
		if err := rows.Scan(&e.Seq, &us, &e.Actor, &outcome, &e.CaseID, &e.Resource, &e.RequestID, &e.Detail); err != nil {
			return fmt.Errorf("%w: read %s events: %w", ErrUnavailable, sc.Action, err)
		}
		e.Time, e.Outcome = time.UnixMicro(us).UTC(), Outcome(outcome)
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: read %s events: %w", ErrUnavailable, sc.Action, err)
	}
	return nil
}
