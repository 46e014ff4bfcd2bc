package main

// The case page as each role works a case through the whole review in the
// browser, without scripts: what it offers each of them at each step, and
// that what it offers works.

import (
	htmlstd "html"
	"net/url"
	"strings"
	"testing"
)

// TestWebCaseThroughTheReview: a case taken through supplements, the
// first opinions, a special review and its second round to a conclusion,
// each step that is the browser's done with the page's own forms:
//   - the party says which requested item an upload answers, and the
//     clock books it against that item; while the clock waits, the page
//     says so and gives the due date as a projection;
//   - the upload form offers each role only the kinds it may upload now,
//     and the declared reviewer the recommendation;
//   - a member unit is offered the opinion form whenever its answer is
//     due, the special review's second round included, after declaring,
//     and not once it answered;
//   - the special review's extension takes what the service allows;
//   - the inspector is linked no document it would be refused;
//   - the conclusion (outcome, conditions) is on the page, and the clock
//     says the review ended.
func TestWebCaseThroughTheReview(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	w.office.expect(201, "POST", "/member-units", map[string]any{"org": orgOf(t, w.mu), "unit": "miit"})
	x := &wfTest{t: t, w: w}
	caseID, _ := w.newCase(t, "webcase")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	x.move(w.office, 200, caseID, "require_review", nil)
	en := map[string]string{"Accept-Language": "en"}
	web := func(c *client) cookieClient { return cookieClient{t: t, base: s.base, token: c.token} }
	page := func(c *client) string {
		t.Helper()
		st, body, _ := web(c).do("GET", "/cases/"+caseID, "", "", en)
		if st != 200 {
			t.Fatalf("case page: %d %s", st, tail(body, 1000))
		}
		return htmlstd.UnescapeString(body)
	}
	post := func(c *client, path string, v url.Values) {
		t.Helper()
		v.Set("csrf", pageCSRF(t, web(c)))
		if st, body, _ := web(c).do("POST", path, v.Encode(), "application/x-www-form-urlencoded", en); st != 303 {
			t.Fatalf("POST %s %v: %d %s", path, v, st, tail(htmlstd.UnescapeString(body), 1500))
		}
	}
	upload := func(c *client, fields ...field) {
		t.Helper()
		body, ct := multipartForm(t, append([]field{{name: "csrf", value: pageCSRF(t, web(c))}}, fields...)...)
		if st, page, hd := web(c).do("POST", "/cases/"+caseID+"/materials", body, ct, en); st != 303 {
			t.Fatalf("upload %v: %d %s %s", fields, st, hd.Get("Location"), tail(htmlstd.UnescapeString(page), 1500))
		}
	}
	offered := func(html string) []string {
		_, form, ok := strings.Cut(html, `id="upload-form"`)
		if !ok {
			return nil
		}
		form, _, _ = strings.Cut(form, `</select>`)
		var kinds []string
		for _, part := range strings.Split(form, `<option value="`)[1:] {
			k, _, _ := strings.Cut(part, `"`)
			kinds = append(kinds, k)
		}
		return kinds
	}
	opinionForm := `action="/cases/` + caseID + `/opinions"`

	// Supplements: the upload names the item it answers.
	x.move(w.office, 200, caseID, "request_supplement", map[string]any{"reason": "two things missing",
		"items": []string{"supply chain statement", "source audit report"}})
	op := page(w.op)
	if got := strings.Join(offered(op), " "); got != "other supplementary evidence" {
		t.Fatalf("the operator is offered kinds %q while supplements are awaited", got)
	}
	if !strings.Contains(op, `<option value="2">2. source audit report</option>`) {
		t.Fatalf("no choice of the requested item: %s", tail(op, 3000))
	}
	if !strings.Contains(op, `id="clock-paused"`) || !strings.Contains(op, msg(t, "en", "clock.projected_help")) {
		t.Fatalf("the paused clock does not say it waits: %s", tail(op, 3000))
	}
	upload(w.op, field{name: "kind", value: "supplementary"}, field{name: "item", value: "2"},
		field{name: "file", filename: "audit-report.txt", value: "the audit report"})
	var ck struct {
		Items []struct {
			No       int  `json:"no"`
			Received bool `json:"received"`
		} `json:"supplement_items"`
	}
	w.op.expect(200, "GET", "/cases/"+caseID+"/clock", nil).json(t, &ck)
	if len(ck.Items) != 2 || ck.Items[0].Received || !ck.Items[1].Received {
		t.Fatalf("the upload for item 2 was booked as %+v", ck.Items)
	}
	upload(w.op, field{name: "kind", value: "supplementary"}, field{name: "item", value: "1"},
		field{name: "file", filename: "statement.txt", value: "the statement"})
	var cs struct {
		Status string `json:"status"`
	}
	w.op.expect(200, "GET", "/cases/"+caseID, nil).json(t, &cs)
	if cs.Status != "under_review" {
		t.Fatalf("after both items: %s", cs.Status)
	}

	// The reviewer, declared, uploads the recommendation in the browser.
	x.assign(caseID, w.rev1, "reviewer")
	if got := strings.Join(offered(page(w.rev1)), " "); got != "recommendation" {
		t.Fatalf("the declared reviewer is offered kinds %q", got)
	}
	upload(w.rev1, field{name: "kind", value: "recommendation"}, field{name: "file", filename: "recommendation.txt", value: "pass"})

	// The inspector sees what there is, linked to nothing it cannot read.
	if insp := page(w.insp); strings.Contains(insp, `href="/materials/`) || !strings.Contains(insp, "recommendation.txt") {
		t.Fatalf("the inspector's page links documents: %s", tail(insp, 3000))
	}

	// The member unit, assigned and not declared: asked, it is sent to the
	// declaration first; declared, it answers with the form.
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.mu.id, "role": "member_unit", "purpose": "opinions"})
	if mu := page(w.mu); strings.Contains(mu, opinionForm) || offered(mu) != nil {
		t.Fatal("the member unit is offered the opinion or an upload before a recommendation and a declaration")
	}
	x.move(w.office, 200, caseID, "recommend", nil)
	if mu := page(w.mu); strings.Contains(mu, opinionForm) || !strings.Contains(mu, msg(t, "en", "opinion.declare_first")) {
		t.Fatalf("undeclared member unit: %s", tail(mu, 3000))
	}
	post(w.mu, "/cases/"+caseID+"/declarations", url.Values{"conflict": {"false"}, "statement": {"no conflict"}})
	if mu := page(w.mu); !strings.Contains(mu, opinionForm) {
		t.Fatalf("the declared member unit is not offered the opinion form: %s", tail(mu, 3000))
	}
	post(w.mu, "/cases/"+caseID+"/opinions", url.Values{"agree": {"false"}, "comment": {"supply risk"}})
	if mu := page(w.mu); strings.Contains(mu, opinionForm) {
		t.Fatal("the opinion form is offered again after the answer")
	}

	// The special review: the office extends it past 45 days in the
	// browser; the second round asks the unit again, on the page.
	if office := page(w.office); !strings.Contains(office, `name="days" type="number" min="1" max="90"`) {
		t.Fatalf("extension field: %s", tail(office, 3000))
	}
	post(w.office, "/cases/"+caseID+"/transitions", url.Values{"action": {"extend_special"}, "reason": {"complex"}, "days": {"60"}})
	x.move(w.office, 200, caseID, "record_hearing", map[string]any{"reason": "heard the units"})
	if mu := page(w.mu); strings.Contains(mu, opinionForm) {
		t.Fatal("the opinion form is offered before the special review's recommendation")
	}
	x.recommendation(caseID)
	x.move(w.office, 200, caseID, "recommend", nil)
	if mu := page(w.mu); !strings.Contains(mu, opinionForm) {
		t.Fatalf("the second round is not offered to the member unit: %s", tail(mu, 3000))
	}
	post(w.mu, "/cases/"+caseID+"/opinions", url.Values{"agree": {"true"}, "comment": {"agree now"}})
	if mu := page(w.mu); strings.Contains(mu, opinionForm) {
		t.Fatal("the opinion form is offered again after the second answer")
	}
	x.move(w.office, 200, caseID, "record_approval", map[string]any{"reference": "CCAC [2026] 12"})
	post(w.office, "/cases/"+caseID+"/transitions", url.Values{"action": {"conclude"}, "outcome": {"passed_with_conditions"},
		"conditions": {"report on the supply chain every year"}})

	// The conclusion, on the party's page; the clock has ended.
	op = page(w.op)
	_, fact, ok := strings.Cut(op, `id="conclusion"`)
	fact, _, _ = strings.Cut(fact, "</dd>")
	if !ok || !strings.Contains(fact, msg(t, "en", "outcome.passed_with_conditions")) || !strings.Contains(fact, "report on the supply chain every year") {
		t.Fatalf("the conclusion is not on the party's page: %s", tail(op, 3000))
	}
	if !strings.Contains(op, `id="clock-ended"`) || strings.Contains(op, "working days left") {
		t.Fatalf("the closed clock: %s", tail(op, 3000))
	}
	var hist struct {
		Items []struct {
			Action string `json:"action"`
			Days   int    `json:"days"`
		} `json:"items"`
	}
	r := w.office.expect(200, "GET", "/cases/"+caseID+"/events?limit=100", nil)
	r.json(t, &hist)
	extended := false
	for _, e := range hist.Items {
		extended = extended || e.Action == "extend_special" && e.Days == 60
	}
	if !extended {
		t.Fatalf("the 60-day extension from the page is not in the history: %s", r.Body)
	}
}
