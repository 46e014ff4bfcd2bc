package vault

// Retention and crypto-shredding. A case that has ended (concluded, or
// found not to need a review) is kept for the configured number of years
// after the day it ended, then ApplyRetention destroys it: the case key row
// goes (it holds the master's and every escrow recipient's wrapping in one
// age file, so every copy goes at once), the material headers go, the blobs
// are deleted, and what the audit log needs stays (the case row with its
// ids, status, organisations and times; material rows with kind, size,
// digest, uploader and time; the whole history, whose text is sealed with
// the key that no longer exists). A legal hold, set and cleared by the
// office with a reason, both audited, blocks it.
//
// What shredding guarantees and what it does not: after it, no copy of the
// blobs (a bucket replica, a tape) can be decrypted with anything this
// vault or its escrow holds, because the key that opens their headers is
// gone. A backup of the database taken BEFORE the shredding still holds
// the wrapped case key and the headers: with that backup and a master (or
// escrow) key that was valid then, the materials can still be decrypted.
// Shredding is therefore complete only once such backups have expired, and
// once the database itself no longer keeps the deleted bytes: SQLite keeps
// them in free pages unless PRAGMA secure_delete is on (this package turns
// it on for the deletion) or the file is VACUUMed; PostgreSQL keeps dead
// tuples until VACUUM (and in WAL archives until they expire). See
// docs/operations.md.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/review"
)

// Period is how long a case is kept after it ended: Years calendar years
// plus Duration.
type Period struct {
	Years    int
	Duration time.Duration
}

// DefaultRetention is ten years.
var DefaultRetention = Period{Years: 10}

// ParsePeriod reads "10y" (years), "180d" (days) or a Go duration
// ("2160h", "90s"). A bare number of minutes ("6m") is refused: beside
// years it reads as months, and a retention of six minutes would have the
// next retention apply destroy nearly every ended case.
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix, name string
		max          int
		period       func(int) Period
	}{
		{"y", "years", 1000, func(n int) Period { return Period{Years: n} }},
		{"d", "days", 1000 * 366, func(n int) Period { return Period{Duration: time.Duration(n) * 24 * time.Hour} }},
	} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 || v > u.max {
				return Period{}, fmt.Errorf("%q is not a number of %s", s, u.name)
			}
			return u.period(v), nil
		}
	}
	if n, ok := strings.CutSuffix(s, "m"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return Period{}, fmt.Errorf("%q would be %s minutes, not months (which have no unit here): write days (180d) or years (1y)", s, n)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Period{}, fmt.Errorf("%q is neither years (10y), days (180d) nor a positive duration (2160h)", s)
	}
	return Period{Duration: d}, nil
}

func (p Period) String() string {
	d := p.Duration.String()
	if day := 24 * time.Hour; p.Duration%day == 0 {
		d = strconv.FormatInt(int64(p.Duration/day), 10) + "d"
	}
	switch {
	case p.Duration == 0:
		return strconv.Itoa(p.Years) + "y"
	case p.Years == 0:
		return d
	}
	return strconv.Itoa(p.Years) + "y+" + d
}

func (p Period) after(t time.Time) time.Time { return t.AddDate(p.Years, 0, 0).Add(p.Duration) }

// NoticeCaseKey is the topic that tells every instance to forget a case's
// unwrapped key (access.Service.Publish).
const NoticeCaseKey = "casekey"

// ActCaseHold is the action of setting, clearing and reading a case's
// retention and legal hold (the office's).
const ActCaseHold = access.ActCaseHold

// Retention is a case's retention state.
type Retention struct {
	CaseID string `json:"case_id"`
	Status string `json:"status"`
	// EndedAt is when the case was concluded (or found not to need a
	// review); retention runs from there. Absent while it is open.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// ExpiresAt is EndedAt plus the retention period: from then on
	// retention apply destroys the case, unless it is held.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Period is the retention period: "10y", or a duration.
	Period     string     `json:"retention"`
	LegalHold  bool       `json:"legal_hold"`
	HoldReason string     `json:"hold_reason,omitempty"`
	HoldBy     string     `json:"hold_by,omitempty"`
	HoldAt     *time.Time `json:"hold_at,omitempty"`
	ShreddedAt *time.Time `json:"shredded_at,omitempty"`
}

// LegalHold is what the office sends to set or clear a hold.
type LegalHold struct {
	Reason string `json:"reason"`
}

func labelHoldReason(caseID string) string { return "cases.hold_reason/" + caseID }

// endedStatuses are the statuses a case ends in.
var endedStatuses = []string{string(review.Concluded), string(review.NotRequired)}

// endedAt is when the case reached an ended status (nil if it has not),
// read from its whole history checked against its tags (eventtags.go): an
// end a database edit moved, inserted or uncovered (by deleting a later
// one) answers errHistoryDamaged, logged and counted, and dates nothing.
func (s *Service) endedAt(ctx context.Context, db *gorm.DB, caseID string) (*time.Time, error) {
	rows, err := s.checkedEvents(ctx, db, caseID)
	if err != nil {
		return nil, fmt.Errorf("load end of case %s: %w", caseID, err)
	}
	for i := len(rows) - 1; i >= 0; i-- {
		if isEnded(rows[i].ToStatus) {
			t := rows[i].At.UTC()
			return &t, nil
		}
	}
	return nil, nil
}

func (s *Service) retentionOf(ctx context.Context, row caseRow) (Retention, error) {
	r := Retention{CaseID: row.ID, Status: row.Status, Period: s.retention.String(), LegalHold: row.LegalHold, HoldBy: row.HoldBy,
		HoldAt: utcPtr(row.HoldAt), ShreddedAt: utcPtr(row.ShreddedAt)}
	if isEnded(row.Status) {
		end, err := s.endedAt(ctx, s.db, row.ID)
		if errors.Is(err, errHistoryDamaged) {
			// No end can be trusted, so no expiry is shown (and none
			// applied); a hold may still be set.
			end, err = nil, nil
		}
		if err != nil {
			return r, err
		}
		if end != nil {
			exp := s.retention.after(*end)
			r.EndedAt, r.ExpiresAt = end, &exp
		}
	}
	if len(row.HoldReason) > 0 && row.ShreddedAt == nil {
		key, err := s.textKey(ctx, row.ID)
		if err != nil {
			return r, err
		}
		if r.HoldReason, err = openText(key, labelHoldReason(row.ID), row.HoldReason); err != nil {
			return r, err
		}
	}
	return r, nil
}

func isEnded(status string) bool {
	for _, s := range endedStatuses {
		if s == status {
			return true
		}
	}
	return false
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Retention returns a case's retention state (office).
func (s *Service) Retention(ctx context.Context, a Actor, caseID string) (Retention, error) {
	row, _, d, err := s.authorize(ctx, a, caseID, ActCaseHold, "case.retention", "case/"+caseID)
	if err != nil {
		return Retention{}, err
	}
	if err := s.record(ctx, a, "case.retention", audit.Allowed, caseID, "case/"+caseID, d.Purpose, ""); err != nil {
		return Retention{}, err
	}
	return s.retentionOf(ctx, row)
}

// SetLegalHold puts a case under legal hold (office), with a reason, sealed
// with the case key. Setting it again replaces the reason.
func (s *Service) SetLegalHold(ctx context.Context, a Actor, caseID string, in LegalHold) (Retention, error) {
	return s.changeHold(ctx, a, caseID, in, true)
}

// ClearLegalHold lifts a case's legal hold (office), with a reason.
func (s *Service) ClearLegalHold(ctx context.Context, a Actor, caseID string, in LegalHold) (Retention, error) {
	return s.changeHold(ctx, a, caseID, in, false)
}

func (s *Service) changeHold(ctx context.Context, a Actor, caseID string, in LegalHold, hold bool) (Retention, error) {
	reason, err := CleanText("reason", in.Reason, 2000, true)
	if err != nil {
		return Retention{}, err
	}
	row, _, d, err := s.authorize(ctx, a, caseID, ActCaseHold, "case.legal_hold", "case/"+caseID)
	if err != nil {
		return Retention{}, err
	}
	if row.ShreddedAt != nil {
		if err := s.record(ctx, a, "case.legal_hold", audit.Denied, caseID, "case/"+caseID, d.Purpose, "case_shredded"); err != nil {
			return Retention{}, err
		}
		return Retention{}, fail(ErrConflict, "case_shredded", "this case was destroyed at the end of its retention")
	}
	detail := "set"
	if !hold {
		detail = "cleared"
	}
	// The reason is sealed in the row; the event says set or cleared, by
	// whom and when.
	if err := s.record(ctx, a, "case.legal_hold", audit.Allowed, caseID, "case/"+caseID, d.Purpose, detail); err != nil {
		return Retention{}, err
	}
	key, err := s.caseKey(ctx, caseID)
	if err != nil {
		return Retention{}, err
	}
	sealed, err := sealText(key, labelHoldReason(caseID), reason)
	if err != nil {
		return Retention{}, err
	}
	now := s.now().UTC()
	res := s.db.WithContext(ctx).Model(&caseRow{}).Where("id = ? AND shredded_at IS NULL", caseID).
		Updates(map[string]any{"legal_hold": hold, "hold_reason": sealed, "hold_by": a.P.User.ID, "hold_at": now})
	if res.Error != nil || res.RowsAffected != 1 {
		err := res.Error
		if err == nil {
			err = fail(ErrConflict, "case_shredded", "this case was destroyed at the end of its retention")
		}
		s.recordFailure(ctx, a, "case.legal_hold", caseID, "case/"+caseID, err)
		return Retention{}, fmt.Errorf("store legal hold: %w", err)
	}
	row.LegalHold, row.HoldReason, row.HoldBy, row.HoldAt = hold, sealed, a.P.User.ID, &now
	return s.retentionOf(ctx, row)
}

// ShredResult is what retention did, or would do, to one case.
type ShredResult struct {
	CaseID    string    `json:"case_id"`
	EndedAt   time.Time `json:"ended_at"`
	ExpiredAt time.Time `json:"expired_at"`
	// Held: expired but under legal hold, so kept.
	Held      bool `json:"held"`
	Shredded  bool `json:"shredded"`
	Materials int  `json:"materials"`
	// BlobsDeleted counts blobs deleted by this run (a run that finishes an
	// earlier run's deletion counts those too).
	BlobsDeleted int `json:"blobs_deleted"`
}

// ApplyRetention destroys every case that ended more than the retention
// period before now and is not held (dryRun: only reports them), and
// finishes the blob deletion of cases an earlier run shredded. Each
// destruction is in the audit log (actor, "case.shred") before it happens;
// no record, no destruction. Every instance is told to forget the key.
func (s *Service) ApplyRetention(ctx context.Context, actor audit.Event, now time.Time, dryRun bool) ([]ShredResult, error) {
	db := s.db.WithContext(ctx)
	var listed []caseWithProviders
	if err := db.Table("cases").Select("cases.id, cases.status, cases.status_tag, cases.legal_hold, cases.shredded_at, cases.blobs_purged_at, "+lastSeqColumn).
		Where("status IN ? AND (shredded_at IS NULL OR blobs_purged_at IS NULL)", endedStatuses).Order("id").Find(&listed).Error; err != nil {
		return nil, fmt.Errorf("list ended cases: %w", err)
	}
	var out []ShredResult
	for _, l := range listed {
		row := l.Case
		if row.ShreddedAt != nil {
			if dryRun {
				continue
			}
			n, err := s.purgeBlobs(ctx, row.ID)
			if err != nil {
				return out, err
			}
			out = append(out, ShredResult{CaseID: row.ID, Shredded: true, BlobsDeleted: n})
			continue
		}
		// A status a database edit ended (statusChecked) destroys nothing.
		row, err := s.statusChecked(ctx, row, l.LastSeq)
		if err != nil {
			return out, err
		}
		if row.statusRefused {
			continue
		}
		// Nor does an end dated by a history a database edit changed: a
		// concluding event moved years back would shred the case now.
		end, err := s.endedAt(ctx, s.db, row.ID)
		if errors.Is(err, errHistoryDamaged) {
			continue
		}
		if err != nil {
			return out, err
		}
		if end == nil {
			continue
		}
		exp := s.retention.after(*end)
		if now.Before(exp) {
			continue
		}
		r := ShredResult{CaseID: row.ID, EndedAt: *end, ExpiredAt: exp, Held: row.LegalHold}
		if row.LegalHold || dryRun {
			out = append(out, r)
			continue
		}
		if err := s.shred(ctx, actor, row.ID, &r); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// shred destroys one case's key and headers, then its blobs.
func (s *Service) shred(ctx context.Context, actor audit.Event, caseID string, r *ShredResult) error {
	e := actor
	e.Action, e.Outcome, e.CaseID, e.Resource = "case.shred", audit.Allowed, caseID, "case/"+caseID
	e.Detail = fmt.Sprintf("retention: ended %s, kept %s", r.EndedAt.Format(time.DateOnly), s.retention)
	if _, err := s.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record shredding of case %s: %w", caseID, err)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if sqldb.Dialect(tx) == sqldb.SQLite {
			// Deleted key bytes are overwritten, not left in free pages.
			if err := tx.Exec("PRAGMA secure_delete = ON").Error; err != nil {
				return err
			}
		}
		res := tx.Model(&caseRow{}).Where("id = ? AND legal_hold = ? AND shredded_at IS NULL", caseID, false).
			Updates(map[string]any{"shredded_at": s.now().UTC(), "hold_reason": []byte{}})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errHeldMeanwhile
		}
		if err := tx.Where("case_id = ?", caseID).Delete(&caseKeyRow{}).Error; err != nil {
			return err
		}
		m := tx.Model(&materialRow{}).Where("case_id = ?", caseID)
		var n int64
		if err := m.Count(&n).Error; err != nil {
			return err
		}
		r.Materials = int(n)
		if err := tx.Model(&materialRow{}).Where("case_id = ?", caseID).Update("header", []byte{}).Error; err != nil {
			return err
		}
		// Materials made of several segments, and uploads in progress.
		if err := tx.Model(&materialSegmentRow{}).Where("material_id IN (?)", tx.Model(&materialRow{}).Select("id").Where("case_id = ?", caseID)).
			Update("header", []byte{}).Error; err != nil {
			return err
		}
		return tx.Model(&uploadSegmentRow{}).Where("upload_id IN (?)", tx.Model(&uploadRow{}).Select("id").Where("case_id = ?", caseID)).
			Update("header", []byte{}).Error
	})
	if errors.Is(err, errHeldMeanwhile) {
		r.Held = true
		e.Outcome, e.Detail = audit.Denied, "legal_hold"
		_, _ = s.audit.Append(context.WithoutCancel(ctx), e)
		return nil
	}
	if err != nil {
		e.Outcome, e.Detail = audit.Errored, "internal"
		_, _ = s.audit.Append(context.WithoutCancel(ctx), e)
		return fmt.Errorf("shred case %s: %w", caseID, err)
	}
	r.Shredded = true
	s.keys.Forget(caseID)
	if err := s.access.Publish(ctx, NoticeCaseKey, caseID); err != nil {
		// The other instances notice within their cache's time to live, and
		// every read checks the case row first anyway.
		s.log.WarnContext(ctx, "could not tell other instances to forget a shredded key", "case", caseID, "err", err)
	}
	n, err := s.purgeBlobs(ctx, caseID)
	r.BlobsDeleted = n
	return err
}

var errHeldMeanwhile = errors.New("case put under legal hold meanwhile")

// purgeBlobs deletes the blobs of a shredded case (noise without their
// key, but space, and one less copy) and records that it is done.
func (s *Service) purgeBlobs(ctx context.Context, caseID string) (int, error) {
	db := s.db.WithContext(ctx)
	var blobs, more []string
	if err := db.Model(&materialRow{}).Where("case_id = ?", caseID).Pluck("blob_id", &blobs).Error; err != nil {
		return 0, fmt.Errorf("list blobs of case %s: %w", caseID, err)
	}
	if err := db.Model(&materialSegmentRow{}).Where("material_id IN (?)", db.Model(&materialRow{}).Select("id").Where("case_id = ?", caseID)).
		Pluck("blob_id", &more).Error; err != nil {
		return 0, fmt.Errorf("list blobs of case %s: %w", caseID, err)
	}
	blobs = append(blobs, more...)
	more = nil
	if err := db.Model(&uploadSegmentRow{}).Where("upload_id IN (?)", db.Model(&uploadRow{}).Select("id").Where("case_id = ?", caseID)).
		Pluck("blob_id", &more).Error; err != nil {
		return 0, fmt.Errorf("list blobs of case %s: %w", caseID, err)
	}
	blobs = append(blobs, more...)
	// A material's first segment is also its row's blob.
	slices.Sort(blobs)
	blobs = slices.Compact(blobs)
	for i, b := range blobs {
		s.ciphers.drop(b)
		if err := s.blobs.Delete(ctx, b); err != nil {
			return i, fmt.Errorf("delete blob of case %s: %w", caseID, err)
		}
	}
	if err := s.db.WithContext(ctx).Model(&caseRow{}).Where("id = ?", caseID).Update("blobs_purged_at", s.now().UTC()).Error; err != nil {
		return len(blobs), fmt.Errorf("record blob deletion of case %s: %w", caseID, err)
	}
	return len(blobs), nil
}
