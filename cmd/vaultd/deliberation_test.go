package main

import (
	"strings"
	"testing"
)

// TestDeliberationNeedToKnow walks one case through the member units' round
// and its conclusion and checks, at each step, that nobody inside learns of
// the deliberation more than their part in it needs (review h28e):
//   - a member unit sees its own opinion, never a peer's vote, comment or
//     account, and the deliberation's texts only once it may read the
//     materials;
//   - an inspector sees who did what and when, not what the deliberation
//     said;
//   - a provider is not told the other providers of the case;
//   - a member unit's reading ends with the review, a reviewer's does not;
//   - a complainant reads the resolution, not the inspectors' working note.
func TestDeliberationNeedToKnow(t *testing.T) {
	t.Parallel() // its own server; it asserts no timing
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.mustCLI("", "org", "add", "--name", "Second Unit", "--kind", "member_unit")
	prov2Org := s.mustCLI("", "org", "add", "--name", "Beta Switches", "--kind", "provider")
	s.mustCLI(pw+"\n", "user", "add", "--username", "memberunit2", "--org", "Second Unit", "--role", "member_unit", "--password-stdin")
	s.start()
	w.loginAll(t)
	coverYears(t, s)
	mu2 := s.login(t, "memberunit2", pw)
	muOrg, mu2Org := orgOf(t, w.mu), orgOf(t, mu2)
	for _, o := range []string{muOrg, mu2Org} {
		w.office.expect(201, "POST", "/member-units", map[string]any{"org": o, "unit": "department"})
	}

	var cs struct {
		ID        string   `json:"id"`
		Providers []string `json:"providers"`
	}
	w.op.expect(201, "POST", "/cases", map[string]any{"title": "Switches", "product": "SW-1", "providers": []string{w.provOrg, prov2Org}}).json(t, &cs)
	caseID := cs.ID
	var opDoc string
	for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
		id := w.op.upload(t, caseID, k, k+".txt", "operator "+k)
		if k == "declaration" {
			opDoc = id
		}
	}
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)

	// The operator chose both providers and sees both; each provider only
	// itself.
	w.op.expect(200, "GET", "/cases/"+caseID, nil).json(t, &cs)
	if len(cs.Providers) != 2 {
		t.Errorf("operator sees providers %v, want both", cs.Providers)
	}
	w.prov.expect(200, "GET", "/cases/"+caseID, nil).json(t, &cs)
	if len(cs.Providers) != 1 || cs.Providers[0] != w.provOrg {
		t.Errorf("provider 1 sees providers %v, want only its own %s", cs.Providers, w.provOrg)
	}
	if body := string(w.prov.expect(200, "GET", "/cases?limit=50", nil).Body); strings.Contains(body, prov2Org) {
		t.Errorf("provider 1's case list names provider 2: %s", body)
	}
	// Nor can it learn of them by naming one in a consent: a co-provider
	// and an organisation foreign to the case are refused alike; the
	// operator may disclose to its providers.
	provDoc := w.prov.upload(t, caseID, "other", "prov.txt", "provider filing")
	co := w.prov.do("POST", "/materials/"+provDoc+"/consents", map[string]any{"org": prov2Org, "purpose": "probe"})
	foreign := w.prov.do("POST", "/materials/"+provDoc+"/consents", map[string]any{"org": muOrg, "purpose": "probe"})
	if co.Status != 422 || foreign.Status != 422 || string(co.Body) != string(foreign.Body) {
		t.Errorf("provider's consent to a co-provider: %d %s; to a foreign organisation: %d %s", co.Status, co.Body, foreign.Status, foreign.Body)
	}
	w.prov.expect(201, "POST", "/materials/"+provDoc+"/consents", map[string]any{"org": w.opOrg, "purpose": "to the operator"})
	w.op.expect(201, "POST", "/materials/"+opDoc+"/consents", map[string]any{"org": prov2Org, "purpose": "to a provider"})

	w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "require_review"})
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
	w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
	recID := w.rev1.upload(t, caseID, "recommendation", "rec.txt", "the recommendation")
	for _, u := range []string{w.mu.id, mu2.id} {
		w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": u, "role": "member_unit", "purpose": "member unit opinion"})
	}
	w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "recommend", "reason": "RECOMMEND-REASON"})

	// A second reviewer declares a conflict and is refused the operator's
	// document.
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev2.id, "role": "reviewer", "purpose": "second look"})
	w.rev2.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": true, "statement": "I advise the operator"})
	w.rev2.expect(403, "GET", "/materials/"+opDoc+"/content", nil)

	// A third reviewer, assigned and yet to declare, sees the steps, not
	// the deliberation's texts; declared, it reads them.
	s.mustCLI(pw+"\n", "user", "add", "--username", "rev3", "--org", "Cybersecurity Review Office", "--role", "reviewer", "--password-stdin")
	rev3 := s.login(t, "rev3", pw)
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": rev3.id, "role": "reviewer", "purpose": "third look"})
	if hist := string(rev3.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body); strings.Contains(hist, "RECOMMEND-REASON") || !strings.Contains(hist, `"recommend"`) {
		t.Errorf("undeclared reviewer's history: want the recommendation without its reason: %s", hist)
	}

	// Unit 2 answers, with a written opinion; unit 1 has neither declared
	// nor answered.
	mu2.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
	peerDoc := mu2.upload(t, caseID, "opinion", "peer-opinion.txt", "PEER-OPINION-DOC")
	mu2.expect(201, "POST", "/cases/"+caseID+"/opinions", map[string]any{"agree": true, "comment": "PEER-COMMENT"})
	rev3.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
	if hist := string(rev3.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body); !strings.Contains(hist, "RECOMMEND-REASON") || !strings.Contains(hist, "PEER-COMMENT") {
		t.Errorf("declared reviewer's history lacks the deliberation: %s", hist)
	}
	hist := string(w.mu.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body)
	clock := string(w.mu.expect(200, "GET", "/cases/"+caseID+"/clock", nil).Body)
	// Which units were asked is its to know (the recommendation's
	// members); how they answered is not.
	for what, body := range map[string]string{"history": hist, "clock": clock} {
		for _, leak := range []string{"PEER-COMMENT", `"agree":true`, mu2.id, "RECOMMEND-REASON"} {
			if strings.Contains(body, leak) {
				t.Errorf("undeclared member unit 1 reads %q in its %s: %s", leak, what, body)
			}
		}
	}
	if strings.Contains(clock, mu2Org) {
		t.Errorf("member unit 1's clock shows member unit 2's round: %s", clock)
	}
	if !strings.Contains(clock, muOrg) {
		t.Errorf("member unit 1's clock lacks its own round: %s", clock)
	}
	// Its view is numbered without the peer's row: the entries run 1..n.
	var page struct {
		Items []struct {
			Seq    int    `json:"seq"`
			Action string `json:"action"`
		} `json:"items"`
	}
	w.mu.expect(200, "GET", "/cases/"+caseID+"/events", nil).json(t, &page)
	for i, e := range page.Items {
		if e.Seq != i+1 || e.Action == "opinion" {
			t.Errorf("member unit 1's history entry %d: seq %d action %s", i, e.Seq, e.Action)
		}
	}
	// Once declared, the recommendation's reason is its to read, as the
	// recommendation itself; the peer's answer is still not.
	w.mu.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
	hist = string(w.mu.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body)
	if !strings.Contains(hist, "RECOMMEND-REASON") || strings.Contains(hist, "PEER-COMMENT") {
		t.Errorf("declared member unit 1's history: want the recommendation's reason and no peer comment: %s", hist)
	}
	// Another unit's written opinion is its own: unit 1 sees no trace of it,
	// even declared.
	for _, path := range []string{"/materials/" + peerDoc, "/materials/" + peerDoc + "/content"} {
		w.mu.expect(404, "GET", path, nil)
	}
	if body := string(w.mu.expect(200, "GET", "/cases/"+caseID+"/materials?limit=500", nil).Body); strings.Contains(body, peerDoc) {
		t.Errorf("member unit 1 lists member unit 2's opinion document: %s", body)
	}
	ownDoc := w.mu.upload(t, caseID, "opinion", "own-opinion.txt", "OWN-OPINION-DOC")
	var answered struct {
		Event struct {
			Seq int `json:"seq"`
		} `json:"event"`
	}
	w.mu.expect(201, "POST", "/cases/"+caseID+"/opinions", map[string]any{"agree": true, "comment": "OWN-COMMENT"}).json(t, &answered)
	w.mu.expect(200, "GET", "/cases/"+caseID+"/events", nil).json(t, &page)
	if n := len(page.Items); n == 0 || answered.Event.Seq != page.Items[n-1].Seq {
		t.Errorf("member unit 1's answer is numbered %d, its own history's last entry %+v: the gap counts its peers", answered.Event.Seq, page.Items)
	}
	hist = string(w.mu.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body)
	if !strings.Contains(hist, "OWN-COMMENT") || strings.Contains(hist, "PEER-COMMENT") {
		t.Errorf("member unit 1's history after answering: want its own comment only: %s", hist)
	}
	// The office sees both answers.
	hist = string(w.office.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body)
	if !strings.Contains(hist, "OWN-COMMENT") || !strings.Contains(hist, "PEER-COMMENT") || !strings.Contains(hist, "RECOMMEND-REASON") {
		t.Errorf("the office's history lacks the deliberation: %s", hist)
	}

	// The inspector sees the opinions were given, by whom and when, not
	// what they said.
	hist = string(w.insp.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body)
	for _, leak := range []string{"PEER-COMMENT", "OWN-COMMENT", "RECOMMEND-REASON"} {
		if strings.Contains(hist, leak) {
			t.Errorf("inspector reads deliberation text %q in the case history", leak)
		}
	}
	if strings.Count(hist, `"action":"opinion"`) != 2 || !strings.Contains(hist, mu2.id) {
		t.Errorf("inspector's history should show both opinions and who gave them: %s", hist)
	}

	// The operator's access log has the member unit's read.
	w.mu.expect(200, "GET", "/materials/"+opDoc+"/content", nil)
	var sawRead bool
	for _, e := range w.op.events("case=" + caseID) {
		sawRead = sawRead || e.Action == "material.read" && e.ActorOrg == muOrg && e.Outcome == "allowed"
	}
	if !sawRead {
		t.Error("operator's access log lacks member unit 1's read of its declaration")
	}

	// A complaint: the investigation's note stays with the inspectors, the
	// resolution's reaches the complainant.
	var cmp struct{ ID string }
	w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "confidentiality", "description": "leak?"}).json(t, &cmp)
	w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/status", map[string]any{"status": "investigating", "note": "INSPECTOR-NOTE checking R1"})
	w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/resolution", map[string]any{"outcome": "dismissed", "note": "RESOLUTION-NOTE"})
	body := string(w.prov.expect(200, "GET", "/complaints/"+cmp.ID, nil).Body)
	if strings.Contains(body, "INSPECTOR-NOTE") || !strings.Contains(body, "RESOLUTION-NOTE") {
		t.Errorf("complainant's view: want the resolution's note and not the investigation's: %s", body)
	}
	if body := string(w.insp.expect(200, "GET", "/complaints/"+cmp.ID, nil).Body); !strings.Contains(body, "INSPECTOR-NOTE") {
		t.Errorf("the inspectors lost their note: %s", body)
	}

	// The review ends: the member units' need to know with it.
	w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "conclude", "outcome": "passed"})
	for _, id := range []string{opDoc, recID} {
		r := w.mu.do("GET", "/materials/"+id+"/content", nil)
		if r.Status != 403 || !strings.Contains(string(r.Body), `"case_concluded"`) {
			t.Errorf("member unit reads material %s of a concluded case: %d %s", id, r.Status, r.Body)
		}
	}
	if body := string(w.mu.expect(200, "GET", "/materials/"+ownDoc+"/content", nil).Body); body != "OWN-OPINION-DOC" {
		t.Errorf("member unit 1 lost its own opinion document after the conclusion: %q", body)
	}
	if hist := string(w.mu.expect(200, "GET", "/cases/"+caseID+"/events", nil).Body); strings.Contains(hist, "RECOMMEND-REASON") {
		t.Errorf("member unit still reads the recommendation's reason after the conclusion: %s", hist)
	}
	w.rev1.expect(200, "GET", "/materials/"+opDoc+"/content", nil)
	if e := find(w.insp.events("case="+caseID+"&action=material.read&outcome=denied"), func(e event) bool {
		return e.Actor == w.mu.id
	}); e == nil {
		t.Error("the member unit's refused read after the conclusion is not audited as denied")
	}
}
