package crypt

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestRowTag(t *testing.T) {
	m := testMaster(t)
	k, wrapped := newCase(t, m)
	other, _ := newCase(t, m)
	k2, err := m.OpenCaseKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	tag := k.RowTag("access_sessions", "s1", "u1", "2026-12-02T00:00:00Z")
	if !k2.CheckRowTag(tag, "access_sessions", "s1", "u1", "2026-12-02T00:00:00Z") {
		t.Fatal("a row's tag does not check under the same key")
	}
	for name, ok := range map[string]bool{
		"other field":   k.CheckRowTag(tag, "access_sessions", "s1", "u2", "2026-12-02T00:00:00Z"),
		"other table":   k.CheckRowTag(tag, "access_users", "s1", "u1", "2026-12-02T00:00:00Z"),
		"other key":     other.CheckRowTag(tag, "access_sessions", "s1", "u1", "2026-12-02T00:00:00Z"),
		"field shifted": k.CheckRowTag(tag, "access_sessions", "s1u", "1", "2026-12-02T00:00:00Z"),
		"field dropped": k.CheckRowTag(tag, "access_sessions", "s1", "u1"),
		"field added":   k.CheckRowTag(tag, "access_sessions", "s1", "u1", "2026-12-02T00:00:00Z", ""),
		"no tag":        k.CheckRowTag(nil, "access_sessions", "s1", "u1", "2026-12-02T00:00:00Z"),
		"short tag":     k.CheckRowTag(tag[:16], "access_sessions", "s1", "u1", "2026-12-02T00:00:00Z"),
	} {
		if ok {
			t.Errorf("%s: tag accepted", name)
		}
	}
}

// The tag of a row as RowTag made it when row tags were introduced: a
// change of the format would refuse every tagged row of every database.
func TestRowTagFormatIsStable(t *testing.T) {
	k := &CaseKey{fields: fieldKeys{mac: []byte("0123456789abcdef0123456789abcdef")}}
	fields := []string{"a1", "case-1", "u1", "reviewer", "审查 purpose", "admin", "1767225600000000", ""}
	const want = "c7de1319bf7b93de99290fbabc12ad93604ea5e41f3d5a57c8a770bb629f6064"
	if got := hex.EncodeToString(k.RowTag("access_assignments", fields...)); got != want {
		t.Errorf("RowTag = %s, want %s", got, want)
	}
	c := k.NewRowTagChecker("access_assignments")
	for _, f := range fields[:6] {
		c.Field([]byte(f))
	}
	c.FieldInt(1767225600000000)
	c.FieldString("")
	if got := hex.EncodeToString(c.Tag(nil)); got != want {
		t.Errorf("RowTagChecker's tag = %s, want %s", got, want)
	}
}

// A RowTagChecker makes RowTag's tags, row after row, and refuses what
// CheckRowTag refuses.
func TestRowTagChecker(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	other, _ := newCase(t, testMaster(t))
	c := k.NewRowTagChecker("access_sessions")
	add := func(fields ...string) {
		for i, f := range fields {
			if i%2 == 0 {
				c.Field([]byte(f))
			} else {
				c.FieldString(f)
			}
		}
	}
	long := strings.Repeat("长", 400) // more than the buffer holds at first
	rows := [][]string{
		{"s1", "u1", "1767225600000000"},
		{"", ""},
		{},
		{"s2", long, "-", "0"},
		{"s1", "u1", "1767225600000000"},
	}
	for _, row := range rows {
		tag := k.RowTag("access_sessions", row...)
		add(row...)
		if !c.Check(tag) {
			t.Errorf("%q: RowTag's tag refused", row)
		}
		add(row...)
		if got := c.Tag(nil); !bytes.Equal(got, tag) {
			t.Errorf("%q: tag %x, RowTag's %x", row, got, tag)
		}
	}
	tag := k.RowTag("access_sessions", "s1", "u1", "1767225600000000")
	for name, row := range map[string]func(){
		"other field":   func() { add("s1", "u2", "1767225600000000") },
		"field shifted": func() { add("s1u", "1", "1767225600000000") },
		"field dropped": func() { add("s1", "u1") },
		"field added":   func() { add("s1", "u1", "1767225600000000", "") },
		"other int":     func() { add("s1", "u1"); c.FieldInt(1767225600000001) },
	} {
		row()
		if c.Check(tag) {
			t.Errorf("%s: tag accepted", name)
		}
	}
	add("s1", "u1")
	c.FieldInt(1767225600000000)
	if !c.Check(tag) {
		t.Error("FieldInt: the decimal field's tag refused")
	}
	add("s1", "u1", "1767225600000000")
	if c.Check(tag[:16]) || c.Check(nil) {
		t.Error("a short tag accepted")
	}
	add("s1", "u1", "1767225600000000")
	c.Reset()
	add("s1", "u1", "1767225600000000")
	if !c.Check(tag) {
		t.Error("a row after Reset refused")
	}
	oc := other.NewRowTagChecker("access_sessions")
	oc.FieldString("s1")
	oc.FieldString("u1")
	oc.FieldString("1767225600000000")
	if oc.Check(tag) {
		t.Error("another key's checker accepted the tag")
	}
	uc := k.NewRowTagChecker("access_users")
	uc.FieldString("s1")
	uc.FieldString("u1")
	uc.FieldString("1767225600000000")
	if uc.Check(tag) {
		t.Error("another table's checker accepted the tag")
	}
}

// A start checks a million rows: checking one must not allocate.
func TestRowTagCheckerDoesNotAllocate(t *testing.T) {
	k, _ := newCase(t, testMaster(t))
	c := k.NewRowTagChecker("access_assignments")
	id, purpose := []byte("0190a1b2c3d4e5f60718293a4b5c6d7e"), []byte("preliminary review (Art. 10)")
	tag := k.RowTag("access_assignments", string(id), string(purpose), "1767225600000000", "")
	allocs := testing.AllocsPerRun(1000, func() {
		c.Field(id)
		c.Field(purpose)
		c.FieldInt(1767225600000000)
		c.FieldString("")
		if !c.Check(tag) {
			t.Fatal("refused")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations a row, want none", allocs)
	}
}
