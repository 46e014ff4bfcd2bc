package audit

import (
	"context"
	"testing"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestAppendAllKeepsOrder: events appended together get consecutive
// sequence numbers in the order given, chained like any others.
func TestAppendAllKeepsOrder(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			ctx := context.Background()
			f.appendN(t, 2)
			var in []Event
			for i := range 300 {
				in = append(in, sampleEvent(i))
			}
			out, err := f.log.AppendAll(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("%d events back, want %d", len(out), len(in))
			}
			for i, e := range out {
				if e.Seq != int64(i+3) || e.Resource != in[i].Resource || e.Hash == "" {
					t.Fatalf("event %d: seq %d resource %s, want seq %d resource %s", i, e.Seq, e.Resource, i+3, in[i].Resource)
				}
			}
			if rep, err := f.log.Verify(ctx); err != nil || rep.To != 302 {
				t.Fatalf("verify: %+v %v", rep, err)
			}
			if out, err := f.log.AppendAll(ctx, nil); err != nil || len(out) != 0 {
				t.Fatalf("nothing appended: %v %v", out, err)
			}
		})
	}
}
