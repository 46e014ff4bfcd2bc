package main

// Procedures of the Measures that have pages of their own besides the
// case's main forms: member units' proposals, and what the case page offers
// beyond the review's steps. Each is done in the browser without scripts,
// its effect checked through the API, and refused to a role that may not.

import (
	htmlstd "html"
	"net/url"
	"strings"
	"testing"
)

// webUser is a signed-in user's browser, speaking English.
type webUser struct {
	t *testing.T
	c cookieClient
}

func webOf(t *testing.T, s *server, c *client) webUser {
	return webUser{t: t, c: cookieClient{t: t, base: s.base, token: c.token}}
}

var english = map[string]string{"Accept-Language": "en"}

// get fetches a page, which must answer want.
func (u webUser) get(want int, path string) string {
	u.t.Helper()
	st, body, _ := u.c.do("GET", path, "", "", english)
	if st != want {
		u.t.Fatalf("GET %s: %d, want %d: %s", path, st, want, tail(htmlstd.UnescapeString(body), 1500))
	}
	return htmlstd.UnescapeString(body)
}

// post sends a url-encoded form with the page's CSRF token, which must
// answer want; it returns the page and, for a redirect, where to.
func (u webUser) post(want int, path string, v url.Values) (string, string) {
	u.t.Helper()
	v.Set("csrf", pageCSRF(u.t, u.c))
	st, body, hd := u.c.do("POST", path, v.Encode(), "application/x-www-form-urlencoded", english)
	if st != want {
		u.t.Fatalf("POST %s %.300v: %d, want %d: %s", path, v, st, want, tail(htmlstd.UnescapeString(body), 1500))
	}
	return htmlstd.UnescapeString(body), hd.Get("Location")
}

type proposalJSON struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	PartyOrg string `json:"party_org"`
	Status   string `json:"status"`
	CaseID   string `json:"case_id"`
	Approval *struct {
		Reference string `json:"reference"`
	} `json:"approval"`
}

func proposalsOf(t *testing.T, c *client) []proposalJSON {
	t.Helper()
	var page struct {
		Items []proposalJSON `json:"items"`
	}
	c.expect(200, "GET", "/proposals", nil).json(t, &page)
	return page.Items
}

// TestWebProposals: a member unit proposes a review in the browser (a
// refusal shown on the form with what was typed kept), the office records
// the Commission's approval there, which opens the case for the operator;
// roles without the procedure are refused as the API refuses them.
func TestWebProposals(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	mu, office, op := webOf(t, s, w.mu), webOf(t, s, w.office), webOf(t, s, w.op)
	form := func(party, title string) url.Values {
		return url.Values{"party": {party}, "subject": {"service"}, "title": {title}, "product": {"Cloud DNS"}, "reason": {"foreign control of resolution"}}
	}

	// Not yet registered as a member unit: refused on the form, the
	// typed text kept.
	page, _ := mu.post(403, "/proposals", form("Grid Co", "unregistered proposal"))
	if !strings.Contains(page, `id="propose-form"`) || !strings.Contains(page, `value="unregistered proposal"`) ||
		!strings.Contains(page, "foreign control of resolution</textarea>") || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("the refused proposal is not shown on its form: %s", tail(page, 3000))
	}
	if len(proposalsOf(t, w.mu)) != 0 {
		t.Fatal("a refused proposal was stored")
	}
	w.office.expect(201, "POST", "/member-units", map[string]any{"org": orgOf(t, w.mu), "unit": "miit"})

	// The nav leads there; an unknown party is named back.
	if home := mu.get(200, "/"); !strings.Contains(home, `href="/proposals"`) {
		t.Fatal("the member unit's nav does not link the proposals")
	}
	page, _ = mu.post(422, "/proposals", form("No Such Operator", "grid DNS"))
	if !strings.Contains(page, strings.SplitN(msg(t, "en", "proposals.unknown_party"), "“", 2)[0]) || !strings.Contains(page, `value="grid DNS"`) {
		t.Fatalf("unknown party: %s", tail(page, 3000))
	}
	// A provider is no operator: refused the same way.
	mu.post(422, "/proposals", form("Acme Routers", "grid DNS"))
	_, loc := mu.post(303, "/proposals", form("Grid Co", "grid DNS"))
	if loc != "/proposals?done=proposed" {
		t.Fatalf("after proposing: %q", loc)
	}
	ps := proposalsOf(t, w.mu)
	if len(ps) != 1 || ps[0].Title != "grid DNS" || ps[0].PartyOrg != w.opOrg || ps[0].Status != "proposed" {
		t.Fatalf("proposals after the form: %+v", ps)
	}
	id := ps[0].ID
	if page := mu.get(200, "/proposals"); !strings.Contains(page, "grid DNS") || strings.Contains(page, `action="/proposals/`+id+`/approval"`) {
		t.Fatalf("the member unit's list: %s", tail(page, 3000))
	}

	// Roles without the procedure: refused (and no form offered).
	op.get(403, "/proposals")
	op.post(403, "/proposals", form("Grid Co", "operator's own"))
	mu.post(403, "/proposals/"+id+"/approval", url.Values{"reference": {"MU-1"}})
	if home := op.get(200, "/"); strings.Contains(home, `href="/proposals"`) {
		t.Fatal("the operator's nav links the proposals")
	}

	// The office's home page lists what awaits the Commission's approval.
	if home := office.get(200, "/"); !strings.Contains(home, `id="dash-proposals"`) || !strings.Contains(home, `href="/proposals?status=proposed#proposal-`+id+`"`) ||
		!strings.Contains(home, "grid DNS") {
		t.Fatalf("the office's home page does not list the proposal awaiting approval: %s", tail(home, 3000))
	}
	if home := mu.get(200, "/"); strings.Contains(home, `id="dash-proposals"`) {
		t.Fatal("the member unit's home page lists proposals awaiting the office")
	}

	// The office: no reference, refused on the form; then approved, which
	// opens the case.
	if page := office.get(200, "/proposals"); !strings.Contains(page, `action="/proposals/`+id+`/approval"`) || !strings.Contains(page, "Ministry Unit") {
		t.Fatalf("the office's list: %s", tail(page, 3000))
	}
	page, _ = office.post(422, "/proposals/"+id+"/approval", url.Values{"reference": {"  "}})
	if !strings.Contains(page, `role="alert"`) || !strings.Contains(page, `action="/proposals/`+id+`/approval"`) {
		t.Fatalf("approval without a reference: %s", tail(page, 3000))
	}
	_, loc = office.post(303, "/proposals/"+id+"/approval", url.Values{"reference": {"中网委批〔2026〕7号"}})
	ps = proposalsOf(t, w.office)
	if len(ps) != 1 || ps[0].Status != "approved" || ps[0].CaseID == "" || ps[0].Approval == nil || ps[0].Approval.Reference != "中网委批〔2026〕7号" {
		t.Fatalf("after the approval: %+v", ps)
	}
	if loc != "/cases/"+ps[0].CaseID+"?done=proposal_approved" {
		t.Fatalf("after approving: %q", loc)
	}
	w.op.expect(200, "GET", "/cases/"+ps[0].CaseID, nil)
	if page := office.get(200, "/cases/"+ps[0].CaseID); !strings.Contains(page, `id="case-origin"`) || !strings.Contains(page, `href="/proposals#proposal-`+id+`"`) ||
		!strings.Contains(page, `id="party-draft"`) {
		t.Fatalf("the case does not say it was proposed: %s", tail(page, 3000))
	}
	// Approved, it no longer awaits anything: gone from the home page and
	// from the filtered list, still in the whole list and over the API.
	if home := office.get(200, "/"); strings.Contains(home, `id="dash-proposals"`) {
		t.Fatalf("the approved proposal is still on the home page: %s", tail(home, 3000))
	}
	if page := office.get(200, "/proposals?status=proposed"); strings.Contains(page, `id="proposal-`+id+`"`) || !strings.Contains(page, msg(t, "en", "proposals.none_pending")) {
		t.Fatalf("the list awaiting approval: %s", tail(page, 3000))
	}
	if page := office.get(200, "/proposals"); !strings.Contains(page, `id="proposal-`+id+`"`) {
		t.Fatalf("the whole list lost the approved proposal: %s", tail(page, 3000))
	}
	var filtered struct {
		Items []struct{ ID string } `json:"items"`
	}
	w.office.expect(200, "GET", "/proposals?status=approved", nil).json(t, &filtered)
	if len(filtered.Items) != 1 || filtered.Items[0].ID != id {
		t.Fatalf("GET /proposals?status=approved: %+v", filtered.Items)
	}
	w.office.expect(200, "GET", "/proposals?status=proposed", nil).json(t, &filtered)
	if len(filtered.Items) != 0 {
		t.Fatalf("GET /proposals?status=proposed after the approval: %+v", filtered.Items)
	}
	if r := w.office.do("GET", "/proposals?status=pending", nil); r.Status != 422 || !strings.Contains(string(r.Body), `"invalid_field"`) {
		t.Fatalf("an unknown status: %d %s", r.Status, r.Body)
	}
	page, _ = office.post(409, "/proposals/"+id+"/approval", url.Values{"reference": {"again"}})
	if !strings.Contains(page, msg(t, "en", "proposals.already_approved")) {
		t.Fatalf("a second approval: %s", tail(page, 3000))
	}
	if page := mu.get(200, "/proposals"); !strings.Contains(page, "中网委批〔2026〕7号") || !strings.Contains(page, msg(t, "en", "pstatus.approved")) {
		t.Fatalf("the member unit does not see the approval: %s", tail(page, 3000))
	}
}

// toOpinions takes a new case through the API to the member units'
// round: submitted, reviewed, a recommendation, and the member unit
// (registered, assigned, declared) asked.
func toOpinions(t *testing.T, w *world, marker string) string {
	t.Helper()
	x := &wfTest{t: t, w: w}
	w.office.expect(201, "POST", "/member-units", map[string]any{"org": orgOf(t, w.mu), "unit": "miit"})
	caseID, _ := w.newCase(t, marker)
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	x.move(w.office, 200, caseID, "require_review", nil)
	x.assign(caseID, w.rev1, "reviewer")
	x.recommendation(caseID)
	x.assign(caseID, w.mu, "member_unit")
	x.move(w.office, 200, caseID, "recommend", nil)
	return caseID
}

type eventJSON struct {
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Factors []struct {
		Factor  string `json:"factor"`
		Finding string `json:"finding"`
	} `json:"factors"`
}

func eventsOf(t *testing.T, c *client, caseID string) []eventJSON {
	t.Helper()
	var page struct {
		Items []eventJSON `json:"items"`
	}
	c.expect(200, "GET", "/cases/"+caseID+"/events", nil).json(t, &page)
	return page.Items
}

// TestWebConclusionFactors: the office's conclusion form asks a finding
// on each factor of the case's edition; a refused conclusion keeps them,
// and the findings given are recorded with the conclusion and shown on
// the case page. Only the office is offered the form.
func TestWebConclusionFactors(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID := toOpinions(t, w, "factors")
	w.mu.expect(201, "POST", "/cases/"+caseID+"/opinions", map[string]any{"agree": true, "comment": "fine"})
	office, op := webOf(t, s, w.office), webOf(t, s, w.op)

	page := office.get(200, "/cases/"+caseID)
	for _, key := range []string{"illegal_control", "data_security", "listing_foreign_influence", "other"} {
		if !strings.Contains(page, `name="factor_`+key+`"`) {
			t.Fatalf("the conclusion form lacks the factor %s: %s", key, tail(page, 4000))
		}
	}
	if strings.Contains(op.get(200, "/cases/"+caseID), `name="factor_`) {
		t.Fatal("the operator is offered the conclusion's factors")
	}
	form := url.Values{"action": {"conclude"}, "outcome": {"passed_with_conditions"}, "factor_data_security": {"DATA-FINDING stays in China"}, "factor_other": {" "}}
	page, _ = office.post(422, "/cases/"+caseID+"/transitions", form)
	if !strings.Contains(page, "DATA-FINDING stays in China</textarea>") || !strings.Contains(page, msg(t, "en", "error.conditions_required")) {
		t.Fatalf("the refused conclusion lost its findings: %s", tail(page, 4000))
	}
	form.Set("conditions", "report yearly")
	office.post(303, "/cases/"+caseID+"/transitions", form)
	var concluded *eventJSON
	for i, e := range eventsOf(t, w.office, caseID) {
		if e.Action == "conclude" {
			concluded = &eventsOf(t, w.office, caseID)[i]
		}
	}
	if concluded == nil || len(concluded.Factors) != 1 || concluded.Factors[0].Factor != "data_security" || concluded.Factors[0].Finding != "DATA-FINDING stays in China" {
		t.Fatalf("the conclusion recorded %+v", concluded)
	}
	if page := op.get(200, "/cases/"+caseID); !strings.Contains(page, `id="conclusion-factors"`) || !strings.Contains(page, "DATA-FINDING stays in China") {
		t.Fatalf("the case page does not show the findings: %s", tail(page, 4000))
	}
}

type commitmentJSON struct {
	ID    string `json:"id"`
	Urges []struct {
		Note string `json:"note"`
	} `json:"urges"`
}

func commitmentsOf(t *testing.T, c *client, caseID string) []commitmentJSON {
	t.Helper()
	var page struct {
		Items []commitmentJSON `json:"items"`
	}
	c.expect(200, "GET", "/commitments?case="+caseID, nil).json(t, &page)
	return page.Items
}

// TestWebUrgeCommitment: the case's operator urges the provider to keep a
// commitment from the case page and from the commitments page (a refused
// note kept on the form); the provider sees the urging and may not urge.
func TestWebUrgeCommitment(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID, _ := w.newCase(t, "urge")
	var cm struct{ ID string }
	w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "supply_continuity", "text": "supply for ten years"}).json(t, &cm)
	op, prov := webOf(t, s, w.op), webOf(t, s, w.prov)
	action := `action="/cases/` + caseID + `/commitments/` + cm.ID + `/urge"`
	if page := op.get(200, "/cases/"+caseID); !strings.Contains(page, action) {
		t.Fatalf("the operator is not offered the urging: %s", tail(page, 3000))
	}
	if page := prov.get(200, "/cases/"+caseID); strings.Contains(page, action) {
		t.Fatal("the provider is offered the urging")
	}
	long := strings.Repeat("急", 4001) // over the service's bound of 4000 characters
	page, _ := op.post(422, "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", url.Values{"note": {long}})
	if !strings.Contains(page, long+"</textarea>") || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("the refused urging lost its note: %s", tail(page, 2000))
	}
	_, loc := op.post(303, "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", url.Values{"note": {"URGE-1 deliver the spares"}})
	if loc != "/cases/"+caseID+"?done=urged" {
		t.Fatalf("after urging: %q", loc)
	}
	if page := op.get(200, "/commitments?case="+caseID); !strings.Contains(page, action) || !strings.Contains(page, `name="back" value="commitments"`) {
		t.Fatalf("the commitments page offers no urging: %s", tail(page, 3000))
	}
	_, loc = op.post(303, "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", url.Values{"note": {"URGE-2"}, "back": {"commitments"}})
	if loc != "/commitments?case="+caseID+"&done=urged" {
		t.Fatalf("after urging from the commitments page: %q", loc)
	}
	prov.post(403, "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", url.Values{"note": {"self"}})
	webOf(t, s, w.op2).post(404, "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", url.Values{"note": {"stranger"}})
	got := commitmentsOf(t, w.prov, caseID)
	if len(got) != 1 || len(got[0].Urges) != 2 || got[0].Urges[0].Note != "URGE-1 deliver the spares" || got[0].Urges[1].Note != "URGE-2" {
		t.Fatalf("the provider sees %+v", got)
	}
	if page := prov.get(200, "/cases/"+caseID); !strings.Contains(page, "URGE-1 deliver the spares") {
		t.Fatalf("the provider's case page does not show the urging: %s", tail(page, 3000))
	}
}

// proposedCase is a case opened on the operator's behalf from a member
// unit's proposal (through the API), with its materials, submitted.
func proposedCase(t *testing.T, w *world) string {
	t.Helper()
	w.office.expect(201, "POST", "/member-units", map[string]any{"org": orgOf(t, w.mu), "unit": "miit"})
	var p struct{ ID string }
	w.mu.expect(201, "POST", "/proposals", map[string]any{"party_org": w.opOrg, "subject": "product", "title": "Grid routers",
		"product": "AR-9000", "reason": "foreign firmware updates"}).json(t, &p)
	var ap struct {
		Case struct{ ID string } `json:"case"`
	}
	w.office.expect(201, "POST", "/proposals/"+p.ID+"/approval", map[string]any{"reference": "REF-1"}).json(t, &ap)
	for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
		if r := w.op.uploadRaw(ap.Case.ID, k, k+".txt", "text/plain", []byte(k)); r.Status != 201 {
			t.Fatalf("upload %s: %d %s", k, r.Status, r.Body)
		}
	}
	w.op.expect(200, "POST", "/cases/"+ap.Case.ID+"/submit", nil)
	return ap.Case.ID
}

// TestWebMeasureReports: the measures a proposed review requires are on
// the case page, and the operator reports on each there (a refused report
// kept on the form); the report is in the history, and neither the office
// nor another operator may report.
func TestWebMeasureReports(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID := proposedCase(t, w)
	x := &wfTest{t: t, w: w}
	x.move(w.office, 200, caseID, "require_review", nil)
	x.move(w.office, 200, caseID, "record_measures", map[string]any{"measures": []string{"encrypt the backups", "audit the firmware yearly"}})
	op, office := webOf(t, s, w.op), webOf(t, s, w.office)
	page := op.get(200, "/cases/"+caseID)
	if !strings.Contains(page, `id="measure-report-form"`) || !strings.Contains(page, `<option value="2">2. audit the firmware yearly</option>`) {
		t.Fatalf("the operator is not offered the measures' report: %s", tail(page, 3000))
	}
	if strings.Contains(office.get(200, "/cases/"+caseID), `id="measure-report-form"`) {
		t.Fatal("the office is offered the party's report")
	}
	page, _ = op.post(422, "/cases/"+caseID+"/measure-reports", url.Values{"measure": {"3"}, "report": {"REPORT-KEPT"}})
	if !strings.Contains(page, "REPORT-KEPT</textarea>") || !strings.Contains(page, msg(t, "en", "error.unknown_measure")) {
		t.Fatalf("the refused report: %s", tail(page, 3000))
	}
	_, loc := op.post(303, "/cases/"+caseID+"/measure-reports", url.Values{"measure": {"2"}, "report": {"REPORT-2 audited in March"}})
	if loc != "/cases/"+caseID+"?done=measures_reported" {
		t.Fatalf("after reporting: %q", loc)
	}
	office.post(403, "/cases/"+caseID+"/measure-reports", url.Values{"measure": {"1"}, "report": {"not mine"}})
	webOf(t, s, w.op2).post(404, "/cases/"+caseID+"/measure-reports", url.Values{"measure": {"1"}, "report": {"not mine"}})
	var ev struct {
		Items []struct {
			Action  string `json:"action"`
			Measure int    `json:"measure"`
			Reason  string `json:"reason"`
		} `json:"items"`
	}
	w.office.expect(200, "GET", "/cases/"+caseID+"/events", nil).json(t, &ev)
	reports := 0
	for _, e := range ev.Items {
		if e.Action == "report_measures" {
			reports++
			if e.Measure != 2 || e.Reason != "REPORT-2 audited in March" {
				t.Errorf("report recorded as %+v", e)
			}
		}
	}
	if reports != 1 {
		t.Fatalf("%d reports recorded: %+v", reports, ev.Items)
	}
	_, m2, _ := strings.Cut(office.get(200, "/cases/"+caseID), `id="measure-2"`)
	if m2, _, _ = strings.Cut(m2, "</li>\n"); !strings.Contains(m2, "REPORT-2 audited in March") {
		t.Fatalf("the office does not see the report under its measure: %s", m2)
	}
}

// TestWebWorkload: the inspectors' workload page counts complaints and
// reports by status as the API does, each status linking its list; other
// roles are refused it and not linked to it.
func TestWebWorkload(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	caseID, _ := w.newCase(t, "workload")
	w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "slow"})
	w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "confidentiality", "description": "leak?"})
	insp := webOf(t, s, w.insp)
	if !strings.Contains(insp.get(200, "/"), `href="/workload"`) {
		t.Fatal("the inspector's nav does not link the workload")
	}
	page := insp.get(200, "/workload")
	_, complaints, ok := strings.Cut(page, `id="queue-cstatus"`)
	complaints, _, _ = strings.Cut(complaints, "</section>")
	if !ok || !strings.Contains(complaints, `<a href="/complaints?status=open">`+msg(t, "en", "cstatus.open")+`</a></td><td>2</td>`) ||
		!strings.Contains(complaints, "Open: 2") || !strings.Contains(complaints, `class="oldest"`) {
		t.Fatalf("the complaints' queue: %s", complaints)
	}
	_, reports, _ := strings.Cut(page, `id="queue-rstatus"`)
	if !strings.Contains(reports, "Open: 0") || strings.Contains(reports, `class="oldest"`) {
		t.Fatalf("the reports' queue: %s", reports)
	}
	for _, c := range []*client{w.op, w.office, w.prov} {
		u := webOf(t, s, c)
		u.get(403, "/workload")
		if strings.Contains(u.get(200, "/"), `href="/workload"`) {
			t.Fatal("a role without the workload is linked to it")
		}
	}
}

// TestWebOpinionBeforeDeclaring: an opinion sent before the member unit
// declared (from a page opened earlier) is refused with a message about
// the opinion, on the case page, the opinion kept; it goes along with the
// declaration and is there, filled in, to send once declared.
func TestWebOpinionBeforeDeclaring(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_TOTP_REQUIRED_ROLES=")
	s.start()
	w := bootstrap(t, s)
	w.loginAll(t)
	x := &wfTest{t: t, w: w}
	w.office.expect(201, "POST", "/member-units", map[string]any{"org": orgOf(t, w.mu), "unit": "miit"})
	caseID, _ := w.newCase(t, "opinion")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	x.move(w.office, 200, caseID, "require_review", nil)
	x.assign(caseID, w.rev1, "reviewer")
	x.recommendation(caseID)
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.mu.id, "role": "member_unit", "purpose": "opinions"})
	x.move(w.office, 200, caseID, "recommend", nil)
	mu := webOf(t, s, w.mu)

	page, _ := mu.post(403, "/cases/"+caseID+"/opinions", url.Values{"agree": {"true"}, "comment": {"KEEP-ME supply is sound"}})
	if !strings.Contains(page, msg(t, "en", "opinion.declare_first_kept")) || strings.Contains(page, msg(t, "en", "error.declaration_required")) {
		t.Fatalf("the refusal does not speak of the opinion: %s", tail(page, 3000))
	}
	if !strings.Contains(page, "KEEP-ME supply is sound</textarea>") || !strings.Contains(page, `name="opinion_comment" value="KEEP-ME supply is sound"`) ||
		!strings.Contains(page, `action="/cases/`+caseID+`/declarations"`) {
		t.Fatalf("the opinion is not kept, nor the declaration offered: %s", tail(page, 4000))
	}
	page, _ = mu.post(200, "/cases/"+caseID+"/declarations", url.Values{"conflict": {"false"}, "statement": {"none"},
		"opinion_agree": {"true"}, "opinion_comment": {"KEEP-ME supply is sound"}})
	if !strings.Contains(page, msg(t, "en", "flash.declared")) || !strings.Contains(page, "KEEP-ME supply is sound</textarea>") ||
		!strings.Contains(page, `id="agree-yes" name="agree" value="true" required checked`) {
		t.Fatalf("after declaring, the opinion is not there to send: %s", tail(page, 4000))
	}
	mu.post(303, "/cases/"+caseID+"/opinions", url.Values{"agree": {"true"}, "comment": {"KEEP-ME supply is sound"}})
	var ev struct {
		Items []struct {
			Action string `json:"action"`
			Reason string `json:"reason"`
		} `json:"items"`
	}
	w.office.expect(200, "GET", "/cases/"+caseID+"/events", nil).json(t, &ev)
	if last := ev.Items[len(ev.Items)-1]; last.Action != "opinion" || last.Reason != "KEEP-ME supply is sound" {
		t.Fatalf("the opinion recorded: %+v", last)
	}
}
