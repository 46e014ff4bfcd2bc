package sqldb

import (
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Storable reports whether s is text every backend can hold in a text
// column: valid UTF-8 without NUL. SQLite takes anything; PostgreSQL refuses
// a parameter that is not, failing the statement.
func Storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// WhereText adds cond, each of its placeholders bound to v, to q; for a v
// that is not Storable, and so equals no stored value, it adds a condition
// nothing meets instead of sending PostgreSQL a parameter it would refuse.
func WhereText(q *gorm.DB, cond, v string) *gorm.DB {
	if !Storable(v) {
		return q.Where("1 = 0")
	}
	args := make([]any, strings.Count(cond, "?"))
	for i := range args {
		args[i] = v
	}
	return q.Where(cond, args...)
}
