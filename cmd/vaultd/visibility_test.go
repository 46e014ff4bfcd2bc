package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// What a party sees (issue 8, items 2 and 3), over real HTTP on each backend.

// partyWalk fetches everything one party can fetch about a case and keeps
// every body, to be scanned for what it must never contain.
type partyWalk struct {
	t      *testing.T
	c      *client
	name   string
	bodies []fetched
}

type fetched struct{ what, body string }

func (p *partyWalk) get(status int, path string) resp {
	p.t.Helper()
	r := p.c.expect(status, "GET", path, nil)
	p.bodies = append(p.bodies, fetched{"GET " + path, string(r.Body)})
	return r
}

type materialView struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Filename   string `json:"filename"`
	UploadedBy string `json:"uploaded_by"`
}

type historyEvent struct {
	Seq    int     `json:"seq"`
	Action string  `json:"action"`
	Actor  string  `json:"actor"`
	Reason string  `json:"reason"`
	Agree  *bool   `json:"agree"`
	To     string  `json:"to"`
	Days   float64 `json:"days"`
}

func (c *client) me(t *testing.T) (id, org string) {
	t.Helper()
	var u struct {
		ID  string `json:"id"`
		Org string `json:"org"`
	}
	c.expect(200, "GET", "/me", nil).json(t, &u)
	return u.ID, u.Org
}

func (c *client) upload(t *testing.T, caseID, kind, filename, body string) string {
	t.Helper()
	r := c.uploadRaw(caseID, kind, filename, "text/plain", []byte(body))
	if r.Status != 201 {
		t.Fatalf("upload %s %s: %d %s", kind, filename, r.Status, r.Body)
	}
	var m struct{ ID string }
	r.json(t, &m)
	return m.ID
}

// auditPages reads a party's audit view one small page at a time, checking
// that every page but the last is full (hidden events leave no short page).
func auditPages(t *testing.T, c *client, query string, size int) []event {
	t.Helper()
	var all []event
	cursor := ""
	for {
		q := fmt.Sprintf("/audit/events?limit=%d&%s", size, query)
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var page struct {
			Items      []event `json:"items"`
			NextCursor string  `json:"next_cursor"`
		}
		c.expect(200, "GET", q, nil).json(t, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		if len(page.Items) != size {
			t.Fatalf("a page of %d events with a next cursor, want %d: hidden events show as gaps", len(page.Items), size)
		}
		cursor = page.NextCursor
	}
}

// TestDeliberationWalk builds a case with everything the review keeps to
// itself (assignments, declarations with a conflict, a recommendation, a
// member unit's dissenting opinion and its document, a complaint of the
// provider upheld with recusal, inspectors' reads and notes, a sysadmin's
// refused attempt), then fetches, as its operator and as its provider,
// every event, audit record, list and error they can reach. None may hold a
// deliberation, a staff user id or an IP address; what they are entitled to
// (their materials' access log under pseudonyms, status, notices, their own
// filings) must be there.
func TestDeliberationWalk(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			coverYears(t, s)
			_, inspOrg := w.insp.me(t)
			muOrg := orgOf(t, w.mu)
			w.office.expect(201, "POST", "/member-units", map[string]any{"org": muOrg, "unit": "miit"})
			caseID, opDocs := w.newCase(t, "WALK")
			opDoc := ""
			for id := range opDocs {
				opDoc = id
				break
			}
			provDoc := w.prov.upload(t, caseID, "other", "provider-design.txt", "the provider's own design notes")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "require_review"})

			// A reviewer who reads everything; one who declares a conflict.
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
			w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "DELIB-STATEMENT-1"})
			for _, id := range append(slices.Collect(func(yield func(string) bool) {
				for id := range opDocs {
					if !yield(id) {
						return
					}
				}
			}), provDoc) {
				w.rev1.expect(200, "GET", "/materials/"+id+"/content", nil)
			}
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev2.id, "role": "reviewer", "purpose": "second look"})
			w.rev2.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": true, "statement": "DELIB-STATEMENT-2"})
			w.rev2.expect(403, "GET", "/materials/"+opDoc+"/content", nil)
			// A member unit, solicited, who reads and dissents.
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.mu.id, "role": "member_unit", "purpose": "member unit opinion"})
			w.mu.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "DELIB-STATEMENT-3"})
			w.mu.expect(200, "GET", "/materials/"+provDoc+"/content", nil)
			w.mu.expect(200, "GET", "/materials/"+opDoc+"/content", nil)
			recID := w.office.upload(t, caseID, "recommendation", "DELIB-recommendation.txt", "DELIB-RECOMMENDATION-BODY")
			w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "recommend", "reason": "DELIB-RECOMMEND-REASON: firmware can be controlled remotely"})
			opinionID := w.mu.upload(t, caseID, "opinion", "DELIB-opinion.txt", "DELIB-OPINION-BODY")
			var op struct {
				Status string `json:"status"`
			}
			w.mu.expect(201, "POST", "/cases/"+caseID+"/opinions", map[string]any{"agree": false, "comment": "DELIB-COMMENT"}).json(t, &op)
			if op.Status != "special_review" {
				t.Fatalf("a dissent left the case %s", op.Status)
			}
			w.office.expect(200, "POST", "/cases/"+caseID+"/transitions", map[string]any{"action": "extend_special", "days": 5, "reason": "complex supply chain"})

			// The provider names the reviewer it was shown; the inspector
			// handles it, reading what inspectors read.
			provEvents := w.prov.events("case=" + caseID + "&action=material.read")
			rev1Name := ""
			if e := find(provEvents, func(e event) bool { return e.ActorOrg == w.officeOrg && e.Purpose == "preliminary review" }); e != nil {
				rev1Name = e.Actor
			}
			var cmp complaintView
			w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "subject": rev1Name, "kind": "confidentiality",
				"description": "PROV-COMPLAINT-TEXT"}).json(t, &cmp)
			w.insp.expect(200, "GET", "/materials/"+opDoc, nil)
			w.insp.expect(200, "GET", "/cases/"+caseID+"/events", nil)
			w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/status", map[string]any{"status": "investigating", "note": "NOTE-INVESTIGATING"})
			w.insp.expect(200, "GET", "/complaints/"+cmp.ID+"/evidence", nil)
			w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/resolution", map[string]any{"outcome": "upheld", "actions": []string{"recuse_subject"}, "note": "NOTE-RESOLVED"})
			var opCmp complaintView
			w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "OP-COMPLAINT-TEXT"}).json(t, &opCmp)
			w.admin.expect(404, "GET", "/materials/"+opDoc+"/content", nil)
			// An inspector's finding on the provider's commitment.
			var cm struct{ ID string }
			w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "supply_continuity", "text": "five years of spares"}).json(t, &cm)
			w.insp.expect(200, "POST", "/commitments/"+cm.ID+"/status", map[string]any{"status": "kept", "note": "spares in stock"})

			staff := map[string]string{"office admin": w.office.id, "rev1": w.rev1.id, "rev2": w.rev2.id, "member unit": w.mu.id,
				"inspector": w.insp.id, "sysadmin": w.admin.id}
			// Assignment purposes are shown with the reads that went through
			// them (the access log says why); the assignments are not.
			never := []string{"DELIB-", "127.0.0.1", `"agree"`, "assignment.", "declaration.create", "opinion.create", `"action":"opinion"`,
				`"kind":"opinion"`, `"kind":"recommendation"`, "case.reassignment_requested", "complaint.status", "complaint.resolve",
				"complaint.evidence", "case.transition", `"members":`, inspOrg}
			random := "0000000000000000000000zzzz"
			notFound := func(p *partyWalk, path string) {
				t.Helper()
				got := p.get(404, path).problem(t)
				want := p.c.expect(404, "GET", strings.Replace(path, pathID(path), random, 1), nil).problem(t)
				if got["code"] != want["code"] || got["detail"] != want["detail"] {
					t.Errorf("%s %s: %v, unlike an unknown id's %v", p.name, path, got, want)
				}
			}

			views := map[string][]event{}
			for _, party := range []struct {
				c         *client
				name      string
				own       []string // materials its organisation provided
				foreign   []string // materials of the other party, without consent
				complaint string   // the other party's complaint
				otherText string
			}{
				{w.op, "operator", slices.Collect(func(yield func(string) bool) {
					for id := range opDocs {
						if !yield(id) {
							return
						}
					}
				}), []string{provDoc}, cmp.ID, "PROV-COMPLAINT-TEXT"},
				{w.prov, "provider", []string{provDoc}, []string{opDoc}, opCmp.ID, "OP-COMPLAINT-TEXT"},
			} {
				p := &partyWalk{t: t, c: party.c, name: party.name}
				p.get(200, "/me")
				p.get(200, "/cases")
				p.get(200, "/cases/"+caseID)
				p.get(200, "/cases/"+caseID+"/clock")
				var hist listOf[historyEvent]
				p.get(200, "/cases/"+caseID+"/events").json(t, &hist)
				var mats listOf[materialView]
				p.get(200, "/cases/"+caseID+"/materials").json(t, &mats)
				listed := map[string]materialView{}
				notices := 0
				for _, m := range mats.Items {
					listed[m.ID] = m
					p.get(200, "/materials/"+m.ID)
					body := p.get(200, "/materials/"+m.ID+"/content").Body
					if strings.Contains(string(body), "DELIB-") {
						t.Errorf("%s: material %s (%s) holds a deliberation", party.name, m.ID, m.Kind)
					}
					if m.Kind == "notice" {
						notices++
						// The office admin who decided, or the system for the
						// notice a dissent triggered: never the member unit.
						if m.UploadedBy != "A1" && m.UploadedBy != "system" {
							t.Errorf("%s: a notice is attributed to %q", party.name, m.UploadedBy)
						}
					}
				}
				for _, id := range party.own {
					if _, ok := listed[id]; !ok {
						t.Errorf("%s does not see its own material %s", party.name, id)
					}
				}
				if notices < 3 {
					t.Errorf("%s sees %d notices, want the office's written notices", party.name, notices)
				}
				for _, id := range append([]string{recID, opinionID}, party.foreign...) {
					if _, ok := listed[id]; ok {
						t.Errorf("%s lists hidden material %s", party.name, id)
					}
					notFound(p, "/materials/"+id)
					notFound(p, "/materials/"+id+"/content")
				}
				if pr := p.get(403, "/cases/"+caseID+"/assignments").problem(t); pr["code"] != "forbidden" {
					t.Errorf("%s: assignments: %v", party.name, pr)
				}
				notFound(p, "/complaints/"+party.complaint)
				var mine listOf[complaintView]
				p.get(200, "/complaints").json(t, &mine)
				if len(mine.Items) != 1 {
					t.Errorf("%s lists %d complaints, want its own one", party.name, len(mine.Items))
				}
				p.get(200, "/commitments")

				// The history: status changes, no opinion, no gaps, office by pseudonym.
				var acts []string
				for i, e := range hist.Items {
					acts = append(acts, e.Action)
					if e.Seq != i+1 || e.Agree != nil {
						t.Errorf("%s: history entry %+v", party.name, e)
					}
				}
				if got := strings.Join(acts, " "); got != "submit require_review recommend extend_special" {
					t.Errorf("%s sees history %q", party.name, got)
				}

				// The audit trail, whole and in pages of 3 (reads only: every
				// query adds an audit.query of the party's own), with filters.
				evs := auditPages(t, party.c, "case="+caseID, 500)
				reads := auditPages(t, party.c, "case="+caseID+"&action=material.read", 500)
				if paged := auditPages(t, party.c, "case="+caseID+"&action=material.read", 3); len(paged) != len(reads) || len(reads) < 4 {
					t.Errorf("%s: %d reads in pages of 3, %d at once", party.name, len(paged), len(reads))
				}
				p.get(200, "/audit/events?limit=500")
				p.get(200, "/audit/events?limit=500&case="+caseID)
				for _, q := range []string{"action=assignment.create", "action=opinion.create", "action=declaration.create",
					"action=complaint.resolve", "action=assignment.recuse", "actor=" + w.rev1.id, "actor=" + w.insp.id} {
					var page listOf[event]
					p.get(200, "/audit/events?case="+caseID+"&"+q).json(t, &page)
					if len(page.Items) != 0 {
						t.Errorf("%s: %s finds %d events", party.name, q, len(page.Items))
					}
				}
				for _, e := range evs {
					p.bodies = append(p.bodies, fetched{"an audit event", fmt.Sprintf("%+v", e)})
					if id, ok := strings.CutPrefix(e.Resource, "material/"); ok {
						id, _, _ = strings.Cut(id, " ")
						if _, seen := listed[id]; !seen {
							t.Errorf("%s sees an event on material %s it may not see: %+v", party.name, id, e)
						}
					}
					if e.IP != "" {
						t.Errorf("%s sees an address: %+v", party.name, e)
					}
				}
				views[party.name] = evs

				// The scan.
				for _, f := range p.bodies {
					for who, id := range staff {
						if strings.Contains(f.body, id) {
							t.Errorf("%s sees the %s's user id in %s: %s", party.name, who, f.what, clip(f.body, id))
						}
					}
					for _, s := range append(never, party.otherText) {
						if strings.Contains(f.body, s) {
							t.Errorf("%s sees %q in %s: %s", party.name, s, f.what, clip(f.body, s))
						}
					}
				}
			}

			// What they are entitled to is there: the access log of their own
			// materials, by organisation, pseudonym and purpose.
			readBy := func(evs []event, actor, material, purpose string) bool {
				return find(evs, func(e event) bool {
					return e.Action == "material.read" && e.Outcome == "allowed" && e.Actor == actor && e.ActorOrg != "" &&
						e.Resource == "material/"+material && e.Purpose == purpose
				}) != nil
			}
			if !readBy(views["operator"], "R1", opDoc, "preliminary review") || !readBy(views["operator"], "M1", opDoc, "member unit opinion") {
				t.Errorf("the operator does not see R1's and M1's reads of its material: %+v", views["operator"])
			}
			if !readBy(views["provider"], "R1", provDoc, "preliminary review") || !readBy(views["provider"], "M1", provDoc, "member unit opinion") {
				t.Errorf("the provider does not see R1's and M1's reads of its material: %+v", views["provider"])
			}
			if rev1Name != "R1" {
				t.Errorf("the provider was shown rev1 as %q", rev1Name)
			}
			if find(views["operator"], func(e event) bool { return e.Actor == "R2" && e.Outcome == "denied" }) == nil {
				t.Errorf("the operator does not see the refused read of its material")
			}
			// The filer sees its complaint's subject as it named it, and the
			// outcome, not who handled it.
			var seen map[string]any
			w.prov.expect(200, "GET", "/complaints/"+cmp.ID, nil).json(t, &seen)
			if seen["subject"] != "R1" || seen["outcome"] != "upheld" || !strings.Contains(fmt.Sprint(seen["history"]), "NOTE-RESOLVED") ||
				strings.Contains(fmt.Sprint(seen), w.insp.id) {
				t.Errorf("the provider's complaint: %v", seen)
			}
			// The inside still sees all of it.
			var full listOf[historyEvent]
			w.office.expect(200, "GET", "/cases/"+caseID+"/events", nil).json(t, &full)
			if find2(full.Items, func(e historyEvent) bool {
				return e.Action == "opinion" && e.Reason == "DELIB-COMMENT" && e.Agree != nil
			}) == nil {
				t.Errorf("the office does not see the opinion: %+v", full.Items)
			}
			if find(w.insp.events("case="+caseID), func(e event) bool { return e.Action == "material.read" && e.Actor == w.rev1.id && e.IP != "" }) == nil {
				t.Error("the inspector does not see rev1's reads as they were recorded")
			}
		})
	}
}

var idInPath = regexp.MustCompile(`/(materials|complaints)/([0-9a-z]+)`)

func pathID(path string) string {
	m := idInPath.FindStringSubmatch(path)
	if m == nil {
		return ""
	}
	return m[2]
}

func find2[T any](xs []T, pred func(T) bool) *T {
	for i := range xs {
		if pred(xs[i]) {
			return &xs[i]
		}
	}
	return nil
}

// clip shows where needle sits in a long body.
func clip(body, needle string) string {
	i := strings.Index(body, needle)
	from, to := max(0, i-150), min(len(body), i+len(needle)+150)
	return "…" + body[from:to] + "…"
}

// TestConsent: a provider's material reaches the operator only under the
// provider's consent (Art. 16), which is listed to the provider, cited by
// every read under it, and withdrawn at once; and the reverse.
func TestConsent(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			_, op2Org := w.op2.me(t)
			caseID, opDocs := w.newCase(t, "CONSENT")
			var opDoc string
			for id := range opDocs {
				opDoc = id
				break
			}
			secret := "the provider's undisclosed source-code escrow terms"
			provDoc := w.prov.upload(t, caseID, "procurement", "escrow.txt", secret)

			// Without consent the operator sees nothing of it.
			w.op.expect(404, "GET", "/materials/"+provDoc, nil).problem(t)
			w.op.expect(404, "GET", "/materials/"+provDoc+"/content", nil).problem(t)
			w.op.expect(404, "POST", "/materials/"+provDoc+"/consents", map[string]any{"org": w.opOrg, "purpose": "x"}).problem(t)
			var list listOf[materialView]
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &list)
			if find2(list.Items, func(m materialView) bool { return m.ID == provDoc }) != nil {
				t.Fatal("the operator lists the provider's material without consent")
			}

			// Bad grants.
			for _, tc := range []struct {
				c      *client
				body   map[string]any
				status int
				code   string
			}{
				{w.prov, map[string]any{"org": op2Org, "purpose": "x"}, 422, "invalid_org"},
				{w.prov, map[string]any{"org": w.provOrg, "purpose": "x"}, 422, "invalid_org"},
				{w.prov, map[string]any{"org": w.opOrg}, 422, "missing_field"},
				{w.rev1, map[string]any{"org": w.opOrg, "purpose": "x"}, 404, "not_found"},
			} {
				if p := tc.c.expect(tc.status, "POST", "/materials/"+provDoc+"/consents", tc.body).problem(t); p["code"] != tc.code {
					t.Errorf("grant %v: %v, want %s", tc.body, p, tc.code)
				}
			}

			// Granted, listed to the provider.
			var cs struct {
				ID         string `json:"id"`
				MaterialID string `json:"material_id"`
				Org        string `json:"org"`
				Purpose    string `json:"purpose"`
				GrantedBy  string `json:"granted_by"`
				GrantedAt  string `json:"granted_at"`
			}
			w.prov.expect(201, "POST", "/materials/"+provDoc+"/consents", map[string]any{"org": w.opOrg, "purpose": "contract negotiation"}).json(t, &cs)
			if cs.ID == "" || cs.MaterialID != provDoc || cs.Org != w.opOrg || cs.Purpose != "contract negotiation" || cs.GrantedBy != w.prov.id || cs.GrantedAt == "" {
				t.Fatalf("consent: %+v", cs)
			}
			if p := w.prov.expect(409, "POST", "/materials/"+provDoc+"/consents", map[string]any{"org": w.opOrg, "purpose": "again"}).problem(t); p["code"] != "consent_exists" {
				t.Errorf("duplicate consent: %v", p)
			}
			var granted listOf[map[string]any]
			w.prov.expect(200, "GET", "/materials/"+provDoc+"/consents", nil).json(t, &granted)
			if len(granted.Items) != 1 || granted.Items[0]["id"] != cs.ID {
				t.Fatalf("consents listed to the provider: %+v", granted.Items)
			}

			// Used: the operator lists, sees and reads it; each read cites the consent.
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &list)
			m := find2(list.Items, func(m materialView) bool { return m.ID == provDoc })
			if m == nil || m.UploadedBy == w.prov.id || !strings.HasPrefix(m.UploadedBy, "P") {
				t.Fatalf("the operator's list under consent: %+v", list.Items)
			}
			if body := w.op.expect(200, "GET", "/materials/"+provDoc+"/content", nil).Body; string(body) != secret {
				t.Fatalf("the operator read %q", body)
			}
			w.op.expect(403, "GET", "/materials/"+provDoc+"/consents", nil).problem(t)
			w.op.expect(403, "DELETE", "/consents/"+cs.ID, nil).problem(t)
			purpose := "consent/" + cs.ID
			if find(w.insp.events("case="+caseID+"&action=material.read"), func(e event) bool {
				return e.Actor == w.op.id && e.Resource == "material/"+provDoc && e.Purpose == purpose && e.Outcome == "allowed"
			}) == nil {
				t.Errorf("no read under the consent citing %s in the audit trail", purpose)
			}
			if find(w.prov.events("case="+caseID+"&action=material.read"), func(e event) bool {
				return e.ActorOrg == w.opOrg && e.Actor != w.op.id && e.Resource == "material/"+provDoc && e.Purpose == purpose
			}) == nil {
				t.Errorf("the provider does not see the operator's read under its consent")
			}
			if find(w.op.events("case="+caseID+"&action=material.read"), func(e event) bool {
				return e.Actor == w.op.id && e.Resource == "material/"+provDoc && e.Purpose == purpose
			}) == nil {
				t.Errorf("the operator does not see its own read under the consent")
			}

			// Revoked: effective on the very next request.
			w.prov.expect(204, "DELETE", "/consents/"+cs.ID, nil)
			w.op.expect(404, "GET", "/materials/"+provDoc+"/content", nil).problem(t)
			w.op.expect(404, "GET", "/materials/"+provDoc, nil).problem(t)
			w.prov.expect(404, "DELETE", "/consents/"+cs.ID, nil).problem(t)
			w.prov.expect(200, "GET", "/materials/"+provDoc+"/consents", nil).json(t, &granted)
			if len(granted.Items) != 0 {
				t.Errorf("a withdrawn consent is listed: %+v", granted.Items)
			}
			if find(w.insp.events("case="+caseID+"&action=material.read&outcome=denied"), func(e event) bool {
				return e.Actor == w.op.id && e.Resource == "material/"+provDoc
			}) == nil {
				t.Error("the refused read after withdrawal is not audited")
			}

			// The reverse: the operator discloses one of its own to the provider.
			w.prov.expect(404, "GET", "/materials/"+opDoc+"/content", nil).problem(t)
			var back struct{ ID string }
			w.op.expect(201, "POST", "/materials/"+opDoc+"/consents", map[string]any{"org": w.provOrg, "purpose": "integration design"}).json(t, &back)
			if body := w.prov.expect(200, "GET", "/materials/"+opDoc+"/content", nil).Body; string(body) != string(opDocs[opDoc]) {
				t.Fatal("the provider cannot read the operator's material under consent")
			}
			w.op.expect(204, "DELETE", "/consents/"+back.ID, nil)
			w.prov.expect(404, "GET", "/materials/"+opDoc+"/content", nil).problem(t)

			// Need to know inside the review is unchanged: an assigned reviewer
			// reads the provider's material with no consent.
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
			w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "none"})
			w.rev1.expect(200, "GET", "/materials/"+provDoc+"/content", nil)
			// Evidence is never disclosed by consent.
			ev := w.op.upload(t, caseID, "evidence", "leak.txt", "evidence")
			if p := w.op.expect(422, "POST", "/materials/"+ev+"/consents", map[string]any{"org": w.provOrg, "purpose": "x"}).problem(t); p["code"] != "consent_not_applicable" {
				t.Errorf("consent on evidence: %v", p)
			}
		})
	}
}
