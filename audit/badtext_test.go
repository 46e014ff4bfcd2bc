package audit

import (
	"context"
	"strings"
	"testing"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestTextThatCannotBeStored: an event whose fields hold a NUL or invalid
// UTF-8 is stored cleaned (PostgreSQL text refuses both), without failing the
// events committed with it; and a query filter holding them matches nothing,
// rather than reaching PostgreSQL as an error that would read as an outage.
func TestTextThatCannotBeStored(t *testing.T) {
	ctx := context.Background()
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			bad := sampleEvent(1)
			bad.Actor, bad.CaseID, bad.Resource = "who\x00m", "case\xff", "material/\x00\xfe"
			e, err := f.log.Append(ctx, bad)
			if err != nil {
				t.Fatalf("append an event with a NUL and invalid UTF-8: %v", err)
			}
			if e.Actor != "who\uFFFDm" || e.CaseID != "case\uFFFD" || strings.ContainsRune(e.Resource, 0) {
				t.Fatalf("stored %q %q %q", e.Actor, e.CaseID, e.Resource)
			}
			f.appendN(t, 3)
			for _, filter := range []Filter{{Actor: "who\x00m"}, {CaseID: "case\xff"}, {Action: "material.read\x00"}, {CaseIDs: []string{"\xff"}}, {Actions: []string{"\x00"}}} {
				evs, _, err := f.log.Query(ctx, filter)
				if err != nil || len(evs) != 0 {
					t.Errorf("filter %+v: %d events, %v; want none, no error", filter, len(evs), err)
				}
			}
			evs, _, err := f.log.Query(ctx, Filter{Actor: "who\uFFFDm"})
			if err != nil || len(evs) != 1 || evs[0].Seq != e.Seq {
				t.Fatalf("the cleaned actor finds %d events, %v", len(evs), err)
			}
			// In a list, the values that can be stored still match.
			plain, _, err := f.log.Query(ctx, Filter{CaseIDs: []string{"case-0"}})
			if err != nil || len(plain) == 0 {
				t.Fatalf("a plain filter: %d events, %v", len(plain), err)
			}
			mixed, _, err := f.log.Query(ctx, Filter{CaseIDs: []string{"\x00", "case-0", "case\xff"}, Actions: []string{"\xfe", "material.read", "case.read", "audit.query"}})
			if err != nil || len(mixed) != len(plain) {
				t.Fatalf("a list with values that cannot be stored: %d events, %v; want %d", len(mixed), err, len(plain))
			}
		})
	}
}
