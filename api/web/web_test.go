package web

import (
	"crypto/tls"
	"golang.org/x/text/language"
	htmlstd "html"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
	"github.com/crvault/crvault/vault/supervision"
)

// Every message id the code and templates use exists in both languages,
// and the two catalogues hold the same ids.
func TestCataloguesComplete(t *testing.T) {
	cat, err := loadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	en, zh := cat.keys["en"], cat.keys["zh-CN"]
	for id := range en {
		if !zh[id] {
			t.Errorf("message %q is in English only", id)
		}
	}
	for id := range zh {
		if !en[id] {
			t.Errorf("message %q is in Chinese only", id)
		}
	}
	used := map[string]bool{}
	// Literal ids: in templates after T/N, in Go code as "group.name"
	// strings passed to the translators, flashes and errors.
	tmplID := regexp.MustCompile(`\.(?:T|N) "([a-z0-9_]+\.[a-z0-9_.]+)"`)
	goID := regexp.MustCompile(`"((?:error|flash|setup|case|audit|login|public|upload)\.[a-z0-9_]+)"`)
	walk := func(root string, re *regexp.Regexp) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
				return err
			}
			if !strings.HasSuffix(p, ".html") && !strings.HasSuffix(p, ".go") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				used[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk("templates", tmplID)
	walk(".", goID)
	// Domain values shown through Enum, and flashes named in redirects.
	enum := func(group string, vals ...string) {
		for _, v := range vals {
			used[group+"."+v] = true
		}
	}
	for _, s := range review.Statuses() {
		enum("status", string(s))
	}
	for _, a := range review.Actions() {
		enum("action", string(a))
	}
	enum("phase", string(review.PhaseNone), string(review.PhaseDetermination), string(review.PhasePreliminary), string(review.PhaseOpinions),
		string(review.PhaseSpecial), string(review.PhaseClosed))
	enum("flag", string(review.FlagNone), string(review.FlagDueSoon), string(review.FlagOverdue))
	enum("kind", vault.Kinds...)
	for _, r := range access.Roles {
		enum("role", string(r))
	}
	enum("assignment", access.StatusActive, access.StatusSuspended, access.StatusRevoked, access.StatusExpired)
	enum("outcome", "allowed", "denied", "error")
	enum("outcome", review.Outcomes()...)
	enum("commitment", supervision.CommitmentKinds...)
	enum("pstatus", vault.ProposalProposed, vault.ProposalApproved)
	for _, ed := range review.Editions() {
		enum("proposal_subject", ed.ProposalSubjects...)
		for _, f := range ed.Factors {
			enum("factor", f.Key)
		}
	}
	enum("complaint", "unfair", "confidentiality")
	enum("cstatus", supervision.StatusOpen, supervision.StatusInvestigating, supervision.StatusUpheld, supervision.StatusDismissed)
	enum("rstatus", reportStatuses...)
	enum("rstatus", supervision.ReportUnverified)
	enum("from", "reporter", "inspector")
	enum("ustatus", access.UserActive, access.UserPendingApproval, access.UserDisabled)
	for _, k := range access.OrgKinds {
		enum("orgkind", string(k))
	}
	enum("cmstatus", supervision.CommitmentPending, supervision.CommitmentKept, supervision.CommitmentBreached, supervision.CommitmentUnderInvestigation,
		supervision.CommitmentUnverified)
	// Every audit action with a row of its own is named in words in the
	// audit log and the access log (Locale.AuditAction).
	enum("audit_action", vault.AuditActions()...)
	flash := regexp.MustCompile(`done=([a-z_]+)|done\(c, [^,]+, "([a-z_]+)"\)`)
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range flash.FindAllStringSubmatch(string(b), -1) {
			used["flash."+m[1]+m[2]] = true
		}
	}
	if len(used) < 100 {
		t.Fatalf("found only %d message ids in use; the scan is broken", len(used))
	}
	for id := range used {
		if !cat.has(id) {
			t.Errorf("message %q is used but missing from a catalogue", id)
		}
	}
}

// Localize falls back to the id, so a missing message is visible; plural
// forms follow each language's rules.
func TestLocale(t *testing.T) {
	cat, err := loadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	en, zh := cat.locale(languages[1]), cat.locale(languages[0])
	if got := en.N("clock.days_left", 1); got != "1 working day left" {
		t.Errorf("en one: %q", got)
	}
	if got := en.N("clock.days_left", 3); got != "3 working days left" {
		t.Errorf("en other: %q", got)
	}
	if got := zh.N("clock.days_left", 3); got != "剩余 3 个工作日" {
		t.Errorf("zh: %q", got)
	}
	if got := en.T("no.such.message"); got != "no.such.message" {
		t.Errorf("missing id: %q", got)
	}
	if got := zh.Date("2026-02-17"); got != "2026年2月17日" {
		t.Errorf("zh date: %q", got)
	}
}

func TestPickLanguage(t *testing.T) {
	for _, c := range []struct{ chosen, accept, want string }{
		{"", "", "zh-CN"},
		{"", "en-US,en;q=0.9", "en"},
		{"", "fr-FR", "zh-CN"},
		{"", "zh-CN,zh;q=0.9,en;q=0.5", "zh-CN"},
		{"en", "zh-CN", "en"},
		{"zh-CN", "en", "zh-CN"},
		{"xx", "en", "en"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", c.accept)
		if got := pick(c.chosen, r).String(); got != c.want {
			t.Errorf("pick(%q, %q) = %s, want %s", c.chosen, c.accept, got, c.want)
		}
	}
}

// TestSafeNext: a redirect target from the request stays on this site, as
// the browser will read it after http.Redirect has cleaned it.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "/",
		"/":                        "/",
		"/cases/x?done=1":          "/cases/x?done=1",
		"/cases/":                  "/cases/",
		"/audit?case=a&action=b#x": "/audit?case=a&action=b#x",
		"/cases/./x/../y":          "/cases/y",
		"//evil.example/":          "/",
		"/\\evil.example":          "/",
		"/./\\evil.example":        "/",
		"/a/../\\evil.example":     "/",
		"/.//evil.example":         "/evil.example",
		"/..//evil.example/":       "/evil.example/",
		"/%5Cevil.example":         "/",
		"/%2F%2Fevil.example":      "/",
		"/%2f/evil.example":        "/",
		"/cases?next=\\evil":       "/",
		"https://evil.test":        "/",
		"http:/evil.test":          "/",
		"javascript:alert(1)":      "/",
		"cases":                    "/",
		"/api/v1/me":               "/",
		"/./api/v1/me":             "/",
		"/a/../api/v1/me":          "/",
		"/api":                     "/",
		"/%61pi/v1/me":             "/",
		"/a\r\nSet-Cookie:":        "/",
		"/\t/evil.example":         "/",
		"/\x00/evil.example":       "/",
		"/\x7f/evil.example":       "/",
	} {
		got := safeNext(in)
		if got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
		// What the browser is sent, after http.Redirect, resolves on this
		// site: a path that is not protocol-relative, with no backslash.
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest("POST", "/login", nil), got, http.StatusSeeOther)
		loc := w.Header().Get("Location")
		if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\t\r\n") {
			t.Errorf("safeNext(%q) redirects to %q", in, loc)
		}
		u, err := url.Parse("https://vault.example" + loc)
		if err != nil || u.Host != "vault.example" {
			t.Errorf("safeNext(%q): Location %q leaves the site (%v)", in, loc, err)
		}
	}
}

func TestIsID(t *testing.T) {
	for in, want := range map[string]bool{"06h373hyfdsh8w2w6s9ty5b1xm": true, "": false, "../x": false, "a/b": false, "\\evil": false, "A1": false} {
		if got := isID(in); got != want {
			t.Errorf("isID(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCSRFValid(t *testing.T) {
	token := "session-token"
	good := sessionCSRF(token)
	for _, c := range []struct {
		name   string
		header map[string]string
		want   bool
	}{
		{"header", map[string]string{CSRFHeader: good}, true},
		{"same-origin fetch", map[string]string{CSRFHeader: good, "Sec-Fetch-Site": "same-origin"}, true},
		{"none", nil, false},
		{"another session's", map[string]string{CSRFHeader: sessionCSRF("other")}, false},
		{"the session token itself", map[string]string{CSRFHeader: token}, false},
		{"cross-site", map[string]string{CSRFHeader: good, "Sec-Fetch-Site": "cross-site"}, false},
		{"same-site sibling", map[string]string{CSRFHeader: good, "Sec-Fetch-Site": "same-site"}, false},
	} {
		r := httptest.NewRequest("POST", "/api/v1/cases", nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		if got := CSRFValid(r, token); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// The pages' policy allows nothing inline and nothing from elsewhere, and
// no template carries an inline script, style or event handler that it
// would block (after miniflux's csp_header_test.go).
func TestContentSecurityPolicy(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if _, err := Register(r, Deps{Classify: func(error) (int, string, string) { return 500, "internal", "" }}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/login", "/", "/setup?token=x"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		got := w.Header().Get("Content-Security-Policy")
		want := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
		if got != want {
			t.Errorf("%s: CSP %q, want %q", path, got, want)
		}
		if strings.Contains(got, "unsafe") {
			t.Errorf("%s: CSP allows something unsafe: %q", path, got)
		}
		if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, w.Header())
		}
		for _, c := range w.Result().Cookies() {
			if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("%s: cookie %+v is not a strict __Host- cookie", path, c)
			}
		}
	}
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:`)
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, p)
		if err != nil {
			return err
		}
		if m := inline.FindString(string(b)); m != "" {
			t.Errorf("%s holds inline code or style: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The content of a document shown inline runs in a sandbox, without
	// scripts.
	if !strings.HasPrefix(contentCSP, "sandbox;") || strings.Contains(contentCSP, "allow-scripts") {
		t.Errorf("content CSP %q", contentCSP)
	}
}

// An unknown path is a page for a browser and problem+json for the API.
func TestNotFoundPage(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	nf, err := Register(r, Deps{Classify: func(error) (int, string, string) { return 500, "internal", "" }})
	if err != nil {
		t.Fatal(err)
	}
	r.NoRoute(nf...)
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/no/such/page", nil)
	req.Header.Set("Accept-Language", "en")
	r.ServeHTTP(w, req)
	if w.Code != 404 || !strings.Contains(w.Body.String(), "There is no such page") || w.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

// The case page renders every part of a rich clock (supplement items,
// opinion rounds, a provisional date) in both languages; the browser test
// does not reach every one of them.
func TestCaseViewRenders(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	yes, no := true, false
	due, _ := calendar.ParseDate("2027-01-12")
	clk := review.Clock{Phase: review.PhaseOpinions, DueOn: due, DueOnProvisional: true, AllowedWorkingDays: 15, UsedWorkingDays: 3,
		SupplementItems: []review.RequestedItem{{No: 1, Text: "network diagram", Received: true, ReceivedOn: due}, {No: 2, Text: "source audit"}},
		Opinions: []review.MemberOpinion{{Org: "org-a", DueOn: due, Agree: &yes}, {Org: "org-b", DueOn: due, Agree: &no},
			{Org: "org-c", DueOn: due, Overdue: true}, {Org: "org-d", DueOn: due}}}
	for _, tag := range languages {
		p := &page{L: cat.locale(tag), User: &access.User{DisplayName: "x"}, Roles: []string{"office_admin", "member_unit", "operator"},
			Data: caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "soliciting_opinions"}, Clock: &clk, DaysLeft: 12,
				Actions: []string{"conclude", "request_supplement", "record_approval", "record_measures", "extend_special"}, Outcomes: review.Outcomes(),
				Kinds: vault.Kinds, Roles: []string{"reviewer"}}}
		var b strings.Builder
		if err := e.views["case"].Execute(&b, p); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		for _, want := range []string{"network diagram", "source audit", "org-d", p.L.T("clock.provisional"), p.L.T("clock.disagreed"),
			p.L.T("actions.measures"), p.L.N("clock.days_left", 12)} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: case page lacks %q", tag, want)
			}
		}
	}
}

// TestDeadlinesPageLinksTheNextPage: a deadlines page that has more after it
// links the next one, keeping the window and carrying the cursor escaped
// for a URL; the last page has no such link.
func TestDeadlinesPageLinksTheNextPage(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	due, _ := calendar.ParseDate("2027-01-12")
	ds := []vault.Deadline{{CaseID: "c1", Title: "审查 A", Status: "under_review", Phase: review.PhasePreliminary, DueOn: due}}
	for _, tag := range languages {
		for _, next := range []string{"eyJhIjoiMjAyNy0wMS0xMiJ9+/=&x", ""} {
			p := &page{L: cat.locale(tag), User: &access.User{DisplayName: "x"}, Roles: []string{"office_admin"},
				Data: map[string]any{"Deadlines": ds, "Within": 30, "Next": next}}
			var b strings.Builder
			if err := e.views["deadlines"].Execute(&b, p); err != nil {
				t.Fatalf("%s: %v", tag, err)
			}
			html := b.String()
			if !strings.Contains(html, "审查 A") {
				t.Errorf("%s: the page lacks its deadline", tag)
			}
			_, after, found := strings.Cut(html, `id="next-page" href="`)
			if found != (next != "") {
				t.Fatalf("%s, next %q: next-page link present %v", tag, next, found)
			}
			if !found {
				continue
			}
			href, _, _ := strings.Cut(after, `"`)
			u, err := url.Parse(htmlstd.UnescapeString(href))
			if err != nil || u.Path != "/deadlines" || u.Query().Get("within") != "30" || u.Query().Get("cursor") != next {
				t.Errorf("%s: next-page link %q (%v), want /deadlines with within=30 and cursor %q", tag, href, err, next)
			}
		}
	}
}

// viewsAndCatalogue loads the embedded templates and messages, as a view
// test renders with them.
func viewsAndCatalogue(t *testing.T) (*engine, *catalogue) {
	t.Helper()
	e, err := loadEngine()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := loadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	return e, cat
}

func TestListedNames(t *testing.T) {
	got := listedNames("中兴通讯、 Acme Ltd；Beta,Gamma , ；；Delta")
	want := []string{"中兴通讯", "Acme Ltd", "Beta", "Gamma", "Delta"}
	if !slices.Equal(got, want) {
		t.Errorf("listedNames = %q, want %q", got, want)
	}
}

// TestGroupedReceiptStillOpens: the receipt as the page prints it for
// copying parses back to the issued one.
func TestGroupedReceiptStillOpens(t *testing.T) {
	const receipt = "06h34gkepax6k5q496zwjgm1c8.abcdefghjkmnpqrstvwxyz0123"
	g := grouped(receipt)
	if g != "06h3 4gke pax6 k5q4 96zw jgm1 c8 . abcd efgh jkmn pqrs tvwx yz01 23" {
		t.Fatalf("grouped = %q", g)
	}
	id, secret, err := supervision.ParseReceipt(g)
	if err != nil || id+"."+secret != receipt {
		t.Fatalf("ParseReceipt(%q) = %q, %q, %v", g, id, secret, err)
	}
}

// TestPlainHTTPWarningWithoutScript: a browser without JavaScript that
// opened the sign-in pages over plain HTTP from another machine is told why
// signing in will not stick; on loopback, over TLS or behind a proxy that
// ended TLS, it is not.
func TestPlainHTTPWarningWithoutScript(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if _, err := Register(r, Deps{Classify: func(error) (int, string, string) { return 500, "internal", "" }}); err != nil {
		t.Fatal(err)
	}
	_, cat := viewsAndCatalogue(t)
	warning := htmlstd.EscapeString(cat.locale(language.English).T("login.insecure_context"))
	for _, tc := range []struct {
		host   string
		header [2]string
		tls    bool
		want   bool
	}{
		{host: "crvault.example.org", want: true},
		{host: "192.0.2.7:8080", want: true},
		{host: "[2001:db8::1]:8080", want: true},
		{host: "localhost.example.org", want: true},
		{host: "crvault.example.org", header: [2]string{"X-Forwarded-Proto", "http"}, want: true},
		{host: "127.0.0.1:8080"},
		{host: "127.8.0.1"},
		{host: "[::1]:8080"},
		{host: "localhost:8080"},
		{host: "LocalHost."},
		{host: "vault.localhost"},
		{host: "crvault.example.org", tls: true},
		{host: "crvault.example.org", header: [2]string{"X-Forwarded-Proto", "HTTPS, http"}},
		{host: "crvault.example.org", header: [2]string{"Forwarded", `for=192.0.2.60;Proto=https;by=203.0.113.43`}},
		{host: "crvault.example.org", header: [2]string{"Forwarded", `for=192.0.2.60; proto="https"`}},
	} {
		for _, path := range []string{"/login"} {
			req := httptest.NewRequest("GET", "http://"+tc.host+path, nil)
			req.Header.Set("Accept-Language", "en")
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			body := w.Body.String()
			if w.Code != 200 || !strings.Contains(body, warning) {
				t.Fatalf("%s %s: %d, and the page lacks the scripted warning", tc.host, path, w.Code)
			}
			_, after, _ := strings.Cut(body, `id="insecure-context"`)
			if got := strings.Contains(after, "<noscript><p class=\"error\" role=\"alert\">"+warning); got != tc.want {
				t.Errorf("%s %s %v (TLS %v): warning without script %v, want %v", tc.host, path, tc.header, tc.tls, got, tc.want)
			}
		}
	}
	// The first-run setup page, which a sysadmin may well open from afar.
	e, _ := viewsAndCatalogue(t)
	for _, plain := range []bool{true, false} {
		var b strings.Builder
		p := &page{L: cat.locale(language.English), PlainHTTP: plain, Data: map[string]any{}}
		if err := e.views["setup"].Execute(&b, p); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "<noscript><p class=\"error\" role=\"alert\">"+warning); got != plain {
			t.Errorf("setup page, plain HTTP %v: warning without script %v", plain, got)
		}
	}
}

// TestPagesDropStoredControls: text saved before input refused them may
// hold control characters and bidi overrides; a page shows it without them
// (a title with RLO reads as it is stored, not reversed), and keeps the
// rest of the text, tabs and line breaks included.
func TestPagesDropStoredControls(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	e, cat := viewsAndCatalogue(t)
	a := &app{engine: e, cat: cat, log: slog.New(slog.DiscardHandler)}
	show := func(title string) string {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest("GET", "/cases/c1", nil)
		p := &page{L: cat.locale(language.English), User: &access.User{DisplayName: "x"}, Roles: []string{"operator"},
			Data: caseView{Case: vault.Case{ID: "c1", Title: title, Product: "AR-9000\tv2", Status: "draft"}, Kinds: vault.Kinds}}
		a.render(c, http.StatusOK, "case", p)
		if w.Code != http.StatusOK {
			t.Fatalf("render %q: %d", title, w.Code)
		}
		return w.Body.String()
	}
	clean := show("审查 invoice.pdf")
	if !strings.Contains(clean, "审查 invoice.pdf") || !strings.Contains(clean, "AR-9000\tv2") {
		t.Fatal("the clean page lacks its title or product")
	}
	evil := show("审查 invoice\u202egpj.exe\u2066\u2069\u202a\u009b31m\x1b[2J\x7f\x00")
	if !strings.Contains(evil, "审查 invoicegpj.exe31m[2J") {
		t.Errorf("the title is not shown without its controls")
	}
	if i := strings.IndexFunc(evil, pageControl); i >= 0 {
		t.Errorf("the page holds %U", []rune(evil[i:])[0])
	}
	if strings.Count(evil, "\n") != strings.Count(clean, "\n") {
		t.Error("line breaks of the page changed")
	}
}

// TestListPagesKeepTheirFilters: the next-page link of complaints,
// commitments and reports carries the filters the page was asked for, so
// page 2 of one case's complaints is not everyone's.
func TestListPagesKeepTheirFilters(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	const cursor = "eyJhIjoiMjAyNy0wMS0xMiJ9+/=&x"
	for _, tc := range []struct {
		view, path string
		data       any
		want       map[string]string
	}{
		{"complaints", "/complaints", complaintsView{Items: []supervision.Complaint{{ID: "k1", CaseID: "c1", Kind: "unfair", Status: "open"}},
			NextCursor: cursor, Case: "c1", Status: "open", Statuses: complaintStatuses}, map[string]string{"case": "c1", "status": "open"}},
		{"commitments", "/commitments", map[string]any{"Items": []supervision.Commitment{{ID: "m1", CaseID: "c1", Kind: "no_backdoor", Text: "t"}},
			"NextCursor": cursor, "People": map[string]person{}, "Case": "c1", "Provider": "org&1"}, map[string]string{"case": "c1", "provider": "org&1"}},
		{"reports", "/reports", map[string]any{"Items": []supervision.Report{{ID: "r1", Status: "triaged"}}, "NextCursor": cursor,
			"People": map[string]person{}, "Status": "triaged", "Statuses": reportStatuses}, map[string]string{"status": "triaged"}},
	} {
		for _, tag := range languages {
			p := &page{L: cat.locale(tag), User: &access.User{DisplayName: "x"}, Roles: []string{"inspector"}, Data: tc.data}
			var b strings.Builder
			if err := e.views[tc.view].Execute(&b, p); err != nil {
				t.Fatalf("%s %s: %v", tc.view, tag, err)
			}
			_, after, found := strings.Cut(b.String(), `id="next-page" href="`)
			if !found {
				t.Fatalf("%s %s: no next-page link", tc.view, tag)
			}
			href, _, _ := strings.Cut(after, `"`)
			u, err := url.Parse(htmlstd.UnescapeString(href))
			if err != nil || u.Path != tc.path || u.Query().Get("cursor") != cursor {
				t.Fatalf("%s %s: next-page link %q (%v)", tc.view, tag, href, err)
			}
			// The page's filter form shows the filter it applies.
			if st, ok := tc.want["status"]; ok && !strings.Contains(b.String(), `<option value="`+st+`" selected>`) {
				t.Errorf("%s %s: the filter form does not show status %s", tc.view, tag, st)
			}
			for k, v := range tc.want {
				if got := u.Query().Get(k); got != v {
					t.Errorf("%s %s: next-page link %q has %s=%q, want %q", tc.view, tag, href, k, got, v)
				}
			}
		}
	}
}

// TestBackTo: the page a refused form links back to comes from the route
// it posted to and its ids, never from a hostile value.
func TestBackTo(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	var got string
	record := func(c *gin.Context) { got = backTo(c) }
	for _, route := range []string{"/cases", "/cases/:case/transitions", "/cases/:case/assignments/:id/revoke", "/complaints", "/complaints/:id/resolution",
		"/reports/:id/status", "/consents/:id/revoke", "/admin/users/:id/disable", "/account/totp/confirm", "/login"} {
		r.POST(route, record)
	}
	r.GET("/cases/:case", record)
	for _, tc := range []struct{ method, path, form, want string }{
		{"POST", "/cases", "", "/cases/new"},
		{"POST", "/cases/06h373hyeqyptd28c11jskj23m/transitions", "", "/cases/06h373hyeqyptd28c11jskj23m"},
		{"POST", "/cases/06h373hyeqyptd28c11jskj23m/assignments/a1/revoke", "", "/cases/06h373hyeqyptd28c11jskj23m"},
		{"POST", "/cases/%5Cevil.example/transitions", "", ""},
		{"POST", "/complaints", "case=06h373hyeqyptd28c11jskj23m", "/cases/06h373hyeqyptd28c11jskj23m"},
		{"POST", "/complaints", "case=%2F%2Fevil.example", "/complaints"},
		{"POST", "/complaints/k1/resolution", "", "/complaints/k1"},
		{"POST", "/reports/r1/status", "", "/reports/r1"},
		{"POST", "/consents/k1/revoke", "material=m1", "/materials/m1/consents"},
		{"POST", "/consents/k1/revoke", "material=..%2F..%2Fx", ""},
		{"POST", "/admin/users/u1/disable", "", "/admin/users"},
		{"POST", "/account/totp/confirm", "", "/account/totp"},
		{"POST", "/login", "", "/login"},
		{"GET", "/cases/c1", "", ""},
	} {
		got = "unset"
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Referer", "https://evil.example/")
		r.ServeHTTP(httptest.NewRecorder(), req)
		if got != tc.want {
			t.Errorf("%s %s %s: back to %q, want %q", tc.method, tc.path, tc.form, got, tc.want)
		}
	}
}

// TestTimesSayBeijingTime: times are shown in Asia/Shanghai without a
// zone in each cell, so every page says so, in both languages, and the
// case page says when a due date ends.
func TestTimesSayBeijingTime(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	due, _ := calendar.ParseDate("2027-01-14")
	want := map[string][]string{"zh-CN": {"北京时间", "UTC+8", "24:00"}, "en": {"Beijing time", "UTC+8", "24:00"}}
	for _, tag := range languages {
		L := cat.locale(tag)
		for _, view := range []struct {
			name string
			data any
		}{
			{"deadlines", map[string]any{"Deadlines": []vault.Deadline{{CaseID: "c1", Title: "T", DueOn: due}}, "Within": 30}},
			{"case", caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "under_review"}, Clock: &review.Clock{Phase: review.PhasePreliminary, DueOn: due}}},
		} {
			p := &page{L: L, User: &access.User{DisplayName: "x"}, Roles: []string{"office_admin"}, Data: view.data}
			var b strings.Builder
			if err := e.views[view.name].Execute(&b, p); err != nil {
				t.Fatalf("%s %s: %v", view.name, tag, err)
			}
			_, footer, _ := strings.Cut(htmlstd.UnescapeString(b.String()), `id="tz-note"`)
			for _, w := range want[tag.String()] {
				if !strings.Contains(footer, w) {
					t.Errorf("%s %s: the page's time-zone note lacks %q", view.name, tag, w)
				}
			}
			if view.name == "case" && !strings.Contains(b.String(), htmlstd.EscapeString(L.T("time.due_end"))) {
				t.Errorf("case %s: the due date does not say when it ends", tag)
			}
		}
	}
}

// TestProvisionalExplainedInWords: a provisional date says why in text
// the page shows, which a keyboard or a finger reaches (a title tooltip
// reaches neither): the badge links to the note and is described by it,
// on the case page, the deadlines page and the dashboard, in both
// languages; a page with no provisional date has no note.
func TestProvisionalExplainedInWords(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	due, _ := calendar.ParseDate("2031-01-14")
	for _, tag := range languages {
		L := cat.locale(tag)
		for _, provisional := range []bool{true, false} {
			ds := []vault.Deadline{{CaseID: "c1", Title: "T", Status: "under_review", Phase: review.PhasePreliminary, DueOn: due, DueOnProvisional: provisional}}
			for _, view := range []struct {
				name string
				data any
			}{
				{"deadlines", map[string]any{"Deadlines": ds, "Within": 30}},
				{"dashboard", dashboardView{Deadlines: ds}},
				{"case", caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "under_review"},
					Clock: &review.Clock{Phase: review.PhasePreliminary, DueOn: due, DueOnProvisional: provisional}}},
				{"case", caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "soliciting_opinions"},
					Clock: &review.Clock{Phase: review.PhaseOpinions, DueOn: due, Opinions: []review.MemberOpinion{{Org: "o", DueOn: due, DueOnProvisional: provisional}}}}},
			} {
				p := &page{L: L, User: &access.User{DisplayName: "x"}, Roles: []string{"office_admin"}, Data: view.data}
				var b strings.Builder
				if err := e.views[view.name].Execute(&b, p); err != nil {
					t.Fatalf("%s %s: %v", view.name, tag, err)
				}
				html := b.String()
				if strings.Contains(html, `title="`) {
					t.Errorf("%s %s: an explanation in a title attribute", view.name, tag)
				}
				note := `<p class="help" id="provisional-note">` + htmlstd.EscapeString(L.T("clock.provisional_note")) + `</p>`
				badge := `<a class="badge" href="#provisional-note" aria-describedby="provisional-note">` + L.T("clock.provisional") + `</a>`
				if got := strings.Contains(html, note); got != provisional {
					t.Errorf("%s %s, provisional %v: note shown %v", view.name, tag, provisional, got)
				}
				if got := strings.Contains(html, badge); got != provisional {
					t.Errorf("%s %s, provisional %v: linked badge shown %v", view.name, tag, provisional, got)
				}
				if strings.Count(html, `id="provisional-note"`) > 1 {
					t.Errorf("%s %s: the note's id is not unique", view.name, tag)
				}
			}
		}
	}
}

// TestAssignmentsShowWhenAccessEnds: the office's table of assignments
// says when each one's access ends, as the day the office chose (ending
// at 24:00 Beijing time) or to the minute when set otherwise, and says so
// when there is no end.
func TestAssignmentsShowWhenAccessEnds(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	dayEnd := time.Date(2027, 3, 5, 23, 59, 59, 0, shanghai)
	odd := time.Date(2027, 3, 6, 1, 30, 0, 0, time.UTC) // 09:30 in Beijing
	for _, tag := range languages {
		L := cat.locale(tag)
		p := &page{L: L, User: &access.User{DisplayName: "x"}, Roles: []string{"office_admin"},
			Data: caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "under_review"}, Roles: []string{"reviewer"},
				Assignments: []access.Assignment{{ID: "a1", UserID: "u1", Role: "reviewer", Purpose: "p", Status: "active", ExpiresAt: &dayEnd},
					{ID: "a2", UserID: "u2", Role: "reviewer", Purpose: "p", Status: "active", ExpiresAt: &odd},
					{ID: "a3", UserID: "u3", Role: "reviewer", Purpose: "p", Status: "active"}}}}
		var b strings.Builder
		if err := e.views["case"].Execute(&b, p); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		html := htmlstd.UnescapeString(b.String())
		if !strings.Contains(html, `<th scope="col">`+L.T("assign.ends")+`</th>`) {
			t.Errorf("%s: no column for when access ends", tag)
		}
		for _, want := range []string{
			`<td class="assign-ends"><time datetime="2027-03-05T23:59:59+08:00">` + L.Date("2027-03-05") + " " + L.T("time.due_end") + `</time></td>`,
			`<td class="assign-ends"><time datetime="2027-03-06T09:30:00+08:00">` + L.Time(odd) + `</time></td>`,
			`<td class="assign-ends">` + L.T("assign.no_end") + `</td>`,
		} {
			if !strings.Contains(html, want) {
				t.Errorf("%s: the assignments table lacks %s", tag, want)
			}
		}
	}
}

// TestShortListsLinkTheRest: a list a page shows only the start of links
// to the rest: the office's intake on the dashboard to the submitted
// cases after it, and a party's commitments on the case page to the case's
// commitments after them. Without more, no link.
func TestShortListsLinkTheRest(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	const cursor = "eyJhIjoiMjAyNy0wMS0xMiJ9+/=&x"
	for _, tag := range languages {
		for _, next := range []string{cursor, ""} {
			for _, tc := range []struct {
				view, id, path string
				roles          []string
				data           any
				want           map[string]string
			}{
				{"dashboard", "intake-next", "/cases", []string{"office_admin"},
					dashboardView{Intake: []vault.Case{{ID: "c1", Title: "T", Status: "submitted"}}, IntakeNext: next}, map[string]string{"status": "submitted"}},
				{"case", "commitments-next", "/commitments", []string{"provider"},
					caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "under_review"}, Kinds: vault.Kinds,
						Commitments: []supervision.Commitment{{ID: "m1", CaseID: "c1", Kind: "no_backdoor", Text: "t"}}, CommitmentsNext: next},
					map[string]string{"case": "c1"}},
			} {
				p := &page{L: cat.locale(tag), User: &access.User{DisplayName: "x"}, Roles: tc.roles, Data: tc.data}
				var b strings.Builder
				if err := e.views[tc.view].Execute(&b, p); err != nil {
					t.Fatalf("%s %s: %v", tc.view, tag, err)
				}
				_, after, found := strings.Cut(b.String(), `id="`+tc.id+`" href="`)
				if found != (next != "") {
					t.Fatalf("%s %s, next %q: link to the rest present %v", tc.view, tag, next, found)
				}
				if !found {
					continue
				}
				href, _, _ := strings.Cut(after, `"`)
				u, err := url.Parse(htmlstd.UnescapeString(href))
				if err != nil || u.Path != tc.path || u.Query().Get("cursor") != next {
					t.Fatalf("%s %s: link to the rest %q (%v)", tc.view, tag, href, err)
				}
				for k, v := range tc.want {
					if got := u.Query().Get(k); got != v {
						t.Errorf("%s %s: link %q has %s=%q, want %q", tc.view, tag, href, k, got, v)
					}
				}
			}
		}
	}
}

// TestCommitmentsFilterForm: the commitments page offers its filters as a
// form showing the filters applied, the provider among them for everyone
// but a provider, who sees only its own.
func TestCommitmentsFilterForm(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	for _, tag := range languages {
		for _, role := range []string{"inspector", "office_admin", "operator", "provider"} {
			p := &page{L: cat.locale(tag), User: &access.User{DisplayName: "x"}, Roles: []string{role},
				Data: map[string]any{"Items": []supervision.Commitment{}, "People": map[string]person{}, "Case": "c1", "Provider": "Acme & Co"}}
			var b strings.Builder
			if err := e.views["commitments"].Execute(&b, p); err != nil {
				t.Fatalf("%s %s: %v", role, tag, err)
			}
			html := b.String()
			if !strings.Contains(html, `<form method="get" action="/commitments" class="filters card" id="commitment-filters">`) ||
				!strings.Contains(html, `<input id="f-case" name="case" value="c1"`) {
				t.Errorf("%s %s: no case filter showing the case", role, tag)
			}
			if got := strings.Contains(html, `<input id="f-provider" name="provider" value="Acme &amp; Co">`); got != (role != "provider") {
				t.Errorf("%s %s: provider filter shown %v", role, tag, got)
			}
		}
	}
}
