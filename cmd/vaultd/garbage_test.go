package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestEveryOperationAnswersGarbage sends every operation the served OpenAPI
// document lists malformed identifiers, queries and bodies, as every role,
// anonymously and with a forged token. Whatever the request, the answer is
// never a server error, every error is problem+json with a code and one of
// the statuses the document gives for that operation, and the server never
// panics: the contract's promise about bad input, held to every route rather
// than to the hand-picked cases of TestBadInput.
func TestEveryOperationAnswersGarbage(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		// PostgreSQL refuses what SQLite stores (a NUL, invalid UTF-8):
		// that must be a 4xx too.
		sum := &garbageTally{}
		t.Cleanup(func() {
			if sum.partial() {
				return
			}
			t.Logf("%s: %d operations, answers by status: %v", be.name, sum.routes, sum.statuses)
			if sum.statuses[200] == 0 || sum.statuses[201] == 0 || sum.statuses[400] == 0 || sum.statuses[422] == 0 || sum.routes < 70 {
				t.Errorf("%s: the garbage never got past authentication or parsing: %v", be.name, sum.statuses)
			}
		})
		for shard := range garbageShards {
			t.Run(be.name+"/"+strconv.Itoa(shard), func(t *testing.T) {
				t.Parallel()
				sum.add(answersGarbage(t, be, shard))
			})
		}
	}
}

// garbageShards is how many servers share a garbage test's operations (or
// pages) on each backend, each sending its share one request after another.
// On one server the tests were the last of ./cmd/vaultd to end, by minutes:
// tens of thousands of requests, each waiting on the one before. Every
// operation still gets all of the garbage, on a server of its own shard's.
// The shards are the test's own subtests, not grouped under one per
// backend: a parallel subtest waits for a free slot only once its parent
// runs, and every level more put the shards further back in that queue.
const garbageShards = 3

// inShard spreads items over the shards: item i of a list goes to shard
// i % garbageShards.
func inShard(i, shard int) bool { return i%garbageShards == shard }

// garbageTally adds up what the shards of one garbage test saw, for the
// checks that the garbage got anywhere at all.
type garbageTally struct {
	mu       sync.Mutex
	statuses map[int]int
	routes   int // operations or pages in the whole document, as each shard counted
	shards   int // shards that reported
}

func (g *garbageTally) add(statuses map[int]int, routes int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.statuses == nil {
		g.statuses = map[int]int{}
	}
	for k, v := range statuses {
		g.statuses[k] += v
	}
	g.routes = routes
	g.shards++
}

// partial is whether some shard did not report: filtered out by -run, or
// failed (and said so itself). The sum then proves nothing either way.
func (g *garbageTally) partial() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shards < garbageShards
}

// garbageServer starts vaultd on be for a garbage test, with a case whose
// documents hold marker, and returns one of its materials.
func garbageServer(t *testing.T, be backend, marker string) (s *server, w *world, caseID, materialID string) {
	// The garbage comes fast from one address, anonymous included: lift
	// the cap meant for abuse, or most answers would be 429.
	s = newServer(t, be, "VAULT_MAX_UPLOAD_BYTES=1048576", "VAULT_ANONYMOUS_RATE=100000000")
	w = bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, marker)
	for id := range docs {
		materialID = id
	}
	return s, w, caseID, materialID
}

// garbageVerdict stops the server and reports what the garbage found: the
// failures (at most 60), a panic in vaultd's log, the marker on disk.
func garbageVerdict(t *testing.T, s *server, failures []string, marker string) {
	s.stop()
	if strings.Contains(s.log.String(), "panic") {
		t.Errorf("vaultd logged a panic:\n%s", tail(s.log.String(), 4000))
	}
	sort.Strings(failures)
	for i, f := range failures {
		if i == 60 {
			t.Errorf("... and %d more", len(failures)-60)
			break
		}
		t.Error(f)
	}
	assertNoPlaintext(t, s, marker)
}

// answersGarbage sends the operations of its shard their garbage, and
// returns the answers by status and how many operations the document has.
func answersGarbage(t *testing.T, be backend, shard int) (map[int]int, int) {
	s, w, caseID, materialID := garbageServer(t, be, "MARKER-GARBAGE")

	served := s.do(t, "", "GET", "/openapi.yaml", nil, nil)
	var doc struct {
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			Schemas map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if served.Status != 200 {
		t.Fatalf("openapi.yaml: %d", served.Status)
	}
	if err := yaml.Unmarshal(served.Body, &doc); err != nil {
		t.Fatal(err)
	}

	type op struct {
		method, path string
		documented   []int
		nul          string // a body of the operation's own schema, every text member holding a NUL
	}
	var ops []op
	for path, item := range doc.Paths {
		api, ok := strings.CutPrefix(path, "/api/v1")
		if !ok {
			continue
		}
		for method, o := range item {
			if !slices.Contains([]string{"get", "post", "put", "patch", "delete"}, method) {
				continue
			}
			om, _ := o.(map[string]any)
			responses, _ := om["responses"].(map[string]any)
			var codes []int
			for c := range responses {
				var n int
				fmt.Sscan(c, &n)
				codes = append(codes, n)
			}
			ops = append(ops, op{strings.ToUpper(method), api, codes, nulBody(doc.Components.Schemas, om)})
		}
	}
	// Operations that end a session or an account go last, so that the
	// tokens the others use still work.
	last := func(o op) bool {
		return o.method == "DELETE" && o.path == "/sessions/current" || strings.HasSuffix(o.path, "/disable") || o.path == "/me/password"
	}
	sort.Slice(ops, func(i, j int) bool {
		if last(ops[i]) != last(ops[j]) {
			return !last(ops[i])
		}
		return ops[i].method+ops[i].path < ops[j].method+ops[j].path
	})
	all := len(ops)
	// This shard's share, in the same order; the last ones all go to the
	// last shard, after its share.
	var mine []op
	n := 0
	for _, o := range ops {
		switch {
		case last(o):
			if shard == garbageShards-1 {
				mine = append(mine, o)
			}
		default:
			if inShard(n, shard) {
				mine = append(mine, o)
			}
			n++
		}
	}
	ops = mine

	param := regexp.MustCompile(`\{([a-z]+)\}`)
	ids := []string{"nosuch", strings.Repeat("a", 3000), "%00", "%FF%FE", "%E4%B8%AD%E6%96%87"}
	queries := []string{"", "?limit=-1", "?limit=abc&cursor=%25%25", "?cursor=" + strings.Repeat("z", 2000), "?since=notatime&until=2026-13-45&case=%00&actor=x&action=&outcome=maybe",
		"?date=2026-02-30&n=-5&from=x&days=1e9", "?case=%FF&actor=%FF%00&provider=%FF&status=%FF&kind=%FF&org=%00&user=%FF&q=%00%FF", "?kind=%00&filename=" + strings.Repeat("%2F", 300),
		"?kind=other&filename=a%00b.txt", "?kind=other&filename=%FF.txt&item=%FF&classified=%00", "?state=%FF&code=%00&error=%FF&format=%00"}
	deep := strings.Repeat("[", 20000)
	bodies := []struct{ ctype, body string }{
		{"", ""},
		{"application/json", "{"},
		{"application/json", "null"},
		{"application/json", "[]"},
		{"application/json", `{"a":1}`},
		{"application/json", deep},
		{"application/json", `{"title":1,"status":[],"to":{},"reason":null,"user":true,"role":7,"purpose":[],"decision":{},"text":9,"id":[],"password":1,"code":{},"name":[]}`},
		{"application/json", "\x00\xff\xfe"},
		{"application/json", `{"title":"a\u0000b","product":"\u0000","reason":"\u0000","purpose":"\u0000","text":"\u0000","name":"\u0000","user":"\u0000","status":"\u0000"}`},
		{"text/plain", "hello"},
		{"multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nMARKER-GARBAGE"},
		{"multipart/form-data; boundary=X", multipartFile("a\x00b.txt", "text/plain")},
		{"multipart/form-data; boundary=X", multipartFile("\xff\xfe.txt", "text/plain")},
		{"multipart/form-data; boundary=X", multipartFile("a.txt", "text/\xff; charset=\x00")},
		{"application/x-www-form-urlencoded", "a=%ZZ"},
		{"application/json", `{"title":"` + strings.Repeat("长", 1<<20) + `"}`},
	}
	// The parties, the office, the inspectorate and the administrator reach
	// different handlers; a forged token fares as no token, tested once.
	tokens := []string{w.op.token, w.rev1.token, w.insp.token, w.office.token, w.admin.token, ""}

	// One failure per operation, status and code: the first example says
	// enough.
	seen := map[string]bool{}
	var failures []string
	var cur op
	statuses := map[int]int{}
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		key := cur.method + " " + cur.path + " " + regexp.MustCompile(`: [0-9]+ [a-z_]*`).FindString(msg)
		if !seen[key] {
			seen[key] = true
			failures = append(failures, msg)
		}
	}
	var header map[string]string // extra headers for the next sends
	send := func(o op, token, path, ctype, body string) {
		req, err := http.NewRequest(o.method, s.base+"/api/v1"+path, strings.NewReader(body))
		if err != nil {
			return // a path no client could send
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fail("%s %s: %v", o.method, path, err)
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		short := path
		if len(short) > 80 {
			short = short[:80] + "..."
		}
		where := fmt.Sprintf("%s %s (%s, %.20q)", o.method, short, ctype, body)
		statuses[res.StatusCode]++
		if res.StatusCode >= 500 {
			fail("%s: %d %s", where, res.StatusCode, b)
			return
		}
		if res.StatusCode < 400 {
			return
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			fail("%s: %d with content type %q: %.200s", where, res.StatusCode, ct, b)
			return
		}
		var p struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(b, &p) != nil || p.Code == "" {
			fail("%s: %d problem without a code: %.200s", where, res.StatusCode, b)
		}
		// 404 no_route and 405 are the router's, for paths the garbage
		// made unroutable.
		if !slices.Contains(o.documented, res.StatusCode) && p.Code != "no_route" && res.StatusCode != 405 {
			fail("%s: %d %s is not among the documented %v", where, res.StatusCode, p.Code, o.documented)
		}
	}
	// A resumable upload of the case, for the routes under /uploads.
	var upload struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/cases/"+caseID+"/uploads", map[string]any{"kind": "other", "filename": "garbage.bin", "size": 1 << 20}).json(t, &upload)
	real := map[string]string{"case": caseID, "id": materialID, "aid": materialID}
	realPath := func(path string) string {
		if strings.HasPrefix(path, "/uploads/") {
			return strings.Replace(path, "{id}", upload.ID, 1)
		}
		return param.ReplaceAllStringFunc(path, func(m string) string { return real[m[1:len(m)-1]] })
	}
	// The headers the handlers read, malformed, on every operation's real
	// path.
	headers := []map[string]string{
		{"Range": "bytes=abc"}, {"Range": "bytes=5-1"}, {"Range": "bytes=-99999999999999999999"}, {"Range": "items=0-1"},
		{"Range": "bytes=" + strings.Repeat("0-0,", 2000) + "0-0"},
		{"Upload-Offset": "-1", "Upload-Length": "-5"}, {"Upload-Offset": "99999999999999999999"}, {"Upload-Offset": "0", "Upload-Length": "1e9"},
		{"Upload-Offset": "1048577", "Upload-Length": "1"},
		{"X-Receipt": "\xff\xfe"}, {"X-Receipt": strings.Repeat("r", 10000)}, {"X-Request-ID": strings.Repeat("q", 10000)}, {"X-Request-ID": "a\xffb"},
		{"Accept": "\xff/\xfe;q=x"}, {"X-Forwarded-Proto": "\xff"},
	}
	for _, o := range ops {
		if last(o) {
			continue // they would end the sessions the rest uses
		}
		cur = o
		for _, h := range headers {
			header = h
			for _, token := range []string{w.op.token, w.insp.token} {
				send(o, token, realPath(o.path), "application/offset+octet-stream", "MARKER-GARBAGE chunk")
			}
		}
		header = nil
	}
	for _, o := range ops {
		if o.method == "GET" && o.path == "/me" {
			cur = o
			send(o, "forged-token-"+strings.Repeat("x", 40), "/me", "", "")
		}
		cur = o
		paths := []string{realPath(o.path)}
		for _, id := range ids {
			paths = append(paths, param.ReplaceAllString(o.path, id))
		}
		for ti, token := range tokens {
			for pi, path := range paths {
				q := queries[(ti+pi)%len(queries)]
				if pi == 0 {
					for _, q := range queries {
						send(o, token, path+q, "", "")
					}
				}
				if o.method == "GET" || o.method == "DELETE" {
					send(o, token, path+q, "", "")
					continue
				}
				if o.nul != "" {
					send(o, token, path, "application/json", o.nul)
				}
				for bi, b := range bodies {
					if pi == 0 || (bi+ti)%3 == 0 {
						send(o, token, path+q, b.ctype, b.body)
					}
				}
			}
		}
	}
	t.Logf("%d of %d operations, answers by status: %v", len(ops), all, statuses)
	garbageVerdict(t, s, failures, "MARKER-GARBAGE")
	return statuses, all
}

// nulBody builds a JSON body of the operation's request schema with a NUL in
// every text member (strings, and strings in arrays), so that it gets past
// the decoder's unknown-field and type checks to whatever stores the text.
func nulBody(schemas map[string]any, operation map[string]any) string {
	rb, _ := operation["requestBody"].(map[string]any)
	content, _ := rb["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	if media == nil {
		return ""
	}
	body := map[string]any{}
	var walk func(schema any, depth int)
	walk = func(schema any, depth int) {
		m, _ := schema.(map[string]any)
		if m == nil || depth > 8 {
			return
		}
		if ref, ok := m["$ref"].(string); ok {
			walk(schemas[strings.TrimPrefix(ref, "#/components/schemas/")], depth+1)
			return
		}
		for _, key := range []string{"allOf", "oneOf", "anyOf"} {
			list, _ := m[key].([]any)
			for _, sub := range list {
				walk(sub, depth+1)
			}
		}
		props, _ := m["properties"].(map[string]any)
		for name, p := range props {
			pm, _ := p.(map[string]any)
			switch pm["type"] {
			case "string":
				body[name] = "a\x00b"
			case "array":
				if items, _ := pm["items"].(map[string]any); items["type"] == "string" {
					body[name] = []string{"a\x00b"}
				}
			}
		}
	}
	walk(media["schema"], 0)
	if len(body) == 0 {
		return ""
	}
	b, _ := json.Marshal(body)
	return string(b)
}

// TestEveryWebPageAnswersGarbage does for the web application what
// TestEveryOperationAnswersGarbage does for the API: every route the web
// package registers (read from its source, so a new page is covered without
// a list here to keep) gets malformed identifiers, queries and forms, with a
// valid CSRF token so that forms reach their handlers, as each role. No
// answer may be a 5xx or hold a stack trace, and vaultd must not panic.
func TestEveryWebPageAnswersGarbage(t *testing.T) {
	t.Parallel()
	routes := webRoutes(t)
	if len(routes) < 40 {
		t.Fatalf("found %d web routes in api/web; the pattern no longer matches how they are registered", len(routes))
	}
	for _, be := range backends {
		sum := &garbageTally{}
		t.Cleanup(func() {
			if sum.partial() {
				return
			}
			t.Logf("%s: %d routes, answers by status: %v", be.name, sum.routes, sum.statuses)
			if sum.statuses[200] == 0 || sum.statuses[303]+sum.statuses[302] == 0 || sum.statuses[404] == 0 {
				t.Errorf("%s: the garbage never reached the pages: %v", be.name, sum.statuses)
			}
		})
		for shard := range garbageShards {
			t.Run(be.name+"/"+strconv.Itoa(shard), func(t *testing.T) {
				t.Parallel()
				var mine []webRoute
				for i, r := range routes {
					if inShard(i, shard) {
						mine = append(mine, r)
					}
				}
				sum.add(webPagesAnswerGarbage(t, be, mine), len(routes))
			})
		}
	}
}

// webPagesAnswerGarbage sends routes (a shard of the web application's)
// their garbage on a server of their own, and returns the answers by status.
func webPagesAnswerGarbage(t *testing.T, be backend, routes []webRoute) map[int]int {
	s, w, caseID, materialID := garbageServer(t, be, "MARKER-WEBGARBAGE")
	realIDs := map[string]string{"case": caseID, "id": materialID}
	ids := []string{"nosuch", "%00", "%FF%FE", strings.Repeat("a", 3000), "%E4%B8%AD"}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// One bad parameter each: a page that refuses the first stops
	// looking at the others.
	var queries []string
	for _, name := range []string{"case", "actor", "action", "outcome", "since", "until", "status", "cursor", "within", "next", "lang", "download", "kind", "filename", "item"} {
		queries = append(queries, "?"+name+"=%FF", "?"+name+"=a%00b")
	}
	queries = append(queries, "", "?limit=-1", "?q="+strings.Repeat("z", 3000))
	forms := []string{"", "a=%ZZ", "title=%00&product=%FF&reason=%00&purpose=%FF&user=%00&role=%FF&status=%00&kind=%FF&to=%00&text=%00&name=%FF&username=%00&password=%FF&code=%00",
		"title=" + strings.Repeat("x", 100000)}
	// And one bad field at a time, for handlers that stop at the
	// first they refuse.
	for _, name := range []string{"title", "product", "providers", "reason", "purpose", "statement", "comment", "text", "note", "name", "display_name",
		"username", "org", "unit", "kind", "role", "user", "status", "action", "outcome", "reference", "items", "measures", "conditions", "material",
		"receipt", "expires_on", "days", "conflict", "agree", "code", "next"} {
		forms = append(forms, name+"=a%00b", name+"=%FF")
	}
	statuses := map[int]int{}
	var failures []string
	seen := map[string]bool{}
	for _, user := range []*client{w.op, w.insp, w.office, w.admin, {}} {
		cl := cookieClient{t: t, base: s.base, token: user.token}
		csrf := ""
		if _, page, _ := cl.do("GET", "/account", "", "", nil); csrfInput.MatchString(page) {
			csrf = csrfInput.FindStringSubmatch(page)[1]
		}
		send := func(method, path, body string) {
			req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
			if err != nil {
				return // a path no client could send
			}
			if method == "POST" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if user.token != "" {
				req.AddCookie(&http.Cookie{Name: "__Host-crvault-session", Value: user.token})
			}
			// Same-origin, as the browser says of its own forms.
			req.Header.Set("Origin", s.base)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			statuses[res.StatusCode]++
			key := fmt.Sprintf("%s %s %d", method, webParam.ReplaceAllString(path, ":x"), res.StatusCode)
			if (res.StatusCode >= 500 || strings.Contains(string(b), "goroutine ")) && !seen[key] {
				seen[key] = true
				_, form, _ := strings.Cut(body, "&")
				failures = append(failures, fmt.Sprintf("%s %.120s (%.60q): %d %.300s", method, path, form, res.StatusCode, b))
			}
		}
		for _, r := range routes {
			// The real identifiers get every query and form; the
			// garbage ones (for routes that take one) a plain
			// request, or the empty and the NUL form.
			real := webParam.ReplaceAllStringFunc(r.path, func(m string) string { return realIDs[m[1:]] })
			var garbage []string
			if webParam.MatchString(r.path) {
				for _, id := range ids {
					garbage = append(garbage, webParam.ReplaceAllString(r.path, id))
				}
			}
			if r.method == "GET" {
				for _, q := range queries {
					send("GET", real+q, "")
				}
				for _, p := range garbage {
					send("GET", p, "")
				}
				continue
			}
			for _, f := range forms {
				send("POST", real, "csrf="+csrf+"&"+f)
			}
			for _, p := range garbage {
				send("POST", p, "csrf="+csrf+"&"+forms[0])
				send("POST", p, "csrf="+csrf+"&"+forms[2])
			}
		}
	}
	t.Logf("%d routes, answers by status: %v", len(routes), statuses)
	garbageVerdict(t, s, failures, "MARKER-WEBGARBAGE")
	return statuses
}

var webParam = regexp.MustCompile(`:([a-z]+)`)

type webRoute struct{ method, path string }

// webRoutes reads the routes api/web registers from its source.
func webRoutes(t *testing.T) []webRoute {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "api", "web", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("api/web sources: %v", err)
	}
	reg := regexp.MustCompile(`\b[a-z]+\.(GET|POST)\("(/[^"]*)"`)
	var routes []webRoute
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range reg.FindAllStringSubmatch(string(src), -1) {
			routes = append(routes, webRoute{m[1], m[2]})
		}
	}
	return routes
}

// multipartFile is a well-formed upload form (kind, then the file) whose
// part headers carry the given filename and content type as they are.
func multipartFile(filename, ctype string) string {
	return "--X\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nother\r\n" +
		"--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + "\"\r\nContent-Type: " + ctype + "\r\n\r\nMARKER-GARBAGE\r\n--X--\r\n"
}

// TestUnstorableIDAudited: an id that cannot name anything (not UTF-8)
// answers 404 like an unknown one, and like every 404 on a protected
// resource it is in the audit log as denied, with the path percent-encoded.
func TestUnstorableIDAudited(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	before := len(w.insp.events("action=request.invalid_path&outcome=denied"))
	w.op.expect(404, "GET", "/materials/%ff%fe/content", nil)
	w.op.expect(404, "GET", "/materials/zzzzzzzzzzzzzzzzzzzz/content", nil)
	evs := w.insp.events("action=request.invalid_path&outcome=denied")
	if len(evs) != before+1 {
		t.Fatalf("%d denied request events after an unstorable id, want %d", len(evs), before+1)
	}
	if e := evs[len(evs)-1]; e.Actor != w.op.id || e.Resource != "GET /api/v1/materials/%ff%fe/content" || e.Detail != "not_found" {
		t.Fatalf("event %+v", e)
	}
	if n := len(w.insp.events("action=material.read&outcome=denied")); n != 1 {
		t.Fatalf("%d denied material.read events, want the unknown id's", n)
	}
}
