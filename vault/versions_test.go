package vault

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// atOnce calls fn n times from n goroutines released together, and fails
// the test on any error.
func atOnce[T any](t *testing.T, n int, fn func() (T, error)) []T {
	t.Helper()
	start := make(chan struct{})
	got := make([]T, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d of %d: %v", i, n, err)
		}
	}
	return got
}

// Uploads of one name that finish together all succeed, each its own
// version: a lost race on the version number is retried, never a 500
// after the whole transfer.
func TestConcurrentUploadsOfOneNameAllGetAVersion(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			const n = 16
			versions := atOnce(t, n, func() (int, error) {
				m, err := f.svc.Upload(f.ctx, f.op, caseID, Upload{Kind: "other", Filename: "same.txt", ContentType: "text/plain",
					Body: strings.NewReader("same"), Size: 4})
				return m.Version, err
			})
			slices.Sort(versions)
			for i, v := range versions {
				if v != i+1 {
					t.Fatalf("versions %v, want 1 to %d", versions, n)
				}
			}
		})
	}
}

// People first seen on a case at the same moment each get their own
// pseudonym: lost races on the unique index are retried, not an error.
func TestConcurrentFirstPseudonymsAllSucceed(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			const n = 16
			got := atOnce(t, n, func() (string, error) { return f.svc.pseudonym(f.ctx, caseID, f.op.P.User.OrgID, NewID(), "R") })
			slices.Sort(got)
			if len(slices.Compact(slices.Clone(got))) != n {
				t.Fatalf("pseudonyms %v are not all different", got)
			}
		})
	}
}
