package vault

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestDamagedMaterialHasItsOwnCode: a material whose stored blob was
// altered or lost outside crvault is refused with ErrDamaged and the code
// material_damaged (not a bare internal error), and the read is in the
// audit log as an error with that code; a restored blob reads again.
func TestDamagedMaterialHasItsOwnCode(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			id, path := f.letterOnDisk()
			if got := f.read(f.op, id); got != "letter document" {
				t.Fatalf("read %q", got)
			}
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			flipped := append([]byte(nil), orig...)
			flipped[len(flipped)/2] ^= 1
			for _, damage := range []struct {
				name  string
				apply func() error
			}{
				{"altered", func() error { return os.WriteFile(path, flipped, 0o600) }},
				{"lost", func() error { return os.Remove(path) }},
			} {
				if err := damage.apply(); err != nil {
					t.Fatal(err)
				}
				_, err := f.svc.OpenContent(f.ctx, f.op, id, nil)
				var ve *Error
				if !errors.Is(err, ErrDamaged) || !errors.As(err, &ve) || ve.Code != "material_damaged" {
					t.Fatalf("%s blob: %v, want material_damaged", damage.name, err)
				}
				evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "material.read", Outcome: audit.Errored, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) == 0 || evs[len(evs)-1].Resource != "material/"+id || evs[len(evs)-1].Detail != "material_damaged" {
					t.Fatalf("%s blob: audit errors %+v", damage.name, evs)
				}
			}
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := f.read(f.op, id); got != "letter document" {
				t.Fatalf("restored blob reads %q", got)
			}
		})
	}
}

// letterOnDisk uploads a letter to a new draft and returns the material's
// id and the path of its blob in the local store.
func (f *wfFixture) letterOnDisk() (id, path string) {
	f.t.Helper()
	id = f.uploadID(f.op, f.draft(), "other", "letter")
	var row materialRow
	if err := f.svc.db.Where("id = ?", id).Take(&row).Error; err != nil {
		f.t.Fatal(err)
	}
	return id, filepath.Join(f.blobDir, row.BlobID)
}
