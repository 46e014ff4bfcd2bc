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
	if w.Complaints, err = s.complaintQueue(ctx); err != nil {
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

// complaintQueue is the complaints' Queue from checked rows: one whose
// tags fail is counted under "damaged", as open (an inspector is to see
// to it), its stored status and filing time being untrusted, and is not
// the oldest open. Every complaint is read for it (without its
// description): complaints are few.
func (s *Service) complaintQueue(ctx context.Context) (Queue, error) {
	var rows []complaintRow
	if err := s.db.WithContext(ctx).Select(complaintTagColumns).Find(&rows).Error; err != nil {
		return Queue{}, fmt.Errorf("count complaints by status: %w", err)
	}
	if _, err := s.checkComplaints(ctx, rows); err != nil {
		return Queue{}, err
	}
	q := Queue{ByStatus: complaintCounts(rows, true)}
	var oldest *time.Time
	for _, r := range rows {
		closed := oneOf(r.Status, StatusUpheld, StatusDismissed)
		if r.damaged() || !closed {
			q.Open++
		}
		if !r.damaged() && !closed && (oldest == nil || r.FiledAt.Before(*oldest)) {
			t := r.FiledAt.UTC()
			oldest = &t
		}
	}
	if oldest != nil {
		q.OldestOpenAt = oldest
		q.OldestOpenAgeSec = int64(s.cfg.Now().Sub(*oldest).Seconds())
	}
	return q, nil
}
