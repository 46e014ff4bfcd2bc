package crypt

import (
	"crypto/hmac"
	"encoding/binary"
)

// Row tags: the rows that decide who may do what (sessions, accounts,
// assignments, declarations) and where a key belongs (a case's wrapped key,
// a material's header) are plain database rows, which a database
// administrator can insert, edit or move. A row tag is a MAC over the row's
// deciding columns under a key the database never holds (a vault key, itself
// wrapped to the master key), so such an edit is refused, not obeyed. A tag
// cannot tell an old genuine row put back from the current one: replays are
// for the audit trail to catch.

// RowTag is the MAC of a row of table whose deciding columns are fields, in
// a fixed order. Each field is length-prefixed, so no two lists of fields
// share a tag, and the table's name keeps a row from passing for another
// table's.
func (k *CaseKey) RowTag(table string, fields ...string) []byte {
	n := 0
	for _, f := range fields {
		n += 8 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return k.FieldMAC("row/"+table, b)
}

// CheckRowTag says whether tag is RowTag(table, fields...), in constant time.
func (k *CaseKey) CheckRowTag(tag []byte, table string, fields ...string) bool {
	return hmac.Equal(tag, k.RowTag(table, fields...))
}
