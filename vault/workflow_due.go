package vault

// Stored due dates. A case's due date is derived (review.DeriveClock) from
// its history and the calendar; deriving every open case on every request
// or sweep costs seconds at 100,000 cases, so each case row also holds the
// date its running clock is due on (cases.due_on, NULL when no clock runs:
// draft, closed, paused awaiting supplementary materials before the due
// date, or not derivable),
// whether it is provisional, the phase, and due_basis: what it was derived
// with. The deadlines list and the sweeper read the index on (due_on, id)
// and touch only the cases that are due.
//
// Exactness rests on three facts:
//   - A running clock's due date does not depend on today: count walks the
//     calendar from the phase's start through closed pauses only, and due is
//     the day the allowance is used up (review/clock.go). Only a paused
//     clock's date moves with today (its open pause runs through today), and
//     such a clock is never flagged, so it is stored as NULL. A clock paused
//     after its allowance was used up is the exception: its due date came
//     before the stop and no longer moves (review.Clock.DueFixed), and the
//     case stays overdue while it waits, so that date is stored.
//   - Every write that changes a history or a status goes through
//     appendEvents, which stores the re-derived columns in the same UPDATE
//     that moves the case on (guarded by the case's revision): every
//     instance sees the new date as soon as it sees the new event.
//   - A calendar change (an import, a corrected year, a binary with a newly
//     embedded year) changes the calendar's fingerprint, so every stored date
//     derived with the old one carries a basis that no longer matches. The
//     calendar import may run in another process without the keys a replay
//     needs (`vaultd calendar import`), so it does not re-derive in its own
//     transaction; instead every read of the index first re-derives the rows
//     whose basis is stale (refreshDue; an indexed probe that finds nothing
//     on every other call), and the leader's sweep does it in the
//     background. Migration 8 leaves every open case stale, which fills it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// clockVersion names the derivation rules behind a stored due date. Bump it
// when review.DeriveClock or the calendar's provisional model changes what
// a running clock is due on: every stored date then reads as stale and is
// re-derived.
// 2: provisional years give back weekend holidays (补假); 3: a clock paused
// after its due date passed keeps that date (it was stored as none); 4: a
// special review's latest opinion round is stored when it is due first; 5:
// the end of December of the last official year is provisional.
const clockVersion = "clock-5"

// basisNone marks due columns that depend on no calendar (no clock runs:
// draft, closed, paused). It sorts before every hex basis.
const basisNone = "-"

// dueBasis is the basis of dates derived with cal by this binary.
func dueBasis(cal *calendar.Calendar) string {
	h := sha256.Sum256([]byte(clockVersion + "|" + cal.Fingerprint()))
	return hex.EncodeToString(h[:12])
}

// dueColumns are the stored due columns of a case.
type dueColumns struct {
	On          *string // YYYY-MM-DD; nil when no clock runs
	Provisional bool
	Phase       string
	Basis       string
}

// updates are the columns to write d with its tag (duetags.go): every
// write of the columns writes the tag in the same statement.
func (d dueColumns) updates(tag []byte) map[string]any {
	if tag == nil {
		tag = []byte{}
	}
	return map[string]any{"due_on": d.On, "due_on_provisional": d.Provisional, "due_phase": d.Phase, "due_basis": d.Basis, "due_tag": tag}
}

// deriveDue derives the due columns of a case in status from its whole
// history. The date passed to DeriveClock as today is the last event's: a
// running clock's due date does not depend on it (see the file comment),
// and it keeps the walk short.
func deriveDue(cal *calendar.Calendar, basis, status string, history []review.Event) (dueColumns, error) {
	none := dueColumns{Basis: basisNone}
	if !slices.Contains(openStatuses, status) || len(history) == 0 {
		return none, nil
	}
	c, err := review.DeriveClock(cal, history, history[len(history)-1].On)
	if err != nil {
		// Not derivable with this calendar: stored as no date, and tried
		// again when the calendar changes.
		return dueColumns{Basis: basis}, err
	}
	n, ok := c.Next()
	if c.Phase == review.PhaseNone || c.Phase == review.PhaseClosed || !ok {
		return none, nil
	}
	// The next date, not the phase's: in a special review, the latest
	// opinion round's while a unit has not answered (every answer goes
	// through appendEvents, which stores the phase's date again).
	on := n.On.String()
	return dueColumns{On: &on, Provisional: n.Provisional, Phase: string(n.Phase), Basis: basis}, nil
}

// staleDue restricts q to the cases whose due columns were not derived with
// basis. Written as ranges so both backends answer it from the index on
// due_basis (a "<>" would scan it).
func staleDue(q *gorm.DB, basis string) *gorm.DB {
	return q.Where("due_basis < ? OR (due_basis > ? AND due_basis < ?) OR due_basis > ?", basisNone, basisNone, basis, basis)
}

// refreshDue re-derives the due columns of every case whose basis is not
// cal's (the sweep first marks stale those whose due tag fails:
// checkDueTags). Each row is written only if the case has not moved on
// since its history was read (the transition that moved it stored its own
// columns). One refresh runs at a time per instance; the others wait for
// it and then find nothing left.
func (s *Service) refreshDue(ctx context.Context, cal *calendar.Calendar) error {
	basis := dueBasis(cal)
	var probe []string
	if err := staleDue(s.db.WithContext(ctx).Model(&caseRow{}), basis).Limit(1).Pluck("id", &probe).Error; err != nil {
		return fmt.Errorf("look for stale due dates: %w", err)
	}
	if len(probe) == 0 {
		return nil
	}
	// A channel, not a mutex: a request waiting for another's refresh
	// stops waiting when it is cancelled.
	select {
	case s.dueTurn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the due dates being refreshed: %w", ctx.Err())
	}
	defer func() { <-s.dueTurn }()
	key, err := s.rowsKey(ctx)
	if err != nil {
		return err
	}
	after, n := "", 0
	for {
		// The status with its tag and the history's length in one
		// statement, as the due tag binds that length.
		var rows []caseWithProviders
		q := staleDue(s.db.WithContext(ctx).Table("cases").Select("cases.id, cases.status, cases.revision, cases.status_tag, "+lastSeqColumn), basis)
		if after != "" {
			q = q.Where("cases.id > ?", after)
		}
		if err := q.Order("id").Limit(500).Find(&rows).Error; err != nil {
			return fmt.Errorf("list stale due dates: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].Case.ID
		// A status that fails its tag is not derived from either: a
		// status edited to a closed one would otherwise store, and tag,
		// no date for an open case.
		statusOK := make([]bool, len(rows))
		var ids []string
		for i, l := range rows {
			r, err := s.statusChecked(ctx, l.Case, l.LastSeq)
			if err != nil {
				return fmt.Errorf("check the status of case %s: %w", l.Case.ID, err)
			}
			statusOK[i] = !r.statusRefused
			if statusOK[i] && slices.Contains(openStatuses, r.Status) {
				ids = append(ids, r.ID)
			}
		}
		hs, refused, err := s.histories(ctx, ids)
		if err != nil {
			return err
		}
		change := make([]map[string]any, len(rows))
		for i, l := range rows {
			r := l.Case
			if !statusOK[i] || refused[r.ID] {
				// Not replayed from a status or history edited outside
				// crvault (logged and counted): no date, so the case
				// leaves the deadlines list, no tag, and a stale basis, so
				// each refresh tries again and the case's deadline comes
				// back once the history is restored. Tagging "no date"
				// here would let an edit made and undone hide it for good.
				change[i] = dueColumns{}.updates(nil)
				continue
			}
			if h, ok := hs[r.ID]; ok && int64(len(h)) != l.LastSeq {
				continue // moved on since its status was read: its transition stored its own
			}
			d, err := deriveDue(cal, basis, r.Status, hs[r.ID])
			if err != nil {
				s.log.ErrorContext(ctx, "no deadline for open case", "case", r.ID, "err", err)
			}
			change[i] = d.updates(dueTag(key, r.ID, d, l.LastSeq))
		}
		// One transaction a batch: one commit (and, on SQLite, one fsync)
		// per 500 cases rather than per case.
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for i, l := range rows {
				if change[i] == nil {
					continue
				}
				if err := tx.Model(&caseRow{}).Where("id = ? AND revision = ?", l.Case.ID, l.Case.Revision).Updates(change[i]).Error; err != nil {
					return fmt.Errorf("store due date of case %s: %w", l.Case.ID, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		n += len(rows)
	}
	s.log.InfoContext(ctx, "due dates re-derived", "cases", n, "basis", basis)
	return nil
}

// dueCutoff is the last due date FlagWithin(within) still flags on today:
// the day before the (within+1)-th working day after today. ok is false
// when the calendar ends first, and every derivable date is flagged.
func dueCutoff(cal *calendar.Calendar, today calendar.Date, within int) (cutoff calendar.Date, ok bool, err error) {
	e, err := cal.WorkdaysAfter(today, within)
	if errors.Is(err, calendar.ErrOutOfRange) {
		return calendar.Date{}, false, nil
	}
	if err != nil {
		return calendar.Date{}, false, err
	}
	for d := e.AddDays(1); ; d = d.AddDays(1) {
		w, err := cal.IsWorkday(d)
		if errors.Is(err, calendar.ErrOutOfRange) {
			return calendar.Date{}, false, nil
		}
		if err != nil {
			return calendar.Date{}, false, err
		}
		if w {
			return d.AddDays(-1), true, nil
		}
	}
}

// dueKey is a position in the deadlines order.
type dueKey struct {
	on calendar.Date
	id string
}

// dueRows reads, in (due_on, id) order after the key after (if any), the
// open, running cases FlagWithin(within) flags on today, up to limit of them
// (0: all). more reports whether a further one exists. The stale rows are
// re-derived first. Rows whose due tags fail are marked stale by the read
// that finds them; it is then made once more, so that they are listed at
// the dates their histories give rather than left out.
func (s *Service) dueRows(ctx context.Context, within int, after *dueKey, limit int) (out []dueCase, more bool, err error) {
	out, more, refused, err := s.dueRowsOnce(ctx, within, after, limit)
	if err == nil && refused {
		out, more, _, err = s.dueRowsOnce(ctx, within, after, limit)
	}
	return out, more, err
}

// dueRowsOnce is one read of dueRows; refused says whether a row's due tag
// failed (the row is then stale, and left out of this read).
func (s *Service) dueRowsOnce(ctx context.Context, within int, after *dueKey, limit int) (out []dueCase, more, refused bool, err error) {
	today := calendar.Today(s.now())
	cal, err := s.calendar(ctx)
	if err != nil {
		return nil, false, false, err
	}
	if err := s.refreshDue(ctx, cal); err != nil {
		return nil, false, false, err
	}
	cutoff, bounded, err := dueCutoff(cal, today, within)
	if err != nil {
		return nil, false, false, fmt.Errorf("deadline cutoff: %w", err)
	}
	out = []dueCase{}
	batch := 500
	if limit > 0 {
		batch = limit + 1
	}
	key, err := s.rowsKey(ctx)
	if err != nil {
		return nil, false, false, err
	}
	chk := key.NewRowTagChecker(dueTagTable)
	for {
		// The status and due columns with their tags and the history's
		// length in one statement, so that a transition in between cannot
		// fail them.
		q := s.db.WithContext(ctx).Table("cases").Select("cases.*, " + lastSeqColumn).Where("due_on IS NOT NULL")
		if bounded {
			q = q.Where("due_on <= ?", cutoff.String())
		}
		if after != nil {
			// A row value, so both backends seek the index to the key.
			q = q.Where("(due_on, id) > (?, ?)", after.on.String(), after.id)
		}
		var rows []caseWithProviders
		if err := q.Order("due_on, id").Limit(batch).Find(&rows).Error; err != nil {
			return nil, false, false, fmt.Errorf("list due cases: %w", err)
		}
		var listed []dueCase
		var ids []string
		var damaged []caseRow
		for _, l := range rows {
			r := l.Case
			due, err := calendar.ParseDate(*r.DueOn)
			if err != nil {
				return nil, false, false, fmt.Errorf("due date of case %s: %w", r.ID, err)
			}
			after = &dueKey{on: due, id: r.ID}
			// A case whose status does not check is in no list (logged
			// and counted by statusChecked): its phase and deadline were
			// derived from what a database edit may have made up.
			if r, err = s.statusChecked(ctx, r, l.LastSeq); err != nil {
				return nil, false, false, fmt.Errorf("check the status of case %s: %w", r.ID, err)
			}
			if r.statusRefused {
				continue
			}
			// Nor one whose due columns do not check (duetags.go): left
			// to the next refresh, which derives them again.
			if !s.dueChecked(ctx, chk, &r, l.LastSeq) {
				damaged = append(damaged, r)
				continue
			}
			c := review.Clock{Phase: review.Phase(r.DuePhase), DueOn: due, DueOnProvisional: r.DueOnProvisional}
			// The cutoff is exact; this keeps a row the calendar cannot
			// count to out, as deriving it did.
			if f, err := review.FlagWithin(c, cal, today, within); err != nil || f == review.FlagNone {
				continue
			}
			std, _ := review.Flag(c, cal, today)
			listed = append(listed, dueCase{Deadline: Deadline{CaseID: r.ID, Status: r.Status, Phase: c.Phase, DueOn: due,
				DueOnProvisional: c.DueOnProvisional, Overdue: today.After(due), Flag: std}, row: r})
			ids = append(ids, r.ID)
		}
		refused = refused || len(damaged) > 0
		if err := s.markDueStale(ctx, damaged); err != nil {
			return nil, false, false, err
		}
		// Nor one whose history does not check (eventtags.go, logged and
		// counted there): its stored date was derived from the history as
		// it was, but neither list nor sweep acts for a case whose record
		// cannot be trusted until it is restored. Only the cases listed
		// are read, without their text.
		damagedHistory, err := s.historiesRefused(ctx, ids)
		if err != nil {
			return nil, false, false, err
		}
		for _, dc := range listed {
			if damagedHistory[dc.CaseID] {
				continue
			}
			if limit > 0 && len(out) == limit {
				return out, true, refused, nil
			}
			out = append(out, dc)
		}
		if len(rows) < batch {
			return out, false, refused, nil
		}
	}
}
