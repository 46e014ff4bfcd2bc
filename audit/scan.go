package audit

import (
	"context"
	"fmt"
	"time"
)

// EachOfAction calls fn with every event of one action, in seq order, with
// the fields that say who did what to which case and in which request
// (Seq, Time, Actor, Action, Outcome, CaseID, Resource, RequestID, Detail);
// the others are left empty. It reads them in one query over the action's
// index rather than in pages of Query: a start of the access index reads
// every declaration ever made. The events are as stored: Verify, not this,
// says whether the log was rewritten. It stops at, and returns, the first
// error fn returns.
func (l *Log) EachOfAction(ctx context.Context, action string, fn func(Event) error) error {
	if clean(action) != action {
		return nil // nothing stored matches (see Query)
	}
	rows, err := l.sqlDB.QueryContext(ctx,
		"SELECT seq, at_us, actor, outcome, case_id, resource, request_id, detail FROM audit_events WHERE action = "+l.ph(1)+" ORDER BY seq",
		action)
	if err != nil {
		return fmt.Errorf("%w: read %s events: %w", ErrUnavailable, action, err)
	}
	defer rows.Close()
	for rows.Next() {
		e := Event{Action: action}
		var us int64
		var outcome string
		if err := rows.Scan(&e.Seq, &us, &e.Actor, &outcome, &e.CaseID, &e.Resource, &e.RequestID, &e.Detail); err != nil {
			return fmt.Errorf("%w: read %s events: %w", ErrUnavailable, action, err)
		}
		e.Time, e.Outcome = time.UnixMicro(us).UTC(), Outcome(outcome)
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: read %s events: %w", ErrUnavailable, action, err)
	}
	return nil
}
