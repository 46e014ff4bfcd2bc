package access

import (
	"context"
	"sync"
)

// TrailEnds are the grants the audit trail says the office ended
// (vault.GrantEnds reads them; Options.TrailEnds hands them over).
//
// A row tag binds an assignment to its state, so a database administrator
// cannot edit a revoked or suspended assignment back into force; but he
// can put back the whole row as it was before (a replay: the old tag
// checks), and delete the revocation or the declaration beside it. The
// audit trail is the record he cannot take from: events are chained,
// checkpointed and witnessed. So the ends it records are kept apart from
// the tables, and a grant they name is refused whatever the tables say:
// at every load of the index, at every re-read of a pair (a notice, a
// catch-up, a decision while the index loads), and as soon as this process
// ends one itself. The set only grows while the process runs.
type TrailEnds struct {
	Revoked   []string   // assignment ids revoked
	Recused   []CaseUser // users recused from a case: none of their grants on it stands
	Conflicts []CaseUser // users who declared a conflict on a case: their grants on it are suspended
}

// CaseUser names one user on one case.
type CaseUser struct{ CaseID, UserID string }

// ends is what this process knows the office ended: from the trail at
// each load, from its own changes, and from the revocations and conflicts
// it has read in the tables (ending is always the safe side, so a row the
// administrator adds can only refuse more).
type ends struct {
	mu        sync.RWMutex
	revoked   map[string]struct{}
	recused   map[caseUser]struct{}
	conflicts map[caseUser]struct{}
}

func (e *ends) add(t TrailEnds) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range t.Revoked {
		e.revokeLocked(id)
	}
	for _, p := range t.Recused {
		e.recuseLocked(caseUser{p.CaseID, p.UserID})
	}
	for _, p := range t.Conflicts {
		e.conflictLocked(caseUser{p.CaseID, p.UserID})
	}
}

func (e *ends) revoke(ids ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		e.revokeLocked(id)
	}
}

func (e *ends) recuse(k caseUser) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recuseLocked(k)
}

func (e *ends) conflict(k caseUser) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conflictLocked(k)
}

func (e *ends) revokeLocked(id string) {
	if e.revoked == nil {
		e.revoked = map[string]struct{}{}
	}
	e.revoked[id] = struct{}{}
}

func (e *ends) recuseLocked(k caseUser) {
	if e.recused == nil {
		e.recused = map[caseUser]struct{}{}
	}
	e.recused[k] = struct{}{}
}

func (e *ends) conflictLocked(k caseUser) {
	if e.conflicts == nil {
		e.conflicts = map[caseUser]struct{}{}
	}
	e.conflicts[k] = struct{}{}
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
	if _, ok := e.revoked[string(id)]; ok {
		return true, false
	}
	k := caseUser{string(caseID), string(userID)}
	if _, ok := e.recused[k]; ok {
		return true, false
	}
	_, suspended = e.conflicts[k]
	return false, suspended
}

// loadTrailEnds adds what the trail says to the ends, before a load reads
// the tables.
func (s *Service) loadTrailEnds(ctx context.Context) error {
	if s.trailEnds == nil {
		return nil
	}
	t, err := s.trailEnds(ctx)
	if err != nil {
		return err
	}
	s.ends.add(t)
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
