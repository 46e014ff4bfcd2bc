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

func (d dueColumns) updates() map[string]any {
	return map[string]any{"due_on": d.On, "due_on_provisional": d.Provisional, "due_phase": d.Phase, "due_basis": d.Basis}
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
// cal's. Each row is written only if the case has not moved on since its
// history was read (the transition that moved it stored its own columns).
// One refresh runs at a time per instance; the others wait for it and
// then find nothing left.
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
	after, n := "", 0
	for {
		var rows []caseRow
		q := staleDue(s.db.WithContext(ctx).Model(&caseRow{}).Select("id", "status", "revision"), basis)
		if after != "" {
			q = q.Where("id > ?", after)
		}
		if err := q.Order("id").Limit(500).Find(&rows).Error; err != nil {
			return fmt.Errorf("list stale due dates: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].ID
		var ids []string
		for _, r := range rows {
			if slices.Contains(openStatuses, r.Status) {
				ids = append(ids, r.ID)
			}
		}
		hs, refused, err := s.histories(ctx, ids)
		if err != nil {
			return err
		}
		derived := make([]dueColumns, len(rows))
		for i, r := range rows {
			if refused[r.ID] {
				// Not replayed from a history edited outside crvault
				// (logged and counted): no date, so the case leaves the
				// deadlines list, and tried again when the calendar
				// changes.
				derived[i] = dueColumns{Basis: basis}
				continue
			}
			if derived[i], err = deriveDue(cal, basis, r.Status, hs[r.ID]); err != nil {
				s.log.ErrorContext(ctx, "no deadline for open case", "case", r.ID, "err", err)
			}
		}
		// One transaction a batch: one commit (and, on SQLite, one fsync)
		// per 500 cases rather than per case.
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for i, r := range rows {
				if err := tx.Model(&caseRow{}).Where("id = ? AND revision = ?", r.ID, r.Revision).Updates(derived[i].updates()).Error; err != nil {
					return fmt.Errorf("store due date of case %s: %w", r.ID, err)
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
// re-derived first.
func (s *Service) dueRows(ctx context.Context, within int, after *dueKey, limit int) (out []dueCase, more bool, err error) {
	today := calendar.Today(s.now())
	cal, err := s.calendar(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := s.refreshDue(ctx, cal); err != nil {
		return nil, false, err
	}
	cutoff, bounded, err := dueCutoff(cal, today, within)
	if err != nil {
		return nil, false, fmt.Errorf("deadline cutoff: %w", err)
	}
	out = []dueCase{}
	batch := 500
	if limit > 0 {
		batch = limit + 1
	}
	for {
		// The status with its tag and the history's length in one
		// statement, so that a transition in between cannot fail it.
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
			return nil, false, fmt.Errorf("list due cases: %w", err)
		}
		for _, l := range rows {
			r := l.Case
			due, err := calendar.ParseDate(*r.DueOn)
			if err != nil {
				return nil, false, fmt.Errorf("due date of case %s: %w", r.ID, err)
			}
			after = &dueKey{on: due, id: r.ID}
			// A case whose status does not check is in no list (logged
			// and counted by statusChecked): its phase and deadline were
			// derived from what a database edit may have made up.
			if r, err = s.statusChecked(ctx, r, l.LastSeq); err != nil {
				return nil, false, fmt.Errorf("check the status of case %s: %w", r.ID, err)
			}
			if r.statusRefused {
				continue
			}
			c := review.Clock{Phase: review.Phase(r.DuePhase), DueOn: due, DueOnProvisional: r.DueOnProvisional}
			// The cutoff is exact; this keeps a row the calendar cannot
			// count to out, as deriving it did.
			if f, err := review.FlagWithin(c, cal, today, within); err != nil || f == review.FlagNone {
				continue
			}
			if limit > 0 && len(out) == limit {
				return out, true, nil
			}
			std, _ := review.Flag(c, cal, today)
			out = append(out, dueCase{Deadline: Deadline{CaseID: r.ID, Status: r.Status, Phase: c.Phase, DueOn: due,
				DueOnProvisional: c.DueOnProvisional, Overdue: today.After(due), Flag: std}, row: r})
		}
		if len(rows) < batch {
			return out, false, nil
		}
	}
}
