package access

import (
	"slices"
	"testing"
)

// TestGrantIndex: grants built from rows in any order, then changed, are
// found per (case, user), and only there.
func TestGrantIndex(t *testing.T) {
	b := newIndexBuilder(0)
	for _, r := range []struct{ c, u, id string }{
		{"c1", "u3", "a1"}, {"c1", "u1", "a2"}, {"c2", "u1", "a3"}, {"c1", "u3", "a4"}, {"c1", "u2", "a5"},
	} {
		b.add(grantRow{caseID: []byte(r.c), userID: []byte(r.u), id: []byte(r.id), role: []byte("reviewer")})
	}
	x := buildIndex(b)
	ids := func(c, u string) []string {
		var out []string
		for _, g := range x.get(c, u) {
			if g.user != u {
				t.Fatalf("get(%s, %s) gave a grant of %s", c, u, g.user)
			}
			out = append(out, g.id)
		}
		return out
	}
	check := func(when, c, u string, want ...string) {
		t.Helper()
		if got := ids(c, u); !slices.Equal(got, want) {
			t.Errorf("%s: get(%s, %s) = %v, want %v", when, c, u, got, want)
		}
	}
	check("built", "c1", "u3", "a1", "a4") // in the order read
	check("built", "c1", "u1", "a2")
	check("built", "c1", "u2", "a5")
	check("built", "c2", "u1", "a3")
	check("built", "c2", "u3")
	check("built", "c3", "u1")

	before := x.get("c1", "u3")
	x.add("c1", "u0", grant{id: "a6"})
	x.add("c1", "u3", grant{id: "a7"})
	x.set("c1", "u1", nil)
	x.set("c2", "u1", nil)
	check("changed", "c1", "u0", "a6")
	check("changed", "c1", "u3", "a1", "a4", "a7")
	check("changed", "c1", "u1")
	check("changed", "c1", "u2", "a5")
	if _, ok := x["c2"]; ok {
		t.Error("a case without grants kept its entry")
	}
	if len(before) != 2 || before[0].id != "a1" || before[1].id != "a4" {
		t.Errorf("a slice got before a change was changed: %+v", before)
	}
}
