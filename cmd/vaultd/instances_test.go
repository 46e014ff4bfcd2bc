package main

import (
	"strings"
	"testing"
	"time"
)

// twin prepares a second vaultd over the same database, blob store and keys
// as s, on its own address.
func (s *server) twin(t testing.TB) *server {
	t.Helper()
	s2 := &server{t: t, data: s.data, tmp: s.tmp, addr: freeAddr(t), log: &syncBuffer{}}
	s2.base = "http://" + s2.addr
	for _, e := range s.env {
		if strings.HasPrefix(e, "VAULT_ADDR=") {
			e = "VAULT_ADDR=" + s2.addr
		}
		if strings.HasPrefix(e, "VAULT_METRICS_ADDR=") {
			m := freeAddr(t)
			e, s2.metricsBase = "VAULT_METRICS_ADDR="+m, "http://"+m
		}
		s2.env = append(s2.env, e)
	}
	t.Cleanup(s2.stop)
	return s2
}

// within polls check until it holds or the contract's second is over.
func within(t *testing.T, d time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if check() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen by the other instance within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoInstancesStayInStep: two real vaultd processes share one
// PostgreSQL database. An assignment, a declaration and a revocation made
// on one take effect on the other within one second; so do an account
// disable and the login throttle.
func TestTwoInstancesStayInStep(t *testing.T) {
	// Not parallel: it asserts timing (changes must reach the other instance within a second),
	// which the load of parallel tests would blur.
	be := backends[1] // postgres+s3: several instances need a shared database
	a := newServer(t, be)
	w := bootstrap(t, a)
	a.start()
	b := a.twin(t)
	b.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "MARKER-TWIN")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	var matID string
	for id := range docs {
		matID = id
		break
	}
	revB := b.login(t, "rev1", pw)
	revB.expect(404, "GET", "/cases/"+caseID, nil)

	// A grant on A reaches B.
	var asg struct {
		ID string `json:"id"`
	}
	w.office.expect(201, "POST", "/cases/"+caseID+"/assignments",
		map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"}).json(t, &asg)
	within(t, time.Second, "assignment", func() bool { return revB.do("GET", "/cases/"+caseID, nil).Status == 200 })
	// A declaration on B reaches A.
	revB.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "no ties"})
	within(t, time.Second, "declaration", func() bool { return w.rev1.do("GET", "/materials/"+matID+"/content", nil).Status == 200 })
	revB.expect(200, "GET", "/materials/"+matID+"/content", nil)

	// A revocation on A ends access on B.
	w.office.expect(204, "DELETE", "/cases/"+caseID+"/assignments/"+asg.ID, nil)
	within(t, time.Second, "revocation", func() bool { return revB.do("GET", "/materials/"+matID+"/content", nil).Status == 404 })

	// Disabling an account on A ends its sessions on B at once.
	opB := b.login(t, "operator1", pw)
	opB.expect(200, "GET", "/cases/"+caseID, nil)
	var me struct {
		ID string `json:"id"`
	}
	opB.expect(200, "GET", "/me", nil).json(t, &me)
	w.admin.expect(200, "POST", "/users/"+me.ID+"/disable", nil)
	opB.expect(401, "GET", "/cases/"+caseID, nil)

	// Failed logins counted on A throttle the same client on B.
	for range 3 {
		if r := a.postJSON(t, "", "/sessions", map[string]string{"username": "provider1", "password": "guess guess guess"}); r.Status != 401 {
			t.Fatalf("failure on A: %d", r.Status)
		}
	}
	if r := b.postJSON(t, "", "/sessions", map[string]string{"username": "provider1", "password": pw}); r.Status != 429 {
		t.Fatalf("the same client on B after three failures on A: %d %s, want 429", r.Status, r.Body)
	}
}
