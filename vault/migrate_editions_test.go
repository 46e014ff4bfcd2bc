package vault

import (
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"gorm.io/gorm"
)

// Migration 3 on a database that already holds cases: each submitted case
// records the edition its filing date falls under (2020 before 2022-02-15,
// 2021 from then on), a draft records none, and the cases still replay
// and read as before.
func TestMigrateEditionsBackfill(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2021, 6, 1, 2, 0, 0, 0, time.UTC), false)
			old := f.draft()
			f.submit(old)
			f.at("2022-02-14")
			eve := f.draft()
			f.submit(eve)
			f.at("2022-02-15")
			first := f.draft()
			f.submit(first)
			f.mustMove(first, "require_review", "", 0)
			draft := f.draft()

			// The schema as migration 2 left it: no edition column, no
			// registry, no proposals.
			db := f.svc.db
			m := db.Migrator()
			if err := m.DropTable(&memberUnitRow{}, &proposalRow{}); err != nil {
				t.Fatal(err)
			}
			if err := m.DropColumn(&caseRow{}, "Edition"); err != nil {
				t.Fatal(err)
			}
			if m.HasColumn(&caseRow{}, "Edition") {
				t.Fatal("edition column still there")
			}
			if err := db.Transaction(func(tx *gorm.DB) error { return migrateEditions(tx, d) }); err != nil {
				t.Fatalf("migration 3 on a populated database: %v", err)
			}
			want := map[string]string{old: "2020", eve: "2020", first: "2021", draft: ""}
			for id, ed := range want {
				var got string
				if err := db.Table("cases").Where("id = ?", id).Pluck("edition", &got).Error; err != nil {
					t.Fatal(err)
				}
				if got != ed {
					t.Errorf("case submitted %s: edition %q, want %q", id, got, ed)
				}
				c, err := f.svc.GetCase(f.ctx, f.op, id)
				if err != nil && strings.Contains(err.Error(), "cached plan must not change result type") {
					// PostgreSQL refuses statements this connection prepared
					// before the schema changed under the running service;
					// pgx drops them and the next call prepares afresh. A
					// real upgrade migrates before the service starts.
					c, err = f.svc.GetCase(f.ctx, f.op, id)
				}
				if err != nil || c.Edition != ed {
					t.Errorf("case %s after migration: %+v %v, want edition %q", id, c, err, ed)
				}
			}
			// The registry is back and usable.
			if _, err := f.svc.MemberUnits(f.ctx, f.office, 0, ""); err != nil {
				t.Fatalf("member units after migration: %v", err)
			}
		})
	}
}
