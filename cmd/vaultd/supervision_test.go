package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
	"github.com/crvault/crvault/vault/supervision"
)

type complaintView struct {
	ID                    string `json:"id"`
	CaseID                string `json:"case_id"`
	Subject               string `json:"subject"`
	Status                string `json:"status"`
	Outcome               string `json:"outcome"`
	SubjectRecused        bool   `json:"subject_recused"`
	ReassignmentRequested bool   `json:"reassignment_requested"`
	FiledBy               string `json:"filed_by"`
	History               []struct {
		Status string `json:"status"`
		Note   string `json:"note"`
	} `json:"history"`
}

type listOf[T any] struct {
	Items  []T              `json:"items"`
	Counts map[string]int64 `json:"counts"`
}

// TestSupervision walks complaints (filed, investigated with a verified
// evidence bundle, upheld with recusal, dismissed), commitments, and an
// anonymous report with attachment, messages both ways, wrong receipts and
// throttling, then proves no reporter address reached the database or log.
func TestSupervision(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			marker := "MARKER-SUPERVISION-" + be.name
			caseID, docs := w.newCase(t, marker)
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
			w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "no ties"})
			var matID string
			for id := range docs {
				matID = id
				w.rev1.expect(200, "GET", "/materials/"+id+"/content", nil)
			}

			// Evidence the operator attaches, and the complaint.
			var evm struct{ ID string }
			w.op.uploadRaw(caseID, "evidence", "leak.txt", "text/plain", []byte(marker+" screenshot of a leak")).json(t, &evm)
			// Not the inspectors' to read until a complaint cites it.
			w.insp.expect(200, "GET", "/materials/"+evm.ID, nil)
			w.insp.expect(403, "GET", "/materials/"+evm.ID+"/content", nil)
			// The operator names the reviewer as it sees it: by pseudonym.
			rev1Name := ""
			if e := find(w.op.events("case="+caseID+"&action=material.read"), func(e event) bool { return e.ActorOrg == w.officeOrg }); e != nil {
				rev1Name = e.Actor
			}
			var cmp complaintView
			w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "subject": rev1Name, "kind": "confidentiality",
				"description": "the reviewer discussed our design in public", "evidence": []string{evm.ID}}).json(t, &cmp)
			if cmp.Status != "open" || cmp.Subject != "R1" || cmp.CaseID != caseID {
				t.Fatalf("new complaint: %+v", cmp)
			}
			var asInspector complaintView
			w.insp.expect(200, "GET", "/complaints/"+cmp.ID, nil).json(t, &asInspector)
			if asInspector.Subject != w.rev1.id {
				t.Fatalf("the inspector does not see who R1 is: %+v", asInspector)
			}
			// Bad complaints: unrelated operator, unknown case, bad kind, unknown subject.
			for _, tc := range []struct {
				c      *client
				body   map[string]any
				status int
				code   string
			}{
				{w.op2, map[string]any{"case": caseID, "kind": "unfair", "description": "x"}, 404, "not_found"},
				{w.op, map[string]any{"case": "nosuchcase", "kind": "unfair", "description": "x"}, 404, "not_found"},
				{w.op, map[string]any{"case": caseID, "kind": "rude", "description": "x"}, 422, "invalid_kind"},
				{w.op, map[string]any{"case": caseID, "kind": "unfair", "subject": w.rev2.id, "description": "x"}, 422, "unknown_subject"},
				{w.op, map[string]any{"case": caseID, "kind": "unfair", "subject": w.rev1.id, "description": "x"}, 422, "unknown_subject"},
				{w.op, map[string]any{"case": caseID, "kind": "unfair", "subject": "R9", "description": "x"}, 422, "unknown_subject"},
				{w.op, map[string]any{"case": caseID, "kind": "unfair", "description": "x", "evidence": []string{matID}}, 422, "invalid_evidence"},
				{w.insp, map[string]any{"case": caseID, "kind": "unfair", "description": "x"}, 403, "forbidden"},
			} {
				if p := tc.c.expect(tc.status, "POST", "/complaints", tc.body).problem(t); p["code"] != tc.code {
					t.Errorf("complaint %v: code %v, want %s", tc.body, p["code"], tc.code)
				}
			}
			// Naming a subject is a way to learn which pseudonyms are in
			// use: each refused try is for the inspectors to see.
			if n := len(w.insp.events("action=complaint.create&outcome=denied&actor=" + w.op.id)); n != 3 {
				t.Errorf("%d denied complaint.create events of the operator, want its three unknown subjects", n)
			}
			var mine, all listOf[complaintView]
			w.op.expect(200, "GET", "/complaints", nil).json(t, &mine)
			w.insp.expect(200, "GET", "/complaints?status=open&case="+caseID, nil).json(t, &all)
			if len(mine.Items) != 1 || len(all.Items) != 1 || all.Counts["open"] != 1 {
				t.Fatalf("complaint lists: mine %d, inspector %d %v", len(mine.Items), len(all.Items), all.Counts)
			}
			w.rev1.expect(404, "GET", "/complaints/"+cmp.ID, nil).problem(t)
			w.op.expect(403, "POST", "/complaints/"+cmp.ID+"/status", map[string]any{"status": "investigating", "note": "x"}).problem(t)
			w.insp.expect(409, "POST", "/complaints/"+cmp.ID+"/resolution", map[string]any{"outcome": "upheld", "note": "too early"}).problem(t)
			w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/status", map[string]any{"status": "investigating", "note": "collecting the audit trail"})
			// The inspector may read the evidence, nothing else of the case.
			w.insp.expect(200, "GET", "/materials/"+evm.ID+"/content", nil)

			// The evidence bundle, verified offline with the published key.
			pub := s.mustCLI("", "audit", "pubkey")
			var bundle []byte
			var rep supervision.EvidenceReport
			for deadline := time.Now().Add(40 * time.Second); ; {
				r := w.insp.expect(200, "GET", "/complaints/"+cmp.ID+"/evidence?format=file", nil)
				if !strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
					t.Fatalf("evidence file: Content-Disposition %q", r.Header.Get("Content-Disposition"))
				}
				bundle = r.Body
				var err error
				if rep, err = supervision.VerifyEvidence(bytes.NewReader(bundle), pub); err != nil {
					t.Fatalf("verify evidence: %v", err)
				}
				if rep.Pending == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no checkpoint covered the evidence: %+v", rep)
				}
				time.Sleep(time.Second) // checkpoints are made every 10 s
			}
			var ev supervision.Evidence
			if err := json.Unmarshal(bundle, &ev); err != nil {
				t.Fatal(err)
			}
			reads, grants := 0, 0
			for _, e := range ev.Events {
				if e.Event.Actor == w.rev1.id && e.Event.Action == "material.read" && e.Event.Outcome == "allowed" {
					reads++
				}
				if e.Event.Action == "assignment.create" && e.Event.Resource == "user/"+w.rev1.id {
					grants++
				}
				if e.Event.Actor != w.rev1.id && e.Event.Actor != w.office.id {
					t.Errorf("evidence holds an event of %s: %+v", e.Event.Actor, e.Event)
				}
			}
			if reads != len(docs) || grants != 1 || rep.Proven != len(ev.Events) {
				t.Fatalf("evidence: %d reads (want %d), %d grants, %+v", reads, len(docs), grants, rep)
			}
			// Tampering with any event breaks verification.
			tampered := bytes.Replace(bundle, []byte(`"material/`+matID), []byte(`"material/x`+matID[1:]), 1)
			if _, err := supervision.VerifyEvidence(bytes.NewReader(tampered), pub); err == nil {
				t.Fatal("a tampered bundle verified")
			}
			// An outside party checks the same file with the shipped CLI.
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "evidence.json"), bundle, 0o600)
			os.WriteFile(filepath.Join(dir, "tampered.json"), tampered, 0o600)
			if out, code := vaultctl(t, "evidence", "verify", "--file", filepath.Join(dir, "evidence.json"), "--key", pub); code != 0 || !strings.Contains(out, "OK: complaint "+cmp.ID) {
				t.Fatalf("vaultctl evidence verify: exit %d: %s", code, out)
			}
			if out, code := vaultctl(t, "evidence", "verify", "--file", filepath.Join(dir, "tampered.json"), "--key", pub); code != 1 {
				t.Fatalf("vaultctl accepted a tampered bundle: exit %d: %s", code, out)
			}
			w.op.expect(403, "GET", "/complaints/"+cmp.ID+"/evidence", nil).problem(t)

			// Upheld with recusal: access ends at once and cannot come back.
			var up complaintView
			w.insp.expect(200, "POST", "/complaints/"+cmp.ID+"/resolution", map[string]any{"outcome": "upheld", "actions": []string{"recuse_subject"},
				"note": "the reviewer broke confidentiality"}).json(t, &up)
			if up.Status != "upheld" || !up.SubjectRecused || !up.ReassignmentRequested || len(up.History) != 2 {
				t.Fatalf("upheld: %+v", up)
			}
			w.rev1.expect(404, "GET", "/materials/"+matID+"/content", nil).problem(t)
			if p := w.office.expect(409, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "again"}).problem(t); p["code"] != "assignment_blocked" {
				t.Fatalf("re-assignment of a recused reviewer: %v", p)
			}
			var asked listOf[complaintView]
			w.office.expect(200, "GET", "/complaints?case="+caseID, nil).json(t, &asked)
			if len(asked.Items) != 1 || !asked.Items[0].ReassignmentRequested {
				t.Fatalf("office admin is not asked to reassign: %+v", asked.Items)
			}
			var seen complaintView
			w.op.expect(200, "GET", "/complaints/"+cmp.ID, nil).json(t, &seen)
			if seen.Outcome != "upheld" || seen.History[1].Note != "the reviewer broke confidentiality" {
				t.Fatalf("the filer does not see the outcome: %+v", seen)
			}
			if evs := w.insp.events("case=" + caseID + "&action=assignment.recuse"); len(evs) != 1 || evs[0].Resource != "user/"+w.rev1.id {
				t.Fatalf("recusal audit events: %+v", evs)
			}

			// A dismissed complaint, filed by the provider.
			var dis complaintView
			w.prov.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "kind": "unfair", "description": "slow review"}).json(t, &dis)
			w.insp.expect(200, "POST", "/complaints/"+dis.ID+"/status", map[string]any{"status": "investigating", "note": "checking"})
			w.insp.expect(422, "POST", "/complaints/"+dis.ID+"/resolution", map[string]any{"outcome": "dismissed", "actions": []string{"recuse_subject"}, "note": "x"}).problem(t)
			w.insp.expect(200, "POST", "/complaints/"+dis.ID+"/resolution", map[string]any{"outcome": "dismissed", "note": "within the statutory time"})
			w.prov.expect(200, "GET", "/complaints/"+dis.ID, nil).json(t, &dis)
			if dis.Status != "dismissed" || dis.Outcome != "dismissed" {
				t.Fatalf("dismissed: %+v", dis)
			}
			w.op.expect(404, "GET", "/complaints/"+dis.ID, nil).problem(t)

			// Commitments (Art. 6) and the operator urging them (Art. 18).
			var cm struct {
				ID       string `json:"id"`
				Provider string `json:"provider"`
			}
			w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "no_illegal_data", "text": "we collect no user data"}).json(t, &cm)
			w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "supply_continuity", "text": "five years of support"})
			w.op.expect(403, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "other", "text": "x"}).problem(t)
			w.op2.expect(404, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "other", "text": "x"}).problem(t)
			w.prov.expect(422, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "promise", "text": "x"}).problem(t)
			w.op.expect(201, "POST", "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", map[string]any{"note": "please confirm in writing"})
			w.prov.expect(403, "POST", "/cases/"+caseID+"/commitments/"+cm.ID+"/urge", map[string]any{"note": "x"}).problem(t)
			for _, tc := range []struct {
				c    *client
				q    string
				want int
			}{{w.insp, "?provider=" + w.provOrg, 2}, {w.insp, "?provider=" + w.opOrg, 0}, {w.prov, "", 2}, {w.op, "", 2}, {w.op2, "", 0}} {
				var l struct {
					Items []struct {
						Provider string `json:"provider"`
						Urges    []any  `json:"urges"`
					} `json:"items"`
				}
				tc.c.expect(200, "GET", "/commitments"+tc.q, nil).json(t, &l)
				if len(l.Items) != tc.want {
					t.Errorf("commitments%s: %d items, want %d", tc.q, len(l.Items), tc.want)
				}
				if tc.want > 0 && (l.Items[0].Provider != w.provOrg || len(l.Items[0].Urges) != 1) {
					t.Errorf("commitments%s: %+v", tc.q, l.Items[0])
				}
			}
			w.rev1.expect(403, "GET", "/commitments", nil).problem(t)

			// An anonymous report with an attachment.
			anon := func(method, path string, body io.Reader, h map[string]string) resp {
				return s.do(t, "", method, path, body, h)
			}
			jsonH := map[string]string{"Content-Type": "application/json"}
			r := anon("POST", "/reports", strings.NewReader(fmt.Sprintf(`{"subject_org":%q,"commitment":%q,"description":"the router phones home"}`, w.provOrg, cm.ID)), jsonH)
			if r.Status != 201 {
				t.Fatalf("report: %d %s", r.Status, r.Body)
			}
			var filed struct{ ID, Receipt string }
			r.json(t, &filed)
			if id, secret, err := supervision.ParseReceipt(filed.Receipt); err != nil || id != filed.ID || len(secret)*5 < 128 {
				t.Fatalf("receipt %q: %v", filed.Receipt, err)
			}
			rh := map[string]string{"X-Receipt": filed.Receipt, "Content-Type": "text/plain"}
			attachment := []byte(marker + " packet capture of the phone-home traffic")
			r = anon("POST", "/reports/attachments?filename=capture.txt", bytes.NewReader(attachment), rh)
			if r.Status != 201 {
				t.Fatalf("attachment: %d %s", r.Status, r.Body)
			}
			var att struct{ ID string }
			r.json(t, &att)
			rhj := map[string]string{"X-Receipt": filed.Receipt, "Content-Type": "application/json"}
			if r = anon("POST", "/reports/messages", strings.NewReader(`{"text":"it started in May"}`), rhj); r.Status != 201 {
				t.Fatalf("reporter message: %d %s", r.Status, r.Body)
			}
			var reports listOf[struct{ ID, Status string }]
			w.insp.expect(200, "GET", "/reports?status=received", nil).json(t, &reports)
			if len(reports.Items) != 1 || reports.Counts["received"] != 1 {
				t.Fatalf("reports: %+v", reports)
			}
			w.op.expect(403, "GET", "/reports", nil).problem(t)
			w.op.expect(403, "GET", "/reports/"+filed.ID+"/attachments/"+att.ID+"/content", nil).problem(t)
			got := w.insp.expect(200, "GET", "/reports/"+filed.ID+"/attachments/"+att.ID+"/content", nil)
			if !bytes.Equal(got.Body, attachment) {
				t.Fatal("attachment content differs")
			}
			w.insp.expect(201, "POST", "/reports/"+filed.ID+"/messages", map[string]any{"text": "which firmware version?"})
			w.insp.expect(200, "POST", "/reports/"+filed.ID+"/status", map[string]any{"status": "triaged", "link": map[string]any{"provider": w.provOrg, "commitment": cm.ID, "case": caseID}})
			var status struct {
				Status      string
				Messages    []struct{ From, Text, Author string }
				Attachments []struct{ ID string }
			}
			r = anon("GET", "/reports/status", nil, rh)
			if r.Status != 200 {
				t.Fatalf("report status: %d %s", r.Status, r.Body)
			}
			r.json(t, &status)
			if status.Status != "triaged" || len(status.Messages) != 2 || status.Messages[1].From != "inspector" || status.Messages[1].Author != "" || len(status.Attachments) != 1 {
				t.Fatalf("reporter's view: %+v", status)
			}
			var wl struct {
				Complaints, Reports struct {
					Open         int64      `json:"open"`
					OldestOpenAt *time.Time `json:"oldest_open_at"`
				}
			}
			w.insp.expect(200, "GET", "/supervision/workload", nil).json(t, &wl)
			if wl.Complaints.Open != 0 || wl.Reports.Open != 1 || wl.Reports.OldestOpenAt == nil {
				t.Fatalf("workload: %+v", wl)
			}
			w.op.expect(403, "GET", "/supervision/workload", nil).problem(t)
			w.insp.expect(422, "POST", "/reports/"+filed.ID+"/status", map[string]any{"status": "closed"}).problem(t)
			w.insp.expect(200, "POST", "/reports/"+filed.ID+"/status", map[string]any{"status": "closed", "outcome": "referred to the provider's regulator"})
			if p := anon("POST", "/reports/messages", strings.NewReader(`{"text":"more"}`), rhj).problem(t); p["code"] != "report_closed" {
				t.Fatalf("message on a closed report: %v", p)
			}

			// Wrong and guessed receipts: refused, counted, then throttled.
			wrong := []string{"", "nonsense", filed.ID + "." + strings.Repeat("a", 26), strings.Repeat("0", 26) + "." + strings.Repeat("b", 26)}
			for _, rc := range wrong {
				r := anon("GET", "/reports/status", nil, map[string]string{"X-Receipt": rc})
				if p := r.problem(t); r.Status != 401 || p["code"] != "invalid_receipt" {
					t.Fatalf("receipt %q: %d %v", rc, r.Status, p)
				}
			}
			if !strings.Contains(metrics(t, s), "crvault_report_receipt_failures_total 4") {
				t.Error("receipt failures not counted")
			}
			throttledAt := 0
			for i := 0; i < 20 && throttledAt == 0; i++ {
				if r := anon("GET", "/reports/status", nil, map[string]string{"X-Receipt": wrong[2]}); r.Status == 429 {
					throttledAt = i
					if r.Header.Get("Retry-After") == "" {
						t.Error("429 without Retry-After")
					}
				}
			}
			if throttledAt == 0 {
				t.Fatal("receipt guessing was never throttled")
			}

			// No reporter address anywhere: the report rows, the audit
			// events of report actions, the server log of /reports routes.
			for _, e := range w.insp.events("limit=500") {
				if strings.HasPrefix(e.Action, "report.") && e.Actor == "anonymous" && (e.IP != "" || e.ActorOrg != "") {
					t.Errorf("anonymous audit event carries an address: %+v", e)
				}
			}
			scanTables(t, s, "127.0.0.1")
			for _, line := range strings.Split(s.log.String(), "\n") {
				if strings.Contains(line, "/reports") && strings.Contains(line, "127.0.0.1") {
					t.Errorf("server log line for a report route holds the client address: %s", line)
				}
			}
			if strings.Contains(s.log.String(), filed.Receipt[27:]) {
				t.Error("the receipt secret reached the server log")
			}
			assertNoPlaintext(t, s, marker)
		})
	}
}

func metrics(t *testing.T, s *server) string {
	t.Helper()
	res, err := http.Get(s.metricsBase + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// scanTables reads every row of the supervision's report tables straight
// from the database and fails on any value containing needle.
func scanTables(t *testing.T, s *server, needle string) {
	t.Helper()
	url := "sqlite:" + filepath.Join(s.data, "vault.db")
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "VAULT_DATABASE_URL="); ok {
			url = v
		}
	}
	db, err := sqldb.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	defer sqldb.Close(db)
	for _, table := range []string{"supervision_reports", "supervision_report_messages", "supervision_report_attachments"} {
		var rows []map[string]any
		if err := db.Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		if len(rows) == 0 {
			t.Fatalf("scan %s: no rows, so nothing was proven", table)
		}
		for _, row := range rows {
			for col, v := range row {
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				if strings.Contains(text, needle) {
					t.Errorf("%s.%s holds %q", table, col, needle)
				}
			}
		}
	}
}

// TestReportDeskRefusalsCarryNoAddress: refusals on the public report desk
// that happen before the desk is reached (the anonymous rate limit, the web
// form's CSRF check) are audited without the client's address, which beside
// the reporter's own events would say who filed a report; refusals
// elsewhere keep it.
func TestReportDeskRefusalsCarryNoAddress(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0], "VAULT_ANONYMOUS_RATE=3")
	bootstrap(t, s)
	s.start()
	insp := s.login(t, "inspector1", pw) // before the anonymous limit is spent
	limited := 0
	for range 8 {
		res, err := http.Get(s.base + "/api/v1/reports/status")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("the desk was never rate-limited")
	}
	// The web form without its CSRF cookie.
	res, err := http.PostForm(s.base+"/report/status", url.Values{"receipt": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("report status form without CSRF: %d", res.StatusCode)
	}
	// A refusal elsewhere: an unauthenticated request to the API.
	res, err = http.Get(s.base + "/api/v1/cases")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	desk, other := 0, 0
	for _, e := range insp.events("outcome=denied") {
		switch {
		case strings.Contains(e.Resource, "/reports") || strings.Contains(e.Resource, "/report/"):
			desk++
			if e.IP != "" {
				t.Errorf("a refusal on the report desk carries the address: %+v", e)
			}
		case strings.Contains(e.Resource, "/api/v1/cases"):
			other++
			if e.IP == "" {
				t.Errorf("a refusal elsewhere lost its address: %+v", e)
			}
		}
	}
	if desk < 2 || other == 0 {
		t.Fatalf("refusals seen: %d on the desk, %d elsewhere", desk, other)
	}
}

// TestReportDeskNamesNoOrganisation: the public report desk answers a
// report about an organisation that is not registered as it answers one
// about a registered one, so that it cannot be asked which organisations
// are party to a review; the inspectors read the name as the reporter
// typed it.
func TestReportDeskNamesNoOrganisation(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	insp := s.login(t, "inspector1", pw)
	jsonH := map[string]string{"Content-Type": "application/json"}
	ids := map[string]string{}
	for _, org := range []string{"Grid Co", "Nobody Co"} {
		r := s.do(t, "", "POST", "/reports", strings.NewReader(fmt.Sprintf(`{"subject_org":%q,"description":"a broken promise"}`, org)), jsonH)
		if r.Status != 201 {
			t.Fatalf("report about %s: %d %s", org, r.Status, r.Body)
		}
		var filed struct{ ID string }
		r.json(t, &filed)
		ids[org] = filed.ID
	}
	var known, unknown struct {
		SubjectOrg  string `json:"subject_org"`
		Description string
	}
	insp.expect(200, "GET", "/reports/"+ids["Grid Co"], nil).json(t, &known)
	insp.expect(200, "GET", "/reports/"+ids["Nobody Co"], nil).json(t, &unknown)
	if known.SubjectOrg != w.opOrg || strings.Contains(known.Description, "not registered") {
		t.Errorf("report about a registered organisation: %+v", known)
	}
	if unknown.SubjectOrg != "" || !strings.Contains(unknown.Description, "Nobody Co") || !strings.Contains(unknown.Description, "a broken promise") {
		t.Errorf("report about an unregistered one: %+v", unknown)
	}
}
