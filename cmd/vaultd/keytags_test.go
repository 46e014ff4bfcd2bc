package main

import (
	"strings"
	"testing"
	"time"
)

// TestMovedCaseKeyIsRefusedEndToEnd (review h29b, finding 2): a database
// administrator copies case A's wrapped key, with every column beside it
// (its tag too), into the row of case B, to which rev1 alone is assigned,
// and moves A's materials under B. rev1 is refused every document of A
// (500 material_damaged, audited as an error with that code) instead of
// reading them on case B's account, and vaultd names the refused key's row
// in an ERROR line.
func TestMovedCaseKeyIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseA, docsA := w.newCase(t, "MARKER-ROWTAG-SECRET-A")
			w.op.expect(200, "POST", "/cases/"+caseA+"/submit", nil)
			caseB, _ := w.newCase(t, "MARKER-ROWTAG-B")
			w.op.expect(200, "POST", "/cases/"+caseB+"/submit", nil)
			w.office.expect(201, "POST", "/cases/"+caseB+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
			w.rev1.expect(201, "POST", "/cases/"+caseB+"/declarations", map[string]any{"conflict": false, "statement": "none"})
			for id := range docsA {
				w.rev1.expect(404, "GET", "/materials/"+id+"/content", nil)
			}

			s.stop() // only to drop the one-minute key cache; waiting works too
			dbaExec(t, s, `UPDATE case_keys SET wrapped = (SELECT wrapped FROM case_keys WHERE case_id = ?), master = (SELECT master FROM case_keys WHERE case_id = ?),
				escrow = (SELECT escrow FROM case_keys WHERE case_id = ?), tag = (SELECT tag FROM case_keys WHERE case_id = ?) WHERE case_id = ?`,
				caseA, caseA, caseA, caseA, caseB)
			dbaExec(t, s, `UPDATE materials SET case_id = ? WHERE case_id = ?`, caseB, caseA)
			s.start()
			rev1 := s.login(t, "rev1", pw)
			for id := range docsA {
				r := rev1.do("GET", "/materials/"+id+"/content", nil)
				if r.Status != 500 {
					t.Fatalf("moved material %s: %d %.200s", id, r.Status, r.Body)
				}
				if p := r.problem(t); p["code"] != "material_damaged" {
					t.Fatalf("moved material %s: problem %v", id, p)
				}
				if strings.Contains(string(r.Body), "MARKER-ROWTAG-SECRET-A") {
					t.Fatalf("the refusal carries the document: %.200s", r.Body)
				}
			}
			reads := queryStrings(t, s, `SELECT outcome || ' ' || resource || ' ' || detail FROM audit_events WHERE actor = ? AND action = 'material.read' ORDER BY seq`, rev1.id)
			var refused int
			for _, e := range reads {
				if strings.HasPrefix(e, "allowed ") && !strings.Contains(e, "error") {
					// The 404s before the move were denied; nothing was allowed.
					t.Fatalf("a read was allowed: %s (all: %v)", e, reads)
				}
				if strings.HasPrefix(e, "error ") && strings.HasSuffix(e, " material_damaged") {
					refused++
				}
			}
			if refused != len(docsA) {
				t.Fatalf("%d reads audited as material_damaged, want %d: %v", refused, len(docsA), reads)
			}
			logs := s.log.String()
			if !strings.Contains(logs, "wrapped key refused") || !strings.Contains(logs, caseB) {
				t.Fatalf("no ERROR line names case B's key row:\n%s", tail(logs, 3000))
			}
		})
	}
}

// TestBlankedTagsAreNotRetaggedAtStart: vaultd's first start records the
// backfill of each table's row tags in the audit log; a database
// administrator who then blanks a case key's and its materials' tags and
// restarts vaultd gets nothing re-tagged: the case's documents stay
// refused, and no second backfill is recorded.
func TestBlankedTagsAreNotRetaggedAtStart(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-ROWTAG-BLANK")
			marks := queryStrings(t, s, `SELECT resource FROM audit_events WHERE action = 'keys.tag_backfill' ORDER BY resource`)
			if strings.Join(marks, ",") != "case_events,case_events.texts,case_keys,cases,cases.due,cases.status,material_consents,material_segments,materials,proposals,supervision_commitment_changes,supervision_commitment_urges,supervision_commitments,supervision_commitments.status,supervision_complaint_changes,supervision_complaints,supervision_keys,supervision_reports,upload_segments,upload_sessions,vault_keys" {
				t.Fatalf("backfill events after the first start: %v", marks)
			}
			s.stop()
			dbaExec(t, s, `UPDATE case_keys SET tag = '' WHERE case_id = ?`, caseID)
			dbaExec(t, s, `UPDATE materials SET tag = '' WHERE case_id = ?`, caseID)
			s.start()
			op := s.login(t, "operator1", pw)
			for id := range docs {
				r := op.do("GET", "/materials/"+id+"/content", nil)
				if r.Status != 500 || r.problem(t)["code"] != "material_damaged" {
					t.Fatalf("untagged material %s after restart: %d %.200s", id, r.Status, r.Body)
				}
			}
			if again := queryStrings(t, s, `SELECT resource FROM audit_events WHERE action = 'keys.tag_backfill'`); len(again) != len(marks) {
				t.Fatalf("backfill events after the restart: %v", again)
			}
		})
	}
}

// TestCasePartiesEditIsRefusedEndToEnd (review h29h, F1): a database
// administrator makes another operator organisation the operator of a
// case. Its operator sees nothing of the case (404, not listed, not its
// text), vaultd names the case in an ERROR line, and the case's genuine
// parties have it back once the row is restored.
func TestCasePartiesEditIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-PARTIES-SECRET")
			w.op.expect(200, "GET", "/cases/"+caseID, nil)
			genuine := queryStrings(t, s, `SELECT operator_org FROM cases WHERE id = ?`, caseID)[0]
			dbaExec(t, s, `UPDATE cases SET operator_org = (SELECT org_id FROM access_users WHERE username = 'operator2') WHERE id = ?`, caseID)
			for _, r := range []resp{
				w.op2.do("GET", "/cases/"+caseID, nil),
				w.op2.do("GET", "/cases/"+caseID+"/materials", nil),
				w.op2.do("GET", "/cases/"+caseID+"/events", nil),
				w.op.do("GET", "/cases/"+caseID, nil),
				w.prov.do("GET", "/cases/"+caseID, nil),
			} {
				if r.Status != 404 || strings.Contains(string(r.Body), "MARKER-PARTIES") || strings.Contains(string(r.Body), "Core routers") {
					t.Fatalf("after the edit: %d %.300s", r.Status, r.Body)
				}
			}
			for id := range docs {
				w.op2.expect(404, "GET", "/materials/"+id+"/content", nil)
			}
			if r := w.op2.expect(200, "GET", "/cases", nil); strings.Contains(string(r.Body), caseID) {
				t.Fatalf("the case is listed to the rival: %.300s", r.Body)
			}
			if logs := s.log.String(); !strings.Contains(logs, "case's parties refused") || !strings.Contains(logs, caseID) {
				t.Fatalf("no ERROR line names the case:\n%s", tail(logs, 3000))
			}
			dbaExec(t, s, `UPDATE cases SET operator_org = ? WHERE id = ?`, genuine, caseID)
			w.op.expect(200, "GET", "/cases/"+caseID, nil)
			w.prov.expect(200, "GET", "/cases/"+caseID, nil)
			w.op2.expect(404, "GET", "/cases/"+caseID, nil)
		})
	}
}

// TestCommitmentProviderSwapIsRefusedEndToEnd: a database administrator
// swaps provider_org between the commitments of the two providers of one
// case. Neither provider reads the other's commitment (nor its own), the
// operator cannot urge either, the inspector lists them without their
// parties, vaultd names them in an ERROR line and counts them in
// crvault_vault_row_tag_refusals_total; restored, they are back.
func TestCommitmentProviderSwapIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s, w, prov2, org2, caseID := twoProviderCase(t, be)
			var ca, cb struct {
				ID string `json:"id"`
			}
			w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "no_illegal_data", "text": "MARKER-COMMIT-A escrow"}).json(t, &ca)
			prov2.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "other", "text": "MARKER-COMMIT-B supply"}).json(t, &cb)
			lists := func(c *client, marker string) bool {
				t.Helper()
				return strings.Contains(string(c.expect(200, "GET", "/commitments", nil).Body), marker)
			}
			if !lists(w.prov, "MARKER-COMMIT-A") || lists(w.prov, "MARKER-COMMIT-B") || !lists(prov2, "MARKER-COMMIT-B") {
				t.Fatal("before the edit, each provider lists its own commitment only")
			}
			dbaExec(t, s, `UPDATE supervision_commitments SET provider_org = ? WHERE id = ?`, org2, ca.ID)
			dbaExec(t, s, `UPDATE supervision_commitments SET provider_org = ? WHERE id = ?`, w.provOrg, cb.ID)
			for _, c := range []*client{w.prov, prov2, w.op} {
				if lists(c, "MARKER-COMMIT") {
					t.Fatal("a party lists a swapped commitment")
				}
			}
			w.op.expect(404, "POST", "/cases/"+caseID+"/commitments/"+ca.ID+"/urge", map[string]any{"note": "keep it"})
			var page struct {
				Items []struct {
					ID       string `json:"id"`
					Provider string `json:"provider"`
				} `json:"items"`
			}
			w.insp.expect(200, "GET", "/commitments", nil).json(t, &page)
			if len(page.Items) != 2 || page.Items[0].Provider != "" || page.Items[1].Provider != "" {
				t.Fatalf("the inspector lists %+v, want both without their provider", page.Items)
			}
			if logs := s.log.String(); !strings.Contains(logs, "commitment refused") || !strings.Contains(logs, ca.ID) || !strings.Contains(logs, cb.ID) {
				t.Fatalf("no ERROR line names the commitments:\n%s", tail(logs, 3000))
			}
			if r, err := httpGet(s.metricsBase + "/metrics"); err != nil || !strings.Contains(r.body, `crvault_vault_row_tag_refusals_total{table="supervision_commitments"}`) {
				t.Fatalf("refusals not counted: %v", err)
			}
			dbaExec(t, s, `UPDATE supervision_commitments SET provider_org = ? WHERE id = ?`, w.provOrg, ca.ID)
			dbaExec(t, s, `UPDATE supervision_commitments SET provider_org = ? WHERE id = ?`, org2, cb.ID)
			if !lists(w.prov, "MARKER-COMMIT-A") || !lists(prov2, "MARKER-COMMIT-B") {
				t.Fatal("restored, the commitments are not back")
			}
			w.op.expect(201, "POST", "/cases/"+caseID+"/commitments/"+ca.ID+"/urge", map[string]any{"note": "keep it"})
		})
	}
}

// TestCaseStatusEditIsRefusedEndToEnd: a database administrator makes an
// operator's draft look submitted, so that the office would see what was
// never filed. Over HTTP the case is then in no one's list and every
// request on it answers 500 case_status_damaged (problem+json, no title),
// one ERROR line names it and the refusals counter moves; restored, the
// operator files it as usual.
func TestCaseStatusEditIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, docs := w.newCase(t, "MARKER-STATUS-SECRET")
			w.office.expect(404, "GET", "/cases/"+caseID, nil)
			dbaExec(t, s, `UPDATE cases SET status = 'submitted' WHERE id = ?`, caseID)
			damaged := func(r resp) {
				t.Helper()
				var p struct {
					Code string `json:"code"`
				}
				if r.Status != 500 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") ||
					strings.Contains(string(r.Body), "MARKER-STATUS") || strings.Contains(string(r.Body), "Core routers") {
					t.Fatalf("after the edit: %d %s %.300s", r.Status, r.Header.Get("Content-Type"), r.Body)
				}
				r.json(t, &p)
				if p.Code != "case_status_damaged" {
					t.Fatalf("after the edit: code %q", p.Code)
				}
			}
			damaged(w.office.do("GET", "/cases/"+caseID, nil))
			damaged(w.office.do("GET", "/cases/"+caseID+"/events", nil))
			damaged(w.op.do("GET", "/cases/"+caseID, nil))
			damaged(w.prov.do("GET", "/cases/"+caseID+"/materials", nil))
			for id := range docs {
				damaged(w.op.do("GET", "/materials/"+id+"/content", nil))
			}
			for _, c := range []*client{w.office, w.op} {
				if r := c.expect(200, "GET", "/cases", nil); strings.Contains(string(r.Body), caseID) {
					t.Fatalf("the case is listed: %.300s", r.Body)
				}
			}
			w.op2.expect(404, "GET", "/cases/"+caseID, nil)
			if logs := s.log.String(); !strings.Contains(logs, "case's status refused") || !strings.Contains(logs, caseID) {
				t.Fatalf("no ERROR line names the case:\n%s", tail(logs, 3000))
			}
			if v := metricValue(metrics(t, s), `crvault_vault_row_tag_refusals_total{table="cases"}`); v < 1 {
				t.Fatalf("refusals counted %v", v)
			}
			dbaExec(t, s, `UPDATE cases SET status = 'draft' WHERE id = ?`, caseID)
			w.office.expect(404, "GET", "/cases/"+caseID, nil)
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(200, "GET", "/cases/"+caseID, nil)
		})
	}
}

// TestCaseEventEditIsRefusedEndToEnd: a database administrator moves the
// filing day of a case's history. The history and the clock answer
// case_status_damaged, vaultd names the case in an ERROR line and counts it
// under table=case_events; put back, they answer again.
func TestCaseEventEditIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, _ := w.newCase(t, "MARKER-EVENT-SECRET")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(200, "GET", "/cases/"+caseID+"/events", nil)
			on := queryStrings(t, s, `SELECT on_date FROM case_events WHERE case_id = ? AND seq = 1`, caseID)
			dbaExec(t, s, `UPDATE case_events SET on_date = '2020-01-02' WHERE case_id = ? AND seq = 1`, caseID)
			for _, path := range []string{"/events", "/clock"} {
				r := w.office.do("GET", "/cases/"+caseID+path, nil)
				if r.Status != 500 || r.problem(t)["code"] != "case_status_damaged" {
					t.Fatalf("%s after the edit: %d %.300s", path, r.Status, r.Body)
				}
			}
			if logs := s.log.String(); !strings.Contains(logs, "case's history refused") || !strings.Contains(logs, caseID) {
				t.Fatalf("no ERROR line names the case:\n%s", tail(logs, 3000))
			}
			if v := metricValue(metrics(t, s), `crvault_vault_row_tag_refusals_total{table="case_events"}`); v < 1 {
				t.Fatalf("refusals counted %v", v)
			}
			dbaExec(t, s, `UPDATE case_events SET on_date = ? WHERE case_id = ? AND seq = 1`, on[0], caseID)
			w.office.expect(200, "GET", "/cases/"+caseID+"/events", nil)
			w.office.expect(200, "GET", "/cases/"+caseID+"/clock", nil)
		})
	}
}

// TestCaseDueEditIsRefusedEndToEnd: a database administrator clears a
// filed case's stored due date to hide it from the office's deadlines.
// The next deadline sweep finds it, and /deadlines lists it again at its
// genuine date, derived again from the history; vaultd names the case in
// an ERROR line and counts it under table=cases. A case whose history is
// then edited leaves the list.
func TestCaseDueEditIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_DEADLINE_INTERVAL=1s")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, _ := w.newCase(t, "MARKER-DUE-SECRET")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			listed := func() string {
				t.Helper()
				var dl struct {
					Items []struct {
						CaseID string `json:"case_id"`
						DueOn  string `json:"due_on"`
					} `json:"items"`
				}
				w.office.expect(200, "GET", "/deadlines?within=1000", nil).json(t, &dl)
				for _, it := range dl.Items {
					if it.CaseID == caseID {
						return it.DueOn
					}
				}
				return ""
			}
			genuine := listed()
			if genuine == "" {
				t.Fatal("the filed case is not in the deadlines")
			}
			dbaExec(t, s, `UPDATE cases SET due_on = NULL WHERE id = ?`, caseID)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				got := listed()
				if got == genuine {
					break
				}
				if got != "" || time.Now().After(deadline) {
					t.Fatalf("deadline after the edit %q, want %q once a sweep ran", got, genuine)
				}
			}
			if logs := s.log.String(); !strings.Contains(logs, "case's due date refused") || !strings.Contains(logs, caseID) {
				t.Fatalf("no ERROR line names the case:\n%s", tail(logs, 3000))
			}
			if v := metricValue(metrics(t, s), `crvault_vault_row_tag_refusals_total{table="cases"}`); v < 1 {
				t.Fatalf("refusals counted %v", v)
			}
			dbaExec(t, s, `UPDATE case_events SET actor = 'someone-else' WHERE case_id = ? AND seq = 1`, caseID)
			if got := listed(); got != "" {
				t.Fatalf("a case whose history was edited is listed, due %s", got)
			}
		})
	}
}

// TestCommitmentUrgeMoveIsRefusedEndToEnd: a database administrator moves
// the operator's urge on provider A's commitment under provider B's. B does
// not read its note (nor does A, nor anyone), vaultd names it in an ERROR
// line and counts it in crvault_vault_row_tag_refusals_total; moved back,
// A reads it again.
func TestCommitmentUrgeMoveIsRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s, w, prov2, _, caseID := twoProviderCase(t, be)
			var ca, cb struct {
				ID    string `json:"id"`
				Urges []struct {
					ID string `json:"id"`
				} `json:"urges"`
			}
			w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "no_illegal_data", "text": "A escrow"}).json(t, &ca)
			prov2.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "other", "text": "B supply"}).json(t, &cb)
			w.op.expect(201, "POST", "/cases/"+caseID+"/commitments/"+ca.ID+"/urge", map[string]any{"note": "MARKER-URGE-FOR-A"}).json(t, &ca)
			if len(ca.Urges) != 1 {
				t.Fatalf("urges after urging: %+v", ca.Urges)
			}
			lists := func(c *client) bool {
				t.Helper()
				return strings.Contains(string(c.expect(200, "GET", "/commitments", nil).Body), "MARKER-URGE-FOR-A")
			}
			if !lists(w.prov) || lists(prov2) {
				t.Fatal("before the edit, A alone of the providers reads the urge")
			}
			dbaExec(t, s, `UPDATE supervision_commitment_urges SET commitment_id = ? WHERE id = ?`, cb.ID, ca.Urges[0].ID)
			for _, c := range []*client{w.prov, prov2, w.op, w.insp} {
				if lists(c) {
					t.Fatal("the moved urge is read")
				}
			}
			if logs := s.log.String(); !strings.Contains(logs, "commitment urge refused") || !strings.Contains(logs, ca.Urges[0].ID) {
				t.Fatalf("no ERROR line names the urge:\n%s", tail(logs, 3000))
			}
			if r, err := httpGet(s.metricsBase + "/metrics"); err != nil || !strings.Contains(r.body, `crvault_vault_row_tag_refusals_total{table="supervision_commitment_urges"}`) {
				t.Fatalf("refusals not counted: %v", err)
			}
			dbaExec(t, s, `UPDATE supervision_commitment_urges SET commitment_id = ? WHERE id = ?`, ca.ID, ca.Urges[0].ID)
			if !lists(w.prov) || lists(prov2) {
				t.Fatal("moved back, the urge is not A's alone again")
			}
		})
	}
}

// twoProviderCase starts a server with the usual world and a second
// provider (provider2, of organisation org2), signed in, and the
// operator's case naming both providers.
func twoProviderCase(t *testing.T, be backend) (s *server, w *world, prov2 *client, org2, caseID string) {
	t.Helper()
	s = newServer(t, be)
	w = bootstrap(t, s)
	org2 = s.mustCLI("", "org", "add", "--name", "Beta Switches", "--kind", "provider")
	s.mustCLI(pw+"\n", "user", "add", "--username", "provider2", "--org", "Beta Switches", "--role", "provider", "--password-stdin")
	s.start()
	w.loginAll(t)
	prov2 = s.login(t, "provider2", pw)
	var cs struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/cases", map[string]any{"title": "Core routers", "product": "AR-9000", "providers": []string{w.provOrg, org2}}).json(t, &cs)
	return s, w, prov2, org2, cs.ID
}
