package api

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/crvault/crvault/vault"
)

// TestRequestedRange: the Range and If-Range fields of a content read are
// taken as RFC 9110 §13.1.5 and §14 read them: malformed grammar is ignored
// (the whole document), positions past int64 still mean "past the end", a
// singleton field sent twice is ignored, and If-Range holds only for the
// exact validators this server sends.
func TestRequestedRange(t *testing.T) {
	const size = 20000
	uploaded := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC) // sub-second, as stored
	target := vault.RangeTarget{Size: size, SHA256: "490cdab3" + "00000000000000000000000000000000000000000000000000000000", UploadedAt: uploaded}
	etag := materialETag(target.SHA256)
	lastModified := uploaded.Format(http.TimeFormat)
	whole := func(start, n int64) *vault.Range { return &vault.Range{Start: start, Length: n} }
	const unsat = "416"
	cases := []struct {
		name   string
		header http.Header
		want   *vault.Range // nil: the whole document, 200
		err    string       // "416": unsatisfiable
	}{
		{"none", http.Header{}, nil, ""},
		{"first-last", http.Header{"Range": {"bytes=0-9"}}, whole(0, 10), ""},
		{"open-ended", http.Header{"Range": {"bytes=19990-"}}, whole(19990, 10), ""},
		{"suffix", http.Header{"Range": {"bytes=-10"}}, whole(19990, 10), ""},
		{"unit is case-insensitive", http.Header{"Range": {"BYTES=0-9"}}, whole(0, 10), ""},
		{"last past the end is clamped", http.Header{"Range": {"bytes=19999-20005"}}, whole(19999, 1), ""},
		{"signed first and last", http.Header{"Range": {"bytes=+0-+9"}}, nil, ""},
		{"signed suffix", http.Header{"Range": {"bytes=-+5"}}, nil, ""},
		{"negative suffix", http.Header{"Range": {"bytes=--5"}}, nil, ""},
		{"space inside", http.Header{"Range": {"bytes=0 -9"}}, nil, ""},
		{"hex", http.Header{"Range": {"bytes=0x10-20"}}, nil, ""},
		{"last overflows int64", http.Header{"Range": {"bytes=0-99999999999999999999"}}, whole(0, size), ""},
		{"suffix overflows int64", http.Header{"Range": {"bytes=-99999999999999999999"}}, whole(0, size), ""},
		{"suffix larger than the document", http.Header{"Range": {"bytes=-30000"}}, whole(0, size), ""},
		{"first overflows int64", http.Header{"Range": {"bytes=99999999999999999999-"}}, nil, unsat},
		{"first and last overflow int64", http.Header{"Range": {"bytes=99999999999999999999-99999999999999999999"}}, nil, unsat},
		{"first past the end", http.Header{"Range": {"bytes=20000-"}}, nil, unsat},
		{"empty suffix", http.Header{"Range": {"bytes=-0"}}, nil, unsat},
		{"last before first", http.Header{"Range": {"bytes=5-2"}}, nil, ""},
		{"overflowing first after last", http.Header{"Range": {"bytes=99999999999999999999-5"}}, nil, ""},
		{"two ranges in one field", http.Header{"Range": {"bytes=0-1,5-6"}}, nil, ""},
		{"two Range fields", http.Header{"Range": {"bytes=0-9", "bytes=10-19"}}, nil, ""},
		{"two Range fields, second unsatisfiable", http.Header{"Range": {"bytes=0-9", "bytes=99999-"}}, nil, ""},
		{"other unit", http.Header{"Range": {"items=0-1"}}, nil, ""},
		{"no set", http.Header{"Range": {"bytes="}}, nil, ""},
		{"If-Range with our ETag", http.Header{"Range": {"bytes=0-9"}, "If-Range": {etag}}, whole(0, 10), ""},
		{"If-Range with another ETag", http.Header{"Range": {"bytes=0-9"}, "If-Range": {`"someetag"`}}, nil, ""},
		{"If-Range with our ETag made weak", http.Header{"Range": {"bytes=0-9"}, "If-Range": {"W/" + etag}}, nil, ""},
		{"If-Range with Last-Modified", http.Header{"Range": {"bytes=0-9"}, "If-Range": {lastModified}}, whole(0, 10), ""},
		{"If-Range with an older date", http.Header{"Range": {"bytes=0-9"}, "If-Range": {"Mon, 01 Jan 2001 00:00:00 GMT"}}, nil, ""},
		{"If-Range with a later date", http.Header{"Range": {"bytes=0-9"}, "If-Range": {uploaded.Add(time.Second).Format(http.TimeFormat)}}, nil, ""},
		{"If-Range not a validator", http.Header{"Range": {"bytes=0-9"}, "If-Range": {"yesterday"}}, nil, ""},
		{"If-Range twice", http.Header{"Range": {"bytes=0-9"}, "If-Range": {etag, etag}}, nil, ""},
		{"If-Range failing on an unsatisfiable range", http.Header{"Range": {"bytes=99999-"}, "If-Range": {`"other"`}}, nil, ""},
		{"If-Range without Range", http.Header{"If-Range": {etag}}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := requestedRange(c.header, target)
			switch {
			case c.err == unsat:
				if !errors.Is(err, vault.ErrRange) {
					t.Fatalf("got %+v, %v; want unsatisfiable", got, err)
				}
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			case (got == nil) != (c.want == nil) || got != nil && *got != *c.want:
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
	t.Run("empty document", func(t *testing.T) {
		empty := target
		empty.Size = 0
		if _, err := requestedRange(http.Header{"Range": {"bytes=-99999999999999999999"}}, empty); !errors.Is(err, vault.ErrRange) {
			t.Fatalf("suffix of an empty document: %v, want unsatisfiable", err)
		}
	})
}
