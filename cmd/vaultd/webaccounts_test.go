package main

// Browser tests of the pages added for accounts, approvals, passwords,
// consents, member units and commitment statuses. They run inside
// TestWebBrowser (one server, one browser) once the case exists.

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// userIDByName is the id of the account in the row of a users table.
func userIDByName(tb *tab, table, username string) string {
	tb.t.Helper()
	id := js[string](tb, `(() => { const r = document.querySelector('#`+table+` tr[data-user="`+username+`"] form'); return r ? r.getAttribute("action") : ""; })()`)
	m := regexp.MustCompile(`/([0-9a-z]+)(?:/disable)?$`).FindStringSubmatch(id)
	if m == nil {
		tb.t.Fatalf("no row for %s in #%s: %s", username, table, tb.text())
	}
	return m[1]
}

func testAccountPages(t *testing.T, b *browser, s *server, caseID, officePW string) {
	s.mustCLI(pw+"\n", "user", "add", "--username", "admin1", "--org", "网络安全审查办公室", "--role", "sysadmin", "--password-stdin")

	t.Run("sysadmin manages accounts and organisations", func(t *testing.T) {
		tb := b.person(t, "zh-CN", true)
		tb.signIn("admin1", pw)
		if st := tb.open("/admin/users"); st != 200 {
			t.Fatalf("accounts page: %d", st)
		}
		tb.expectText("operator1", "rev1", msg(t, "zh-CN", "ustatus.active"))
		tb.shotBoth("admin-users")
		tb.axeCheck("admin-users")
		tb.narrow("admin-users")
		// A member-unit organisation, for the office admin below.
		tb.fill(map[string]string{"#org-name": "Cyberspace Unit", "#org-kind": "member_unit"})
		tb.submit(`#org-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.org_created"))
		// A refused form says why and keeps what was typed.
		tb.fill(map[string]string{"#username": "operator3", "#display_name": "Third operator", "#org": "Grid Co", "#password": pw})
		tb.submit(`#user-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "error.roles_required"))
		if v := js[string](tb, `document.getElementById("username").value`); v != "operator3" {
			t.Errorf("the refused form lost the username: %q", v)
		}
		// An operator account waits for a second person's approval.
		tb.fill(map[string]string{"#username": "operator3", "#display_name": "Third operator", "#org": "Grid Co", "#password": pw})
		tb.click("#role-operator")
		tb.submit(`#user-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.user_created_pending"), "operator3", msg(t, "zh-CN", "ustatus.pending_approval"))
		// A second sysadmin (no access to content) is active at once;
		// disabling it ends it.
		tb.fill(map[string]string{"#username": "admin9", "#org": "网络安全审查办公室", "#password": pw})
		tb.click("#role-sysadmin")
		tb.submit(`#user-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.user_created"), "admin9")
		if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "admin9", "password": pw}); r.Status != 201 {
			t.Fatalf("the new sysadmin cannot sign in: %d %s", r.Status, r.Body)
		}
		// Disabling asks first, and says it cannot be undone.
		tb.submit(`#users tr[data-user="admin9"] form button`)
		tb.expectText(msg(t, "zh-CN", "confirm.disable_consequence"))
		if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "admin9", "password": pw}); r.Status != 201 {
			t.Fatalf("admin9 was disabled before it was confirmed: %d", r.Status)
		}
		tb.axeCheck("confirm")
		tb.submit(`#confirm-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.user_disabled"))
		if got := js[string](tb, `document.querySelector('#users tr[data-user="admin9"]').innerText`); !strings.Contains(got, msg(t, "zh-CN", "ustatus.disabled")) {
			t.Errorf("admin9 after disabling: %q", got)
		}
		if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "admin9", "password": pw}); r.Status == 201 {
			t.Fatal("a disabled account signed in")
		}
	})

	t.Run("an organisation's account approves a pending account", func(t *testing.T) {
		if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "operator3", "password": pw}); r.Status == 201 {
			t.Fatal("a pending account signed in")
		}
		// Another operator organisation neither sees nor may approve it.
		other := b.person(t, "en", true)
		other.signIn("operator2", pw)
		other.open("/approvals")
		if strings.Contains(other.text(), "operator3") {
			t.Fatalf("operator2 of another organisation sees operator3 waiting: %s", other.text())
		}
		tb := b.person(t, "en", true)
		tb.signIn("operator1", pw)
		if st := tb.open("/approvals"); st != 200 {
			t.Fatalf("approvals page: %d", st)
		}
		tb.expectText("operator3", "Third operator")
		tb.shotBoth("approvals")
		tb.axeCheck("approvals")
		id := userIDByName(tb, "approvals", "operator3")
		// With a valid CSRF token of its own, operator2 still gets 404.
		op2 := cookieClient{t: t, base: b.base, token: s.login(t, "operator2", pw).token}
		_, page, _ := op2.do("GET", "/approvals", "", "", nil)
		m := csrfInput.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no CSRF token on the approvals page")
		}
		if st, body, _ := op2.do("POST", "/approvals/"+id, url.Values{"csrf": {m[1]}}.Encode(), "application/x-www-form-urlencoded", nil); st != 404 {
			t.Fatalf("approval by another organisation: %d, want 404: %s", st, tail(body, 300))
		}
		tb.submit(`#approvals tr[data-user="operator3"] form button`)
		tb.expectText(msg(t, "en", "flash.user_approved"))
		if strings.Contains(tb.text(), "operator3") {
			t.Error("operator3 still waits after approval")
		}
		if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "operator3", "password": pw}); r.Status != 201 {
			t.Fatalf("the approved account cannot sign in: %d %s", r.Status, r.Body)
		}
	})

	t.Run("a user changes their password", func(t *testing.T) {
		tb := b.person(t, "en", true)
		tb.signIn("operator3", pw)
		if st := tb.open("/account"); st != 200 {
			t.Fatalf("account page: %d", st)
		}
		tb.expectText("operator3", "Grid Co", msg(t, "en", "account.totp_off"))
		tb.shotBoth("account")
		tb.axeCheck("account")
		tb.narrow("account")
		const newPW = "a brand new passphrase 77"
		tb.fill(map[string]string{"#current": "not my password 123", "#new": newPW, "#new2": newPW})
		tb.submit(`#password-form button[type=submit]`)
		tb.expectText(msg(t, "en", "error.invalid_current_password"))
		tb.fill(map[string]string{"#current": pw, "#new": newPW, "#new2": newPW + "x"})
		tb.submit(`#password-form button[type=submit]`)
		tb.expectText(msg(t, "en", "setup.password_mismatch"))
		old := get(tb, chromedp.Evaluate[string](`document.cookie`)) // HttpOnly: the session is not in it
		if strings.Contains(old, "crvault-session") {
			t.Fatal("the session cookie is readable by scripts")
		}
		tb.fill(map[string]string{"#current": pw, "#new": newPW, "#new2": newPW})
		tb.submit(`#password-form button[type=submit]`)
		if loc := tb.location(); !strings.HasPrefix(loc, "/login") {
			t.Fatalf("after the change: at %s", loc)
		}
		tb.expectText(msg(t, "en", "flash.password_changed"))
		if tb.open("/account"); !strings.HasPrefix(tb.location(), "/login") {
			t.Fatalf("the old session still opens the account page: at %s", tb.location())
		}
		if r := s.postJSON(t, "", "/sessions", map[string]string{"username": "operator3", "password": pw}); r.Status == 201 {
			t.Fatal("the old password still signs in")
		}
		tb.signIn("operator3", newPW)
		tb.open("/account")
		tb.expectText("operator3")
	})

	t.Run("an operator grants and withdraws a consent", func(t *testing.T) {
		op := s.login(t, "operator1", pw)
		var mats struct {
			Items []struct {
				ID       string `json:"id"`
				Filename string `json:"filename"`
			} `json:"items"`
		}
		op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &mats)
		var matID string
		for _, m := range mats.Items {
			if m.Filename == "declaration.pdf" {
				matID = m.ID
			}
		}
		if matID == "" {
			t.Fatalf("no declaration.pdf among %+v", mats.Items)
		}
		prov := s.login(t, "provider1", pw)
		if r := prov.do("GET", "/materials/"+matID, nil); r.Status == 200 {
			t.Fatal("the provider sees the operator's declaration without consent")
		}
		tb := b.person(t, "zh-CN", true)
		tb.signIn("operator1", pw)
		tb.open("/cases/" + caseID)
		tb.run(chromedp.Click(chromedp.CSS(`a.consents-link[href="/materials/` + matID + `/consents"]`)))
		tb.run(chromedp.WaitVisible(chromedp.CSS(`#consent-form`)))
		tb.expectText(msg(t, "zh-CN", "consents.none"), "declaration.pdf")
		tb.shotBoth("consents")
		tb.axeCheck("consents")
		tb.fill(map[string]string{"#consent-org": js[string](tb, `document.querySelector('#consent-org option').value`), "#purpose": "核对采购合同中的供货条款"})
		if got := js[string](tb, `document.querySelector('#consent-org option').textContent`); got != "Acme Routers" {
			t.Fatalf("the party offered is %q, want Acme Routers", got)
		}
		tb.submit(`#consent-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.consent_granted"), "Acme Routers", "核对采购合同中的供货条款")
		if r := prov.do("GET", "/materials/"+matID, nil); r.Status != 200 {
			t.Fatalf("with the consent the provider gets %d: %s", r.Status, r.Body)
		}
		// Only the providing organisation manages them.
		pc := cookieClient{t: t, base: b.base, token: prov.token}
		rc := cookieClient{t: t, base: b.base, token: s.login(t, "rev1", pw).token}
		for _, c := range []cookieClient{pc, rc} {
			if st, body, _ := c.do("GET", "/materials/"+matID+"/consents", "", "", nil); st != 403 && st != 404 {
				t.Errorf("another party's consents page: %d: %s", st, tail(body, 300))
			}
		}
		tb.submit(`#consents form button`)
		tb.expectText(msg(t, "zh-CN", "flash.consent_revoked"), msg(t, "zh-CN", "consents.none"))
		if r := prov.do("GET", "/materials/"+matID, nil); r.Status == 200 {
			t.Fatal("the provider still sees the declaration after the withdrawal")
		}
	})

	t.Run("the office admin registers a member unit", func(t *testing.T) {
		tb := b.person(t, "en", true)
		tb.signIn("office", officePW)
		if st := tb.open("/member-units"); st != 200 {
			t.Fatalf("member units page: %d", st)
		}
		tb.shotBoth("member-units")
		tb.axeCheck("member-units")
		tb.fill(map[string]string{"#mu-org": "Cyberspace Unit", "#mu-unit": "miit"})
		tb.submit(`#member-unit-form button[type=submit]`)
		tb.expectText(msg(t, "en", "flash.member_unit_registered"), "Cyberspace Unit", "Ministry of Industry and Information Technology")
		// An organisation of another kind is refused with the reason.
		tb.fill(map[string]string{"#mu-org": "Grid Co", "#mu-unit": "miit"})
		tb.submit(`#member-unit-form button[type=submit]`)
		tb.expectText(msg(t, "en", "error.invalid_org"))
		op := cookieClient{t: t, base: b.base, token: s.login(t, "operator1", pw).token}
		if st, _, _ := op.do("GET", "/member-units", "", "", nil); st != 403 {
			t.Errorf("operator on the member units page: %d, want 403", st)
		}
	})

	t.Run("an inspector sets a commitment's status", func(t *testing.T) {
		prov := s.login(t, "provider1", pw)
		prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]string{"kind": "supply_continuity", "text": "Spare parts for ten years"})
		tb := b.person(t, "zh-CN", true)
		tb.signIn("inspector1", pw)
		tb.open("/commitments")
		// Whose commitment it is, by name.
		tb.expectText("Spare parts for ten years", msg(t, "zh-CN", "cmstatus.pending"), "Acme Routers")
		tb.shotBoth("commitments-inspector")
		tb.axeCheck("commitments-inspector")
		// Breached needs a note: the service refuses it without one.
		id := js[string](tb, `document.querySelector("#commitment-list li").dataset.commitment`)
		tb.fill(map[string]string{`#commitment-list select[name=status]`: "breached"})
		tb.submit(`#commitment-list form button`)
		if st := tb.status(b.base + "/commitments/" + id + "/status"); st != 422 {
			t.Fatalf("a breach without a note: %d, want 422: %s", st, tb.text())
		}
		tb.open("/commitments")
		tb.fill(map[string]string{`#commitment-list select[name=status]`: "under_investigation", `#commitment-list textarea[name=note]`: "现场核查中"})
		tb.submit(`#commitment-list form button`)
		tb.expectText(msg(t, "zh-CN", "flash.status_changed"), msg(t, "zh-CN", "cmstatus.under_investigation"), "现场核查中")
		// Nobody else may set it.
		op := cookieClient{t: t, base: b.base, token: s.login(t, "operator1", pw).token}
		_, page, _ := op.do("GET", "/commitments", "", "", nil)
		m := csrfInput.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no CSRF token on the commitments page")
		}
		if st, _, _ := op.do("POST", "/commitments/"+id+"/status", url.Values{"csrf": {m[1]}, "status": {"kept"}}.Encode(), "application/x-www-form-urlencoded", nil); st != 403 && st != 404 {
			t.Errorf("operator setting a commitment's status: %d, want 403 or 404", st)
		}
	})

	t.Run("pages, assets and the API each carry their own headers", func(t *testing.T) {
		c := cookieClient{t: t, base: b.base}
		// Static assets are not confidential: cacheable, typed, no sniffing.
		for path, ctype := range map[string]string{"/static/app.js": "text/javascript", "/static/app.css": "text/css"} {
			st, _, h := c.do("GET", path, "", "", nil)
			if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), ctype) || !strings.Contains(h.Get("Cache-Control"), "max-age") ||
				strings.Contains(h.Get("Cache-Control"), "no-store") || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: %d, Content-Type %q, Cache-Control %q, nosniff %q", path, st, h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("X-Content-Type-Options"))
			}
		}
		// Pages: the web's policy (scripts and styles from here), never stored.
		_, _, h := c.do("GET", "/login", "", "", map[string]string{"Accept": "text/html"})
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") {
			t.Errorf("page CSP %q", csp)
		}
		if cc := h.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("page Cache-Control %q", cc)
		}
		// The API keeps the hardening's policy.
		_, _, h = c.do("GET", "/api/v1/me", "", "", nil)
		if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || h.Get("Cache-Control") != "no-store" {
			t.Errorf("API CSP %q, Cache-Control %q", csp, h.Get("Cache-Control"))
		}
	})

	t.Run("account pages refuse other roles", func(t *testing.T) {
		op := cookieClient{t: t, base: b.base, token: s.login(t, "operator1", pw).token}
		rev := cookieClient{t: t, base: b.base, token: s.login(t, "rev1", pw).token}
		insp := cookieClient{t: t, base: b.base, token: s.login(t, "inspector1", pw).token}
		for _, c := range []struct {
			who    cookieClient
			path   string
			status int
		}{
			{op, "/admin/users", 403},
			{rev, "/admin/users", 403},
			{rev, "/approvals", 403},
			{insp, "/approvals", 403},
			{op, "/approvals", 200},
			{rev, "/account", 200},
		} {
			if st, body, _ := c.who.do("GET", c.path, "", "", nil); st != c.status {
				t.Errorf("GET %s: %d, want %d: %s", c.path, st, c.status, tail(body, 300))
			}
		}
		_, page, _ := op.do("GET", "/account", "", "", nil)
		m := csrfInput.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no CSRF token on the account page")
		}
		form := url.Values{"csrf": {m[1]}, "username": {"sneaky"}, "org": {"Grid Co"}, "roles": {"operator"}, "password": {pw}}
		if st, _, _ := op.do("POST", "/admin/users", form.Encode(), "application/x-www-form-urlencoded", nil); st != 403 {
			t.Errorf("an operator creating an account: %d, want 403", st)
		}
	})
}
