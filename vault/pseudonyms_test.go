package vault

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestResolvePseudonymAsTyped: a party names a reader by the pseudonym it
// was shown, typed in either case, with spaces, or in full-width
// characters from an input method; text no stored pseudonym can be, NUL
// included, resolves to nobody without an error on either database.
func TestResolvePseudonymAsTyped(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(dialect), func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
			c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.svc.Pseudonym(f.ctx, c.ID, f.rev.P.User.ID)
			if err != nil || p != "R1" {
				t.Fatalf("pseudonym %q, %v; want R1", p, err)
			}
			for _, typed := range []string{"R1", "r1", " R1\t", "Ｒ１", "ｒ1"} {
				if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, typed); err != nil || !ok || uid != f.rev.P.User.ID {
					t.Errorf("ResolvePseudonym(%q) = %q, %v, %v", typed, uid, ok, err)
				}
			}
			for _, typed := range []string{"R2", "R 1", "ʀ1", "R1\x00", "\xffR1", ""} {
				if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, typed); err != nil || ok {
					t.Errorf("ResolvePseudonym(%q) = %q, %v, %v; want nobody", typed, uid, ok, err)
				}
			}
			// Padding is trimmed before anything is bounded; a megabyte
			// of full-width letters is nobody, and is not normalised.
			if uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, strings.Repeat(" ", 1<<20)+"R1\u3000"); err != nil || !ok || uid != f.rev.P.User.ID {
				t.Errorf("padded R1 = %q, %v, %v", uid, ok, err)
			}
			long := strings.Repeat("Ｒ", 1<<20)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			uid, ok, err := f.svc.ResolvePseudonym(f.ctx, c.ID, long)
			runtime.ReadMemStats(&after)
			if err != nil || ok {
				t.Errorf("a megabyte of Ｒ = %q, %v, %v; want nobody", uid, ok, err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
				t.Errorf("resolving a megabyte of Ｒ allocated %d bytes", n)
			}
		})
	}
}
