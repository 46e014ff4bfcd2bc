package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestObservability: after real traffic (uploads, audited reads, a
// denial) the scrape carries each series the operators watch, with values
// that follow the traffic; /readyz names the dependency that failed (the
// S3 store, killed) and nothing else, and recovers with it; and every
// metric the Grafana dashboard in deploy/ queries is one the server
// exports.
func TestObservability(t *testing.T) {
	t.Parallel()
	s3 := startS3(t)
	s := newServer(t, backends[0], s3.env()...)
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "MARKER-METRICS")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments",
		map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
	w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "no ties"})
	var up, down int
	for id, body := range docs {
		up += len(body)
		for range 2 {
			w.rev1.expect(200, "GET", "/materials/"+id+"/content", nil)
			down += len(body)
		}
		// Need to know: rev2 is not assigned.
		if r := w.rev2.do("GET", "/materials/"+id+"/content", nil); r.Status != 404 && r.Status != 403 {
			t.Fatalf("unassigned reviewer read: %d", r.Status)
		}
	}

	m := metrics(t, s)
	const content = `route="/api/v1/materials/:id/content"`
	for series, want := range map[string]float64{
		`crvault_http_requests_total{method="GET",` + content + `,status="200"}`:                            float64(2 * len(docs)),
		`crvault_transfer_bytes_total{direction="upload",route="/api/v1/cases/:case/materials"}`:            float64(up),
		`crvault_transfer_bytes_total{direction="download",` + content + `}`:                                float64(down),
		`crvault_transfer_duration_seconds_count{direction="download",` + content + `}`:                     float64(2 * len(docs)),
		`crvault_transfer_duration_seconds_count{direction="upload",route="/api/v1/cases/:case/materials"}`: float64(len(docs)),
		`crvault_leader`: 1,
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{
		"crvault_audit_commit_seconds_count", "crvault_audit_batch_size_count", "crvault_audit_events_appended_total",
		"crvault_audit_head_reads_total",
		// Each document read twice: cached on its second read.
		`crvault_ciphertext_cache_reads_total{result="miss"}`, "crvault_ciphertext_cache_bytes",
		`crvault_background_job_runs_total{job="deadlines",outcome="ok"}`, `crvault_background_job_runs_total{job="janitor",outcome="ok"}`,
	} {
		if got := metricValue(m, series); got < 1 {
			t.Errorf("%s = %v, want at least 1", series, got)
		}
	}
	// vaultd runs with its heap floor when GOGC is unset (the harness sets
	// none): the collector's next target is at least 1.5 times the floor.
	if got, want := metricValue(m, "go_memstats_next_gc_bytes"), float64(heapFloor*(100+gcPercent)/100); got < want {
		t.Errorf("go_memstats_next_gc_bytes = %v, want at least %v (the heap floor)", got, want)
	}
	if !regexp.MustCompile(`(?m)^crvault_http_problems_total\{code="[a-z_]+",status="40[34]"\} [1-9]`).MatchString(m) {
		t.Errorf("the refused reads are not counted by problem code:\n%s", grepLines(m, "crvault_http_problems_total"))
	}
	for _, g := range []string{"crvault_cases_due_soon", "crvault_cases_overdue", "crvault_calendar_official_days_ahead"} {
		if metricValue(m, g) < 0 {
			t.Errorf("deadline gauge %s missing", g)
		}
	}
	if strings.Contains(m, "MARKER-METRICS") || strings.Contains(m, caseID) {
		t.Fatal("metrics carry content or ids")
	}
	checkDashboard(t, m)

	// Readiness names what failed, and only that.
	r, err := httpGet(s.base + "/readyz")
	if err != nil || r.status != 200 {
		t.Fatalf("readyz: %v %+v", err, r)
	}
	s3.kill()
	r, err = httpGet(s.base + "/readyz")
	if err != nil || r.status != 503 {
		t.Fatalf("readyz with the store down: %v %+v", err, r)
	}
	var p struct{ Code, Detail string }
	if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Code != "not_ready" || p.Detail != "not available: store" {
		t.Fatalf("readyz problem with the store down: %s", r.body)
	}
	// Under the API's base path too, like /api/v1/healthz.
	if r, err := httpGet(s.base + "/api/v1/readyz"); err != nil || r.status != 503 || !strings.Contains(r.body, "not available: store") {
		t.Fatalf("/api/v1/readyz with the store down: %v %+v", err, r)
	}
	s3.start()
	within(t, 30*time.Second, "readiness after the store came back", func() bool {
		r, err := httpGet(s.base + "/readyz")
		return err == nil && r.status == 200
	})
	if r, err := httpGet(s.base + "/api/v1/readyz"); err != nil || r.status != 200 {
		t.Fatalf("/api/v1/readyz: %v %+v", err, r)
	}
}

func grepLines(text, needle string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkDashboard fails when a query of deploy/grafana/crvault-dashboard.json
// names a metric the scrape does not carry.
func checkDashboard(t *testing.T, scrape string) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/crvault-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	exported := map[string]bool{}
	for _, l := range strings.Split(scrape, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		}
	}
	metric := regexp.MustCompile(`\b(crvault|process|go)_[a-z0-9_]+\b`)
	n := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, name := range names {
				n++
				base := name
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("panel %q queries %s, which the server does not export", p.Title, name)
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d metric references in the dashboard", n)
	}
	t.Logf("dashboard: %d panels, %d metric references, all exported", len(d.Panels), n)
}
