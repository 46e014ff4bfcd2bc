package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCommitmentStatusAndOfficeView: inspectors record what supervision
// found about a commitment (kept, breached, under investigation); the
// office sees the complaints and reports that name its cases, and nothing
// else of the inspectors' queue.
func TestCommitmentStatusAndOfficeView(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, _ := w.newCase(t, "MARKER-COMMITMENT")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	var cm struct {
		ID, Status string
	}
	w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "no_illegal_data", "text": "no user data collected"}).json(t, &cm)
	if cm.Status != "pending" {
		t.Fatalf("new commitment status %q", cm.Status)
	}
	w.office.expect(403, "POST", "/commitments/"+cm.ID+"/status", map[string]any{"status": "kept"})
	if p := w.insp.expect(422, "POST", "/commitments/"+cm.ID+"/status", map[string]any{"status": "breached"}).problem(t); p["code"] != "missing_field" {
		t.Fatalf("breach without a note: %v", p)
	}
	w.insp.expect(422, "POST", "/commitments/"+cm.ID+"/status", map[string]any{"status": "forgotten"})
	w.insp.expect(404, "POST", "/commitments/nope/status", map[string]any{"status": "kept"})
	r := w.insp.expect(200, "POST", "/commitments/"+cm.ID+"/status", map[string]any{"status": "under_investigation", "note": "a report says it phones home"})
	var raw map[string]any
	r.json(t, &raw)
	if raw["status"] != "under_investigation" || raw["status_by"] != w.insp.id || raw["status_note"] != "a report says it phones home" {
		t.Fatalf("status %v", raw)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	w.op.expect(200, "GET", "/commitments?case="+caseID, nil).json(t, &list)
	if len(list.Items) != 1 || list.Items[0]["status"] != "under_investigation" {
		t.Fatalf("the operator sees %v", list.Items)
	}
	if evs := w.insp.events("action=commitment.status&outcome=allowed"); len(evs) != 1 || evs[0].CaseID != caseID {
		t.Fatalf("audit %+v", evs)
	}

	// A complaint on the case, a report naming the commitment, and one
	// naming nothing of the office's.
	w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "slow review"})
	anon := func(body string) {
		res := s.do(t, "", http.MethodPost, "/reports", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
		if res.Status != 201 {
			t.Fatalf("report: %d %s", res.Status, res.Body)
		}
	}
	anon(fmt.Sprintf(`{"commitment":%q,"description":"the router phones home"}`, cm.ID))
	anon(`{"description":"something unrelated to any case"}`)
	var cs, rs struct {
		Items []map[string]any `json:"items"`
	}
	w.office.expect(200, "GET", "/complaints", nil).json(t, &cs)
	if len(cs.Items) != 1 || cs.Items[0]["case_id"] != caseID {
		t.Fatalf("office complaints %v", cs.Items)
	}
	w.office.expect(200, "GET", "/reports", nil).json(t, &rs)
	if len(rs.Items) != 1 {
		t.Fatalf("office sees %d reports, want the one naming its case's commitment", len(rs.Items))
	}
	w.insp.expect(200, "GET", "/reports", nil).json(t, &rs)
	if len(rs.Items) != 2 {
		t.Fatalf("inspector sees %d reports", len(rs.Items))
	}
	w.rev1.expect(403, "GET", "/reports", nil)

	// A party's draft is not the office's case (404 for it), and neither
	// are the complaints, commitments and reports on it, until it is
	// submitted.
	var draft struct{ ID string }
	draft.ID, _ = w.newCase(t, "MARKER-DRAFT")
	w.office.expect(404, "GET", "/cases/"+draft.ID, nil)
	var dc, dcm struct{ ID string }
	w.op.expect(201, "POST", "/complaints", map[string]any{"case": draft.ID, "kind": "confidentiality", "description": "MARKER-DRAFT-COMPLAINT"}).json(t, &dc)
	w.prov.expect(201, "POST", "/cases/"+draft.ID+"/commitments", map[string]any{"kind": "other", "text": "MARKER-DRAFT-COMMITMENT"}).json(t, &dcm)
	anon(fmt.Sprintf(`{"commitment":%q,"description":"about the draft's commitment"}`, dcm.ID))
	officeSees := func(want int) {
		t.Helper()
		var cs, cms, rs struct {
			Items  []map[string]any `json:"items"`
			Counts map[string]int   `json:"counts"`
		}
		w.office.expect(200, "GET", "/complaints", nil).json(t, &cs)
		w.office.expect(200, "GET", "/commitments", nil).json(t, &cms)
		w.office.expect(200, "GET", "/reports", nil).json(t, &rs)
		total := 0
		for _, n := range cs.Counts {
			total += n
		}
		if len(cs.Items) != 1+want || total != 1+want || len(cms.Items) != 1+want || len(rs.Items) != 1+want {
			t.Fatalf("office sees %d complaints (counts %v), %d commitments, %d reports; want %d of each",
				len(cs.Items), cs.Counts, len(cms.Items), len(rs.Items), 1+want)
		}
		w.office.expect(map[int]int{0: 404, 1: 200}[want], "GET", "/complaints/"+dc.ID, nil)
	}
	officeSees(0)
	w.insp.expect(200, "GET", "/complaints/"+dc.ID, nil)
	w.insp.expect(200, "GET", "/reports", nil).json(t, &rs)
	if len(rs.Items) != 3 {
		t.Fatalf("inspector sees %d reports, want 3", len(rs.Items))
	}
	// Urging is the operator's: anyone else is refused alike whether the
	// commitment exists or not.
	w.prov.expect(403, "POST", "/cases/"+draft.ID+"/commitments/"+dcm.ID+"/urge", map[string]any{"note": "x"})
	w.prov.expect(403, "POST", "/cases/"+draft.ID+"/commitments/00000000000000000000000000/urge", map[string]any{"note": "x"})
	w.op.expect(404, "POST", "/cases/"+draft.ID+"/commitments/00000000000000000000000000/urge", map[string]any{"note": "x"})
	w.op.expect(200, "POST", "/cases/"+draft.ID+"/submit", nil)
	officeSees(1)
}
