package audit

import (
	"context"
	"errors"
	"testing"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// A verification that cannot read the log has found nothing: its error is
// not a *VerifyError, which callers (the CLI's "damaged", the web page's
// "verification failed") take for evidence of tampering (review h28h).
func TestVerifyThatCannotReadIsNotDamage(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newFixture(t, d)
			f.appendN(t, 5)
			// Cut as the walk starts: the first queries after the count
			// (the stray events' check among them) fail.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := f.log.VerifyProgress(ctx, func(checked, total int64) {
				if checked == 0 {
					cancel()
				}
			})
			var verr *VerifyError
			if err == nil || errors.As(err, &verr) {
				t.Fatalf("verify on a cancelled context: %v (a *VerifyError: %v), want a plain error", err, errors.As(err, &verr))
			}
			if _, err := f.log.Verify(context.Background()); err != nil {
				t.Fatalf("the log itself verifies: %v", err)
			}
		})
	}
}
