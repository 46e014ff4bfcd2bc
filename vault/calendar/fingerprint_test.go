package calendar_test

import (
	"testing"

	"github.com/crvault/crvault/vault/calendar"
)

// TestFingerprint: calendars that answer alike have the same fingerprint,
// however they were put together; an added, corrected or extra-holiday
// year changes it, and re-importing the same file does not.
func TestFingerprint(t *testing.T) {
	a := file(t, 2027, "2027-01-01:off", "2027-02-06:work")
	b := file(t, 2028, "2028-01-01:off")
	ab, err := calendar.Parse(a, b)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := calendar.Parse(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Fingerprint() != ba.Fingerprint() || len(ab.Fingerprint()) < 16 {
		t.Fatalf("same files, fingerprints %q and %q", ab.Fingerprint(), ba.Fingerprint())
	}
	base := embedded(t)
	with, err := base.With(a)
	if err != nil {
		t.Fatal(err)
	}
	again, err := with.With(a)
	if err != nil {
		t.Fatal(err)
	}
	corrected, err := with.With(file(t, 2027, "2027-01-01:off", "2027-01-04:off", "2027-02-06:work"))
	if err != nil {
		t.Fatal(err)
	}
	noMakeup, err := with.With(file(t, 2027, "2027-01-01:off", "2027-02-06:off"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for name, c := range map[string]*calendar.Calendar{"embedded": base, "2027 added": with, "2027 corrected": corrected, "make-up day turned holiday": noMakeup} {
		if prev, dup := seen[c.Fingerprint()]; dup {
			t.Fatalf("%s and %s share a fingerprint", name, prev)
		}
		seen[c.Fingerprint()] = name
	}
	if again.Fingerprint() != with.Fingerprint() {
		t.Fatal("re-importing the same year changed the fingerprint")
	}
}
