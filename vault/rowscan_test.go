package vault

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestRowColumnsMatchModels: every hand-written column is a column GORM
// maps the model to, scanned into that very field; a material's list names
// exactly materialRow's columns, each once, so a field added to it fails
// here until the fast lookup reads it too.
func TestRowColumnsMatchModels(t *testing.T) {
	var c caseRow
	sqldbtest.CheckColumns(t, &c, c.factColumns(), false)
	var m materialRow
	sqldbtest.CheckColumns(t, &m, m.columns(), true)
}

// TestMaterialWithCaseReadsWhatGORMReads: the one-statement lookup of an
// audited read returns the same material row as GORM, the case's facts and
// its providers; a missing material is gorm.ErrRecordNotFound. A shredded
// case reads as shredded.
func TestMaterialWithCaseReadsWhatGORMReads(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			caseID := f.draft()
			id := f.uploadID(f.op, caseID, "other", "letter")

			for _, org := range []string{"org-b", "org-a"} {
				if err := f.svc.db.Create(&caseProviderRow{CaseID: caseID, OrgID: org}).Error; err != nil {
					t.Fatal(err)
				}
			}
			f.retagParties(caseID)
			var wantM materialRow
			var wantC caseRow
			if err := f.svc.db.Where("id = ?", id).Take(&wantM).Error; err != nil {
				t.Fatal(err)
			}
			if err := f.svc.db.Where("id = ?", caseID).Take(&wantC).Error; err != nil {
				t.Fatal(err)
			}
			m, c, err := f.svc.materialWithCase(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, wantM) {
				t.Errorf("material\n got %+v\nwant %+v", m, wantM)
			}
			// The case holds its fact columns, as GORM reads them, and
			// nothing else.
			var wantFacts caseRow
			for i, col := range wantFacts.factColumns() {
				reflect.ValueOf(col.Dst).Elem().Set(reflect.ValueOf(wantC.factColumns()[i].Dst).Elem())
			}
			if !reflect.DeepEqual(c.Case, wantFacts) {
				t.Errorf("case\n got %+v\nwant %+v", c.Case, wantFacts)
			}
			if c.Case.ID != caseID || c.Case.OperatorOrg == "" || c.Case.Status != "draft" || c.Case.Origin == "" {
				t.Errorf("case facts not read: %+v", c.Case)
			}
			_, facts, providers, err := f.svc.factsOf(f.ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(providers, []string{"org-a", "org-b"}) || !slices.Equal(facts.ProviderOrgs, providers) || facts.OperatorOrg != wantC.OperatorOrg {
				t.Errorf("providers %v, facts %+v", providers, facts)
			}
			at := time.Date(2026, 3, 3, 10, 4, 5, 123456000, time.UTC)
			if err := f.svc.db.Model(&caseRow{}).Where("id = ?", caseID).Update("shredded_at", at).Error; err != nil {
				t.Fatal(err)
			}
			if _, c, err = f.svc.materialWithCase(f.ctx, id); err != nil || c.Case.ShreddedAt == nil || !c.Case.ShreddedAt.Equal(at) {
				t.Errorf("shredded case: %+v, %v", c.Case, err)
			}
			if _, _, err := f.svc.materialWithCase(f.ctx, "nosuchmaterial0000000000000000"); err != gorm.ErrRecordNotFound {
				t.Errorf("missing material: %v", err)
			}
		})
	}
}
