package main

// Tests of pages over plain HTTP against the real vaultd: the inspector's
// download of the audit export, the case a complaint names, and the report
// forms filled back in after a refusal.

import (
	"bufio"
	"encoding/json"
	htmlstd "html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWebExportComplaintCaseAndReportForms: an inspector downloads the
// offline-verifiable export from the audit page (all of it, or a range; a
// bad range is a page saying why, not problem+json), and a party sees
// neither the offer nor the export; the complaint page names and links its
// case; the commitments page filters by a provider's name; the inspector's report forms and the reporter's message form come
// back filled in after a refusal.
func TestWebExportComplaintCaseAndReportForms(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID, _ := w.newCase(t, "pages")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	en := map[string]string{"Accept-Language": "en"}
	insp := cookieClient{t: t, base: s.base, token: w.insp.token}
	op := cookieClient{t: t, base: s.base, token: w.op.token}
	get := func(c cookieClient, path string) (int, string, http.Header) {
		t.Helper()
		st, body, hd := c.do("GET", path, "", "", en)
		return st, htmlstd.UnescapeString(body), hd
	}

	t.Run("audit export", func(t *testing.T) {
		st, page, _ := get(insp, "/audit")
		if st != 200 || !strings.Contains(page, msg(t, "en", "audit.export_title")) || !strings.Contains(page, `id="export-all" href="/audit/export"`) ||
			!strings.Contains(page, `<form method="get" action="/audit/export"`) || !strings.Contains(page, `id="checkpoint-download" href="/api/v1/audit/checkpoint"`) {
			t.Fatalf("the inspector's audit page offers no export: %d %s", st, tail(page, 3000))
		}
		// The range of the events listed, for a download of just that run.
		m := regexp.MustCompile(`id="export-page" href="(/audit/export\?[^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no download of the page's range: %s", tail(page, 3000))
		}
		type exportHeader struct {
			Format   string `json:"format"`
			From, To int64
		}
		export := func(path string) (h exportHeader, events int64) {
			t.Helper()
			st, body, hd := insp.do("GET", path, "", "", en)
			if st != 200 || hd.Get("Content-Type") != "application/x-ndjson" || !strings.HasPrefix(hd.Get("Content-Disposition"), "attachment;") {
				t.Fatalf("GET %s: %d %v %s", path, st, hd, tail(body, 500))
			}
			sc := bufio.NewScanner(strings.NewReader(body))
			sc.Buffer(nil, 1<<20)
			for first := true; sc.Scan(); first = false {
				if first {
					if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format == "" {
						t.Fatalf("GET %s: first line %q: %v", path, sc.Text(), err)
					}
					continue
				}
				events++
			}
			return h, events
		}
		if h, n := export("/audit/export"); h.From != 1 || n < 10 || h.To != n {
			t.Errorf("whole export: header %+v with %d events", h, n)
		}
		if h, n := export("/audit/export?from=2&to=4"); h.From != 2 || h.To != 4 || n != 3 {
			t.Errorf("export of 2..4: header %+v with %d events", h, n)
		}
		u, _ := url.Parse(m[1])
		if h, n := export(m[1]); u.Query().Get("from") != strconv.FormatInt(h.From, 10) || u.Query().Get("to") != strconv.FormatInt(h.To, 10) || n != h.To-h.From+1 {
			t.Errorf("export of the page's range %s: header %+v with %d events", m[1], h, n)
		}
		// A range the log cannot give: a page in words, linking back.
		for _, q := range []string{"?from=4&to=2", "?to=999999999", "?from=x"} {
			st, body, hd := get(insp, "/audit/export"+q)
			if st != 422 || !strings.HasPrefix(hd.Get("Content-Type"), "text/html") || !strings.Contains(body, msg(t, "en", "audit.export_range")) ||
				!strings.Contains(body, `href="/audit#export" id="error-back"`) {
				t.Errorf("export%s: %d %s %s", q, st, hd.Get("Content-Type"), tail(body, 1500))
			}
		}
		// A party is offered no export and gets none.
		st, page, _ = get(op, "/audit")
		if st != 200 || strings.Contains(page, `id="export"`) || strings.Contains(page, "/audit/export") {
			t.Errorf("the operator's access log offers the export: %d %s", st, tail(page, 3000))
		}
		st, body, hd := get(op, "/audit/export")
		if st != 403 || !strings.HasPrefix(hd.Get("Content-Type"), "text/html") || !strings.Contains(body, msg(t, "en", "error.forbidden")) {
			t.Errorf("the operator's export: %d %s %s", st, hd.Get("Content-Type"), tail(body, 1000))
		}
		// The API recorded each: the inspector's downloads, the refusal.
		var events struct {
			Items []struct{ Actor, Outcome string } `json:"items"`
		}
		w.insp.expect(200, "GET", "/audit/events?action=audit.export&limit=100", nil).json(t, &events)
		got := map[string]int{}
		for _, e := range events.Items {
			got[e.Actor+" "+e.Outcome]++
		}
		if got[w.insp.id+" allowed"] < 3 || got[w.op.id+" denied"] != 1 {
			t.Errorf("audit.export events: %v", got)
		}
	})

	t.Run("complaint names its case", func(t *testing.T) {
		var cp struct {
			ID string `json:"id"`
		}
		w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "unfair treatment"}).json(t, &cp)
		link := `<a href="/cases/` + caseID + `">Core routers for the grid</a>`
		for name, c := range map[string]cookieClient{"operator": op, "inspector": insp} {
			st, page, _ := get(c, "/complaints/"+cp.ID)
			if st != 200 || !strings.Contains(page, `<dd id="complaint-case">`+link) {
				t.Errorf("%s's complaint page does not name and link its case: %d %s", name, st, tail(page, 3000))
			}
			st, page, _ = get(c, "/complaints")
			if st != 200 || !strings.Contains(page, link) {
				t.Errorf("%s's complaints page does not link the case: %d %s", name, st, tail(page, 3000))
			}
		}
	})

	t.Run("commitments filtered by provider name", func(t *testing.T) {
		w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "other", "text": "MARKER-COMMITMENT no remote access"})
		for _, tc := range []struct {
			c     cookieClient
			query string
			found bool
		}{
			{insp, "?provider=Acme+Routers", true},
			{insp, "?provider=" + w.provOrg, true},
			{insp, "?provider=Grid+Co", false}, // an operator, not a provider
			{insp, "?provider=No+Such+Org", false},
			{insp, "?case=" + caseID + "&provider=Acme+Routers", true},
			{op, "?provider=Acme+Routers", true},
			{op, "?case=no-such-case", false},
		} {
			st, page, _ := get(tc.c, "/commitments"+tc.query)
			if st != 200 || strings.Contains(page, "MARKER-COMMITMENT") != tc.found || !strings.Contains(page, `id="commitment-filters"`) {
				t.Errorf("commitments%s: %d, lists the commitment: want %v: %s", tc.query, st, tc.found, tail(page, 1500))
			}
		}
	})

	t.Run("report forms kept", func(t *testing.T) {
		r := s.postJSON(t, "", "/reports", map[string]any{"subject_org": w.provOrg, "description": "the router phones home"})
		var filed struct{ ID, Receipt string }
		if r.Status != 201 {
			t.Fatalf("report: %d %s", r.Status, r.Body)
		}
		r.json(t, &filed)
		post := func(path string, v url.Values) (int, string) {
			t.Helper()
			v.Set("csrf", pageCSRF(t, insp))
			st, page, _ := insp.do("POST", path, v.Encode(), "application/x-www-form-urlencoded", en)
			return st, htmlstd.UnescapeString(page)
		}
		kept := func(what string, st, want int, page string, texts ...string) {
			t.Helper()
			if st != want || !strings.Contains(page, `<p class="error" role="alert">`) {
				t.Fatalf("%s: %d, want %d with the reason above the form: %s", what, st, want, tail(page, 2000))
			}
			for _, s := range texts {
				if !strings.Contains(page, s) {
					t.Errorf("%s: the page lacks %q", what, s)
				}
			}
		}
		// Closing needs an outcome: the choice of "closed" is kept.
		st, page := post("/reports/"+filed.ID+"/status", url.Values{"status": {"closed"}, "outcome": {""}})
		kept("closing without an outcome", st, 422, page, `<option value="closed" selected>`, msg(t, "en", "field.outcome"))
		// A status it cannot take: the outcome typed is kept.
		outcome := "No phone-home traffic in firmware 2.1; the capture shows NTP only."
		st, page = post("/reports/"+filed.ID+"/status", url.Values{"status": {"received"}, "outcome": {outcome}})
		kept("a status the report cannot take", st, 422, page, `value="`+outcome+`"`)
		// A message the service refuses comes back in its box.
		st, page = post("/reports/"+filed.ID+"/messages", url.Values{"text": {"Which firmware \x07version do you run?"}})
		kept("a message with a control character", st, 422, page, `required>Which firmware version do you run?</textarea>`)
		// Closed, the report takes no more messages: the text is kept to copy.
		w.insp.expect(200, "POST", "/reports/"+filed.ID+"/status", map[string]any{"status": "closed", "outcome": outcome})
		st, page = post("/reports/"+filed.ID+"/messages", url.Values{"text": {"One more question about the capture."}})
		kept("a message to a closed report", st, 409, page, `required>One more question about the capture.</textarea>`)

		// The reporter's message form, without an account.
		anon := cookieClient{t: t, base: s.base}
		st, form, hd := anon.do("GET", "/report/status", "", "", en)
		token := csrfInput.FindStringSubmatch(form)
		var cookie string
		for _, c := range (&http.Response{Header: hd}).Cookies() {
			if c.Name == "__Host-crvault-csrf" {
				cookie = c.Name + "=" + c.Value
			}
		}
		if st != 200 || token == nil || cookie == "" {
			t.Fatalf("report status page: %d, token %v, cookie %q", st, token, cookie)
		}
		v := url.Values{"csrf": {token[1]}, "receipt": {filed.Receipt}, "text": {"It also happens with 2.2."}}
		st, page, _ = anon.do("POST", "/report/messages", v.Encode(), "application/x-www-form-urlencoded", map[string]string{"Accept-Language": "en", "Cookie": cookie})
		kept("the reporter's message to a closed report", st, 409, htmlstd.UnescapeString(page), `required>It also happens with 2.2.</textarea>`)
	})
}

// TestWebAuditVerifyInBackground: the inspector's "verify the whole log"
// starts a verification in the background and answers with the audit page
// (303), which shows its result and who started it; each press is in the
// audit trail, allowed or refused, and a party may not start one. (That a
// press while a run is going shows that run instead of starting another is
// TestVerifierOneRunAtATime's, in api/web: here a short log is verified in
// milliseconds.)
func TestWebAuditVerifyInBackground(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	en := map[string]string{"Accept-Language": "en"}
	insp := cookieClient{t: t, base: s.base, token: w.insp.token}
	op := cookieClient{t: t, base: s.base, token: w.op.token}
	press := func(c cookieClient) (int, string, string) {
		t.Helper()
		body, ct := multipartForm(t, field{name: "csrf", value: pageCSRF(t, c)})
		st, page, hd := c.do("POST", "/audit/verify", body, ct, en)
		return st, page, hd.Get("Location")
	}
	verifyEvents := func() []struct{ Actor, Outcome string } {
		var ev struct {
			Items []struct{ Actor, Outcome string } `json:"items"`
		}
		w.insp.expect(200, "GET", "/audit/events?action=audit.verify", nil).json(t, &ev)
		return ev.Items
	}

	st, _, loc := press(insp)
	if st != 303 || loc != "/audit?done=verify_started#verify" {
		t.Fatalf("press: %d %q", st, loc)
	}
	var page string
	for i := 0; ; i++ {
		var st int
		st, page, _ = insp.do("GET", "/audit?done=verify_started", "", "", en)
		page = htmlstd.UnescapeString(page)
		if st != 200 {
			t.Fatalf("audit page: %d %s", st, tail(page, 500))
		}
		if strings.Contains(page, `id="verified"`) {
			break
		}
		if i == 100 || strings.Contains(page, `id="verify-failed"`) || strings.Contains(page, `id="verify-incomplete"`) {
			t.Fatalf("no result on the audit page: %s", tail(page, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	last := regexp.MustCompile(`id="verify-last">([^<]*)<`).FindStringSubmatch(page)
	if !strings.Contains(page, msg(t, "en", "flash.verify_started")) || last == nil || !strings.Contains(last[1], "Inspectorate") {
		t.Fatalf("the result does not say who ran it: %s", tail(page, 3000))
	}
	if ev := verifyEvents(); len(ev) != 1 || ev[0].Outcome != "allowed" {
		t.Fatalf("audit.verify events after the press: %+v", ev)
	}
	// What it found is in the trail too, by whoever started it.
	var results struct {
		Items []struct{ Actor, Outcome, Detail string } `json:"items"`
	}
	w.insp.expect(200, "GET", "/audit/events?action=audit.verify_result", nil).json(t, &results)
	if len(results.Items) != 1 || results.Items[0].Actor != w.insp.id || results.Items[0].Outcome != "allowed" ||
		!strings.HasPrefix(results.Items[0].Detail, "passed;size=") {
		t.Fatalf("audit.verify_result events after the run: %+v", results.Items)
	}

	// A party may not start one; the refusal is recorded.
	if st, _, _ := press(op); st != 403 {
		t.Fatalf("an operator pressed verify: %d", st)
	}
	if ev := verifyEvents(); len(ev) != 2 || ev[0].Outcome != "denied" && ev[1].Outcome != "denied" {
		t.Fatalf("audit.verify events after the refused press: %+v", ev)
	}
}
