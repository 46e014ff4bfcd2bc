package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawHTTP sends bytes as they are, for framing errors a well-behaved client
// cannot produce, and returns the status line's code.
func rawHTTP(t *testing.T, s *server, request string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestBadInput sends malformed, incomplete and oversized requests; each must
// get a clear problem+json with a stable code, and nothing may be stored.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_MAX_UPLOAD_BYTES=1048576")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-BAD")
			var someID string
			for id := range docs {
				someID = id
			}
			countMaterials := func() int {
				var l struct {
					Items []any `json:"items"`
				}
				w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &l)
				return len(l.Items)
			}
			countCases := func() int {
				var l struct {
					Items []any `json:"items"`
				}
				w.op.expect(200, "GET", "/cases", nil).json(t, &l)
				return len(l.Items)
			}
			blobCount := func() int {
				entries, _ := os.ReadDir(filepath.Join(s.data, "blobs"))
				return len(entries)
			}
			materials0, cases0, blobs0 := countMaterials(), countCases(), blobCount()

			mp := func(parts ...string) (string, string) {
				return "multipart/form-data; boundary=XyZ", strings.Join(parts, "") + "--XyZ--\r\n"
			}
			field := func(name, value string) string {
				return fmt.Sprintf("--XyZ\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", name, value)
			}
			file := func(name, body string) string {
				return fmt.Sprintf("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\nContent-Type: text/plain\r\n\r\n%s\r\n", name, body)
			}
			big := strings.Repeat("x", 2<<20)

			type tc struct {
				name, method, path, ctype, body string
				status                          int
				code                            string
				header                          map[string]string
			}
			upload := "/cases/" + caseID + "/materials"
			cases := []tc{
				{"multipart without boundary", "POST", upload, "multipart/form-data", "junk", 400, "malformed_multipart", nil},
				{"multipart garbage", "POST", upload, "multipart/form-data; boundary=XyZ", "this is not multipart", 400, "malformed_multipart", nil},
				{"multipart file before kind", "POST", upload, "", "", 400, "malformed_multipart", nil},
				{"multipart kind only", "POST", upload, "", "", 400, "malformed_multipart", nil},
				{"multipart truncated file", "POST", upload, "multipart/form-data; boundary=XyZ", field("kind", "other") + "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nMARKER-BAD partial", 400, "malformed_body", nil},
				{"multipart unknown kind", "POST", upload, "", "", 422, "invalid_kind", nil},
				{"multipart oversized", "POST", upload, "", "", 413, "too_large", nil},
				{"raw unknown kind", "POST", upload + "?kind=bogus&filename=a.txt", "text/plain", "MARKER-BAD", 422, "invalid_kind", nil},
				{"raw missing kind", "POST", upload + "?filename=a.txt", "text/plain", "MARKER-BAD", 422, "invalid_kind", nil},
				{"raw missing filename", "POST", upload + "?kind=other", "text/plain", "MARKER-BAD", 422, "invalid_filename", nil},
				{"raw oversized", "POST", upload + "?kind=other&filename=big.txt", "text/plain", big, 413, "too_large", nil},
				{"raw bad content type", "POST", upload + "?kind=other&filename=a.txt", "not a/media;;type", "MARKER-BAD", 422, "invalid_content_type", nil},
				{"upload to unknown case", "POST", "/cases/nosuchcase/materials?kind=other&filename=a.txt", "text/plain", "MARKER-BAD", 404, "not_found", nil},
				{"unknown material", "GET", "/materials/nosuchmaterial", "", "", 404, "not_found", nil},
				{"unknown material content", "GET", "/materials/nosuchmaterial/content", "", "", 404, "not_found", nil},
				{"unsafe id", "GET", "/cases/bad%24id%3B%20drop", "", "", 404, "not_found", nil},
				{"dot-dot path", "GET", "/cases/..%2f..%2fetc", "", "", 404, "no_route", nil},
				{"range past the end", "GET", "/materials/" + someID + "/content", "", "", 416, "range_not_satisfiable", map[string]string{"Range": "bytes=99999999-"}},
				{"empty suffix range", "GET", "/materials/" + someID + "/content", "", "", 416, "range_not_satisfiable", map[string]string{"Range": "bytes=-0"}},
				{"json unknown field", "POST", "/cases", "application/json", `{"title":"t","product":"p","providers":[],"owner":"me"}`, 400, "unknown_field", nil},
				{"json wrong type", "POST", "/cases", "application/json", `{"title":42,"product":"p"}`, 400, "invalid_type", nil},
				{"json malformed", "POST", "/cases", "application/json", `{"title":`, 400, "invalid_json", nil},
				{"json empty", "POST", "/cases", "application/json", ``, 400, "invalid_json", nil},
				{"json trailing data", "POST", "/cases", "application/json", `{"title":"t","product":"p"} {}`, 400, "invalid_json", nil},
				{"json missing title", "POST", "/cases", "application/json", `{"product":"p"}`, 422, "missing_field", nil},
				{"unknown case type", "POST", "/cases", "application/json", `{"title":"t","product":"p","type":"bogus"}`, 422, "invalid_case_type", nil},
				{"json not json", "POST", "/cases", "text/plain", `title=t`, 415, "unsupported_media_type", nil},
				{"json patch media type", "POST", "/cases", "application/json-patch+json", `{"title":"t","product":"p"}`, 415, "unsupported_media_type", nil},
				{"json duplicate key", "POST", "/cases/" + caseID + "/declarations", "application/json", `{"conflict":true,"statement":"s","conflict":false}`, 400, "invalid_json", nil},
				{"json duplicate key in another case", "POST", "/cases/" + caseID + "/declarations", "application/json", `{"Conflict":true,"statement":"s","conflict":false}`, 400, "invalid_json", nil},
				{"json not utf-8", "POST", "/cases", "application/json", "{\"title\":\"t\xff\",\"product\":\"p\"}", 400, "invalid_json", nil},
				{"json null", "POST", "/cases", "application/json", `null`, 400, "invalid_json", nil},
				{"unknown provider", "POST", "/cases", "application/json", `{"title":"t","product":"p","providers":["nope"]}`, 422, "unknown_provider", nil},
				{"bad limit", "GET", "/cases?limit=0", "", "", 422, "invalid_limit", nil},
				{"huge limit", "GET", "/cases?limit=501", "", "", 422, "invalid_limit", nil},
				{"bad outcome filter", "GET", "/audit/events?outcome=maybe", "", "", 422, "invalid_field", nil},
				{"bad since filter", "GET", "/audit/events?since=yesterday", "", "", 422, "invalid_field", nil},
				{"assignment bad role", "POST", "/cases/" + caseID + "/assignments", "application/json", `{"user":"x","role":"king","purpose":"p"}`, 403, "forbidden", nil},
				{"declaration wrong type", "POST", "/cases/" + caseID + "/declarations", "application/json", `{"conflict":"no","statement":"s"}`, 400, "invalid_type", nil},
				{"no such route", "GET", "/nowhere", "", "", 404, "no_route", nil},
				{"trailing slash", "GET", "/cases/", "", "", 404, "no_route", nil},
				{"wrong method", "PUT", "/cases", "", "", 405, "method_not_allowed", nil},
			}
			cases[2].ctype, cases[2].body = mp(file("a.txt", "MARKER-BAD"), field("kind", "other"))
			cases[3].ctype, cases[3].body = mp(field("kind", "other"))
			cases[5].ctype, cases[5].body = mp(field("kind", "bogus"), file("a.txt", "MARKER-BAD"))
			cases[6].ctype, cases[6].body = mp(field("kind", "other"), file("big.txt", big))
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					h := map[string]string{}
					if c.ctype != "" {
						h["Content-Type"] = c.ctype
					}
					for k, v := range c.header {
						h[k] = v
					}
					var body io.Reader
					if c.body != "" {
						body = strings.NewReader(c.body)
					}
					r := s.do(t, w.op.token, c.method, c.path, body, h)
					if r.Status != c.status {
						t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
					}
					p := r.problem(t)
					if p["code"] != c.code {
						t.Fatalf("code %v, want %s: %s", p["code"], c.code, r.Body)
					}
					if bytes.Contains(r.Body, []byte("goroutine")) || bytes.Contains(r.Body, []byte("SELECT")) {
						t.Fatalf("internals leaked: %s", r.Body)
					}
				})
			}
			t.Run("range header on 416 names the size", func(t *testing.T) {
				r := s.do(t, w.op.token, "GET", "/materials/"+someID+"/content", nil, map[string]string{"Range": "bytes=99999999-"})
				if r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(docs[someID])) {
					t.Fatalf("Content-Range %q", r.Header.Get("Content-Range"))
				}
			})
			t.Run("body shorter than its Content-Length", func(t *testing.T) {
				status, body := rawHTTP(t, s, "POST /api/v1"+upload+"?kind=other&filename=short.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+w.op.token+
					"\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nMARKER-BAD only a little")
				if status != 400 || !strings.Contains(body, "content_length_mismatch") && !strings.Contains(body, "malformed_body") {
					t.Fatalf("status %d: %s", status, body)
				}
			})
			t.Run("declared length over the limit", func(t *testing.T) {
				status, body := rawHTTP(t, s, "POST /api/v1"+upload+"?kind=other&filename=big.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+w.op.token+
					"\r\nContent-Type: text/plain\r\nContent-Length: 5000000000\r\n\r\nMARKER-BAD")
				if status != 413 || !strings.Contains(body, "too_large") {
					t.Fatalf("status %d: %s", status, body)
				}
			})
			if got := countMaterials(); got != materials0 {
				t.Errorf("%d materials after bad input, %d before", got, materials0)
			}
			if got := countCases(); got != cases0 {
				t.Errorf("%d cases after bad input, %d before", got, cases0)
			}
			if be.name == "sqlite+local" {
				if got := blobCount(); got != blobs0 {
					t.Errorf("%d blob files after bad input, %d before", got, blobs0)
				}
			}
			s.stop()
			assertNoPlaintext(t, s, "MARKER-BAD")
		})
	}
}

// TestEveryRefusalAudited: requests refused on their form (a body that is
// not JSON, a wrong media type, a wrong field, an unknown route or method,
// a bad list limit) are in the audit log, as request.refused with the
// problem's code, and a refusal the service records itself (an unknown
// case) is there once, not twice.
func TestEveryRefusalAudited(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, _ := w.newCase(t, "refusals")
	// Submitted, so that the office sees it: on a case it cannot see, a
	// request refused on its form is the case's 404
	// (TestFormRefusalOnHiddenCase).
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	probes := []struct {
		method, path, ctype, body string
		status                    int
		code, action              string
	}{
		{"POST", "/cases/" + caseID + "/declarations", "application/json", `{`, 400, "invalid_json", "request.refused"},
		{"POST", "/cases/" + caseID + "/transitions", "text/plain", `x`, 415, "unsupported_media_type", "request.refused"},
		{"POST", "/cases", "application/json", `{"title":"t","product":"p","owner":"me"}`, 400, "unknown_field", "request.refused"},
		{"GET", "/cases?limit=0", "", "", 422, "invalid_limit", "request.refused"},
		// No route: the caller is not looked up, the address is kept.
		{"PUT", "/cases", "", "", 405, "method_not_allowed", "request.refused"},
		{"GET", "/casez", "", "", 404, "no_route", "request.refused"},
		{"GET", "/cases/nosuchcase", "", "", 404, "not_found", "case.read"},
	}
	// Asked of the inspector: a proof for a size beyond the log is
	// recorded as allowed when asked, then as refused.
	r := s.do(t, w.insp.token, "GET", "/audit/proofs/consistency?from=1&to=999999999", nil, map[string]string{"X-Request-ID": "refusal-proof"})
	if p := r.problem(t); r.Status != 422 || p["code"] != "invalid_tree_size" {
		t.Fatalf("proof beyond the log: %d %v", r.Status, p)
	}
	for i, p := range probes {
		id := fmt.Sprintf("refusal-probe-%d", i)
		h := map[string]string{"X-Request-ID": id}
		if p.ctype != "" {
			h["Content-Type"] = p.ctype
		}
		r := s.do(t, w.office.token, p.method, p.path, strings.NewReader(p.body), h)
		if got := r.problem(t); r.Status != p.status || got["code"] != p.code {
			t.Fatalf("%s %s: %d %v, want %d %s", p.method, p.path, r.Status, got["code"], p.status, p.code)
		}
	}
	byID := map[string][]event{}
	for _, e := range w.insp.events("outcome=denied") {
		byID[e.RequestID] = append(byID[e.RequestID], e)
	}
	if evs := byID["refusal-proof"]; len(evs) != 1 || evs[0].Action != "audit.proof" || evs[0].Detail != "invalid_tree_size" {
		t.Errorf("refused proof audited as %+v", evs)
	}
	for i, p := range probes {
		evs := byID[fmt.Sprintf("refusal-probe-%d", i)]
		actor := w.office.id
		if p.status == 405 || p.code == "no_route" {
			actor = ""
		}
		if len(evs) != 1 || evs[0].Action != p.action || evs[0].Actor != actor || evs[0].IP == "" {
			t.Errorf("%s %s: audited as %+v, want one %s by %q", p.method, p.path, evs, p.action, actor)
			continue
		}
		if p.action == "request.refused" && evs[0].Detail != p.code {
			t.Errorf("%s %s: detail %q, want %q", p.method, p.path, evs[0].Detail, p.code)
		}
	}
}
