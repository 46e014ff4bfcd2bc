package access

import (
	"slices"
	"strings"
)

// grantIndex is the in-memory index of every unrevoked assignment that
// Decide reads: per case, its grants in one slice sorted by user. A start
// builds it from a million rows, so it is shaped for that: one map entry per
// case rather than per (case, user) pair, and no object per grant for the
// garbage collector to trace. A case's grants are found by binary search.
// Callers hold Service.mu (read for get, write for the rest).
type grantIndex map[string][]grant

func byUser(g grant, user string) int { return strings.Compare(g.user, user) }

// span is where the user's grants on the case lie in x[caseID].
func (x grantIndex) span(caseID, userID string) (gs []grant, i, j int) {
	gs = x[caseID]
	i, _ = slices.BinarySearchFunc(gs, userID, byUser)
	for j = i; j < len(gs) && gs[j].user == userID; j++ {
	}
	return gs, i, j
}

// get returns the user's grants on the case. They are the index's own:
// a writer may change them in place.
func (x grantIndex) get(caseID, userID string) []grant {
	gs, i, j := x.span(caseID, userID)
	return gs[i:j:j]
}

// set replaces the user's grants on the case (gs empty: removes them). The
// case's slice is copied, never changed in place, so a slice got before
// stays as it was.
func (x grantIndex) set(caseID, userID string, gs []grant) {
	old, i, j := x.span(caseID, userID)
	n := make([]grant, 0, len(old)-(j-i)+len(gs))
	n = append(n, old[:i]...)
	for _, g := range gs {
		g.user = userID
		n = append(n, g)
	}
	n = append(n, old[j:]...)
	if len(n) == 0 {
		delete(x, caseID)
	} else {
		x[caseID] = n
	}
}

// add appends one grant to the user's on the case.
func (x grantIndex) add(caseID, userID string, g grant) {
	x.set(caseID, userID, append(slices.Clone(x.get(caseID, userID)), g))
}
