package vault

import (
	"errors"
	"strings"
	"testing"
)

// TestCleanText: what a browser's textarea sends (CRLF line breaks) is
// kept as text with "\n" line breaks, and so are the other line and page
// breaks of pasted text; controls that are not line breaks or
// tabs, from C0, DEL or C1, are refused with a problem naming the field.
func TestCleanText(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		max            int
		code           string
	}{
		{"textarea paragraphs", "First paragraph.\r\n\r\nSecond, 第二段。\r\n", "First paragraph.\n\nSecond, 第二段。", 100, ""},
		{"lone CR", "a\rb", "a\nb", 10, ""},
		{"CR CR LF", "a\r\r\nb", "a\n\nb", 10, ""},
		{"pasted breaks", "a\vb\fc\u0085d", "a\nb\nc\nd", 10, ""},
		{"bidi override dropped", "invoice\u202egpj.exe\u202c", "invoicegpj.exe", 20, ""},
		{"bidi isolates dropped, marks kept", "\u2067R\u2069\u200ex", "R\u200ex", 10, ""},
		{"LF and tab kept", "\ta\tb\nc ", "a\tb\nc", 10, ""},
		{"CRLF counts as one character", strings.Repeat("ab\r\n", 3) + "ab", "ab\nab\nab\nab", 11, ""},
		{"over the limit", "abcd", "", 3, "invalid_field"},
		{"only line breaks", "\r\n\r\n", "", 10, "missing_field"},
		{"NUL", "a\x00b", "", 10, "invalid_field"},
		{"escape", "red \x1b[31mtext", "", 20, "invalid_field"},
		{"DEL", "a\x7fb", "", 10, "invalid_field"},
		{"C1 CSI", "a\u009b31mb", "", 10, "invalid_field"},
		{"not UTF-8", "a\xffb", "", 10, "invalid_field"},
	} {
		got, err := CleanText("description", c.in, c.max, true)
		if c.code == "" {
			if err != nil || got != c.want {
				t.Errorf("%s: CleanText(%q) = %q, %v; want %q", c.name, c.in, got, err, c.want)
			}
			continue
		}
		var ve *Error
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || ve.Code != c.code || ve.Field != "description" {
			t.Errorf("%s: CleanText(%q) = %q, %v; want %s on description", c.name, c.in, got, err, c.code)
		}
	}
}
