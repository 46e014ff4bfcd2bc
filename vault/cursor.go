package vault

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Cursors of the lists (API.md "Conventions": ?limit= and ?cursor=, answer
// {items, next_cursor}). A cursor is the sort key of the last item of a
// page, tagged with the list it belongs to, base64url-encoded so clients
// treat it as opaque. It carries no authority: every page re-applies the
// caller's visibility in the query (or in the filter that follows it), so a
// forged cursor only moves where a page starts among the rows the caller
// may see. What it must not do is reach the database unchecked or answer
// a 500: decodeCursor parses it strictly and every key is validated by the
// list that reads it; anything else is invalid_cursor.
const cursorVersion = "c1"

// maxCursor bounds a cursor's encoded length (api/server.go refuses longer).
const maxCursor = 256

func encodeCursor(list string, keys ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + "|" + list + "|" + strings.Join(keys, "|")))
}

// decodeCursor returns the n keys of a cursor of list; "" gives nil keys.
func decodeCursor(list, cursor string, n int) ([]string, error) {
	if cursor == "" {
		return nil, nil
	}
	if len(cursor) > maxCursor {
		return nil, errInvalidCursor()
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, errInvalidCursor()
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != n+2 || parts[0] != cursorVersion || parts[1] != list {
		return nil, errInvalidCursor()
	}
	for _, k := range parts[2:] {
		if k == "" {
			return nil, errInvalidCursor()
		}
	}
	return parts[2:], nil
}

// decodeIDCursor decodes a cursor whose one key is an id.
func decodeIDCursor(list, cursor string) (string, error) {
	keys, err := decodeCursor(list, cursor, 1)
	if err != nil || keys == nil {
		return "", err
	}
	if !validID(keys[0]) {
		return "", errInvalidCursor()
	}
	return keys[0], nil
}

// decodeSeqCursor decodes a cursor whose one key is a positive sequence
// number.
func decodeSeqCursor(list, cursor string) (int, error) {
	keys, err := decodeCursor(list, cursor, 1)
	if err != nil || keys == nil {
		return 0, err
	}
	n, err := strconv.Atoi(keys[0])
	if err != nil || n < 1 || strconv.Itoa(n) != keys[0] {
		return 0, errInvalidCursor()
	}
	return n, nil
}

// idPage cuts rows read in id order with a limit of limit+1 to a page,
// with the cursor of the next page if there is one.
func idPage[R any](list string, rows []R, limit int, id func(R) string) ([]R, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, encodeCursor(list, id(rows[limit-1]))
}

func errInvalidCursor() *Error {
	return invalid("cursor", "invalid_cursor", "cursor is not one this server issued")
}

// pageLimit applies the contract's default and maximum to a page size.
func pageLimit(limit int) int {
	switch {
	case limit <= 0:
		return 50
	case limit > 500:
		return 500
	}
	return limit
}
