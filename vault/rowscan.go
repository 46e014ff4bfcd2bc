package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
)

// The lookups every audited read makes (the material, its case and the
// case's providers) are one hand-written query scanned into fixed targets.
// Through GORM they were two statements built per request and scanned by
// reflection: about 500 allocations per read, the largest share of a small
// read's CPU after the audit commit (issue 10). A material's column list
// must name every field of materialRow, and a case's fact columns only
// fields of caseRow; TestRowColumnsMatchModels holds both to the GORM
// schema, so a field added to materialRow cannot be left unread here.

// column names a column and the field it is scanned to.
func column(name string, dst any) sqldb.Column { return sqldb.Column{Name: name, Dst: dst} }

func (r *materialRow) columns() []sqldb.Column {
	return []sqldb.Column{
		column("id", &r.ID), column("case_id", &r.CaseID), column("kind", &r.Kind), column("filename", &r.Filename),
		column("filename_mac", &r.FilenameMAC), column("version", &r.Version), column("content_type", &r.ContentType), column("size", &r.Size),
		column("sha256", &r.SHA256), column("blob_id", &r.BlobID), column("header", &r.Header), column("uploaded_by", &r.UploadedBy),
		column("uploader_org", &r.UploaderOrg), column("uploaded_at", &r.UploadedAt), column("segments", &r.Segments),
		column("tag", &r.Tag),
	}
}

// selectList writes the columns qualified by alias.
func selectList(b *strings.Builder, alias string, cols []sqldb.Column) {
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias + "." + c.Name)
	}
}

// factColumns are the columns of a case that access decides on (factsOf):
// all an audited read needs of its case. Every column costs the SQLite
// driver allocations per row, so the read loads no more.
func (r *caseRow) factColumns() []sqldb.Column {
	return []sqldb.Column{column("id", &r.ID), column("operator_org", &r.OperatorOrg), column("status", &r.Status), column("origin", &r.Origin),
		column("shredded_at", &r.ShreddedAt), column("parties_tag", &r.PartiesTag), column("status_tag", &r.StatusTag)}
}

// materialQuery is the statement of materialWithCase for a dialect, built
// once.
func materialQuery(dialect string) string {
	var m materialRow
	var c caseRow
	var b strings.Builder
	b.WriteString("SELECT ")
	selectList(&b, "m", m.columns())
	b.WriteString(", ")
	selectList(&b, "c", c.factColumns())
	agg, ph := "group_concat(p.org_id, ',')", "?"
	if dialect == sqldb.Postgres {
		agg, ph = "string_agg(p.org_id, ',')", "$1"
	}
	b.WriteString(", (SELECT " + agg + " FROM case_providers p WHERE p.case_id = m.case_id)")
	// The number of the case's last event, which its status tag covers.
	b.WriteString(", (SELECT COALESCE(MAX(e.seq), 0) FROM case_events e WHERE e.case_id = m.case_id)")
	b.WriteString(" FROM materials m JOIN cases c ON c.id = m.case_id WHERE m.id = " + ph)
	return b.String()
}

// materialWithCase loads a material, the facts of its case (the case row
// holds only its factColumns), the case's providers and the number of its
// last event in one statement. A
// material is never stored without its case, so either both are found or
// gorm.ErrRecordNotFound is returned.
func (s *Service) materialWithCase(ctx context.Context, id string) (materialRow, caseWithProviders, error) {
	var m materialRow
	var c caseWithProviders
	mcols, ccols := m.columns(), c.Case.factColumns()
	dst := make([]any, 0, len(mcols)+len(ccols)+2)
	for _, col := range mcols {
		dst = append(dst, col.Dst)
	}
	for _, col := range ccols {
		dst = append(dst, col.Dst)
	}
	dst = append(dst, &c.ProviderIDs, &c.LastSeq)
	err := s.materialStmt.Lookup(ctx, dst, id)
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		err = fmt.Errorf("load material %s: %w", id, err)
	}
	return m, c, err
}
