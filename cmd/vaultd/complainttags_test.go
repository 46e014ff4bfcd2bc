package main

import (
	"strings"
	"testing"
)

// TestComplaintClosedInDatabaseEndToEnd: a complaint under investigation
// that a database administrator closes (status and outcome edited) is
// damaged: its filer neither reads nor lists it, the inspector reads it
// marked damaged and cannot resolve it (500 complaint_damaged), the
// workload and the web pages show it as damaged with no form to act on
// it, and vaultd names it in an ERROR line and counts the refusal.
// Restored, it is back.
func TestComplaintClosedInDatabaseEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_TOTP_REQUIRED_ROLES=")
			s.start()
			w := bootstrap(t, s)
			w.loginAll(t)
			caseID, _ := w.newCase(t, "complaint tags")
			var c struct {
				ID      string `json:"id"`
				Damaged bool   `json:"damaged"`
			}
			w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "MARKER-COMPLAINT slow"}).json(t, &c)
			w.insp.expect(200, "POST", "/complaints/"+c.ID+"/status", map[string]any{"status": "investigating", "note": "looking"})

			dbaExec(t, s, `UPDATE supervision_complaints SET status = 'dismissed', outcome = 'dismissed' WHERE id = ?`, c.ID)
			w.prov.expect(404, "GET", "/complaints/"+c.ID, nil)
			if strings.Contains(string(w.prov.expect(200, "GET", "/complaints", nil).Body), c.ID) {
				t.Fatal("the filer lists the closed complaint")
			}
			w.insp.expect(200, "GET", "/complaints/"+c.ID, nil).json(t, &c)
			if !c.Damaged {
				t.Fatal("the inspector reads the closed complaint as genuine")
			}
			r := w.insp.expect(500, "POST", "/complaints/"+c.ID+"/resolution", map[string]any{"outcome": "upheld", "note": "upheld after all"})
			if !strings.Contains(string(r.Body), `"complaint_damaged"`) {
				t.Fatalf("resolving the closed complaint: %s", r.Body)
			}
			insp := webOf(t, s, w.insp)
			if page := insp.get(200, "/workload"); !strings.Contains(page, msg(t, "en", "cstatus.damaged")+`</a></td><td>1</td>`) {
				t.Fatalf("the workload shows no damaged complaint: %s", tail(page, 3000))
			}
			if page := insp.get(200, "/complaints/"+c.ID); !strings.Contains(page, msg(t, "en", "cstatus.damaged")) || strings.Contains(page, `action="/complaints/`+c.ID+`/resolution"`) {
				t.Fatalf("the complaint's page: %s", tail(page, 3000))
			}
			if logs := s.log.String(); !strings.Contains(logs, "complaint refused") || !strings.Contains(logs, c.ID) {
				t.Fatalf("no ERROR line names the complaint:\n%s", tail(logs, 3000))
			}
			if r, err := httpGet(s.metricsBase + "/metrics"); err != nil || !strings.Contains(r.body, `crvault_vault_row_tag_refusals_total{table="supervision_complaints"}`) {
				t.Fatalf("refusals not counted: %v", err)
			}

			dbaExec(t, s, `UPDATE supervision_complaints SET status = 'investigating', outcome = '' WHERE id = ?`, c.ID)
			w.prov.expect(200, "GET", "/complaints/"+c.ID, nil)
			w.insp.expect(200, "POST", "/complaints/"+c.ID+"/resolution", map[string]any{"outcome": "dismissed", "note": "not unfair"})
		})
	}
}
