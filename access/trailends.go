package access

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// TrailEnds are the grants the audit trail says the office ended, read
// after some event (vault.GrantEnds reads them; Options.TrailEnds hands
// them over).
//
// A row tag binds an assignment to its state, so a database administrator
// cannot edit a revoked or suspended assignment back into force; but he
// can put back the whole row as it was before (a replay: the old tag
// checks), and delete the revocation or the declaration beside it. The
// audit trail is the record he cannot take from: events are chained,
// checkpointed and witnessed. So the ends it records are kept apart from
// the tables, and a grant they name is refused whatever the tables say:
// at every load of the index, at every re-read of a pair (a notice, a
// catch-up, a decision while the index loads), in every list, and as soon
// as this process ends one itself. New reads the trail before it returns,
// so a start that cannot read it does not start; notices and resyncs read
// what was appended since (F7 of review h30h: an end another instance made
// is learnt from the trail, not only from the tables).
type TrailEnds struct {
	Ends []End
	// Undone are ends read earlier that a later refusal of the server's
	// own says did not take effect.
	Undone []Undo
	// Through is the number of the last event read: the next read starts
	// after it.
	Through int64
}

// EndKind says what an End ended.
type EndKind int

// The kinds of End.
const (
	EndRevoked  EndKind = iota + 1 // one assignment (AssignmentID)
	EndRecused                     // every grant of UserID on CaseID
	EndConflict                    // every grant of UserID on CaseID is suspended
)

// End is one end the trail records: its event's number, who made it and
// on what (to match an Undo), and what it ends.
type End struct {
	Seq                     int64
	At                      time.Time // when it was recorded
	Kind                    EndKind
	Actor, CaseID, Resource string
	AssignmentID, UserID    string
}

// Undo names the event of an End that did not take effect, with the
// actor, case and resource its refusal was recorded under: it undoes the
// End only if they are the End's.
type Undo struct {
	Seq                     int64
	Actor, CaseID, Resource string
}

// ends is what this process knows the office ended: from the trail, from
// its own changes, and from the revocations and conflicts it has read in
// the tables (ending is always the safe side, so a row the administrator
// adds can only refuse more). Each end counts the events that made it,
// learnt ones included, so that an undo takes back one of them only. A
// revocation is keyed by its case too: one that failed under an older
// release for naming the wrong case ends nothing on the right one (review
// h30i).
type ends struct {
	mu        sync.RWMutex
	revoked   map[caseUser]uint32 // {case id, assignment id}
	recused   map[caseUser]uint32
	conflicts map[caseUser]uint32
	// recent are the trail's ends of the last undoWindow, by event number:
	// what a later read's undo may still name. A change and its undo are
	// written by one request, seconds apart; older ends are kept by count
	// only, which is a fraction of the memory.
	recent map[int64]End
}

// undoWindow is how long after its event an end read from the trail can
// still be taken back by an undo read later.
const undoWindow = 10 * time.Minute

func (e *ends) slot(x End) (*map[caseUser]uint32, caseUser, bool) {
	switch x.Kind {
	case EndRevoked:
		return &e.revoked, caseUser{x.CaseID, x.AssignmentID}, true
	case EndRecused:
		return &e.recused, caseUser{x.CaseID, x.UserID}, true
	case EndConflict:
		return &e.conflicts, caseUser{x.CaseID, x.UserID}, true
	}
	return nil, caseUser{}, false
}

func count(m *map[caseUser]uint32, k caseUser, d int) {
	if *m == nil {
		*m = map[caseUser]uint32{}
	}
	switch n := (*m)[k]; {
	case d > 0:
		(*m)[k] = n + 1
	case n <= 1:
		delete(*m, k)
	default:
		(*m)[k] = n - 1
	}
}

func (e *ends) add(t TrailEnds, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range t.Ends {
		m, k, ok := e.slot(x)
		if !ok {
			continue
		}
		count(m, k, +1)
		if x.At.IsZero() || now.Sub(x.At) < undoWindow {
			if e.recent == nil {
				e.recent = map[int64]End{}
			}
			e.recent[x.Seq] = x
		}
	}
	for _, u := range t.Undone {
		x, ok := e.recent[u.Seq]
		if !ok || x.Actor != u.Actor || x.CaseID != u.CaseID || x.Resource != u.Resource {
			continue
		}
		delete(e.recent, u.Seq)
		m, k, _ := e.slot(x)
		count(m, k, -1)
	}
	for seq, x := range e.recent {
		if !x.At.IsZero() && now.Sub(x.At) >= undoWindow {
			delete(e.recent, seq)
		}
	}
}

// revoke, recuse and conflict record an end this process made or read in
// the tables.
func (e *ends) revoke(caseID string, ids ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		count(&e.revoked, caseUser{caseID, id}, +1)
	}
}

func (e *ends) recuse(k caseUser) {
	e.mu.Lock()
	defer e.mu.Unlock()
	count(&e.recused, k, +1)
}

func (e *ends) conflict(k caseUser) {
	e.mu.Lock()
	defer e.mu.Unlock()
	count(&e.conflicts, k, +1)
}

// conflictBesides says whether the ends hold a declared conflict of k
// other than the trail's event seq.
func (e *ends) conflictBesides(k caseUser, seq int64) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := e.conflicts[k]
	if x, ok := e.recent[seq]; ok && x.Kind == EndConflict && x.CaseID == k.caseID && x.UserID == k.userID {
		n--
	}
	return n > 0
}

// of says whether the grant id of userID on caseID was ended (revoked, or
// its user recused) and whether it is suspended by a declared conflict.
// The arguments are bytes as a start scans them: the lookups convert them
// without allocating (TestEndsLookupAllocatesNothing).
func (e *ends) of(id, caseID, userID []byte) (ended, suspended bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if len(e.revoked) == 0 && len(e.recused) == 0 && len(e.conflicts) == 0 {
		return false, false
	}
	if _, ok := e.revoked[caseUser{string(caseID), string(id)}]; ok {
		return true, false
	}
	k := caseUser{string(caseID), string(userID)}
	if _, ok := e.recused[k]; ok {
		return true, false
	}
	_, suspended = e.conflicts[k]
	return false, suspended
}

// trailOf is what the ends make of a grant the tables hold: ended (not to
// be granted or listed as in force), or suspended where the tables say it
// is not. One the ends change is reported (trailRefused), unless it is
// expired anyway: an assignment that ran out before its user declared a
// conflict was never suspended, and is no sign of a replay (review h30h
// F6).
func (s *Service) trailOf(ctx context.Context, id, caseID, userID []byte, expires time.Time, suspended bool) (ended, suspend bool) {
	ended, suspend = s.ends.of(id, caseID, userID)
	if !expires.IsZero() && !s.now().Before(expires) {
		return ended, false
	}
	if ended || suspend && !suspended {
		s.trailRefused(ctx, string(id))
	}
	return ended, suspend && !suspended
}

// trailOfRow is trailOf for an assignment row read through GORM.
func (s *Service) trailOfRow(ctx context.Context, r assignmentRow, suspended bool) (ended, suspend bool) {
	var expires time.Time
	if r.ExpiresAt != nil {
		expires = *r.ExpiresAt
	}
	return s.trailOf(ctx, []byte(r.ID), []byte(r.CaseID), []byte(r.UserID), expires, suspended)
}

// refreshTrail reads the ends the trail recorded since the last read.
func (s *Service) refreshTrail(ctx context.Context) error {
	if s.trailEnds == nil {
		return nil
	}
	s.trailMu.Lock()
	defer s.trailMu.Unlock()
	return s.refreshTrailLocked(ctx)
}

// refreshTrailAtMost is refreshTrail unless the last read is younger than
// every: for decisions that read the tables (notices unproven, or the
// index loading), which may come by the hundred a second.
func (s *Service) refreshTrailAtMost(ctx context.Context, every time.Duration) error {
	if s.trailEnds == nil {
		return nil
	}
	s.trailMu.Lock()
	defer s.trailMu.Unlock()
	if !s.trailReadAt.IsZero() && s.now().Sub(s.trailReadAt) < every {
		return nil
	}
	return s.refreshTrailLocked(ctx)
}

func (s *Service) refreshTrailLocked(ctx context.Context) error {
	t, err := s.trailEnds(ctx, s.trailThrough)
	if err != nil {
		return fmt.Errorf("read the grants the audit trail ended: %w", err)
	}
	now := s.now()
	s.ends.add(t, now)
	s.trailThrough = max(s.trailThrough, t.Through)
	s.trailReadAt = now
	return nil
}

// trailRefused reports an assignment the tables hold in force and the
// trail says the office ended: a row put back as it was (or a revocation
// or declaration deleted), refused or suspended as the trail says.
func (s *Service) trailRefused(ctx context.Context, id string) {
	s.trailRefusals.Inc()
	s.log.ErrorContext(ctx, "access: assignment in force in the database but ended in the audit trail: the row was put back or its revocation, recusal or declaration removed outside vaultd; the trail prevails",
		"assignment", id)
}
