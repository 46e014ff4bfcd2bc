package supervision

// Confidential text at rest: complaints' descriptions and notes, providers'
// commitments and the operators' urgings, reports' descriptions, outcomes,
// messages and attachment filenames are stored sealed with the supervision
// key (crypt.CaseKey.SealField), each bound to its table, column and row. The
// database holds none of them in plaintext, so none can be searched in SQL:
// lists select by ids, statuses and organisations and open each row after
// deciding the caller may see it.

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/crypt"
)

// sealedColumns are the columns holding sealed text.
var sealedColumns = []struct{ table, column string }{
	{"supervision_complaints", "description"},
	{"supervision_complaint_changes", "note"},
	{"supervision_commitments", "text"},
	{"supervision_commitments", "status_note"},
	{"supervision_commitment_urges", "note"},
	{"supervision_reports", "description"},
	{"supervision_reports", "outcome"},
	{"supervision_report_messages", "text"},
	{"supervision_report_attachments", "filename"},
}

func label(table, column, row string) string { return table + "." + column + "/" + row }

// changeRow names a complaint change for its label: its id is the
// database's, unknown before the insert, but a complaint takes each status
// once.
func changeRow(complaintID, status string) string { return complaintID + "/" + status }

// seal seals v for label under the supervision key; the empty string stays
// empty.
func (s *Service) seal(ctx context.Context, label, v string) ([]byte, error) {
	if v == "" {
		return []byte{}, nil
	}
	key, err := s.supervisionKey(ctx)
	if err != nil {
		return nil, err
	}
	b, err := key.SealField(label, []byte(v))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", label, err)
	}
	return b, nil
}

// open opens what seal sealed.
func (s *Service) open(ctx context.Context, label string, b []byte) (string, error) {
	if len(b) == 0 {
		return "", nil
	}
	key, err := s.supervisionKey(ctx)
	if err != nil {
		return "", err
	}
	p, err := key.OpenField(label, b)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", label, err)
	}
	return string(p), nil
}

// SealLegacy seals the texts that binaries older than sealing wrote in
// plaintext, once per database (component "supervision_sealed"); cmd/vaultd
// runs it before serving. Values already sealed are left alone.
func (s *Service) SealLegacy(ctx context.Context) error {
	// The key is made, if need be, before the migration's transaction,
	// which on SQLite holds the only write lock.
	if _, err := s.supervisionKey(ctx); err != nil {
		return err
	}
	return sqldb.Migrate(ctx, s.db, "supervision_sealed", []sqldb.Step{{Version: 1, Name: "seal supervision texts written in plaintext",
		Up: func(tx *gorm.DB, _ string) error {
			for _, c := range sealedColumns {
				if err := s.sealLegacyColumn(ctx, tx, c.table, c.column); err != nil {
					return fmt.Errorf("seal %s.%s: %w", c.table, c.column, err)
				}
			}
			return nil
		}}})
}

func (s *Service) sealLegacyColumn(ctx context.Context, tx *gorm.DB, table, column string) error {
	// Complaint changes are labelled by complaint and status, every other
	// row by its id.
	rowOf := func(r map[string]any) string { return fmt.Sprint(r["id"]) }
	keyCols := "id"
	if table == "supervision_complaint_changes" {
		keyCols = "id, complaint_id, status"
		rowOf = func(r map[string]any) string {
			return changeRow(fmt.Sprint(r["complaint_id"]), fmt.Sprint(r["status"]))
		}
	}
	var rows []map[string]any
	if err := tx.Table(table).Select(keyCols + ", " + column).Find(&rows).Error; err != nil {
		return err
	}
	for _, r := range rows {
		var v []byte
		switch x := r[column].(type) {
		case []byte:
			v = x
		case string:
			v = []byte(x)
		}
		if len(v) == 0 || crypt.IsSealedField(v) {
			continue
		}
		sealed, err := s.seal(ctx, label(table, column, rowOf(r)), string(v))
		if err != nil {
			return err
		}
		if err := tx.Table(table).Where("id = ?", r["id"]).Update(column, sealed).Error; err != nil {
			return err
		}
	}
	return nil
}
