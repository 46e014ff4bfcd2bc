package main

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
)

// TestContentRanges: over real HTTP, a content read carries a strong ETag
// made from its SHA-256, If-Range is honoured against it and against
// Last-Modified, a Range field sent twice is ignored, positions past int64
// mean what they say, and each outcome is in the audit log as the read (or
// the refused read) it was. The parsing itself is api's TestRequestedRange;
// it does not depend on the backend, so one is enough here.
func TestContentRanges(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	_, docs := w.newCase(t, "MARKER-RANGE")
	var id string
	for k := range docs {
		id = k
	}
	doc := docs[id]
	size := len(doc)
	path := "/materials/" + id + "/content"

	full := s.do(t, w.op.token, "GET", path, nil, nil)
	if full.Status != 200 {
		t.Fatalf("whole read: %d %s", full.Status, full.Body)
	}
	etag := full.Header.Get("ETag")
	if want := `"sha256-` + full.Header.Get("X-Content-SHA256") + `"`; etag != want {
		t.Fatalf("ETag %q, want %q", etag, want)
	}
	lastModified := full.Header.Get("Last-Modified")

	type want struct {
		status int
		body   []byte
	}
	cases := []struct {
		name   string
		header http.Header
		want   want
		audit  string // the material.read event's outcome and resource suffix
	}{
		{"If-Range with the ETag", http.Header{"Range": {"bytes=0-9"}, "If-Range": {etag}}, want{206, doc[:10]}, "allowed bytes=0-9"},
		{"If-Range with Last-Modified", http.Header{"Range": {"bytes=0-9"}, "If-Range": {lastModified}}, want{206, doc[:10]}, "allowed bytes=0-9"},
		{"If-Range with another ETag", http.Header{"Range": {"bytes=0-9"}, "If-Range": {`"someetag"`}}, want{200, doc}, "allowed"},
		{"If-Range with an older date", http.Header{"Range": {"bytes=0-9"}, "If-Range": {"Mon, 01 Jan 2001 00:00:00 GMT"}}, want{200, doc}, "allowed"},
		{"two Range fields", http.Header{"Range": {"bytes=0-9", "bytes=10-19"}}, want{200, doc}, "allowed"},
		{"signed positions", http.Header{"Range": {"bytes=+0-+9"}}, want{200, doc}, "allowed"},
		{"last past int64", http.Header{"Range": {"bytes=0-99999999999999999999"}}, want{206, doc}, fmt.Sprintf("allowed bytes=0-%d", size-1)},
		{"suffix past int64", http.Header{"Range": {"bytes=-99999999999999999999"}}, want{206, doc}, fmt.Sprintf("allowed bytes=0-%d", size-1)},
		{"first past int64", http.Header{"Range": {"bytes=99999999999999999999-"}}, want{416, nil}, "denied"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reqID := fmt.Sprintf("ranges-%d", i)
			req, err := http.NewRequest("GET", s.base+"/api/v1"+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = c.header.Clone()
			req.Header.Set("Authorization", "Bearer "+w.op.token)
			req.Header.Set("X-Request-ID", reqID)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != c.want.status {
				t.Fatalf("status %d, want %d: %.200s", res.StatusCode, c.want.status, body.Bytes())
			}
			switch res.StatusCode {
			case 206:
				if !bytes.Equal(body.Bytes(), c.want.body) || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-%d/%d", len(c.want.body)-1, size) {
					t.Fatalf("206 with %d bytes, Content-Range %q", body.Len(), res.Header.Get("Content-Range"))
				}
			case 200:
				if !bytes.Equal(body.Bytes(), doc) || res.Header.Get("ETag") != etag {
					t.Fatalf("200 with %d bytes of %d, ETag %q", body.Len(), size, res.Header.Get("ETag"))
				}
			case 416:
				if res.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
					t.Fatalf("416 with Content-Range %q", res.Header.Get("Content-Range"))
				}
			}
			evs := w.insp.events("action=material.read")
			e := find(evs, func(e event) bool { return e.RequestID == reqID })
			if e == nil {
				t.Fatalf("no material.read event for request %s", reqID)
			}
			got := e.Outcome
			if suffix := e.Resource[len("material/"+id):]; suffix != "" {
				got += suffix
			}
			if got != c.audit {
				t.Fatalf("audited as %q (%s), want %q", got, e.Resource, c.audit)
			}
		})
	}
}
