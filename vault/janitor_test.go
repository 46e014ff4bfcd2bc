package vault

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/blob"
)

// TestCollectOrphans: only blobs that no owner references and that are older
// than the grace period go; materials and other owners' blobs stay readable.
func TestCollectOrphans(t *testing.T) {
	for _, dialect := range sqldbtest.Backends {
		t.Run(dialect, func(t *testing.T) {
			f := newWF(t, dialect, time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), false)
			ctx := context.Background()
			caseID := f.draft()
			for _, id := range []string{"orphan1", "svheld"} {
				if _, err := f.svc.blobs.Put(ctx, id, strings.NewReader("ciphertext"), -1); err != nil {
					t.Fatal(err)
				}
			}
			held := func(ctx context.Context, ids []string) ([]string, error) {
				var out []string
				for _, id := range ids {
					if id == "svheld" {
						out = append(out, id)
					}
				}
				return out, nil
			}
			// Within the grace period nothing is touched.
			if n, err := f.svc.CollectOrphans(ctx, time.Hour, held); err != nil || n != 0 {
				t.Fatalf("young blobs collected: %d, %v", n, err)
			}
			n, err := f.svc.CollectOrphans(ctx, -time.Minute, held)
			if err != nil || n != 1 {
				t.Fatalf("collected %d (%v), want exactly the orphan", n, err)
			}
			if _, err := f.svc.blobs.Open(ctx, "orphan1"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("orphan still there: %v", err)
			}
			if obj, err := f.svc.blobs.Open(ctx, "svheld"); err != nil {
				t.Fatalf("another owner's blob was taken: %v", err)
			} else {
				obj.Close()
			}
			list, err := f.svc.ListMaterials(ctx, f.op, caseID)
			if err != nil || len(list) != 3 {
				t.Fatalf("materials: %d, %v", len(list), err)
			}
			for _, m := range list {
				c, err := f.svc.OpenContent(ctx, f.op, m.ID, nil)
				if err != nil {
					t.Fatalf("material %s after collection: %v", m.ID, err)
				}
				b, err := io.ReadAll(c.Body)
				c.Close()
				if err != nil || string(b) != m.Kind+" document" {
					t.Fatalf("material %s reads %q, %v", m.ID, b, err)
				}
			}
		})
	}
}
