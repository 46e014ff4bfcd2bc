package vault

import (
	"errors"
	"testing"
)

func TestSanitizeFilenameStripsFormatCharacters(t *testing.T) {
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"网络安全审查申报书.docx", "网络安全审查申报书.docx"},
		// Right-to-left override: displays as "invoiceexe.pdf".
		{"invoice\u202Efdp.exe", "invoicefdp.exe"},
		// Isolates, embeddings, marks.
		{"a\u2066b\u2067c\u2068d\u2069e\u202Af\u202Bg\u202Ch\u202Di\u200Ej\u200Fk\u061Cl", "abcdefghijkl"},
		// Zero-width space, joiner, non-joiner, word joiner, BOM, soft hyphen.
		{"con\u200Btr\u200Dact\u200C.\u2060p\uFEFFd\u00ADf", "contract.pdf"},
		// C0 and C1 controls, line and paragraph separators.
		{"a\x01b\x7fc\u0085d\u009be\u2028f\u2029g", "abcdefg"},
		{`C:\temp\..\x\"quoted".txt`, "quoted.txt"},
		{"  padded.txt\u200B ", "padded.txt"},
	}
	for _, tc := range tests {
		got, err := SanitizeFilename(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("SanitizeFilename(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"\u202E\u200B", "..", "", "\xff.txt"} {
		if got, err := SanitizeFilename(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("SanitizeFilename(%q) = %q, %v; want invalid", in, got, err)
		}
	}
}
