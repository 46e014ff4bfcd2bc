package crypt

import "testing"

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
