package vault

// A case's history (case_events) decides: retention dates a case's end from
// its concluding event and crypto-shreds it so many years later, the clock
// and the stored due dates are replayed from its dates, pauses and
// extensions, and the parties read it as the record of their case. A
// database administrator who edits one of its rows (moves the `at` of the
// concluding event years back, an extension's days, a status) or copies one
// from another case would have crvault obey: a case shredded years early,
// its blobs (out of the administrator's reach) deleted, recorded as a
// legitimate case.shred. Each event therefore carries a tag under the rows
// key (RowsKeyName) over the columns a decision reads, and a history is
// accepted only whole: every tag checks and the events are numbered 1..n
// without a gap, n being the number the case's status tag binds
// (statusFields), so an event deleted from the middle or the end is caught
// too.
//
// The reason and payload are left out: they are sealed with the case key
// under a label naming the case, the event's number and the column
// (labelReason, labelPayload), so no other event's text opens there; and
// the legacy sealing (SealLegacy) rewrites them after the tags' backfill.
//
// A history that fails is refused as a damaged status is (h31b): every
// request that reads it answers case_status_damaged, retention neither
// shreds the case nor lists it, the stored due dates are not re-derived
// from it (the case leaves the deadlines list), and the row is logged at
// ERROR and counted under table=case_events.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/vault/crypt"
)

// eventTagTable names the events' tags.
const eventTagTable = "case_events"

// errHistoryDamaged: a case's history fails its tags (historyChecked has
// logged and counted it).
var errHistoryDamaged = errors.New("the case's history does not authenticate (changed outside crvault)")

// eventFields appends to chk the columns of event r its tag covers, in a
// fixed order. at is bound to the microsecond, as both databases store it
// (toEventRow truncates it before writing).
func eventFields(chk *crypt.RowTagChecker, r *caseEventRow) {
	chk.FieldString(r.CaseID)
	chk.FieldInt(int64(r.Seq))
	chk.FieldString(r.Action)
	chk.FieldString(r.FromStatus)
	chk.FieldString(r.ToStatus)
	chk.FieldString(r.OnDate)
	chk.FieldInt(r.At.UnixMicro())
	chk.FieldString(r.Actor)
	chk.FieldString(r.Role)
	chk.FieldInt(int64(r.Days))
	switch {
	case r.Agree == nil:
		chk.FieldString("")
	case *r.Agree:
		chk.FieldString("agree")
	default:
		chk.FieldString("disagree")
	}
}

// eventTag is the tag of event r under the rows key.
func eventTag(key *crypt.CaseKey, r *caseEventRow) []byte {
	chk := key.NewRowTagChecker(eventTagTable)
	eventFields(chk, r)
	return chk.Tag(nil)
}

// historyChecked says whether rows, the events of case caseID in seq order,
// are its history as crvault wrote it: each tag checks and they are
// numbered 1..n. One that is not is logged at ERROR (the first event
// refused, ids only) and counted.
func (s *Service) historyChecked(ctx context.Context, chk *crypt.RowTagChecker, caseID string, rows []caseEventRow) bool {
	for i := range rows {
		r := &rows[i]
		eventFields(chk, r)
		if chk.Check(r.Tag) && r.CaseID == caseID && r.Seq == i+1 {
			continue
		}
		s.tagRefused(ctx, eventTagTable, caseID, "case's history refused: an event's row tag does not check or an event is missing (history edited outside crvault, or written by an older vaultd)",
			"seq", r.Seq, "position", i+1, "action", r.Action, "to_status", r.ToStatus, "tagged", len(r.Tag) > 0)
		return false
	}
	return true
}

// checkedEvents reads the events of case caseID in order (their sealed text
// left out when withText is false) and checks them (historyChecked),
// answering errHistoryDamaged for a history that fails.
func (s *Service) checkedEvents(ctx context.Context, db *gorm.DB, caseID string, withText bool) ([]caseEventRow, error) {
	q := db.WithContext(ctx).Where("case_id = ?", caseID)
	if !withText {
		q = q.Omit("reason", "payload")
	}
	var rows []caseEventRow
	if err := q.Order("seq").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load history of case %s: %w", caseID, err)
	}
	key, err := s.rowsKey(ctx)
	if err != nil {
		return nil, err
	}
	if !s.historyChecked(ctx, key.NewRowTagChecker(eventTagTable), caseID, rows) {
		return nil, fmt.Errorf("case %s: %w", caseID, errHistoryDamaged)
	}
	return rows, nil
}

// tagCaseEvents tags the events that have no tag, under the rows key.
func (k *Keyring) tagCaseEvents(ctx context.Context) (int64, error) {
	key, err := k.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return 0, fmt.Errorf("row tags: %w", err)
	}
	// The batches' key is (case_id, seq), written "case_id/seq" (ids are
	// hex, without a slash).
	return TagInBatches(ctx, k.db, func(db *gorm.DB, after string) (rows []caseEventRow, err error) {
		q := db.Omit("reason", "payload", "tag").Where("length(tag) = 0")
		if id, seq, ok := strings.Cut(after, "/"); ok {
			n, err := strconv.Atoi(seq)
			if err != nil {
				return nil, fmt.Errorf("row tags: case events after %q: %w", after, err)
			}
			q = q.Where("(case_id, seq) > (?, ?)", id, n)
		}
		if err := q.Order("case_id, seq").Limit(TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("row tags: read case events: %w", err)
		}
		return rows, nil
	}, func(r caseEventRow) string { return r.CaseID + "/" + strconv.Itoa(r.Seq) }, func(tx *gorm.DB, r caseEventRow) (int64, error) {
		res := tx.Model(&caseEventRow{}).Where("case_id = ? AND seq = ? AND length(tag) = 0", r.CaseID, r.Seq).
			UpdateColumn("tag", eventTag(key, &r))
		if res.Error != nil {
			return 0, fmt.Errorf("row tags: tag event %d of case %s: %w", r.Seq, r.CaseID, res.Error)
		}
		return res.RowsAffected, nil
	})
}

// migrateEventTags adds the events' tag column (see migrateRowTags).
func migrateEventTags(tx *gorm.DB, _ string) error {
	if m := tx.Migrator(); !m.HasColumn(&caseEventRow{}, "Tag") {
		if err := m.AddColumn(&caseEventRow{}, "Tag"); err != nil {
			return fmt.Errorf("add case_events.tag: %w", err)
		}
	}
	return nil
}

// eventAt is the time an event is stored with: UTC, to the microsecond
// that both databases keep (PostgreSQL would round finer digits, and the
// tag would not check).
func eventAt(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
