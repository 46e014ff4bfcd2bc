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
// The reason and payload themselves are left out: they are sealed with the
// case key under a label naming the case, the event's number and the
// column (labelReason, labelPayload), so no other event's text opens
// there; and the legacy sealing (SealLegacy) rewrites them after the tags'
// backfill. Whether each is there is bound, though: an empty column reads
// as "no reason" and "no payload", and the payload carries the edition a
// case is reviewed under, the items requested, the members asked and the
// conclusion's outcome, so blanking one would change what is replayed.
// Tags from before that (eventFieldsV1) are rewritten once at start-up for
// the histories they still authenticate (retagEventTexts); a text blanked
// before then is taken as it stands, as every backfill takes its rows.
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
// fixed order: eventFieldsV1's, then whether the event has a reason and a
// payload. r must have been read with its texts.
func eventFields(chk *crypt.RowTagChecker, r *caseEventRow) {
	eventFieldsV1(chk, r)
	chk.FieldInt(int64(min(len(r.Reason), 1)))
	chk.FieldInt(int64(min(len(r.Payload), 1)))
}

// eventFieldsV1 are the fields of the first event tags (vault migration
// 18). at is bound to the microsecond, as both databases store it
// (toEventRow truncates it before writing).
func eventFieldsV1(chk *crypt.RowTagChecker, r *caseEventRow) {
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
	i := historyRefused(chk, caseID, rows, eventFields)
	if i < 0 {
		return true
	}
	r := &rows[i]
	s.tagRefused(ctx, eventTagTable, caseID, "case's history refused: an event's row tag does not check or an event is missing (history edited outside crvault, or written by an older vaultd)",
		"seq", r.Seq, "position", i+1, "action", r.Action, "to_status", r.ToStatus, "tagged", len(r.Tag) > 0)
	return false
}

// historyRefused is the index of the first event of rows (case caseID's,
// in seq order) whose tag over fields does not check or that is out of
// place, or -1 when the whole history authenticates.
func historyRefused(chk *crypt.RowTagChecker, caseID string, rows []caseEventRow, fields func(*crypt.RowTagChecker, *caseEventRow)) int {
	for i := range rows {
		r := &rows[i]
		fields(chk, r)
		if !chk.Check(r.Tag) || r.CaseID != caseID || r.Seq != i+1 {
			return i
		}
	}
	return -1
}

// retagBlanked is the tag of event blanked, which is was with texts
// dropped, if was's tag checks (nil if not: an event already refused stays
// refused).
func (s *Service) retagBlanked(ctx context.Context, was, blanked *caseEventRow) ([]byte, error) {
	key, err := s.rowsKey(ctx)
	if err != nil {
		return nil, err
	}
	chk := key.NewRowTagChecker(eventTagTable)
	eventFields(chk, was)
	if !chk.Check(was.Tag) {
		return nil, nil
	}
	return eventTag(key, blanked), nil
}

// eventTextsMarker names the backfill that bound the events' texts'
// presence (tagLegacyRows' marker).
const eventTextsMarker = "case_events.texts"

// retagCases is how many cases' histories retagEventTexts rewrites a
// transaction.
const retagCases = 200

// retagEventTexts rewrites, once, the first tags (eventFieldsV1) of every
// history they authenticate whole, binding the presence of its texts too
// (eventFields). A history they do not authenticate is left as it is, so
// still refused: the rewrite launders no edit made before it. One whose
// tags already check is skipped (tagged by this binary, or by a run that
// stopped half-way). It returns how many events it rewrote.
func (k *Keyring) retagEventTexts(ctx context.Context) (int64, error) {
	key, err := k.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return 0, fmt.Errorf("row tags: %w", err)
	}
	chk := key.NewRowTagChecker(eventTagTable)
	db := k.db.WithContext(ctx)
	var n int64
	for after := ""; ; {
		var ids []string
		if err := db.Model(&caseEventRow{}).Distinct("case_id").Where("case_id > ?", after).Order("case_id").
			Limit(retagCases).Pluck("case_id", &ids).Error; err != nil {
			return n, fmt.Errorf("row tags: list the cases with a history: %w", err)
		}
		if len(ids) == 0 {
			return n, nil
		}
		after = ids[len(ids)-1]
		err := db.Transaction(func(tx *gorm.DB) error {
			var rows []caseEventRow
			if err := tx.Where("case_id IN ?", ids).Order("case_id, seq").Find(&rows).Error; err != nil {
				return fmt.Errorf("row tags: read case histories: %w", err)
			}
			for len(rows) > 0 {
				id, one := rows[0].CaseID, 1
				for one < len(rows) && rows[one].CaseID == id {
					one++
				}
				history := rows[:one]
				rows = rows[one:]
				if historyRefused(chk, id, history, eventFields) < 0 || historyRefused(chk, id, history, eventFieldsV1) >= 0 {
					continue
				}
				for i := range history {
					r := &history[i]
					res := tx.Model(&caseEventRow{}).Where("case_id = ? AND seq = ? AND tag = ?", r.CaseID, r.Seq, r.Tag).
						UpdateColumn("tag", eventTag(key, r))
					if res.Error != nil {
						return fmt.Errorf("row tags: retag event %d of case %s: %w", r.Seq, r.CaseID, res.Error)
					}
					n += res.RowsAffected
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
}

// checkedEvents reads the events of case caseID in order, their sealed
// texts included (the tags bind whether they are there), and checks them
// (historyChecked), answering errHistoryDamaged for a history that fails.
func (s *Service) checkedEvents(ctx context.Context, db *gorm.DB, caseID string) ([]caseEventRow, error) {
	var rows []caseEventRow
	if err := db.WithContext(ctx).Where("case_id = ?", caseID).Order("seq").Find(&rows).Error; err != nil {
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
		q := db.Omit("tag").Where("length(tag) = 0")
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
