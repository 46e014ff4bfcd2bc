package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
)

// metricValue reads one sample (name with its labels exactly as exposed,
// e.g. `crvault_background_job_runs_total{job="janitor",outcome="ok"}`)
// from a scrape; -1 when absent.
func metricValue(scrape, series string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// scrapeOK is metrics without failing: an instance may be dead.
func scrapeOK(s *server) (string, bool) {
	res, err := http.Get(s.metricsBase + "/metrics")
	if err != nil {
		return "", false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err == nil && res.StatusCode == 200
}

// try is one request that may fail at the network (the instance died).
func try(base, token, method, path string, body []byte, ctype string) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+"/api/v1"+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := httpClient().Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, b, nil
}

const (
	jobOK       = `crvault_background_job_runs_total{job="%s",outcome="ok"}`
	signedTotal = "crvault_audit_checkpoints_signed_total"
)

// TestTwoInstancesFailover: two real vaultd processes on one PostgreSQL
// and one S3 serve concurrent audited reads and uploads. Exactly one leads
// and runs the background jobs and signs checkpoints; the other runs none.
// The leader is killed (SIGKILL) mid-traffic; clients retry against the
// survivor, which takes the lead within seconds and runs the jobs. Every
// acknowledged upload reads back byte for byte, every acknowledged read
// has its audit event, and the log verifies with no gap or fork.
func TestTwoInstancesFailover(t *testing.T) {
	// Not parallel: it asserts timing (the survivor must take the lead within seconds),
	// which the load of parallel tests would blur.
	be := backends[1]
	// Checkpoints every 2 s rather than 10: the test waits for one on each
	// side of the kill, and runs in the serial phase where every second of
	// waiting is a second of the suite.
	a := newServer(t, be, "VAULT_JANITOR_INTERVAL=1s", "VAULT_DEADLINE_INTERVAL=1s", "VAULT_CHECKPOINT_INTERVAL=2s")
	w := bootstrap(t, a)
	a.start()
	b := a.twin(t)
	b.start()
	w.loginAll(t)
	readCase, docs := w.newCase(t, "MARKER-FAILOVER")
	w.op.expect(200, "POST", "/cases/"+readCase+"/submit", nil)
	w.office.expect(201, "POST", "/cases/"+readCase+"/assignments",
		map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"})
	w.rev1.expect(201, "POST", "/cases/"+readCase+"/declarations", map[string]any{"conflict": false, "statement": "no ties"})
	var mats []string
	for id := range docs {
		mats = append(mats, id)
	}
	var upCase struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/cases", map[string]any{"title": "Uploads during failover", "product": "AR-9000",
		"providers": []string{w.provOrg}}).json(t, &upCase)

	// Which one leads? Exactly one, and only it runs the jobs.
	var lead, follow *server
	within(t, 10*time.Second, "a leader", func() bool {
		ma, _ := scrapeOK(a)
		mb, _ := scrapeOK(b)
		la, lb := metricValue(ma, "crvault_leader"), metricValue(mb, "crvault_leader")
		switch {
		case la == 1 && lb == 0:
			lead, follow = a, b
		case lb == 1 && la == 0:
			lead, follow = b, a
		default:
			return false
		}
		return true
	})

	// Traffic: 8 readers and 2 uploaders, spread over both instances,
	// each switching to the other instance when its own fails.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		readIDs  []string              // X-Request-ID of acknowledged reads
		uploaded = map[string][]byte{} // acknowledged uploads
		errs     []string
		acked    atomic.Int64
	)
	servers := []*server{a, b}
	worker := func(i int, op func(base string) (bool, error)) {
		defer wg.Done()
		cur := i % 2
		for n := 0; !stop.Load(); n++ {
			ok, err := op(servers[cur].base)
			if err != nil || !ok {
				cur = 1 - cur // retry against the other instance
				time.Sleep(20 * time.Millisecond)
				continue
			}
			acked.Add(1)
		}
	}
	for i := range 8 {
		wg.Add(1)
		go worker(i, func(base string) (bool, error) {
			id := mats[i%len(mats)]
			st, h, body, err := try(base, w.rev1.token, "GET", "/materials/"+id+"/content", nil, "")
			if err != nil || st >= 500 {
				return false, err
			}
			mu.Lock()
			defer mu.Unlock()
			if st != 200 || !bytes.Equal(body, docs[id]) {
				errs = append(errs, fmt.Sprintf("read %s: %d %.200s", id, st, body))
				return false, nil
			}
			readIDs = append(readIDs, h.Get("X-Request-ID"))
			return true, nil
		})
	}
	var seq atomic.Int64
	for i := range 2 {
		wg.Add(1)
		go worker(i, func(base string) (bool, error) {
			n := seq.Add(1)
			content := []byte(fmt.Sprintf("failover upload %d: %s", n, strings.Repeat("x", 4096)))
			st, _, body, err := try(base, w.op.token, "POST", fmt.Sprintf("/cases/%s/materials?kind=procurement&filename=f%d.txt", upCase.ID, n),
				content, "text/plain")
			if err != nil || st >= 500 {
				return false, err
			}
			var m struct {
				ID string `json:"id"`
			}
			mu.Lock()
			defer mu.Unlock()
			if st != 201 || jsonUnmarshal(body, &m) != nil || m.ID == "" {
				errs = append(errs, fmt.Sprintf("upload %d: %d %.200s", n, st, body))
				return false, nil
			}
			uploaded[m.ID] = content
			return true, nil
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// Before the kill: the leader has run its jobs and signed a checkpoint
	// (every 2 s here) under the traffic; the follower has done none of it.
	// The traffic is under way too: with checkpoints that often, the first
	// can come before any request is through.
	within(t, 40*time.Second, "a checkpoint signed by the leader, and traffic", func() bool {
		m, _ := scrapeOK(lead)
		return acked.Load() >= 50 && metricValue(m, signedTotal) >= 1
	})
	mf := metrics(t, follow)
	for _, series := range []string{fmt.Sprintf(jobOK, "janitor"), fmt.Sprintf(jobOK, "deadlines"), signedTotal} {
		if v := metricValue(mf, series); v != 0 {
			t.Errorf("follower: %s = %v, want 0 (the leader alone runs it)", series, v)
		}
	}
	ml := metrics(t, lead)
	for _, job := range []string{"janitor", "deadlines"} {
		if v := metricValue(ml, fmt.Sprintf(jobOK, job)); v < 1 {
			t.Errorf("leader: %s ran %v times", job, v)
		}
	}
	before := acked.Load()
	if before == 0 {
		t.Fatal("no request acknowledged before the kill")
	}

	lead.kill()
	t.Logf("killed the leader after %d acknowledged requests", before)
	within(t, 10*time.Second, "the survivor taking the lead", func() bool {
		m, _ := scrapeOK(follow)
		return metricValue(m, "crvault_leader") == 1
	})
	within(t, 10*time.Second, "the jobs resumed on the survivor", func() bool {
		m, _ := scrapeOK(follow)
		return metricValue(m, fmt.Sprintf(jobOK, "janitor")) >= 1 && metricValue(m, fmt.Sprintf(jobOK, "deadlines")) >= 1
	})
	within(t, 40*time.Second, "traffic carrying on and a checkpoint signed on the survivor", func() bool {
		m, _ := scrapeOK(follow)
		return acked.Load() > before+50 && metricValue(m, signedTotal) >= 1
	})
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d wrong answers, first: %s", len(errs), errs[0])
	}
	if len(uploaded) == 0 || len(readIDs) == 0 {
		t.Fatalf("acknowledged: %d uploads, %d reads", len(uploaded), len(readIDs))
	}

	// Nothing acknowledged is lost: every upload reads back whole...
	for id, content := range uploaded {
		st, _, body, err := try(follow.base, w.op.token, "GET", "/materials/"+id+"/content", nil, "")
		if err != nil || st != 200 || !bytes.Equal(body, content) {
			t.Fatalf("acknowledged upload %s after failover: %d %v (%d bytes)", id, st, err, len(body))
		}
	}
	// ...and every read that sent bytes was in the audit log first.
	db, err := sqldb.Open(t.Context(), envValue(follow, "VAULT_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close(db)
	var logged []string
	if err := db.Raw("SELECT request_id FROM audit_events WHERE action = 'material.read' AND outcome = 'allowed'").Scan(&logged).Error; err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, id := range logged {
		have[id] = true
	}
	for _, id := range readIDs {
		if id == "" || !have[id] {
			t.Fatalf("acknowledged read %q has no audit event (%d reads, %d events)", id, len(readIDs), len(logged))
		}
	}
	var count, maxSeq int64
	if err := db.Raw("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM audit_events").Row().Scan(&count, &maxSeq); err != nil {
		t.Fatal(err)
	}
	if count != maxSeq {
		t.Fatalf("audit log: %d events up to seq %d: a gap or a duplicate", count, maxSeq)
	}
	follow.stop()
	out, errOut, code := follow.cli("", "audit", "verify")
	if code != 0 || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify after failover: exit %d: %s %s", code, out, errOut)
	}
	t.Logf("%d requests acknowledged (%d reads, %d uploads), %d audit events", acked.Load(), len(readIDs), len(uploaded), count)
}

// envValue is the server's setting of key.
func envValue(s *server, key string) string {
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
