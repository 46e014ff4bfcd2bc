package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// clockJSON is GET /cases/{case}/clock.
type clockJSON struct {
	Phase              string  `json:"phase"`
	StartedOn          *string `json:"started_on"`
	DueOn              *string `json:"due_on"`
	AllowedWorkingDays int     `json:"allowed_working_days"`
	UsedWorkingDays    int     `json:"used_working_days"`
	Paused             bool    `json:"paused"`
	Pauses             []struct {
		From string  `json:"from"`
		To   *string `json:"to"`
	} `json:"pauses"`
	Extensions []struct {
		Days   int    `json:"days"`
		Reason string `json:"reason"`
	} `json:"extensions"`
	Overdue bool `json:"overdue"`
}

// wfTest is a workflow walk on one running server. Due dates are computed
// from the same calendar the server uses (embedded, plus any year the test
// imports so that deadlines from today are covered) for today's real date.
type wfTest struct {
	t     *testing.T
	w     *world
	cal   *calendar.Calendar
	today calendar.Date
}

// coverYears is the calendar the server uses with nothing imported: the
// embedded years, and the provisional model past them, so a run late in the
// year (or years from now) still has every deadline, marked provisional
// where it rests on the model.
func coverYears(t *testing.T, _ *server) *calendar.Calendar {
	t.Helper()
	cal, err := calendar.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return cal
}

// orgOf is the organisation id of a signed-in user.
func orgOf(t *testing.T, c *client) string {
	t.Helper()
	var me struct {
		Org string `json:"org"`
	}
	c.expect(200, "GET", "/me", nil).json(t, &me)
	if me.Org == "" {
		t.Fatal("no org in /me")
	}
	return me.Org
}

func sortedPair(a, b string) []string {
	if b < a {
		a, b = b, a
	}
	return []string{a, b}
}

// submittedAllowed and awaitingAllowed are the office's actions in those
// statuses under an edition, on an application (risk measures are for
// proposed reviews only, so a 409 on an application never offers them).
func submittedAllowed(ed *review.Edition) []string {
	if ed.CompleteMaterials {
		return []string{"mark_incomplete", "require_review", "not_required", "request_supplement"}
	}
	return []string{"require_review", "not_required", "request_supplement"}
}

func awaitingAllowed(*review.Edition) []string {
	return []string{"extend", "request_supplement", "supplement_received"}
}

func (x *wfTest) due(n int) string {
	x.t.Helper()
	d, err := x.cal.WorkdaysAfter(x.today, n)
	if err != nil {
		x.t.Fatal(err)
	}
	return d.String()
}

func (x *wfTest) move(c *client, status int, caseID, action string, extra map[string]any) map[string]any {
	x.t.Helper()
	body := map[string]any{"action": action}
	for k, v := range extra {
		body[k] = v
	}
	r := c.do("POST", "/cases/"+caseID+"/transitions", body)
	if r.Status != status {
		x.t.Fatalf("%s on %s: status %d, want %d: %s", action, caseID, r.Status, status, r.Body)
	}
	var out map[string]any
	if status >= 400 {
		return r.problem(x.t)
	}
	r.json(x.t, &out)
	return out
}

func (x *wfTest) clock(c *client, caseID string) clockJSON {
	x.t.Helper()
	var ck clockJSON
	c.expect(200, "GET", "/cases/"+caseID+"/clock", nil).json(x.t, &ck)
	if ck.Pauses == nil || ck.Extensions == nil {
		x.t.Fatalf("clock lists are null: %+v", ck)
	}
	return ck
}

// wantClock checks phase, start, due date and allowance; start "" means today.
func (x *wfTest) wantClock(c *client, caseID, phase string, allowed int, due string) clockJSON {
	x.t.Helper()
	ck := x.clock(c, caseID)
	str := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	if ck.Phase != phase || ck.AllowedWorkingDays != allowed || str(ck.DueOn) != due || ck.Overdue {
		x.t.Fatalf("clock of %s: %+v (due %s), want phase %s allowed %d due %s", caseID, ck, str(ck.DueOn), phase, allowed, due)
	}
	if phase != "none" && str(ck.StartedOn) != x.today.String() {
		x.t.Fatalf("clock started %s, want %s", str(ck.StartedOn), x.today)
	}
	return ck
}

func wantAllowed(t *testing.T, p map[string]any, code string, allowed ...string) {
	t.Helper()
	if p["code"] != code {
		t.Fatalf("code %v, want %s: %v", p["code"], code, p)
	}
	if code != "illegal_transition" {
		return
	}
	// Always a list, empty when nothing is possible, as API.md promises
	// "the allowed actions".
	list, ok := p["allowed"].([]any)
	if !ok {
		t.Fatalf("illegal_transition without an allowed list: %v", p)
	}
	got := []string{}
	for _, a := range list {
		got = append(got, a.(string))
	}
	if strings.Join(got, ",") != strings.Join(allowed, ",") {
		t.Fatalf("allowed %v, want %v", got, allowed)
	}
}

func (x *wfTest) assign(caseID string, c *client, role string) {
	x.t.Helper()
	x.w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": c.id, "role": role, "purpose": "workflow test"})
	c.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "no conflict"})
}

func (x *wfTest) recommendation(caseID string) {
	x.t.Helper()
	if r := x.w.rev1.uploadRaw(caseID, "recommendation", "recommendation.txt", "text/plain", []byte("approve with conditions")); r.Status != 201 {
		x.t.Fatalf("recommendation upload: %d %s", r.Status, r.Body)
	}
}

// TestWorkflow walks cases through every path of the review state machine
// over HTTP, on each backend, with the clock checked at every step.
func TestWorkflow(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_DEADLINE_INTERVAL=1s")
			w := bootstrap(t, s)
			org2 := s.mustCLI("", "org", "add", "--name", "Second Ministry", "--kind", "member_unit")
			s.mustCLI(pw+"\n", "user", "add", "--username", "memberunit2", "--org", "Second Ministry", "--role", "member_unit", "--password-stdin")
			cal := coverYears(t, s)
			s.start()
			w.loginAll(t)
			mu2 := s.login(t, "memberunit2", pw)
			x := &wfTest{t: t, w: w, cal: cal, today: calendar.Today(time.Now())}
			if x.today != calendar.Today(time.Now().Add(2*time.Minute)) {
				t.Skip("too close to midnight in Shanghai for a stable 'today'")
			}
			ed := review.EditionOn(x.today)
			// Both member-unit organisations join the review mechanism.
			org1 := orgOf(t, w.mu)
			w.office.expect(201, "POST", "/member-units", map[string]any{"org": org1, "unit": "miit"})
			w.office.expect(201, "POST", "/member-units", map[string]any{"org": org2, "unit": "mps"})

			// Path 1: the full preliminary review with a pause, an extension,
			// opinions that all agree, and conclusion (Art. 8 to 11, 14).
			a, _ := w.newCase(t, "MARKER-WF-A")
			x.wantClock(w.op, a, "none", 0, "null")
			w.office.expect(404, "GET", "/cases/"+a+"/clock", nil) // drafts are the operator's alone
			w.op.expect(200, "POST", "/cases/"+a+"/submit", nil)
			x.wantClock(w.op, a, "determination", 10, x.due(10))
			x.wantClock(w.office, a, "determination", 10, x.due(10))
			wantAllowed(t, x.move(w.office, 409, a, "conclude", nil), "illegal_transition", submittedAllowed(ed)...)
			wantAllowed(t, x.move(w.op, 403, a, "require_review", nil), "forbidden")
			wantAllowed(t, x.move(w.office, 422, a, "approve", nil), "invalid_action")
			out := x.move(w.office, 200, a, "require_review", nil)
			if out["status"] != "under_review" || out["notice"] == nil {
				t.Fatalf("require_review answered %v", out)
			}
			x.wantClock(w.op, a, "preliminary_review", 30, x.due(30))
			wantAllowed(t, x.move(w.office, 422, a, "request_supplement", map[string]any{"reason": "no list"}), "items_required")
			x.move(w.office, 200, a, "request_supplement", map[string]any{"reason": "escrow agreement missing", "items": []string{"the escrow agreement"}})
			ck := x.wantClock(w.op, a, "preliminary_review", 30, x.due(30)) // a pause from tomorrow: nothing counted yet
			if !ck.Paused || len(ck.Pauses) != 1 || ck.Pauses[0].To != nil {
				t.Fatalf("clock not paused: %+v", ck)
			}
			wantAllowed(t, x.move(w.office, 409, a, "recommend", nil), "illegal_transition", awaitingAllowed(ed)...)
			// The party's upload of the item requested ends the stop by itself.
			if r := s.do(t, w.op.token, "POST", "/cases/"+a+"/materials?kind=supplementary&filename=escrow.pdf&item=2", strings.NewReader("x"),
				map[string]string{"Content-Type": "application/pdf"}); r.Status != 422 || r.problem(t)["code"] != "unknown_item" {
				t.Fatalf("upload for an item never requested: %d %s", r.Status, r.Body)
			}
			if r := w.op.uploadRaw(a, "supplementary", "escrow.pdf", "application/pdf", []byte("MARKER-WF-A escrow")); r.Status != 201 {
				t.Fatalf("supplementary upload: %d %s", r.Status, r.Body)
			}
			// Received on the day of the request: the stop stopped no day,
			// and is not listed.
			ck = x.wantClock(w.op, a, "preliminary_review", 30, x.due(30))
			if ck.Paused || len(ck.Pauses) != 0 {
				t.Fatalf("clock not resumed: %+v", ck)
			}
			wantAllowed(t, x.move(w.office, 422, a, "extend", nil), "reason_required")
			x.move(w.office, 200, a, "extend", map[string]any{"reason": "complex supply chain"})
			ck = x.wantClock(w.op, a, "preliminary_review", 45, x.due(45))
			if len(ck.Extensions) != 1 || ck.Extensions[0].Days != 15 || ck.Extensions[0].Reason != "complex supply chain" {
				t.Fatalf("extensions %+v", ck.Extensions)
			}
			wantAllowed(t, x.move(w.office, 422, a, "extend", map[string]any{"reason": "again"}), "already_extended")
			wantAllowed(t, x.move(w.office, 422, a, "recommend", nil), "recommendation_required")
			x.assign(a, w.rev1, "reviewer")
			x.recommendation(a)
			wantAllowed(t, x.move(w.office, 422, a, "recommend", nil), "members_required")
			// An unassigned member unit cannot see the case at all.
			w.mu.expect(404, "POST", "/cases/"+a+"/opinions", map[string]any{"agree": true, "comment": "ok"})
			x.assign(a, w.mu, "member_unit")
			x.assign(a, mu2, "member_unit")
			out = x.move(w.office, 200, a, "recommend", nil) // the two organisations assigned now, fixed
			if ev, _ := out["event"].(map[string]any); fmt.Sprint(ev["members"]) != fmt.Sprint(sortedPair(org1, org2)) {
				t.Fatalf("recommend fixed members %v", out["event"])
			}
			x.wantClock(w.op, a, "member_unit_opinions", 15, x.due(15))
			w.mu.expect(422, "POST", "/cases/"+a+"/opinions", map[string]any{"comment": "no agree field"})
			w.mu.expect(201, "POST", "/cases/"+a+"/opinions", map[string]any{"agree": true, "comment": "no objection"})
			w.mu.expect(422, "POST", "/cases/"+a+"/opinions", map[string]any{"agree": true})
			p := x.move(w.office, 422, a, "conclude", map[string]any{"outcome": "passed"})
			if miss, _ := p["missing"].([]any); len(miss) != 1 || miss[0] != org2 {
				t.Fatalf("pending units %v, want [%s]", p["missing"], org2)
			}
			mu2.expect(201, "POST", "/cases/"+a+"/opinions", map[string]any{"agree": true, "comment": "agree"})
			wantAllowed(t, x.move(w.office, 422, a, "conclude", nil), "outcome_required")
			if out := x.move(w.office, 200, a, "conclude", map[string]any{"outcome": "passed_with_conditions", "conditions": []string{"keep logs in China"},
				"factors": []map[string]string{{"factor": "supply_interruption", "finding": "two suppliers contracted"}}}); out["status"] != "concluded" {
				t.Fatalf("conclude: %v", out)
			}
			ck = x.clock(w.op, a)
			if ck.Phase != "closed" || ck.Overdue {
				t.Fatalf("closed clock %+v", ck)
			}
			wantAllowed(t, x.move(w.office, 409, a, "extend_special", map[string]any{"reason": "x", "days": 5}), "illegal_transition")

			// Every decision reached the operator and the provider in writing.
			for _, c := range []*client{w.op, w.prov} {
				var ms struct {
					Items []struct {
						ID, Kind, Filename string
					} `json:"items"`
				}
				c.expect(200, "GET", "/cases/"+a+"/materials", nil).json(t, &ms)
				var notices []string
				for _, m := range ms.Items {
					if m.Kind == "notice" {
						notices = append(notices, m.ID)
					}
				}
				if len(notices) != 6 {
					t.Fatalf("%d notices, want 6 (require_review, request_supplement, supplement_received, extend, recommend, conclude)", len(notices))
				}
				body := string(c.expect(200, "GET", "/materials/"+notices[0]+"/content", nil).Body)
				if !strings.Contains(body, ed.Art(review.ArtDetermination)) || !strings.Contains(body, "require_review") || !strings.Contains(body, x.due(30)) {
					t.Fatalf("first notice does not state the decision, date and basis:\n%s", body)
				}
				body = string(c.expect(200, "GET", "/materials/"+notices[5]+"/content", nil).Body)
				if !strings.Contains(body, "Outcome: passed with conditions") || !strings.Contains(body, "keep logs in China") ||
					!strings.Contains(body, ed.Art(review.ArtFactors)+"(2)") || !strings.Contains(body, "two suppliers contracted") {
					t.Fatalf("conclusion notice does not carry the structured conclusion:\n%s", body)
				}
			}
			var evs []event
			evs = w.insp.events("case=" + a + "&action=case.transition&outcome=allowed")
			if len(evs) != 5 { // the supplement was received by the party's upload (supplement.item)
				t.Fatalf("%d allowed case.transition audit events, want 5", len(evs))
			}
			if len(w.insp.events("case="+a+"&action=supplement.item&outcome=allowed")) != 1 {
				t.Fatal("supplementary item not audited")
			}
			if len(w.insp.events("case="+a+"&action=opinion.create&outcome=allowed")) != 2 {
				t.Fatal("opinions not audited")
			}

			// Path 2: a disagreement leads to special review (Art. 12-13).
			b, _ := w.newCase(t, "MARKER-WF-B")
			w.op.expect(200, "POST", "/cases/"+b+"/submit", nil)
			x.move(w.office, 200, b, "require_review", nil)
			x.assign(b, w.rev1, "reviewer")
			x.recommendation(b)
			x.assign(b, w.mu, "member_unit")
			x.move(w.office, 200, b, "recommend", nil)
			r := w.mu.expect(201, "POST", "/cases/"+b+"/opinions", map[string]any{"agree": false, "comment": "supply continuity risk"})
			var op map[string]any
			r.json(t, &op)
			if op["status"] != "special_review" || op["notice"] == nil {
				t.Fatalf("disagreement answered %v", op)
			}
			sd := ed.SpecialDays
			x.wantClock(w.op, b, "special_review", sd, x.due(sd))
			wantAllowed(t, x.move(w.office, 422, b, "extend_special", map[string]any{"days": 10}), "reason_required")
			wantAllowed(t, x.move(w.office, 422, b, "extend_special", map[string]any{"reason": "complex", "days": 91}), "invalid_days")
			x.move(w.office, 200, b, "extend_special", map[string]any{"reason": "complex", "days": 10})
			x.wantClock(w.op, b, "special_review", sd+10, x.due(sd+10))
			var dl struct {
				Items []struct {
					CaseID      string `json:"case_id"`
					Phase, Flag string
					DueOn       string `json:"due_on"`
				} `json:"items"`
			}
			w.office.expect(200, "GET", "/deadlines?within=1000", nil).json(t, &dl)
			if len(dl.Items) != 1 || dl.Items[0].CaseID != b || dl.Items[0].DueOn != x.due(sd+10) || dl.Items[0].Flag != "none" {
				t.Fatalf("deadlines %+v", dl)
			}
			w.office.expect(200, "GET", "/deadlines?within=0", nil).json(t, &dl)
			if len(dl.Items) != 0 {
				t.Fatalf("nothing is due today, got %+v", dl)
			}
			for _, q := range []string{"-1", "1001", "abc"} {
				if p := w.office.expect(422, "GET", "/deadlines?within="+q, nil).problem(t); p["code"] != "invalid_days" {
					t.Fatalf("within=%s: %v", q, p)
				}
			}
			w.op.expect(403, "GET", "/deadlines?within=3", nil)
			// The special review's steps, in order (2020 Art. 12 / 2021 Art. 13).
			wantAllowed(t, x.move(w.office, 422, b, "conclude", map[string]any{"outcome": "passed"}), "step_missing_hearing")
			x.move(w.office, 200, b, "record_hearing", map[string]any{"reason": "heard MIIT and the operator"})
			wantAllowed(t, x.move(w.office, 422, b, "conclude", map[string]any{"outcome": "passed"}), "step_missing_recommendation")
			x.recommendation(b) // the new recommendation
			x.move(w.office, 200, b, "recommend", map[string]any{"members": []string{org1}})
			wantAllowed(t, x.move(w.office, 422, b, "record_approval", map[string]any{"reference": "CCAC-1"}), "step_missing_opinions")
			w.mu.expect(201, "POST", "/cases/"+b+"/opinions", map[string]any{"agree": true, "comment": "agree now"})
			wantAllowed(t, x.move(w.office, 422, b, "conclude", map[string]any{"outcome": "passed"}), "step_missing_approval")
			x.move(w.office, 200, b, "record_approval", map[string]any{"reference": "CCAC [2026] 12"})
			concl := x.move(w.office, 200, b, "conclude", map[string]any{"outcome": "not_passed"})
			notice, _ := concl["notice"].(map[string]any)
			if nb := string(w.op.expect(200, "GET", fmt.Sprintf("/materials/%v/content", notice["id"]), nil).Body); !strings.Contains(nb, "Outcome: not passed") ||
				!strings.Contains(nb, "reference CCAC [2026] 12") || !strings.Contains(nb, ed.Art(review.ArtSpecial)) {
				t.Fatalf("special review conclusion notice:\n%s", nb)
			}

			// Path 3: no review required (Art. 8).
			c, _ := w.newCase(t, "MARKER-WF-C")
			w.op.expect(200, "POST", "/cases/"+c+"/submit", nil)
			x.move(w.office, 200, c, "not_required", nil)
			if ck := x.clock(w.op, c); ck.Phase != "closed" {
				t.Fatalf("not_required clock %+v", ck)
			}
			wantAllowed(t, x.move(w.office, 409, c, "require_review", nil), "illegal_transition")
			var got struct {
				Status string `json:"status"`
			}
			w.op.expect(200, "GET", "/cases/"+c, nil).json(t, &got)
			if got.Status != "not_required" {
				t.Fatalf("status %s", got.Status)
			}

			// The calendar endpoint, including a year imported while the server runs.
			for _, tc := range []struct {
				query  string
				status int
				code   string
				due    string
			}{
				{"from=" + x.today.String() + "&working_days=30", 200, "", x.due(30)},
				{"from=" + x.today.String() + "&working_days=0", 200, "", x.today.String()},
				{"from=2025-02-29&working_days=1", 422, "invalid_date", ""},
				{"from=tomorrow&working_days=1", 422, "invalid_date", ""},
				{"working_days=1", 422, "invalid_date", ""},
				{"from=2025-03-03&working_days=-1", 422, "invalid_days", ""},
				{"from=2025-03-03&working_days=1001", 422, "invalid_days", ""},
				{"from=2025-03-03&working_days=ten", 422, "invalid_days", ""},
				{"from=1999-12-31&working_days=1", 422, "calendar_out_of_range", ""},
				{"from=2201-01-01&working_days=1", 422, "calendar_out_of_range", ""},
			} {
				r := w.op.do("GET", "/calendar/deadline?"+tc.query, nil)
				if r.Status != tc.status {
					t.Fatalf("%s: %d %s", tc.query, r.Status, r.Body)
				}
				if tc.status != 200 {
					if p := r.problem(t); p["code"] != tc.code {
						t.Fatalf("%s: code %v, want %s", tc.query, p["code"], tc.code)
					}
					continue
				}
				var d struct {
					DueOn string `json:"due_on"`
				}
				r.json(t, &d)
				if d.DueOn != tc.due {
					t.Fatalf("%s: due %s, want %s", tc.query, d.DueOn, tc.due)
				}
			}
			if r := s.do(t, "", "GET", "/calendar/deadline?from=2025-03-03&working_days=1", nil, nil); r.Status != 401 {
				t.Fatalf("anonymous calendar query: %d", r.Status)
			}
			var d struct {
				DueOn       string `json:"due_on"`
				Provisional bool   `json:"provisional"`
			}
			// 2099-01-01 is a Thursday: New Year in the provisional model.
			w.op.expect(200, "GET", "/calendar/deadline?from=2098-12-31&working_days=1", nil).json(t, &d)
			if d.DueOn != "2099-01-02" || !d.Provisional {
				t.Fatalf("before import: %+v", d)
			}
			path, _ := holidayFile(t, t.TempDir(), 2099, "2099-01-01")
			s.mustCLI("", "calendar", "import", path)
			w.op.expect(200, "GET", "/calendar/deadline?from=2099-01-01&working_days=1", nil).json(t, &d)
			if d.DueOn != "2099-01-02" || d.Provisional {
				t.Fatalf("after import: %+v", d)
			}
			path, _ = holidayFile(t, t.TempDir(), 2099, "2099-01-01", "2099-01-02")
			s.mustCLI("", "calendar", "import", path)
			w.op.expect(200, "GET", "/calendar/deadline?from=2099-01-01&working_days=1", nil).json(t, &d)
			if d.DueOn != "2099-01-05" || d.Provisional {
				t.Fatalf("after corrected import: %+v", d)
			}

			// The watcher's gauges are exported.
			res, err := http.Get(s.metricsBase + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(res.Body)
			res.Body.Close()
			for _, m := range []string{"crvault_cases_due_soon 0", "crvault_cases_overdue 0"} {
				if !strings.Contains(string(metrics), m) {
					t.Fatalf("metrics lack %q", m)
				}
			}
		})
	}
}
