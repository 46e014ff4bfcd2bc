package sqldb

import (
	"fmt"

	"gorm.io/gorm"
)

// ColumnToBytes makes a text column hold bytes (bytea on PostgreSQL), for a
// migration step that starts storing sealed values where plaintext was. Rows
// keep their value, as its UTF-8 bytes, so a later step can seal them. A
// default of the column is kept as the empty byte string. On SQLite, whose
// columns take any value, nothing changes: a []byte is stored as a BLOB in a
// text column and text reads back as its bytes. It does nothing when the
// column is bytes already (a database created by a binary that declares it
// so). table and column must be trusted identifiers.
func ColumnToBytes(tx *gorm.DB, dialect, table, column string) error {
	if dialect != Postgres {
		return nil
	}
	var info []struct {
		DataType      string
		ColumnDefault *string
	}
	if err := tx.Raw(`SELECT data_type, column_default FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?`, table, column).Scan(&info).Error; err != nil {
		return fmt.Errorf("inspect %s.%s: %w", table, column, err)
	}
	if len(info) != 1 {
		return fmt.Errorf("inspect %s.%s: column not found", table, column)
	}
	if info[0].DataType == "bytea" {
		return nil
	}
	stmts := []string{
		fmt.Sprintf(`ALTER TABLE %q ALTER COLUMN %q DROP DEFAULT`, table, column),
		fmt.Sprintf(`ALTER TABLE %q ALTER COLUMN %q TYPE bytea USING convert_to(%q, 'UTF8')`, table, column, column),
	}
	if info[0].ColumnDefault != nil {
		stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %q ALTER COLUMN %q SET DEFAULT ''::bytea`, table, column))
	}
	for _, q := range stmts {
		if err := tx.Exec(q).Error; err != nil {
			return fmt.Errorf("%s.%s to bytes: %w", table, column, err)
		}
	}
	return nil
}
