package sqldbtest

import (
	"reflect"
	"slices"
	"sync"
	"testing"

	"gorm.io/gorm/schema"

	"github.com/crvault/crvault/audit/sqldb"
)

// CheckColumns holds a hand-written column list to model's GORM schema:
// every column is one of the model's and scans into that very field of
// model (a pointer to the struct the columns were taken from); with all,
// the list also names every column of the model, so that a field added to
// it cannot be left unread.
func CheckColumns(t testing.TB, model any, cols []sqldb.Column, all bool) {
	t.Helper()
	sch, err := schema.Parse(model, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	base := reflect.ValueOf(model).Pointer()
	var got []string
	for _, c := range cols {
		got = append(got, c.Name)
		f := sch.LookUpField(c.Name)
		if f == nil {
			t.Errorf("%s: column %q is not in the model", sch.Table, c.Name)
			continue
		}
		if p := reflect.ValueOf(c.Dst).Pointer(); p != base+f.StructField.Offset {
			t.Errorf("%s: column %q scans into another field", sch.Table, c.Name)
		}
	}
	want := slices.Clone(sch.DBNames)
	slices.Sort(got)
	slices.Sort(want)
	if all && !slices.Equal(got, want) {
		t.Errorf("%s: columns %v, model has %v", sch.Table, got, want)
	}
}
