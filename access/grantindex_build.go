package access

import (
	"slices"
	"strings"
	"time"
)

// grantRow is one unrevoked assignment as a start reads it: byte views
// into the row just scanned, which the builder copies what it keeps from.
type grantRow struct {
	id, caseID, userID, role, purpose []byte
	expires                           time.Time // zero: no expiry
	declared, suspended               bool
}

// grantRec is a grant while the index is built. It holds no pointer: a
// start reads a million of them, and the garbage collector runs several
// times meanwhile; a slice of grants (five pointers each) was traced on
// every run, a slice of these costs it nothing.
type grantRec struct {
	expires             int64 // Unix seconds, if hasExpiry
	expiresNsec         int32
	caseIdx             uint32
	idOff, idLen        uint32 // in indexBuilder.ids
	user, role, purpose uint32 // in indexBuilder.str
	hasExpiry           bool
	declared, suspended bool
}

// indexBuilder gathers grants in the order rows come (one probe of a map
// of cases per row), then lays them out case by case, each case's sorted
// by user. What repeats across assignments (users, roles, purposes) is kept
// once; the ids are copied back to back into one buffer and become
// substrings of one string. So a start allocates a few large objects, not
// one or more per row.
type indexBuilder struct {
	pos   map[string]uint32 // case id -> index in cases
	cases []string
	strs  map[string]uint32 // interned text -> index in str
	str   []string
	ids   []byte
	recs  []grantRec
}

// newIndexBuilder expects about n grants; a wrong guess costs growth.
func newIndexBuilder(n int) *indexBuilder {
	// About ten assignments a case, and twenty cases a user, are guesses too.
	return &indexBuilder{
		pos:  make(map[string]uint32, n/10+1),
		strs: make(map[string]uint32, n/20+8),
		ids:  make([]byte, 0, 32*n),
		recs: make([]grantRec, 0, n),
	}
}

// interned returns v's index in *list (m maps each to it), adding it if new.
func interned(m map[string]uint32, list *[]string, v string) uint32 {
	i, ok := m[v]
	if !ok {
		i = uint32(len(*list))
		m[v] = i
		*list = append(*list, v)
	}
	return i
}

func (b *indexBuilder) intern(s []byte) uint32 {
	if i, ok := b.strs[string(s)]; ok { // no allocation for the lookup
		return i
	}
	return interned(b.strs, &b.str, string(s))
}

func (b *indexBuilder) caseIndex(c []byte) uint32 {
	if i, ok := b.pos[string(c)]; ok {
		return i
	}
	return interned(b.pos, &b.cases, string(c))
}

func (b *indexBuilder) add(r grantRow) {
	rec := grantRec{caseIdx: b.caseIndex(r.caseID), idOff: uint32(len(b.ids)), idLen: uint32(len(r.id)),
		user: b.intern(r.userID), role: b.intern(r.role), purpose: b.intern(r.purpose),
		declared: r.declared, suspended: r.suspended}
	if !r.expires.IsZero() {
		rec.expires, rec.expiresNsec, rec.hasExpiry = r.expires.Unix(), int32(r.expires.Nanosecond()), true
	}
	b.ids = append(b.ids, r.id...)
	b.recs = append(b.recs, rec)
}

// buildIndex lays the grants the builders read out case by case, each
// case's sorted by user, in the builders' order (parts[1]'s rows after
// parts[0]'s). The other builders' cases and texts are mapped to the
// first's, not copied: copying a million grants together cost a tenth of a
// start.
func buildIndex(parts ...*indexBuilder) grantIndex {
	b := parts[0]
	type remap struct {
		cases []uint32 // nil: b's own
		strs  []uint32 // nil: b's own
		ids   string
	}
	maps := make([]remap, len(parts))
	total := 0
	for k, p := range parts {
		total += len(p.recs)
		maps[k].ids = string(p.ids)
		if k == 0 {
			continue
		}
		maps[k].cases = make([]uint32, len(p.cases))
		for i, c := range p.cases {
			maps[k].cases[i] = interned(b.pos, &b.cases, c)
		}
		maps[k].strs = make([]uint32, len(p.str))
		for i, v := range p.str {
			maps[k].strs[i] = interned(b.strs, &b.str, v)
		}
	}
	caseOf := func(m *remap, r *grantRec) uint32 {
		if m.cases == nil {
			return r.caseIdx
		}
		return m.cases[r.caseIdx]
	}
	str := func(m *remap, i uint32) string {
		if m.strs == nil {
			return b.str[i]
		}
		return b.str[m.strs[i]]
	}

	// A counting sort by case; stable, so a user's grants stay in the
	// order read.
	off := make([]int, len(b.cases)+1)
	for k, p := range parts {
		for i := range p.recs {
			off[caseOf(&maps[k], &p.recs[i])+1]++
		}
	}
	for i := 1; i < len(off); i++ {
		off[i] += off[i-1]
	}
	laid := make([]grant, total)
	next := slices.Clone(off[:len(b.cases)])
	for k, p := range parts {
		m := &maps[k]
		for i := range p.recs {
			r := &p.recs[i]
			g := grant{user: str(m, r.user), id: m.ids[r.idOff : r.idOff+r.idLen], role: str(m, r.role), purpose: str(m, r.purpose),
				declared: r.declared, suspended: r.suspended}
			if r.hasExpiry {
				g.expiresAt = time.Unix(r.expires, int64(r.expiresNsec)).UTC()
			}
			c := caseOf(m, r)
			laid[next[c]] = g
			next[c]++
		}
		p.recs, p.ids = nil, nil
	}
	x := make(grantIndex, len(b.cases))
	for i, c := range b.cases {
		gs := laid[off[i]:off[i+1]:off[i+1]]
		slices.SortStableFunc(gs, func(a, b grant) int { return strings.Compare(a.user, b.user) })
		x[c] = gs
	}
	return x
}
