package vault

// A case's stored due columns (cases.due_on, due_on_provisional, due_phase,
// due_basis; workflow_due.go) decide what the office's deadlines list shows
// and which cases the deadline sweeper flags and notifies. A database
// administrator who sets due_on far ahead or to NULL hides a deadline; one
// who sets it on a case without one invents one; one who swaps two cases'
// columns moves a deadline between them. Each row therefore carries a due
// tag under the rows key (RowsKeyName) over the case's id, every due column
// (a NULL due_on told apart from any date) and the number of its history's
// last event (lastSeqColumn, as the status tag binds it), so that older
// genuine columns put back after the history grew no longer check either.
// Every UPDATE that writes the columns writes the tag: appendEvents (a
// transition) and refreshDue (a re-derivation).
//
// A due tag that fails is not obeyed, and it is repaired rather than left
// refused: the stored columns are only an index of what the case's history
// and the calendar say (deriveDue), and refreshDue derives them again from
// the history once that history and the case's status pass their own tags.
// So a failing row is logged at ERROR, counted under
// crvault_vault_row_tag_refusals_total{table="cases"} (column due_tag, as
// the status tag's refusals are), left out of the list and the sweep that
// found it, and marked stale (an empty due_basis); the next refreshDue (the
// next read of the list, or the next sweep) writes the derived columns with
// an honest tag. It is logged once, by the read that finds it, not on every
// sweep. A case whose history or status fails is not derived: its due
// columns are cleared (no date, no tag) and kept stale, so each refresh
// tries it again and the case comes back to the list once the history is
// restored; until then each refresh logs the history's refusal once.
//
// A hidden deadline (due_on moved later or set to NULL) is outside the
// range the list reads, so the deadline sweep (SweepDeadlines) first checks
// the due tags of every open case whose columns are current
// (checkDueTags): one row and one keyed hash per open case. Not every list
// read: at 10,000 open cases that scan made a page of deadlines take
// 0.2-0.9 s instead of milliseconds (BenchmarkListsScale), against issue
// 10's 50 ms. So the sweep's own flags and notices never miss a hidden
// deadline, while the list may go without it until the next sweep
// (VAULT_DEADLINE_INTERVAL, an hour by default); a deadline invented or
// moved into the list's range is refused by the read itself (dueRows
// checks every row it reads). A case whose status was also edited to a
// closed one is not scanned; it is refused by its status tag wherever it
// is read, but the scan logs nothing for it.

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/crvault/crvault/vault/crypt"
)

// dueTagTable names the due tags, apart from the parties tag (table
// "cases") and the status tag (statusTagTable) of the same row; it is also
// the backfill's marker.
const dueTagTable = "cases.due"

// dueFields appends to chk the fields a case's due tag covers.
func dueFields(chk *crypt.RowTagChecker, id string, d dueColumns, lastSeq int64) {
	chk.FieldString(id)
	if d.On == nil {
		chk.FieldString("null")
		chk.FieldString("")
	} else {
		chk.FieldString("date")
		chk.FieldString(*d.On)
	}
	if d.Provisional {
		chk.FieldInt(1)
	} else {
		chk.FieldInt(0)
	}
	chk.FieldString(d.Phase)
	chk.FieldString(d.Basis)
	chk.FieldInt(lastSeq)
}

// dueTag is the tag of a case's due columns d, stored with the history
// whose last event is lastSeq, under the rows key.
func dueTag(key *crypt.CaseKey, id string, d dueColumns, lastSeq int64) []byte {
	chk := key.NewRowTagChecker(dueTagTable)
	dueFields(chk, id, d, lastSeq)
	return chk.Tag(nil)
}

// dueOf is a case row's stored due columns.
func dueOf(r *caseRow) dueColumns {
	return dueColumns{On: r.DueOn, Provisional: r.DueOnProvisional, Phase: r.DuePhase, Basis: r.DueBasis}
}

// dueChecked says whether a case row's due columns and tag check with
// lastSeq (chk: the rows key's checker for dueTagTable), logging and
// counting a row that does not.
func (s *Service) dueChecked(ctx context.Context, chk *crypt.RowTagChecker, r *caseRow, lastSeq int64) bool {
	dueFields(chk, r.ID, dueOf(r), lastSeq)
	if chk.Check(r.DueTag) {
		return true
	}
	on := "null"
	if r.DueOn != nil {
		on = *r.DueOn
	}
	s.tagRefused(ctx, "cases", r.ID, "case's due date refused: its row tag does not check (due columns edited outside crvault, or written by an older vaultd); it is derived again from the case's history",
		"column", "due_tag", "due_on", on, "due_phase", r.DuePhase, "last_seq", lastSeq, "tagged", len(r.DueTag) > 0)
	return false
}

// markDueStale leaves the due columns of the cases rows refused to the
// next refreshDue (an empty basis is stale for every calendar). A case that
// moved on meanwhile stored honest columns with its transition and is left
// alone.
func (s *Service) markDueStale(ctx context.Context, rows []caseRow) error {
	for _, r := range rows {
		if err := s.db.WithContext(ctx).Model(&caseRow{}).Where("id = ? AND revision = ?", r.ID, r.Revision).
			UpdateColumn("due_basis", "").Error; err != nil {
			return fmt.Errorf("mark the due date of case %s for re-derivation: %w", r.ID, err)
		}
	}
	return nil
}

// checkDueTags checks the due tags of the open cases whose due columns were
// derived with basis or need no calendar (a stale row is re-derived
// whatever it holds), and marks those that fail stale (see the file
// comment): how a deadline hidden outside the list's range is found.
func (s *Service) checkDueTags(ctx context.Context, basis string) error {
	key, err := s.rowsKey(ctx)
	if err != nil {
		return err
	}
	chk := key.NewRowTagChecker(dueTagTable)
	after := ""
	for {
		var rows []caseWithProviders
		if err := s.db.WithContext(ctx).Table("cases").
			Select("cases.id, cases.revision, cases.due_on, cases.due_on_provisional, cases.due_phase, cases.due_basis, cases.due_tag, "+lastSeqColumn).
			Where("cases.status IN ? AND cases.due_basis IN ? AND cases.id > ?", openStatuses, []string{basis, basisNone}, after).
			Order("id").Limit(TagBatch).Find(&rows).Error; err != nil {
			return fmt.Errorf("check the due dates' tags: %w", err)
		}
		var refused []caseRow
		for i := range rows {
			if !s.dueChecked(ctx, chk, &rows[i].Case, rows[i].LastSeq) {
				refused = append(refused, rows[i].Case)
			}
		}
		if err := s.markDueStale(ctx, refused); err != nil {
			return err
		}
		if len(rows) < TagBatch {
			return nil
		}
		after = rows[len(rows)-1].Case.ID
	}
}

// historiesRefused checks the histories of cases (with their sealed texts,
// whose presence the tags bind, but no case key), answering those that fail
// their tags (historyChecked, which logs and counts each).
func (s *Service) historiesRefused(ctx context.Context, caseIDs []string) (map[string]bool, error) {
	refused := map[string]bool{}
	err := s.eachHistory(ctx, caseIDs, func(id string, _ []caseEventRow, ok bool) error {
		if !ok {
			refused[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refused, nil
}

// tagCaseDue tags the due columns of the cases that have no due tag, as
// they stand, under the rows key.
func (k *Keyring) tagCaseDue(ctx context.Context) (int64, error) {
	key, err := k.vaultKey(ctx, RowsKeyName)
	if err != nil {
		return 0, fmt.Errorf("row tags: %w", err)
	}
	return TagInBatches(ctx, k.db, func(db *gorm.DB, after string) (rows []caseWithProviders, err error) {
		if err := db.Table("cases").Select("cases.id, cases.due_on, cases.due_on_provisional, cases.due_phase, cases.due_basis, "+lastSeqColumn).
			Where("length(cases.due_tag) = 0 AND cases.id > ?", after).Order("id").Limit(TagBatch).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("row tags: read case due dates: %w", err)
		}
		return rows, nil
	}, func(r caseWithProviders) string { return r.Case.ID }, func(tx *gorm.DB, r caseWithProviders) (int64, error) {
		c := r.Case
		res := tx.Model(&caseRow{}).Where("id = ? AND length(due_tag) = 0", c.ID).
			UpdateColumn("due_tag", dueTag(key, c.ID, dueOf(&c), r.LastSeq))
		if res.Error != nil {
			return 0, fmt.Errorf("row tags: tag the due date of case %s: %w", c.ID, res.Error)
		}
		return res.RowsAffected, nil
	})
}

// migrateDueTags adds the cases' due tag column (see migrateRowTags).
func migrateDueTags(tx *gorm.DB, _ string) error {
	if m := tx.Migrator(); !m.HasColumn(&caseRow{}, "DueTag") {
		if err := m.AddColumn(&caseRow{}, "DueTag"); err != nil {
			return fmt.Errorf("add due_tag: %w", err)
		}
	}
	return nil
}
