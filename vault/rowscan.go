package vault

import (
	"context"
	"database/sql"
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

// column is a column name and where its value is scanned to.
type column struct {
	name string
	dst  any
}

func (r *materialRow) columns() []column {
	return []column{
		{"id", &r.ID}, {"case_id", &r.CaseID}, {"kind", &r.Kind}, {"filename", &r.Filename},
		{"filename_mac", &r.FilenameMAC}, {"version", &r.Version}, {"content_type", &r.ContentType}, {"size", &r.Size},
		{"sha256", &r.SHA256}, {"blob_id", &r.BlobID}, {"header", &r.Header}, {"uploaded_by", &r.UploadedBy},
		{"uploader_org", &r.UploaderOrg}, {"uploaded_at", &r.UploadedAt}, {"segments", &r.Segments},
	}
}

// selectList writes the columns qualified by alias.
func selectList(b *strings.Builder, alias string, cols []column) {
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias + "." + c.name)
	}
}

// factColumns are the columns of a case that access decides on (factsOf):
// all an audited read needs of its case. Every column costs the SQLite
// driver allocations per row, so the read loads no more.
func (r *caseRow) factColumns() []column {
	return []column{{"id", &r.ID}, {"operator_org", &r.OperatorOrg}, {"status", &r.Status}, {"origin", &r.Origin},
		{"shredded_at", &r.ShreddedAt}}
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
	b.WriteString(" FROM materials m JOIN cases c ON c.id = m.case_id WHERE m.id = " + ph)
	return b.String()
}

// materialWithCase loads a material, the facts of its case (the case row
// holds only its factColumns) and the case's providers in one statement. A
// material is never stored without its case, so either both are found or
// gorm.ErrRecordNotFound is returned.
func (s *Service) materialWithCase(ctx context.Context, id string) (materialRow, caseWithProviders, error) {
	var m materialRow
	var c caseWithProviders
	mcols, ccols := m.columns(), c.Case.factColumns()
	dst := make([]any, 0, len(mcols)+len(ccols)+1)
	for _, col := range mcols {
		dst = append(dst, col.dst)
	}
	for _, col := range ccols {
		dst = append(dst, col.dst)
	}
	dst = append(dst, &c.ProviderIDs)
	stmt, err := s.materialStmt(ctx)
	if err != nil {
		return m, c, fmt.Errorf("load material %s: %w", id, err)
	}
	if s.sqlite {
		// A lookup by primary key in the embedded database takes
		// microseconds, and cancelling it would save nothing; on a
		// cancellable context mattn/go-sqlite3 starts a goroutine per row to
		// watch it, and database/sql another per query, which cost more
		// than the lookup.
		ctx = context.WithoutCancel(ctx)
	}
	err = stmt.QueryRowContext(ctx, id).Scan(dst...)
	if errors.Is(err, sql.ErrNoRows) {
		return m, c, gorm.ErrRecordNotFound
	}
	if err != nil {
		return m, c, fmt.Errorf("load material %s: %w", id, err)
	}
	return m, c, nil
}

// materialStmt is materialWithCase's statement, prepared on first use and
// kept: database/sql prepares it once per connection, where a query by
// text is parsed and planned on every read (on SQLite, as much CPU as
// running it).
func (s *Service) materialStmt(ctx context.Context) (*sql.Stmt, error) {
	if st := s.materialPrep.Load(); st != nil {
		return st, nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	st, err := sqlDB.PrepareContext(ctx, s.materialSQL)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if !s.materialPrep.CompareAndSwap(nil, st) {
		st.Close()
		return s.materialPrep.Load(), nil
	}
	return st, nil
}
