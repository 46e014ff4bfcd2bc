package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/review"
)

// Sweep is the outcome of one deadline round.
type Sweep struct {
	DueSoon  int // open, running cases due within review.DueSoonWorkingDays
	Overdue  int // open cases past their due date (running, or paused after it)
	Flagged  int // flags raised for the first time this round
	Notified int // webhooks delivered this round
	Failed   int // webhooks that failed (retried next round)
}

// WebhookPayload is what the deadline webhook receives. It never carries
// document content, titles or names: only what identifies the deadline.
type WebhookPayload struct {
	CaseID string `json:"case_id"`
	Flag   string `json:"flag"`
	DueOn  string `json:"due_on"`
	// DueOnProvisional: the due date rests on the provisional calendar model.
	DueOnProvisional bool   `json:"due_on_provisional"`
	Phase            string `json:"phase"`
}

// SweepDeadlines evaluates every open, running case due within
// review.DueSoonWorkingDays or overdue (read from the stored due dates, so
// a round touches only those; it first re-derives any stale ones, which
// after a calendar import is every open case): a case newly due soon or
// overdue in its current phase gets a "deadline.flag" audit event by actor
// "system" (once per case, phase, flag and due date: a flag raised before
// an extension is raised again for the new date) and, when a webhook is
// configured, a POST that is retried each round until it succeeds. Paused
// cases are not flagged, unless they were paused after their due date had
// passed: a stop does not cure a lapse, and they stay overdue.
//
// Sweeps run one at a time, across instances too: the leader's jobs may
// overlap during a change of leader, and two sweeps that both find a flag
// unraised would each audit it and post it.
func (s *Service) SweepDeadlines(ctx context.Context) (Sweep, error) {
	release, err := s.sweepTurn(ctx)
	if err != nil {
		return Sweep{}, err
	}
	defer release()
	var out Sweep
	// Every open case's due tag, before the due dates are read: a deadline
	// hidden beyond the range read (see duetags.go) is marked stale, and
	// re-derived by dueRows, here rather than on every list read.
	cal, err := s.calendar(ctx)
	if err != nil {
		return out, err
	}
	if err := s.checkDueTags(ctx, dueBasis(cal)); err != nil {
		return out, err
	}
	due, _, err := s.dueRows(ctx, review.DueSoonWorkingDays, nil, 0)
	if err != nil {
		return out, err
	}
	for _, dc := range due {
		f := dc.Flag
		if f == review.FlagOverdue {
			out.Overdue++
		} else {
			out.DueSoon++
		}
		due := dc.DueOn.String()
		row := deadlineFlagRow{CaseID: dc.CaseID, Phase: string(dc.Phase), Flag: string(f), DueOn: due}
		err = s.db.WithContext(ctx).Where("case_id = ? AND phase = ? AND flag = ?", row.CaseID, row.Phase, row.Flag).Take(&row).Error
		found := err == nil
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return out, fmt.Errorf("look up deadline flag of case %s: %w", row.CaseID, err)
		}
		// Raised once per case, phase, flag and due date: a date that moved
		// since (an extension, a stop for supplements) makes the warning
		// one about a date that no longer holds, so it is raised, and
		// sent, afresh.
		if !found || row.DueOn != due {
			// Audited before it is remembered, like every change here.
			if _, err := s.audit.Append(ctx, audit.Event{Actor: "system", Action: "deadline.flag", Outcome: audit.Allowed,
				CaseID: row.CaseID, Resource: "case/" + row.CaseID, Detail: row.Flag}); err != nil {
				return out, fmt.Errorf("audit deadline flag of case %s: %w", row.CaseID, err)
			}
			row.DueOn, row.FlaggedAt, row.NotifiedAt = due, s.now().UTC().Truncate(time.Microsecond), nil
			db := s.db.WithContext(ctx)
			if found {
				err = db.Model(&deadlineFlagRow{}).Where("case_id = ? AND phase = ? AND flag = ?", row.CaseID, row.Phase, row.Flag).
					Updates(map[string]any{"due_on": row.DueOn, "flagged_at": row.FlaggedAt, "notified_at": nil}).Error
			} else if err = db.Create(&row).Error; errors.Is(err, gorm.ErrDuplicatedKey) {
				err = nil
			}
			if err != nil {
				return out, fmt.Errorf("remember deadline flag of case %s: %w", row.CaseID, err)
			}
			out.Flagged++
			s.log.InfoContext(ctx, "deadline flagged", "case", row.CaseID, "phase", row.Phase, "flag", row.Flag, "due_on", row.DueOn, "again", found)
		}
		if s.webhook == "" || row.NotifiedAt != nil {
			continue
		}
		// The due date may have moved since the flag was raised; say the current one.
		p := WebhookPayload{CaseID: row.CaseID, Flag: row.Flag, DueOn: dc.DueOn.String(), DueOnProvisional: dc.DueOnProvisional, Phase: row.Phase}
		if err := s.postWebhook(ctx, p); err != nil {
			out.Failed++
			s.log.WarnContext(ctx, "deadline webhook failed; retrying next round", "case", row.CaseID, "flag", row.Flag, "err", err)
			continue
		}
		now := s.now().UTC()
		if err := s.db.WithContext(ctx).Model(&deadlineFlagRow{}).Where("case_id = ? AND phase = ? AND flag = ?", row.CaseID, row.Phase, row.Flag).
			Update("notified_at", now).Error; err != nil {
			return out, fmt.Errorf("mark webhook delivered for case %s: %w", row.CaseID, err)
		}
		out.Notified++
	}
	return out, nil
}

// sweepLockClass is the deadline sweep's PostgreSQL advisory lock class,
// beside the leader's and the checkpointer's ("crv" 3).
const sweepLockClass = 0x63727603

// sweepTurn waits for the sweep's turn: this process's other sweep, and on
// PostgreSQL any other instance's, holding a transaction-scoped advisory
// lock (per schema, as the leader's) until release. The transaction does
// nothing else, so the sweep's own writes commit as they go.
func (s *Service) sweepTurn(ctx context.Context) (release func(), err error) {
	select {
	case s.sweepSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the deadline sweep running: %w", ctx.Err())
	}
	if sqldb.Dialect(s.db) != sqldb.Postgres {
		return func() { <-s.sweepSlot }, nil
	}
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error == nil {
		tx.Exec("SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))", int32(sweepLockClass))
	}
	if tx.Error != nil {
		tx.Rollback()
		<-s.sweepSlot
		return nil, fmt.Errorf("wait for another instance's deadline sweep: %w", tx.Error)
	}
	return func() {
		tx.Rollback()
		<-s.sweepSlot
	}, nil
}

func (s *Service) postWebhook(ctx context.Context, p WebhookPayload) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("webhook answered %d", res.StatusCode)
	}
	return nil
}
