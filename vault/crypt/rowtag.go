package crypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"strconv"
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

// RowTagChecker makes and checks the tags of many rows of one table, one
// row at a time: its fields are appended (Field, FieldString, FieldInt),
// then Check or Tag ends the row. A start checks a million assignments,
// and RowTag's fresh HMAC, buffer and field strings per row made it more
// than twice as long; a RowTagChecker reuses one HMAC and one buffer and
// takes the fields as the database driver scanned them, so a row costs
// no allocation. Its tags are RowTag's, byte for byte.
//
// A RowTagChecker holds the row being built: it is not safe for
// concurrent use. Make one per goroutine.
type RowTagChecker struct {
	mac    hash.Hash
	msg    []byte // the MAC's label, a zero byte, then the row's fields
	prefix int    // len(msg) with no field
	sum    [sha256.Size]byte
}

// NewRowTagChecker returns a RowTagChecker for rows of table.
func (k *CaseKey) NewRowTagChecker(table string) *RowTagChecker {
	c := &RowTagChecker{mac: hmac.New(sha256.New, k.fields.mac), msg: make([]byte, 0, 512)}
	// As FieldMAC("row/"+table, fields) writes it.
	c.msg = append(c.msg, "row/"...)
	c.msg = append(c.msg, table...)
	c.msg = append(c.msg, 0)
	c.prefix = len(c.msg)
	return c
}

// Field appends a field to the row.
func (c *RowTagChecker) Field(b []byte) {
	c.msg = binary.BigEndian.AppendUint64(c.msg, uint64(len(b)))
	c.msg = append(c.msg, b...)
}

// FieldString appends a field to the row.
func (c *RowTagChecker) FieldString(s string) {
	c.msg = binary.BigEndian.AppendUint64(c.msg, uint64(len(s)))
	c.msg = append(c.msg, s...)
}

// FieldInt appends i to the row as the field strconv.FormatInt(i, 10).
func (c *RowTagChecker) FieldInt(i int64) {
	at := len(c.msg)
	c.msg = binary.BigEndian.AppendUint64(c.msg, 0)
	c.msg = strconv.AppendInt(c.msg, i, 10)
	binary.BigEndian.PutUint64(c.msg[at:], uint64(len(c.msg)-at-8))
}

// Reset drops the fields appended since the row began.
func (c *RowTagChecker) Reset() { c.msg = c.msg[:c.prefix] }

// Tag appends the row's tag to dst and ends the row.
func (c *RowTagChecker) Tag(dst []byte) []byte {
	c.mac.Reset()
	c.mac.Write(c.msg)
	c.Reset()
	return c.mac.Sum(dst)
}

// Check says whether tag is the row's tag, in constant time, and ends the
// row.
func (c *RowTagChecker) Check(tag []byte) bool {
	return hmac.Equal(tag, c.Tag(c.sum[:0]))
}
