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

// indexBuilder gathers grants in the order rows come (one probe of a map
// of cases per row) into one slice, then lays them out case by case in
// another, each case's sorted by user: two large objects instead of a
// growing slice per case (growing them was a quarter of a start).
type indexBuilder struct {
	pos    map[string]int32
	cases  []string
	all    []grant
	caseOf []int32 // all[i] is on cases[caseOf[i]]
}

// newIndexBuilder expects about n grants; a wrong guess costs growth.
func newIndexBuilder(n int) *indexBuilder {
	// About ten assignments a case is a guess too.
	return &indexBuilder{pos: make(map[string]int32, n/10+1), all: make([]grant, 0, n), caseOf: make([]int32, 0, n)}
}

// add takes a grant of g.user (interned by the caller) on caseID (a raw
// byte view the builder copies when it sees the case first).
func (b *indexBuilder) add(caseID []byte, g grant) {
	i, ok := b.pos[string(caseID)] // no allocation for the lookup
	if !ok {
		c := string(caseID)
		i = int32(len(b.cases))
		b.pos[c] = i
		b.cases = append(b.cases, c)
	}
	b.all = append(b.all, g)
	b.caseOf = append(b.caseOf, i)
}

func (b *indexBuilder) index() grantIndex {
	// A counting sort by case; stable, so a user's grants stay in the
	// order read.
	off := make([]int, len(b.cases)+1)
	for _, c := range b.caseOf {
		off[c+1]++
	}
	for i := 1; i < len(off); i++ {
		off[i] += off[i-1]
	}
	laid := make([]grant, len(b.all))
	next := slices.Clone(off[:len(b.cases)])
	for i, c := range b.caseOf {
		laid[next[c]] = b.all[i]
		next[c]++
	}
	x := make(grantIndex, len(b.cases))
	for i, c := range b.cases {
		gs := laid[off[i]:off[i+1]:off[i+1]]
		slices.SortStableFunc(gs, func(a, b grant) int { return strings.Compare(a.user, b.user) })
		x[c] = gs
	}
	b.all, b.caseOf = nil, nil
	return x
}
