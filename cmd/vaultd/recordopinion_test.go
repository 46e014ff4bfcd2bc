package main

import (
	"fmt"
	htmlstd "html"
	"net/url"
	"strings"
	"testing"
)

// TestRecordOpinionRefusedBeforeOverdue: over HTTP, the office's
// record_opinion for a member unit whose 15 working days have not run out
// (the round was sent today) is a 422 problem+json with code
// opinion_not_overdue naming the unit; the unit itself may not take the
// office's step; the case stays soliciting opinions. The accepted step
// needs days to pass and is tested in vault (TestRecordOpinionOfSilentUnit).
func TestRecordOpinionRefusedBeforeOverdue(t *testing.T) {
	t.Parallel()                                                 // its own server; it asserts no timing
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=") // the browser session needs no TOTP
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	coverYears(t, s)
	muOrg := orgOf(t, w.mu)
	w.office.expect(201, "POST", "/member-units", map[string]any{"org": muOrg, "unit": "department"})
	var cs struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/cases", map[string]any{"title": "Switches", "product": "SW-1"}).json(t, &cs)
	for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
		w.op.upload(t, cs.ID, k, k+".txt", "operator "+k)
	}
	w.op.expect(200, "POST", "/cases/"+cs.ID+"/submit", nil)
	w.office.expect(200, "POST", "/cases/"+cs.ID+"/transitions", map[string]any{"action": "require_review"})
	w.office.expect(201, "POST", "/cases/"+cs.ID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
	w.rev1.expect(201, "POST", "/cases/"+cs.ID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
	w.rev1.upload(t, cs.ID, "recommendation", "rec.txt", "the recommendation")
	w.office.expect(201, "POST", "/cases/"+cs.ID+"/assignments", map[string]any{"user": w.mu.id, "role": "member_unit", "purpose": "opinion"})
	w.office.expect(200, "POST", "/cases/"+cs.ID+"/transitions", map[string]any{"action": "recommend"})

	body := map[string]any{"action": "record_opinion", "org": muOrg, "agree": false, "reference": "函〔2026〕1号", "reason": "letter by post"}
	p := w.office.expect(422, "POST", "/cases/"+cs.ID+"/transitions", body).problem(t)
	if p["code"] != "opinion_not_overdue" || !strings.Contains(fmt.Sprint(p["missing"]), muOrg) {
		t.Fatalf("record_opinion before the unit is overdue: %v", p)
	}
	if r := w.mu.do("POST", "/cases/"+cs.ID+"/transitions", body); r.Status != 403 && r.Status != 404 {
		t.Fatalf("a member unit took the office's step: %d %s", r.Status, r.Body)
	}

	// The web form: not offered while no unit is overdue; sent anyway, it
	// is refused in words, with what was typed kept.
	web := cookieClient{t: t, base: s.base, token: w.office.token}
	st, page, _ := web.do("GET", "/cases/"+cs.ID, "", "", map[string]string{"Accept-Language": "en"})
	if st != 200 || !strings.Contains(page, `id="transition-form"`) || strings.Contains(page, `id="record-opinion"`) || strings.Contains(page, `value="record_opinion"`) {
		t.Fatalf("case page before any unit is overdue: %d: %s", st, tail(page, 3000))
	}
	v := url.Values{"action": {"record_opinion"}, "org": {muOrg}, "agree": {"false"}, "opinion_reference": {"函〔2026〕1号"}, "reason": {"letter by post"}}
	v.Set("csrf", pageCSRF(t, web))
	st, page, _ = web.do("POST", "/cases/"+cs.ID+"/transitions", v.Encode(), "application/x-www-form-urlencoded", map[string]string{"Accept-Language": "en"})
	page = htmlstd.UnescapeString(page)
	if want, _, _ := strings.Cut(msg(t, "en", "error.opinion_not_overdue"), "{{"); st != 422 || !strings.Contains(page, want) || !strings.Contains(page, "letter by post") {
		t.Fatalf("web record_opinion before overdue: %d, want 422 with %q: %s", st, want, tail(page, 1500))
	}

	var c struct {
		Status string `json:"status"`
	}
	w.office.expect(200, "GET", "/cases/"+cs.ID, nil).json(t, &c)
	if c.Status != "soliciting_opinions" {
		t.Fatalf("status %s", c.Status)
	}
}
