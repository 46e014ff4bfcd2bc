package sqldb_test

import (
	"testing"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestWhereText: on both backends, a value that is not Storable matches
// nothing and raises no error (PostgreSQL refuses it as a parameter), and a
// Storable one binds every placeholder.
func TestWhereText(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			db := sqldbtest.Open(t, d)
			if err := db.Exec("CREATE TABLE texts (a TEXT, b TEXT)").Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Exec("INSERT INTO texts VALUES ('x', 'y'), ('y', 'z'), ('q', 'q')").Error; err != nil {
				t.Fatal(err)
			}
			for v, want := range map[string]int64{"y": 2, "q": 1, "nothing": 0, "y\x00": 0, "\xff": 0, "\xc3": 0} {
				var n int64
				err := sqldb.WhereText(db.Table("texts"), "a = ? OR b = ?", v).Count(&n).Error
				if err != nil || n != want {
					t.Errorf("%q: %d rows, %v; want %d", v, n, err, want)
				}
			}
			if sqldb.Storable("a\x00") || sqldb.Storable("\xff") || !sqldb.Storable("中文") || !sqldb.Storable("") {
				t.Error("Storable misjudges")
			}
		})
	}
}
