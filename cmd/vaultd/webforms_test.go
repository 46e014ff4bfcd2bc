package main

// Tests of the web forms over plain HTTP against the real vaultd, without
// a browser: what a hostile page or a careless browser could send, and
// what the pages answer.

import (
	"bytes"
	"encoding/json"
	htmlstd "html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// field is one part of a multipart form, in order; a file when filename
// is set.
type field struct{ name, filename, value string }

// multipartForm encodes fields as multipart/form-data, as a browser sends
// a form with enctype="multipart/form-data".
func multipartForm(t *testing.T, fields ...field) (body, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		var w io.Writer
		var err error
		if f.filename != "" {
			w, err = mw.CreateFormFile(f.name, f.filename)
		} else {
			w, err = mw.CreateFormField(f.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, f.value)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), mw.FormDataContentType()
}

// pageCSRF is the CSRF token of the signed-in client's pages.
func pageCSRF(t *testing.T, c cookieClient) string {
	t.Helper()
	st, page, _ := c.do("GET", "/account", "", "", nil)
	m := csrfInput.FindStringSubmatch(page)
	if st != 200 || m == nil {
		t.Fatalf("no CSRF token on the account page: %d %s", st, tail(page, 300))
	}
	return m[1]
}

// caseCount is how many cases the client's user can list.
func caseCount(t *testing.T, c *client) int {
	t.Helper()
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	c.expect(200, "GET", "/cases", nil).json(t, &page)
	return len(page.Items)
}

// TestWebMultipartCSRF: every state-changing page refuses a form without
// its CSRF token, multipart ones included (a browser sends any form as
// multipart when the page says so, and a hostile page can), with the same
// 403 and audit record as a url-encoded form; with the token the forms
// work, and the streamed upload still checks the token from its stream.
func TestWebMultipartCSRF(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	bootstrap(t, s)
	victimID := s.mustCLI(pw+"\n", "user", "add", "--username", "victim", "--org", "Grid Co", "--role", "operator", "--password-stdin")
	opAPI := s.login(t, "operator1", pw)
	op := cookieClient{t: t, base: s.base, token: opAPI.token}
	admin := cookieClient{t: t, base: s.base, token: s.login(t, "admin", pw).token}
	token := pageCSRF(t, op)
	refused := msg(t, "zh-CN", "error.csrf_failed")

	expectRefused := func(c cookieClient, path string, fields ...field) {
		t.Helper()
		body, ct := multipartForm(t, fields...)
		st, page, hd := c.do("POST", path, body, ct, nil)
		if st != 403 || !strings.Contains(page, refused) {
			t.Fatalf("multipart POST %s without its token: %d %s %s", path, st, hd.Get("Location"), tail(page, 300))
		}
		if strings.Contains(hd.Get("Set-Cookie"), "__Host-crvault-session=") && !strings.Contains(hd.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("multipart POST %s without its token set a session: %v", path, hd["Set-Cookie"])
		}
	}

	// Sign out: refused, and the session still works.
	expectRefused(op, "/logout", field{name: "x", value: "1"})
	expectRefused(op, "/logout", field{name: "csrf", value: "not the token"})
	if st, _, _ := op.do("GET", "/cases", "", "", nil); st != 200 {
		t.Fatalf("the session ended after a refused sign-out: %d", st)
	}
	// A new case: refused, and none made.
	expectRefused(op, "/cases", field{name: "title", value: "CSRF-made case"}, field{name: "product", value: "x"}, field{name: "providers", value: ""})
	if n := caseCount(t, opAPI); n != 0 {
		t.Fatalf("%d cases after a refused form", n)
	}
	// An account disabled by a sysadmin's browser: refused, and the
	// account still signs in.
	expectRefused(admin, "/admin/users/"+victimID+"/disable", field{name: "x", value: "1"})
	s.login(t, "victim", pw)
	// Login CSRF: no cookie and no token signs no one in.
	expectRefused(cookieClient{t: t, base: s.base}, "/login", field{name: "username", value: "operator1"}, field{name: "password", value: pw})

	// Each refusal is audited as a url-encoded one is.
	var events struct {
		Items []struct {
			Resource string `json:"resource"`
		} `json:"items"`
	}
	s.login(t, "inspector1", pw).expect(200, "GET", "/audit/events?action=web.csrf", nil).json(t, &events)
	seen := map[string]bool{}
	for _, e := range events.Items {
		seen[e.Resource] = true
	}
	for _, r := range []string{"POST /logout", "POST /cases", "POST /admin/users/:id/disable", "POST /login"} {
		if !seen[r] {
			t.Errorf("no web.csrf audit event for %s: %+v", r, events.Items)
		}
	}

	// With the token, each multipart form works.
	body, ct := multipartForm(t, field{name: "csrf", value: token}, field{name: "title", value: "Core routers"}, field{name: "product", value: "AR-9000"},
		field{name: "providers", value: "Acme Routers"})
	st, _, hd := op.do("POST", "/cases", body, ct, nil)
	m := regexp.MustCompile(`^/cases/([0-9a-z]+)\?done=case_created$`).FindStringSubmatch(hd.Get("Location"))
	if st != 303 || m == nil {
		t.Fatalf("multipart new case with its token: %d %q", st, hd.Get("Location"))
	}
	caseID := m[1]
	if n := caseCount(t, opAPI); n != 1 {
		t.Fatalf("%d cases after one was made", n)
	}
	// A file sent to a form that takes none is refused, token or not.
	body, ct = multipartForm(t, field{name: "csrf", value: token}, field{name: "title", value: "With a file"}, field{name: "product", value: "x"},
		field{name: "doc", filename: "secret.txt", value: "confidential"})
	if st, _, _ := op.do("POST", "/cases", body, ct, nil); st != 400 {
		t.Fatalf("a file in a form without files: %d, want 400", st)
	}
	// The streamed upload: refused without its token, stored with it.
	expectRefused(op, "/cases/"+caseID+"/materials", field{name: "kind", value: "other"}, field{name: "file", filename: "a.txt", value: "x"})
	expectRefused(op, "/cases/"+caseID+"/materials", field{name: "csrf", value: "wrong"}, field{name: "kind", value: "other"},
		field{name: "file", filename: "a.txt", value: "x"})
	body, ct = multipartForm(t, field{name: "csrf", value: token}, field{name: "kind", value: "procurement"},
		field{name: "file", filename: "contract.txt", value: "procurement contract"})
	if st, page, hd := op.do("POST", "/cases/"+caseID+"/materials", body, ct, nil); st != 303 || !strings.Contains(hd.Get("Location"), "done=uploaded") {
		t.Fatalf("upload with its token: %d %q %s", st, hd.Get("Location"), tail(page, 300))
	}
	// Sign-in with the sign-in page's token, in its cookie and its form.
	req, _ := http.NewRequest("GET", s.base+"/login", nil)
	cl := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var csrfCookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "__Host-crvault-csrf" {
			csrfCookie = c
		}
	}
	lm := csrfInput.FindStringSubmatch(string(page))
	if csrfCookie == nil || lm == nil {
		t.Fatalf("sign-in page without its token: %v", res.Header)
	}
	body, ct = multipartForm(t, field{name: "csrf", value: lm[1]}, field{name: "username", value: "operator1"}, field{name: "password", value: pw},
		field{name: "next", value: "/cases"})
	req, _ = http.NewRequest("POST", s.base+"/login", strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.AddCookie(csrfCookie)
	if res, err = cl.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 || res.Header.Get("Location") != "/cases" || !strings.Contains(strings.Join(res.Header["Set-Cookie"], "\n"), "__Host-crvault-session=") {
		t.Fatalf("multipart sign-in with its token: %d %v", res.StatusCode, res.Header)
	}
	// The sysadmin disables the account with the token (and confirms);
	// it no longer signs in.
	body, ct = multipartForm(t, field{name: "csrf", value: pageCSRF(t, admin)}, field{name: "confirm", value: "1"})
	if st, _, hd := admin.do("POST", "/admin/users/"+victimID+"/disable", body, ct, nil); st != 303 {
		t.Fatalf("disable with its token: %d %q", st, hd.Get("Location"))
	}
	if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "victim", "password": pw}); r.Status != 401 {
		t.Fatalf("a disabled account signed in: %d", r.Status)
	}
	// Sign out, with the token: the session ends.
	body, ct = multipartForm(t, field{name: "csrf", value: token})
	if st, _, hd := op.do("POST", "/logout", body, ct, nil); st != 303 || !strings.HasPrefix(hd.Get("Location"), "/login") {
		t.Fatalf("sign-out with its token: %d %q", st, hd.Get("Location"))
	}
	if st, _, _ := op.do("GET", "/cases", "", "", nil); st != 303 {
		t.Fatalf("the session survived signing out: %d", st)
	}
}

// materialNames lists the filenames of a case's materials, as the API
// gives them.
func materialNames(t *testing.T, c *client, caseID string) []string {
	t.Helper()
	var page struct {
		Items []struct {
			Filename string `json:"filename"`
			Kind     string `json:"kind"`
		} `json:"items"`
	}
	c.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &page)
	var names []string
	for _, m := range page.Items {
		names = append(names, m.Kind+"/"+m.Filename)
	}
	slices.Sort(names)
	return names
}

// TestWebUploadSeveralFiles: the upload form without JavaScript stores
// every file chosen, under the chosen kind, and says how many; when one
// fails, it names the files stored and the one that was not.
func TestWebUploadSeveralFiles(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	opAPI := s.login(t, "operator1", pw)
	var cs struct {
		ID string `json:"id"`
	}
	opAPI.expect(201, "POST", "/cases", map[string]any{"title": "Core routers", "product": "AR-9000", "providers": []string{w.provOrg}}).json(t, &cs)
	op := cookieClient{t: t, base: s.base, token: opAPI.token}
	token := pageCSRF(t, op)

	body, ct := multipartForm(t, field{name: "csrf", value: token}, field{name: "kind", value: "procurement"},
		field{name: "file", filename: "one.txt", value: "first contract"}, field{name: "file", filename: "two.txt", value: "second contract"},
		field{name: "file", value: ""}) // an empty file input
	st, page, hd := op.do("POST", "/cases/"+cs.ID+"/materials", body, ct, nil)
	if st != 303 || hd.Get("Location") != "/cases/"+cs.ID+"?done=uploaded_n&count=2" {
		t.Fatalf("two files: %d %q %s", st, hd.Get("Location"), tail(page, 300))
	}
	if got, want := materialNames(t, opAPI, cs.ID), []string{"procurement/one.txt", "procurement/two.txt"}; !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	_, page, _ = op.do("GET", hd.Get("Location"), "", "", nil)
	if !strings.Contains(page, `<p class="flash" role="status">已上传 2 个文件。</p>`) {
		t.Fatalf("the case page does not say how many were uploaded: %s", tail(page, 2000))
	}

	// The second of three files has a name the vault refuses: the other
	// two are stored, and the page names each.
	long := strings.Repeat("长", 100) + ".txt"
	body, ct = multipartForm(t, field{name: "csrf", value: token}, field{name: "kind", value: "other"},
		field{name: "file", filename: "three.txt", value: "3"}, field{name: "file", filename: long, value: "refused"},
		field{name: "file", filename: "four.txt", value: "4"})
	st, page, _ = op.do("POST", "/cases/"+cs.ID+"/materials", body, ct, map[string]string{"Accept-Language": "en"})
	if st != 422 {
		t.Fatalf("three files, one refused: %d %s", st, tail(page, 600))
	}
	stored, failed, _ := strings.Cut(page, `id="failed"`)
	if !strings.Contains(stored, "2 files were stored") || !strings.Contains(stored, "three.txt") || !strings.Contains(stored, "four.txt") ||
		!strings.Contains(stored, "1 file was not stored") || !strings.Contains(failed, long) || !strings.Contains(failed, `href="/cases/`+cs.ID+`"`) {
		t.Fatalf("the result page does not name what was stored and what was not: %s", tail(page, 2000))
	}
	if got, want := materialNames(t, opAPI, cs.ID), []string{"other/four.txt", "other/three.txt", "procurement/one.txt", "procurement/two.txt"}; !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
}

// confirmForm is the form of a confirmation page: where it posts and its
// fields.
func confirmForm(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	m := regexp.MustCompile(`<form method="post" action="([^"]*)" id="confirm-form">`).FindStringSubmatchIndex(page)
	if m == nil {
		t.Fatalf("no confirmation form: %s", tail(page, 1500))
	}
	action := page[m[2]:m[3]]
	form, _, _ := strings.Cut(page[m[1]:], "</form>")
	v := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(form, -1) {
		v.Add(htmlstd.UnescapeString(m[1]), htmlstd.UnescapeString(m[2]))
	}
	return htmlstd.UnescapeString(action), v
}

// TestWebConfirmsIrreversibleSteps: disabling an account, revoking an
// assignment and recusing a complaint's subject first show a page that
// says what will happen, and change nothing; that page's form, sent, does
// it. The case's next step is not chosen in advance.
func TestWebConfirmsIrreversibleSteps(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	victimID := s.mustCLI(pw+"\n", "user", "add", "--username", "victim", "--org", "Grid Co", "--role", "operator", "--password-stdin")
	post := func(c cookieClient, path string, v url.Values) (int, string, http.Header) {
		t.Helper()
		return c.do("POST", path, v.Encode(), "application/x-www-form-urlencoded", map[string]string{"Accept-Language": "en"})
	}
	signsIn := func(username string) bool {
		return s.postJSON(t, "", "/sessions", map[string]string{"username": username, "password": pw}).Status == 201
	}

	// Disabling an account.
	admin := cookieClient{t: t, base: s.base, token: w.admin.token}
	token := pageCSRF(t, admin)
	st, page, _ := post(admin, "/admin/users/"+victimID+"/disable", url.Values{"csrf": {token}, "username": {"victim"}})
	if st != 200 || !strings.Contains(page, "The account victim will be disabled.") {
		t.Fatalf("disable, first post: %d %s", st, tail(page, 1500))
	}
	if !signsIn("victim") {
		t.Fatal("the account was disabled before it was confirmed")
	}
	action, form := confirmForm(t, page)
	if action != "/admin/users/"+victimID+"/disable" || form.Get("confirm") != "1" || form.Get("csrf") != token {
		t.Fatalf("confirmation form posts to %s with %v", action, form)
	}
	if st, _, hd := post(admin, action, form); st != 303 || hd.Get("Location") != "/admin/users?done=user_disabled" {
		t.Fatalf("disable, confirmed: %d %q", st, hd.Get("Location"))
	}
	if signsIn("victim") {
		t.Fatal("a disabled account signed in")
	}
	// One's own account: the list offers no button, and a post is warned.
	_, list, _ := admin.do("GET", "/admin/users", "", "", nil)
	_, own, _ := strings.Cut(list, `data-user="admin"`)
	own, _, _ = strings.Cut(own, "</tr>")
	if own == "" || strings.Contains(own, "/disable") {
		t.Errorf("the users list offers the administrator to disable their own account: %q", own)
	}
	st, page, _ = post(admin, "/admin/users/"+w.admin.id+"/disable", url.Values{"csrf": {token}, "username": {"admin"}})
	if st != 200 || !strings.Contains(page, "This is your own account") || !signsIn("admin") {
		t.Fatalf("disable oneself, first post: %d %s", st, tail(page, 1500))
	}

	// Revoking an assignment.
	caseID, _ := w.newCase(t, "confirm")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	var as struct {
		ID string `json:"id"`
	}
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"}).json(t, &as)
	office := cookieClient{t: t, base: s.base, token: w.office.token}
	token = pageCSRF(t, office)
	_, casePage, _ := office.do("GET", "/cases/"+caseID, "", "", nil)
	if regexp.MustCompile(`name="action" value="[a-z_]+" required checked`).MatchString(casePage) || strings.Contains(casePage, " checked>") {
		t.Errorf("the case page chooses a next step in advance")
	}
	revoke := "/cases/" + caseID + "/assignments/" + as.ID + "/revoke"
	st, page, _ = post(office, revoke, url.Values{"csrf": {token}})
	if st != 200 || !strings.Contains(page, "rev1") || !strings.Contains(page, "preliminary review") || !strings.Contains(page, `href="/cases/`+caseID+`"`) {
		t.Fatalf("revoke, first post: %d %s", st, tail(page, 1500))
	}
	active := func() bool {
		var list struct{ Items []struct{ ID, Status string } }
		w.office.expect(200, "GET", "/cases/"+caseID+"/assignments", nil).json(t, &list)
		for _, a := range list.Items {
			if a.ID == as.ID {
				return a.Status == "active"
			}
		}
		return false
	}
	if !active() {
		t.Fatal("the assignment ended before it was confirmed")
	}
	action, form = confirmForm(t, page)
	if st, _, hd := post(office, action, form); st != 303 || hd.Get("Location") != "/cases/"+caseID+"?done=revoked" {
		t.Fatalf("revoke, confirmed: %d %q", st, hd.Get("Location"))
	}
	if active() {
		t.Fatal("the assignment is still active after a confirmed revoke")
	}

	// Recusing a complaint's subject; a resolution without recusal is not
	// asked about.
	var cp struct {
		ID string `json:"id"`
	}
	for i := 0; i < 2; i++ {
		w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "the reviewer leaked"}).json(t, &cp)
		insp := cookieClient{t: t, base: s.base, token: w.insp.token}
		v := url.Values{"csrf": {pageCSRF(t, insp)}, "outcome": {"upheld"}, "note": {"a long note of the inquiry"}}
		if i == 1 {
			// Straight to the service (which answers as it will).
			if st, page, _ := post(insp, "/complaints/"+cp.ID+"/resolution", v); strings.Contains(page, `id="confirm-form"`) {
				t.Fatalf("resolution without recusal asks to confirm: %d", st)
			}
			break
		}
		v.Set("recuse", "1")
		st, page, _ = post(insp, "/complaints/"+cp.ID+"/resolution", v)
		if st != 200 || !strings.Contains(page, "recused") {
			t.Fatalf("recusal, first post: %d %s", st, tail(page, 1500))
		}
		var got struct {
			Status string `json:"status"`
		}
		w.insp.expect(200, "GET", "/complaints/"+cp.ID, nil).json(t, &got)
		if got.Status != "open" {
			t.Fatalf("the complaint is %s before the recusal was confirmed", got.Status)
		}
		action, form = confirmForm(t, page)
		if action != "/complaints/"+cp.ID+"/resolution" || form.Get("note") != "a long note of the inquiry" || form.Get("recuse") != "1" || form.Get("outcome") != "upheld" {
			t.Fatalf("the confirmation form posts to %s with %v", action, form)
		}
	}
}

// TestWebRefusedFormsKeepWhatWasTyped: a form of the case or complaint
// page that the service refuses for what was typed comes back as that
// page, the reason above and the text kept; other refusals link back to
// the page of the form; a reviewer who must declare first is sent to the
// declaration form.
func TestWebRefusedFormsKeepWhatWasTyped(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID, docs := w.newCase(t, "forms")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
	post := func(tok, path string, v url.Values) (int, string) {
		t.Helper()
		c := cookieClient{t: t, base: s.base, token: tok}
		v.Set("csrf", pageCSRF(t, c))
		st, page, _ := c.do("POST", path, v.Encode(), "application/x-www-form-urlencoded", map[string]string{"Accept-Language": "en"})
		return st, htmlstd.UnescapeString(page)
	}
	// kept checks the answer is the page again with the reason and the text.
	kept := func(what string, st, want int, page string, texts ...string) {
		t.Helper()
		if st != want || !strings.Contains(page, `<p class="error" role="alert">`) {
			t.Fatalf("%s: %d, want %d with the reason above the form: %s", what, st, want, tail(page, 1500))
		}
		for _, s := range texts {
			if !strings.Contains(page, s) {
				t.Errorf("%s: the page lacks %q", what, s)
			}
		}
	}
	reason := "Please add the third-party audit report of the firmware, chapter 4."
	st, page := post(w.office.token, "/cases/"+caseID+"/transitions", url.Values{"action": {"request_supplement"}, "reason": {reason}, "items": {""}})
	kept("transition", st, 422, page, `id="transition-form"`, reason)
	st, page = post(w.office.token, "/cases/"+caseID+"/assignments", url.Values{"user": {"nosuchuser"}, "role": {"reviewer"}, "purpose": {"初步审查（第十条）"}})
	kept("assignment", st, 422, page, msg(t, "en", "error.unknown_user"), `value="nosuchuser"`, `value="初步审查（第十条）"`)
	st, page = post(w.office.token, "/cases/"+caseID+"/assignments", url.Values{"user": {"rev2"}, "role": {"reviewer"}, "purpose": {"p"}, "expires_on": {"next week"}})
	kept("assignment with a bad date", st, 422, page, msg(t, "en", "field.expires_on"), `value="rev2"`)
	description := "The reviewer disclosed our pricing in a meeting with a competitor."
	st, page = post(w.op.token, "/complaints", url.Values{"case": {caseID}, "kind": {"confidentiality"}, "subject": {"nosuchperson"}, "description": {description}})
	kept("complaint", st, 422, page, description, `<option value="confidentiality" selected>`, msg(t, "en", "error.unknown_subject"))
	// An organisation that is not a provider reads as one that does not
	// exist: the form names neither, and says what it wanted.
	for _, name := range []string{"Inspectorate", "No Such Organisation"} {
		st, page = post(w.op.token, "/cases", url.Values{"title": {"T"}, "product": {"P"}, "providers": {name}})
		kept("new case naming "+name, st, 422, page, strings.ReplaceAll(msg(t, "en", "case.unknown_provider"), "{{.Name}}", name))
	}
	statement := "I advised the operator in 2019 on another matter."
	st, page = post(w.rev1.token, "/cases/"+caseID+"/declarations", url.Values{"conflict": {"maybe"}, "statement": {statement}})
	kept("declaration", st, 422, page, statement)

	// A refusal that typing cannot mend: the error page, linking back.
	st, page = post(w.op.token, "/cases/"+caseID+"/transitions", url.Values{"action": {"conclude"}})
	if st != 403 || !strings.Contains(page, `<a href="/cases/`+caseID+`" id="error-back">`) || !strings.Contains(page, msg(t, "en", "error.back_help")) {
		t.Fatalf("operator's transition: %d %s", st, tail(page, 1500))
	}
	// Reading before declaring: to the declaration form.
	var matID string
	for id := range docs {
		matID = id
	}
	rev := cookieClient{t: t, base: s.base, token: w.rev1.token}
	st, page, _ = rev.do("GET", "/materials/"+matID, "", "", map[string]string{"Accept-Language": "en"})
	if st != 403 || !strings.Contains(page, `<a href="/cases/`+caseID+`#decl-h" id="error-back">`+msg(t, "en", "error.declare_first")) {
		t.Fatalf("reading before declaring: %d %s", st, tail(page, 1500))
	}

	// A form sent after the session ended: signing in again leads back to
	// the page of the form, with a word on why.
	gone := cookieClient{t: t, base: s.base, token: "expiredtoken"}
	st, _, hd := gone.do("POST", "/cases/"+caseID+"/transitions", "action=conclude", "application/x-www-form-urlencoded", nil)
	if want := "/login?done=session_ended&next=" + url.QueryEscape("/cases/"+caseID); st != 303 || hd.Get("Location") != want {
		t.Fatalf("a form after the session ended: %d %q, want %q", st, hd.Get("Location"), want)
	}
	_, page, _ = gone.do("GET", hd.Get("Location"), "", "", map[string]string{"Accept-Language": "en"})
	if page = htmlstd.UnescapeString(page); !strings.Contains(page, msg(t, "en", "flash.session_ended")) || !strings.Contains(page, `value="/cases/`+caseID+`"`) {
		t.Fatalf("sign-in page after the session ended: %s", tail(page, 1500))
	}

	// A resolution the service refuses: the complaint page, the note kept.
	var cp struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "unfair treatment"}).json(t, &cp)
	w.insp.expect(200, "POST", "/complaints/"+cp.ID+"/status", map[string]any{"status": "investigating", "note": "looking"})
	note := "Heard both sides on 3 March; the minutes show no disclosure."
	st, page = post(w.insp.token, "/complaints/"+cp.ID+"/resolution", url.Values{"outcome": {"withdrawn"}, "note": {note}})
	kept("resolution", st, 422, page, note)
}

// TestWebComplaintInvestigatedThenResolved: on the web complaint page an
// inspector puts an open complaint under investigation (the step the
// service requires before a resolution) and then resolves it; each page
// offers only the form that can succeed, and a step the complaint's status
// forbids says so in the complaint's words.
func TestWebComplaintInvestigatedThenResolved(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID, _ := w.newCase(t, "investigate")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	var cp struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "biased"}).json(t, &cp)
	insp := cookieClient{t: t, base: s.base, token: w.insp.token}
	en := map[string]string{"Accept-Language": "en"}
	get := func() string {
		t.Helper()
		st, page, _ := insp.do("GET", "/complaints/"+cp.ID, "", "", en)
		if st != 200 {
			t.Fatalf("complaint page: %d", st)
		}
		return htmlstd.UnescapeString(page)
	}
	post := func(path string, v url.Values) (int, string, http.Header) {
		t.Helper()
		v.Set("csrf", pageCSRF(t, insp))
		st, page, hd := insp.do("POST", path, v.Encode(), "application/x-www-form-urlencoded", en)
		return st, htmlstd.UnescapeString(page), hd
	}
	statusForm, resolutionForm := `action="/complaints/`+cp.ID+`/status"`, `action="/complaints/`+cp.ID+`/resolution"`
	page := get()
	if !strings.Contains(page, statusForm) || strings.Contains(page, resolutionForm) {
		t.Fatalf("open complaint: status form %v, resolution form %v; want only the status form",
			strings.Contains(page, statusForm), strings.Contains(page, resolutionForm))
	}
	// A resolution sent from a page that was stale: refused in the
	// complaint's words.
	st, page, _ := post("/complaints/"+cp.ID+"/resolution", url.Values{"outcome": {"dismissed"}, "note": {"no bias"}})
	if st != 409 || !strings.Contains(page, msg(t, "en", "error.complaint_illegal_transition")) || !strings.Contains(page, statusForm) {
		t.Fatalf("resolving an open complaint: %d %s", st, tail(page, 1500))
	}
	// Without its CSRF token the step is refused.
	if st, _, _ := insp.do("POST", "/complaints/"+cp.ID+"/status", "note=x", "application/x-www-form-urlencoded", en); st != 403 {
		t.Fatalf("status form without its token: %d", st)
	}
	// A note too long comes back with the text kept.
	long := strings.Repeat("n", 4001)
	if st, page, _ := post("/complaints/"+cp.ID+"/status", url.Values{"note": {long}}); st != 422 || !strings.Contains(page, long) {
		t.Fatalf("too long a note: %d", st)
	}
	st, _, hd := post("/complaints/"+cp.ID+"/status", url.Values{"note": {"asking both sides"}})
	if st != 303 || hd.Get("Location") != "/complaints/"+cp.ID+"?done=investigating" {
		t.Fatalf("start the investigation: %d %q", st, hd.Get("Location"))
	}
	page = get()
	if strings.Contains(page, statusForm) || !strings.Contains(page, resolutionForm) || !strings.Contains(page, "asking both sides") {
		t.Fatalf("complaint under investigation: status form %v, resolution form %v", strings.Contains(page, statusForm), strings.Contains(page, resolutionForm))
	}
	if st, page, _ := post("/complaints/"+cp.ID+"/status", url.Values{"note": {"again"}}); st != 409 || !strings.Contains(page, msg(t, "en", "error.complaint_illegal_transition")) {
		t.Fatalf("investigating twice: %d %s", st, tail(page, 1500))
	}
	st, _, hd = post("/complaints/"+cp.ID+"/resolution", url.Values{"outcome": {"dismissed"}, "note": {"no bias found"}})
	if st != 303 || hd.Get("Location") != "/complaints/"+cp.ID+"?done=resolved" {
		t.Fatalf("resolve: %d %q", st, hd.Get("Location"))
	}
	if page = get(); strings.Contains(page, statusForm) || strings.Contains(page, resolutionForm) {
		t.Fatal("a resolved complaint still offers a form")
	}
	// The filer sees neither form.
	filer := cookieClient{t: t, base: s.base, token: w.op.token}
	if _, page, _ := filer.do("GET", "/complaints/"+cp.ID, "", "", en); strings.Contains(page, statusForm) {
		t.Fatal("the filer is offered the inspectors' form")
	}
}

// TestWebDeclarationShown: a reviewer's case page says whether they have
// declared, and how: before, the form; after "no conflict", the date and
// the form folded under "change"; after a conflict, the suspension and no
// form, since nobody undoes a conflict alone.
func TestWebDeclarationShown(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID, _ := w.newCase(t, "declarations")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
	rev := cookieClient{t: t, base: s.base, token: w.rev1.token}
	page := func() string {
		t.Helper()
		st, body, _ := rev.do("GET", "/cases/"+caseID, "", "", map[string]string{"Accept-Language": "en"})
		if st != 200 {
			t.Fatalf("case page: %d", st)
		}
		return htmlstd.UnescapeString(body)
	}
	declare := func(conflict string) {
		t.Helper()
		v := url.Values{"csrf": {pageCSRF(t, rev)}, "conflict": {conflict}, "statement": {"stated " + conflict}}
		if st, body, _ := rev.do("POST", "/cases/"+caseID+"/declarations", v.Encode(), "application/x-www-form-urlencoded", nil); st != 303 {
			t.Fatalf("declare %s: %d %s", conflict, st, tail(body, 1000))
		}
	}
	before := page()
	if strings.Contains(before, `id="declared"`) || !strings.Contains(before, `action="/cases/`+caseID+`/declarations"`) || strings.Contains(before, "<details") {
		t.Fatalf("before declaring: %s", tail(before, 3000))
	}
	declare("false")
	after := page()
	none := strings.SplitN(msg(t, "en", "declaration.declared_none"), "{{", 2)[0]
	if !strings.Contains(after, `id="declared"`) || !strings.Contains(after, none) || !strings.Contains(after, msg(t, "en", "declaration.change")) {
		t.Fatalf("after declaring no conflict: %s", tail(after, 3000))
	}
	// A conflict suspends the assignment: the case page is refused, and
	// says so.
	declare("true")
	if st, body, _ := rev.do("GET", "/cases/"+caseID, "", "", map[string]string{"Accept-Language": "en"}); st != 403 || !strings.Contains(htmlstd.UnescapeString(body), msg(t, "en", "error.assignment_suspended")) {
		t.Fatalf("after declaring a conflict: %d %s", st, tail(body, 1500))
	}
}

// TestWebLimitedSessionSeesNoCase: a session opened with the password
// alone by an account that must set up TOTP first is sent to the set-up
// page from the home page too, which would otherwise list its cases.
func TestWebLimitedSessionSeesNoCase(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0]) // reviewers must set up TOTP (the default)
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, _ := w.newCase(t, "MARKER-LIMITED")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	// A second reviewer, assigned, who has never signed in.
	s.mustCLI(pw+"\n", "user", "add", "--username", "rev9", "--org", "Cybersecurity Review Office", "--role", "reviewer", "--password-stdin")
	var rev9 struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
		Limited bool `json:"totp_enrolment_required"`
	}
	s.postJSON(t, "", "/sessions", map[string]string{"username": "rev9", "password": pw}).json(t, &rev9)
	if !rev9.Limited {
		t.Fatal("the reviewer's first session is not limited to enrolment")
	}
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": rev9.User.ID, "role": "reviewer", "purpose": "p"})
	c := cookieClient{t: t, base: s.base, token: rev9.Token}
	st, body, hd := c.do("GET", "/", "", "", nil)
	if st != 303 || hd.Get("Location") != "/account/totp" || strings.Contains(body, "MARKER-LIMITED") {
		t.Fatalf("home page of a session limited to enrolment: %d %q %s", st, hd.Get("Location"), tail(body, 1500))
	}
}
