package supervision

import (
	"context"
	"fmt"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
)

// Queue summarises one kind of item: counts by status, and the oldest item
// still open.
type Queue struct {
	ByStatus         map[string]int64 `json:"by_status"`
	Open             int64            `json:"open"`
	OldestOpenAt     *time.Time       `json:"oldest_open_at"`
	OldestOpenAgeSec int64            `json:"oldest_open_age_seconds"`
}

// Workload is the inspectors' queue.
type Workload struct {
	Complaints Queue `json:"complaints"`
	Reports    Queue `json:"reports"`
}

// Workload counts complaints and reports by status (inspectors).
func (s *Service) Workload(ctx context.Context, a vault.Actor) (Workload, error) {
	ev := event(a, "supervision.workload", audit.Allowed, "", "supervision", "")
	if !s.access.Can(a.P, "complaint", "read_all") || !s.access.Can(a.P, "report", "manage") {
		return Workload{}, s.deny(ctx, ev, forbidden("only inspectors see the supervision workload"))
	}
	var w Workload
	var err error
	if w.Complaints, err = s.queue(ctx, &complaintRow{}, "filed_at", []string{StatusUpheld, StatusDismissed}); err != nil {
		return w, err
	}
	if w.Reports, err = s.queue(ctx, &reportRow{}, "created_at", []string{ReportClosed}); err != nil {
		return w, err
	}
	if err := s.record(ctx, ev); err != nil {
		return Workload{}, err
	}
	return w, nil
}

func (s *Service) queue(ctx context.Context, model any, timeCol string, closed []string) (Queue, error) {
	q := Queue{}
	var err error
	if q.ByStatus, err = countByStatus(s.db.WithContext(ctx).Model(model)); err != nil {
		return q, fmt.Errorf("count by status: %w", err)
	}
	for st, n := range q.ByStatus {
		if !oneOf(st, closed...) {
			q.Open += n
		}
	}
	var oldest []time.Time
	if err := s.db.WithContext(ctx).Model(model).Where("status NOT IN ?", closed).Order(timeCol).Limit(1).Pluck(timeCol, &oldest).Error; err != nil {
		return q, fmt.Errorf("oldest open: %w", err)
	}
	if len(oldest) == 1 {
		t := oldest[0].UTC()
		q.OldestOpenAt = &t
		q.OldestOpenAgeSec = int64(s.cfg.Now().Sub(t).Seconds())
	}
	return q, nil
}
