package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
)

// The insider attacks of issue 8 on accounts and sign-in, end to end.

// TestSysadminCannotMintContentAccess: a sysadmin used to create an
// operator+sysadmin account in an operator organisation and read that
// operator's documents. Now sysadmin comes alone, and an operator account a
// sysadmin creates cannot sign in until the organisation's own account (not
// the sysadmin) approves it.
func TestSysadminCannotMintContentAccess(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-SOD")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)

			p := w.admin.expect(422, "POST", "/users", map[string]any{"username": "shadow", "org": "Grid Co",
				"roles": []string{"operator", "sysadmin"}, "password": pw}).problem(t)
			if p["code"] != "sysadmin_exclusive" {
				t.Fatalf("operator+sysadmin: %v", p)
			}

			var u struct {
				ID        string `json:"id"`
				Status    string `json:"status"`
				CreatedBy string `json:"created_by"`
			}
			w.admin.expect(201, "POST", "/users", map[string]any{"username": "shadow", "org": "Grid Co",
				"roles": []string{"operator"}, "password": pw}).json(t, &u)
			if u.Status != "pending_approval" || u.CreatedBy != w.admin.id {
				t.Fatalf("operator made by a sysadmin: %+v", u)
			}
			wrong := s.postJSON(t, "", "/sessions", map[string]string{"username": "shadow", "password": "not the password at all"})
			pending := s.postJSON(t, "", "/sessions", map[string]string{"username": "shadow", "password": pw})
			if pending.Status != 401 || !bytes.Equal(pending.Body, wrong.Body) {
				t.Fatalf("pending account: %d %s (a wrong password: %d %s)", pending.Status, pending.Body, wrong.Status, wrong.Body)
			}

			// The creator cannot approve; nor can another organisation, nor
			// the office's reviewer; the operator's own account can.
			if p := w.admin.expect(403, "POST", "/users/"+u.ID+"/approve", nil).problem(t); p["code"] != "self_approval" {
				t.Fatalf("creator approves: %v", p)
			}
			w.op2.expect(404, "POST", "/users/"+u.ID+"/approve", nil)
			w.rev1.expect(404, "POST", "/users/"+u.ID+"/approve", nil)
			var list struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			w.op.expect(200, "GET", "/users?status=pending_approval", nil).json(t, &list)
			if len(list.Items) != 1 || list.Items[0].ID != u.ID {
				t.Fatalf("the organisation's pending accounts: %+v", list)
			}
			w.op2.expect(200, "GET", "/users?status=pending_approval", nil).json(t, &list)
			if len(list.Items) != 0 {
				t.Fatalf("another organisation sees %+v", list)
			}
			w.op.expect(200, "POST", "/users/"+u.ID+"/approve", nil)
			w.op.expect(409, "POST", "/users/"+u.ID+"/approve", nil)
			shadow := s.login(t, "shadow", pw)
			for id := range docs {
				shadow.expect(200, "GET", "/materials/"+id+"/content", nil)
				break
			}
			// The sysadmin still reaches no document.
			for id := range docs {
				w.admin.expect(404, "GET", "/materials/"+id+"/content", nil)
			}

			// Both steps are in the audit trail.
			evs := w.insp.events("action=user.create")
			if find(evs, func(e event) bool { return e.Actor == w.admin.id && e.Resource == "user/"+u.ID }) == nil {
				t.Error("user.create by the sysadmin not audited")
			}
			evs = w.insp.events("action=user.approve")
			if find(evs, func(e event) bool { return e.Actor == w.op.id && e.Outcome == "allowed" && e.Resource == "user/"+u.ID }) == nil ||
				find(evs, func(e event) bool { return e.Actor == w.admin.id && e.Outcome == "denied" }) == nil {
				t.Errorf("approval steps not audited: %+v", evs)
			}
		})
	}
}

// TestOfficeAccountCannotAssignItself: an office account holding
// office_admin and reviewer used to assign itself, declare and read.
func TestOfficeAccountCannotAssignItself(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.mustCLI(pw+"\n", "user", "add", "--username", "chief", "--org", "Cybersecurity Review Office",
				"--role", "office_admin", "--role", "reviewer", "--password-stdin")
			s.start()
			w.loginAll(t)
			chief := s.login(t, "chief", pw)
			caseID, docs := w.newCase(t, "MARKER-SELF")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)

			p := chief.expect(403, "POST", "/cases/"+caseID+"/assignments",
				map[string]any{"user": chief.id, "role": "reviewer", "purpose": "I review this myself"}).problem(t)
			if p["code"] != "self_assignment" {
				t.Fatalf("self assignment: %v", p)
			}
			if r := chief.do("POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"}); r.Status != 403 && r.Status != 404 {
				t.Fatalf("chief declares without an assignment: %d %s", r.Status, r.Body)
			}
			for id := range docs {
				if r := chief.do("GET", "/materials/"+id+"/content", nil); r.Status == 200 {
					t.Fatalf("chief reads %s without an assignment", id)
				}
			}
			var asg []struct {
				UserID string `json:"user"`
			}
			var page struct {
				Items []struct {
					UserID string `json:"user"`
				} `json:"items"`
			}
			w.office.expect(200, "GET", "/cases/"+caseID+"/assignments", nil).json(t, &page)
			asg = page.Items
			if len(asg) != 0 {
				t.Fatalf("assignments after the refusal: %+v", asg)
			}
			if find(w.insp.events("case="+caseID+"&action=assignment.create&outcome=denied"), func(e event) bool { return e.Actor == chief.id }) == nil {
				t.Error("the refused self-assignment is not audited")
			}
			// A second person may assign the chief.
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments",
				map[string]any{"user": chief.id, "role": "reviewer", "purpose": "assigned by a colleague"})
		})
	}
}

// TestTOTPSignIn runs on the default setting (TOTP required for staff):
// a reviewer's first session reaches only enrolment; then sign-in needs a
// code, a code works once, a recovery code works once, and enrolment and
// removal are audited.
func TestTOTPSignIn(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	login := func(user, totp string) resp {
		b := map[string]string{"username": user, "password": pw}
		if totp != "" {
			b["totp"] = totp
		}
		return s.postJSON(t, "", "/sessions", b)
	}
	r := login("rev1", "")
	var sess struct {
		Token                 string `json:"token"`
		TOTPEnrolmentRequired bool   `json:"totp_enrolment_required"`
	}
	r.json(t, &sess)
	if r.Status != 201 || !sess.TOTPEnrolmentRequired {
		t.Fatalf("first sign-in of a reviewer: %d %s", r.Status, r.Body)
	}
	rev := &client{t: t, s: s, token: sess.Token}
	for _, path := range []string{"/cases", "/deadlines?within=5"} {
		if p := rev.expect(403, "GET", path, nil).problem(t); p["code"] != "totp_enrolment_required" {
			t.Fatalf("GET %s in an enrolment session: %v", path, p)
		}
	}
	rev.expect(200, "GET", "/me", nil)
	var en struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}
	rev.expect(201, "POST", "/me/totp", nil).json(t, &en)
	if !strings.HasPrefix(en.OTPAuthURL, "otpauth://totp/crvault:rev1?") || !strings.Contains(en.OTPAuthURL, "secret="+en.Secret) {
		t.Fatalf("otpauth url %q", en.OTPAuthURL)
	}
	if p := rev.expect(422, "POST", "/me/totp/confirm", map[string]string{"code": "000000"}).problem(t); p["code"] != "totp_invalid" {
		t.Fatalf("wrong confirmation code: %v", p)
	}
	now := time.Now()
	code, _ := access.TOTPCode(en.Secret, now)
	var rc struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	rev.expect(200, "POST", "/me/totp/confirm", map[string]string{"code": code}).json(t, &rc)
	if len(rc.RecoveryCodes) != 10 {
		t.Fatalf("recovery codes %v", rc.RecoveryCodes)
	}
	rev.expect(200, "GET", "/cases", nil) // the same session is a full one now

	if p := login("rev1", "").problem(t); p["code"] != "totp_required" {
		t.Fatalf("sign-in without a code: %v", p)
	}
	if p := login("rev1", code).problem(t); p["code"] != "totp_invalid" {
		t.Fatalf("the enrolment code replayed: %v", p)
	}
	next, _ := access.TOTPCode(en.Secret, now.Add(30*time.Second))
	if r := login("rev1", next); r.Status != 201 {
		t.Fatalf("a fresh code: %d %s", r.Status, r.Body)
	}
	if p := login("rev1", next).problem(t); p["code"] != "totp_invalid" {
		t.Fatalf("a code used twice: %v", p)
	}
	if r := login("rev1", rc.RecoveryCodes[3]); r.Status != 201 {
		t.Fatalf("a recovery code: %d %s", r.Status, r.Body)
	}
	if p := login("rev1", rc.RecoveryCodes[3]).problem(t); p["code"] != "totp_invalid" {
		t.Fatalf("a recovery code used twice: %v", p)
	}
	rev.expect(204, "DELETE", "/me/totp", map[string]string{"code": rc.RecoveryCodes[4]})
	// Required for reviewers: without TOTP the next session is limited again.
	r = login("rev1", "")
	r.json(t, &sess)
	if r.Status != 201 || !sess.TOTPEnrolmentRequired {
		t.Fatalf("after removal: %d %s", r.Status, r.Body)
	}

	insp := s.login(t, "inspector1", pw)
	for _, action := range []string{"totp.enrol", "totp.remove"} {
		if evs := insp.events("action=" + action); find(evs, func(e event) bool { return e.Outcome == "allowed" && strings.HasPrefix(e.Resource, "user/") }) == nil {
			t.Errorf("no allowed %s in the audit trail", action)
		}
	}
	_ = w
}

// TestTOTPRequirementConfigurable: VAULT_TOTP_REQUIRED_ROLES set empty
// turns the requirement off; naming operator turns it on for operators.
func TestTOTPRequirementConfigurable(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=operator")
	bootstrap(t, s)
	s.start()
	for user, limited := range map[string]bool{"operator1": true, "rev1": false, "admin": false} {
		var sess struct {
			TOTPEnrolmentRequired bool `json:"totp_enrolment_required"`
		}
		r := s.postJSON(t, "", "/sessions", map[string]string{"username": user, "password": pw})
		r.json(t, &sess)
		if r.Status != 201 || sess.TOTPEnrolmentRequired != limited {
			t.Errorf("%s: %d %s, want enrolment required %v", user, r.Status, r.Body, limited)
		}
	}
}

// TestPasswordRulesEndToEnd: weak passwords are refused by the API and the
// CLI; changing the password ends every session; a disabled account's
// right password answers exactly like a wrong one.
func TestPasswordRulesEndToEnd(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	for _, weak := range []string{"aaaaaaaaaaaa", "            ", "password1234", "short"} {
		if _, errs, code := s.cli(weak+"\n", "user", "add", "--username", "weak1", "--org", "Grid Co", "--role", "operator", "--password-stdin"); code == 0 {
			t.Errorf("CLI accepted %q", weak)
		} else if strings.Contains(errs, weak) && strings.TrimSpace(weak) != "" {
			t.Errorf("CLI error quotes the password: %s", errs)
		}
	}
	s.start()
	w.loginAll(t)
	for _, weak := range []string{"aaaaaaaaaaaa", "            ", "password1234", "Baseball2024!"} {
		p := w.admin.expect(422, "POST", "/users", map[string]any{"username": "weak2", "org": "Grid Co", "roles": []string{"operator"}, "password": weak}).problem(t)
		if p["code"] != "weak_password" {
			t.Errorf("%q: %v", weak, p)
		}
	}

	other := s.login(t, "operator1", pw)
	if p := w.op.expect(403, "POST", "/me/password", map[string]string{"current": "not my password!", "new": "a new and long passphrase"}).problem(t); p["code"] != "invalid_current_password" {
		t.Fatalf("wrong current password: %v", p)
	}
	if p := w.op.expect(422, "POST", "/me/password", map[string]string{"current": pw, "new": "qwerty123456"}).problem(t); p["code"] != "weak_password" {
		t.Fatalf("weak new password: %v", p)
	}
	w.op.expect(204, "POST", "/me/password", map[string]string{"current": pw, "new": "a new and long passphrase"})
	w.op.expect(401, "GET", "/me", nil)
	other.expect(401, "GET", "/me", nil)
	s.login(t, "operator1", "a new and long passphrase")

	var prov struct {
		ID string `json:"id"`
	}
	w.prov.expect(200, "GET", "/me", nil).json(t, &prov)
	// Nothing enables an account again: an administrator cannot disable
	// their own.
	var admin struct {
		ID string `json:"id"`
	}
	w.admin.expect(200, "GET", "/me", nil).json(t, &admin)
	if p := w.admin.expect(403, "POST", "/users/"+admin.ID+"/disable", nil).problem(t); p["code"] != "self_disable" {
		t.Fatalf("an administrator disabling their own account: %v", p)
	}
	w.admin.expect(200, "GET", "/me", nil)
	w.admin.expect(200, "POST", "/users/"+prov.ID+"/disable", nil)
	w.prov.expect(401, "GET", "/me", nil)
	right := s.postJSON(t, "", "/sessions", map[string]string{"username": "provider1", "password": pw})
	wrong := s.postJSON(t, "", "/sessions", map[string]string{"username": "provider1", "password": "not the password at all"})
	if right.Status != 401 || right.Status != wrong.Status || !bytes.Equal(right.Body, wrong.Body) ||
		right.Header.Get("Content-Type") != wrong.Header.Get("Content-Type") {
		t.Fatalf("disabled account, right password: %d %s; wrong password: %d %s", right.Status, right.Body, wrong.Status, wrong.Body)
	}
}

// TestLockoutAcrossClients is the lockout attack behind a proxy: an
// attacker's wrong passwords back off the attacker's address only, the
// client address comes from X-Forwarded-For only through a trusted proxy,
// and requests without a session are rate-limited per client.
func TestLockoutAcrossClients(t *testing.T) {
	// Not parallel: it asserts timing (rate limits per minute and login backoff),
	// which the load of parallel tests would blur.
	s := newServer(t, backends[0], "VAULT_TRUSTED_PROXIES=127.0.0.1", "VAULT_ANONYMOUS_RATE=1000")
	bootstrap(t, s)
	s.start()
	from := func(ip, password string) resp {
		b := fmt.Sprintf(`{"username":"operator1","password":%q}`, password)
		return s.do(t, "", "POST", "/sessions", strings.NewReader(b), map[string]string{"Content-Type": "application/json", "X-Forwarded-For": ip})
	}
	throttled := 0
	for range 10 {
		r := from("203.0.113.9", "guess guess guess")
		if r.Status == 429 {
			throttled++
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		} else if r.Status != 401 {
			t.Fatalf("attacker: %d %s", r.Status, r.Body)
		}
	}
	if throttled == 0 {
		t.Fatal("ten wrong passwords from one client were never throttled")
	}
	if r := from("203.0.113.9", pw); r.Status != 429 {
		t.Fatalf("the attacker's client with the right password: %d, want 429", r.Status)
	}
	// The user, from her own address behind the same proxy, signs in.
	if r := from("198.51.100.20", pw); r.Status != 201 {
		t.Fatalf("the user from another client: %d %s", r.Status, r.Body)
	}

	// Without a trusted proxy the header is ignored: a forged
	// X-Forwarded-For neither evades the backoff nor frames another client.
	s2 := newServer(t, backends[0], "VAULT_ANONYMOUS_RATE=30")
	bootstrap(t, s2)
	s2.start()
	var last resp
	for i := range 8 {
		b := `{"username":"operator1","password":"guess guess guess"}`
		last = s2.do(t, "", "POST", "/sessions", strings.NewReader(b), map[string]string{"Content-Type": "application/json",
			"X-Forwarded-For": fmt.Sprintf("192.0.2.%d", i+1)})
	}
	if last.Status != 429 {
		t.Fatalf("rotating a forged X-Forwarded-For evaded the backoff: %d", last.Status)
	}
	// Anonymous requests are rate-limited per client.
	limited := 0
	for range 40 {
		if r := s2.do(t, "", "GET", "/cases", nil, nil); r.Status == 429 {
			limited++
			if p := r.problem(t); p["code"] != "rate_limited" {
				t.Fatalf("rate limit: %v", p)
			}
		}
	}
	if limited == 0 {
		t.Fatal("40 anonymous requests at a limit of 30 a minute were never limited")
	}

	// Sign-in takes no session: a made-up token sent with it spares it
	// nothing (one password tried across many names, say).
	s3 := newServer(t, backends[0], "VAULT_ANONYMOUS_RATE=30")
	bootstrap(t, s3)
	s3.start()
	limited = 0
	for i := range 40 {
		b := fmt.Sprintf(`{"username":"nobody%d","password":"guess guess guess"}`, i)
		r := s3.do(t, "", "POST", "/sessions", strings.NewReader(b), map[string]string{"Content-Type": "application/json", "Authorization": "Bearer made-up"})
		if r.Status == 429 && r.problem(t)["code"] == "rate_limited" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("40 sign-ins with a made-up token at a limit of 30 a minute were never limited")
	}
}

// TestRepeatedDenialsCounted: 150 requests with a bad token from one
// client leave a handful of audit events, whose counts add up to exactly
// 150 once the minute is written (at shutdown at the latest).
func TestRepeatedDenialsCounted(t *testing.T) {
	// Not parallel: it asserts timing (a rate limit per minute),
	// which the load of parallel tests would blur.
	s := newServer(t, backends[0], "VAULT_ANONYMOUS_RATE=100")
	bootstrap(t, s)
	s.start()
	const n = 150
	statuses := map[int]int{}
	for range n {
		r := s.do(t, "forged-token-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "GET", "/cases", nil, nil)
		statuses[r.Status]++
	}
	if statuses[401] == 0 || statuses[429] == 0 || statuses[401]+statuses[429] != n {
		t.Fatalf("statuses %v", statuses)
	}
	s.stop() // flushes the counts
	s.start()
	insp := s.login(t, "inspector1", pw)
	total, events := 0, 0
	for _, action := range []string{"auth", "http.rate_limited"} {
		for _, e := range insp.eventsWithDetail("action=" + action + "&outcome=denied") {
			if e.Resource != "GET /api/v1/cases" {
				continue
			}
			events++
			if _, rest, ok := strings.Cut(e.Detail, ";repeated="); ok {
				var k int
				fmt.Sscanf(rest, "%d", &k)
				total += k // a summary stands for k denials
			} else {
				total++
			}
		}
	}
	if total != n {
		t.Fatalf("the audit trail counts %d denials, want exactly %d", total, n)
	}
	if events > 8 {
		t.Fatalf("%d audit events for %d identical denials, want a few", events, n)
	}
}

type detailedEvent struct {
	event
	Detail string `json:"detail"`
}

func (c *client) eventsWithDetail(query string) []detailedEvent {
	c.t.Helper()
	var page struct {
		Items []detailedEvent `json:"items"`
	}
	c.expect(200, "GET", "/audit/events?limit=500&"+query, nil).json(c.t, &page)
	return page.Items
}
