package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// approvedUser creates an account through the API (the sysadmin creates
// it, the office admin approves it) and signs it in.
func approvedUser(t *testing.T, s *server, w *world, name, org, role string) *client {
	t.Helper()
	var u struct{ ID string }
	w.admin.expect(201, "POST", "/users", map[string]any{"username": name, "org": org, "roles": []string{role}, "password": pw}).json(t, &u)
	w.office.expect(200, "POST", "/users/"+u.ID+"/approve", nil)
	return s.login(t, name, pw)
}

// rawJSON sends a request and never fails the test, so that goroutines can
// use it.
func rawJSON(s *server, token, method, path, body string) (int, string) {
	req, err := http.NewRequest(method, s.base+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := httpClient().Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestConcurrentResolutionAppliesOnlyTheWinner: two inspectors resolve one
// complaint at once, one dismissing it, the other upholding it with
// recuse_subject. Exactly one wins; the subject is recused only when the
// uphold won, and the audit log holds the winner's events only.
func TestConcurrentResolutionAppliesOnlyTheWinner(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_TOTP_REQUIRED_ROLES=")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			insp2 := approvedUser(t, s, w, "inspector2", "Inspectorate", "inspector")
			caseID, docs := w.newCase(t, "RESOLVE-RACE")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			var matID string
			for id := range docs {
				matID = id
			}
			for attempt := 1; attempt <= 8; attempt++ {
				rev := approvedUser(t, s, w, fmt.Sprintf("racerev%d", attempt), "Cybersecurity Review Office", "reviewer")
				w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": rev.id, "role": "reviewer", "purpose": "review"})
				rev.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "no ties"})
				rev.expect(200, "GET", "/materials/"+matID+"/content", nil)
				pseudo, best := "", int64(-1)
				for _, e := range w.op.events("case=" + caseID + "&action=material.read&limit=500") {
					if e.ActorOrg == w.officeOrg && e.Seq > best {
						pseudo, best = e.Actor, e.Seq
					}
				}
				var cp struct{ ID string }
				w.op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "subject": pseudo, "kind": "confidentiality", "description": "leak"}).json(t, &cp)
				w.insp.expect(200, "POST", "/complaints/"+cp.ID+"/status", map[string]any{"status": "investigating", "note": "looking"})
				var wg sync.WaitGroup
				var dst, ust int
				wg.Add(2)
				go func() {
					defer wg.Done()
					dst, _ = rawJSON(s, w.insp.token, "POST", "/complaints/"+cp.ID+"/resolution", `{"outcome":"dismissed","note":"no breach"}`)
				}()
				go func() {
					defer wg.Done()
					ust, _ = rawJSON(s, insp2.token, "POST", "/complaints/"+cp.ID+"/resolution", `{"outcome":"upheld","actions":["recuse_subject"],"note":"breach"}`)
				}()
				wg.Wait()
				var got complaintView
				w.insp.expect(200, "GET", "/complaints/"+cp.ID, nil).json(t, &got)
				read := rev.do("GET", "/materials/"+matID+"/content", nil).Status
				if (dst == 200) == (ust == 200) {
					t.Fatalf("attempt %d: dismiss %d, uphold %d: exactly one resolution must win", attempt, dst, ust)
				}
				wantStatus, wantRead := "dismissed", 200
				if ust == 200 {
					wantStatus, wantRead = "upheld", 404
				}
				if got.Status != wantStatus || got.SubjectRecused != (ust == 200) || read != wantRead {
					t.Fatalf("attempt %d: complaint %s recused=%v, subject's read %d; want %s, read %d", attempt, got.Status, got.SubjectRecused, read, wantStatus, wantRead)
				}
				// The winner's resolution is audited as allowed; a loser that
				// got as far as the update is audited as allowed, then
				// refused (with its recusal and reassignment request, which
				// are audited before the transaction that would apply them):
				// never as a resolution that stood.
				resolves, lost, refused, recusals, reassign := 0, 0, 0, 0, 0
				for _, e := range w.insp.events("case=" + caseID + "&limit=500") {
					step := 1
					// The refusal names the allowed event it undoes.
					if e.Outcome == "denied" && strings.HasPrefix(e.Detail, "concurrent_update;undoes=") {
						step = -1
					} else if e.Outcome != "allowed" {
						continue
					}
					switch {
					case e.Action == "complaint.resolve" && e.Resource == "complaint/"+cp.ID && step == 1 && e.Detail == wantStatus:
						resolves++
					case e.Action == "complaint.resolve" && e.Resource == "complaint/"+cp.ID && step == 1:
						lost++
					case e.Action == "complaint.resolve" && e.Resource == "complaint/"+cp.ID:
						refused++
					case e.Action == "assignment.recuse" && e.Purpose == "complaint/"+cp.ID:
						recusals += step
					case e.Action == "case.reassignment_requested" && e.Resource == "complaint/"+cp.ID:
						reassign += step
					}
				}
				wantRecusals := 0
				if ust == 200 {
					wantRecusals = 1
				}
				if lost != refused {
					t.Fatalf("attempt %d: %d losing resolutions audited as allowed, %d of them refused", attempt, lost, refused)
				}
				if resolves != 1 || recusals != wantRecusals || reassign != wantRecusals {
					t.Fatalf("attempt %d (%s won): %d complaint.resolve, %d assignment.recuse, %d case.reassignment_requested events not refused; want 1, %d, %d",
						attempt, wantStatus, resolves, recusals, reassign, wantRecusals, wantRecusals)
				}
			}
		})
	}
}

// TestConcurrentCommitmentFindingsAreKept: two inspectors record findings
// on one commitment at once. Every finding that was answered 200 is in the
// commitment's history, the stored status is the history's last, and the
// audit log records the findings that took effect in the same order.
func TestConcurrentCommitmentFindingsAreKept(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be, "VAULT_TOTP_REQUIRED_ROLES=")
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			insp2 := approvedUser(t, s, w, "inspector2", "Inspectorate", "inspector")
			caseID, _ := w.newCase(t, "COMMITMENT-RACE")
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			type commitment struct {
				ID, Status string
				History    []struct{ Status, Note, By string }
			}
			for attempt := 1; attempt <= 5; attempt++ {
				var cm commitment
				w.prov.expect(201, "POST", "/cases/"+caseID+"/commitments", map[string]any{"kind": "no_illegal_data", "text": "no user data"}).json(t, &cm)
				var wg sync.WaitGroup
				var a, b int
				wg.Add(2)
				go func() {
					defer wg.Done()
					a, _ = rawJSON(s, w.insp.token, "POST", "/commitments/"+cm.ID+"/status", `{"status":"breached","note":"firmware phones home"}`)
				}()
				go func() {
					defer wg.Done()
					b, _ = rawJSON(s, insp2.token, "POST", "/commitments/"+cm.ID+"/status", `{"status":"kept","note":"annual check passed"}`)
				}()
				wg.Wait()
				var l struct{ Items []commitment }
				w.insp.expect(200, "GET", "/commitments?case="+caseID+"&limit=500", nil).json(t, &l)
				var got commitment
				for _, it := range l.Items {
					if it.ID == cm.ID {
						got = it
					}
				}
				var want []string
				if a == 200 {
					want = append(want, "breached")
				}
				if b == 200 {
					want = append(want, "kept")
				}
				var history []string
				for _, h := range got.History {
					history = append(history, h.Status)
					if h.By == "" || h.Note == "" {
						t.Errorf("attempt %d: a finding without its inspector or note: %+v", attempt, h)
					}
				}
				if len(want) == 0 || len(history) != len(want) || got.Status != history[len(history)-1] {
					t.Fatalf("attempt %d: breached %d, kept %d; stored %q, history %v", attempt, a, b, got.Status, history)
				}
				var effective []string
				errored := map[string]bool{}
				evs := w.insp.events("action=commitment.status&limit=500")
				for _, e := range evs {
					if e.Resource == "commitment/"+cm.ID && e.Outcome == "errored" {
						errored[e.RequestID] = true
					}
				}
				for _, e := range evs {
					if e.Resource == "commitment/"+cm.ID && e.Outcome == "allowed" && !errored[e.RequestID] {
						effective = append(effective, e.Detail)
					}
				}
				if strings.Join(effective, ",") != strings.Join(history, ",") {
					t.Fatalf("attempt %d: the audit log orders the findings %v, the history %v", attempt, effective, history)
				}
			}
			// The parties see the findings, not who made them.
			var l struct{ Items []commitment }
			w.op.expect(200, "GET", "/commitments?case="+caseID+"&limit=500", nil).json(t, &l)
			for _, it := range l.Items {
				for _, h := range it.History {
					if h.By != "" {
						t.Errorf("the operator sees who recorded a finding: %+v", h)
					}
				}
			}
		})
	}
}

// TestReportDeskLimitsHoldUnderConcurrency: the anonymous desk's limits
// hold when requests come in parallel (reports per client per hour, wrong
// receipts per client per hour), and one receipt cannot add attachments or
// messages without bound.
func TestReportDeskLimitsHoldUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			// The generic anonymous rate is not what is tested here.
			s := newServer(t, be, "VAULT_TOTP_REQUIRED_ROLES=", "VAULT_ANONYMOUS_RATE=100000")
			bootstrap(t, s)
			s.start()
			jsonH := map[string]string{"Content-Type": "application/json"}
			r := s.do(t, "", "POST", "/reports", strings.NewReader(`{"description":"limits"}`), jsonH)
			if r.Status != 201 {
				t.Fatalf("file a report: %d %s", r.Status, r.Body)
			}
			var f struct{ Receipt string }
			r.json(t, &f)

			// 20 attachments per report; the 21st is refused with its code.
			for i := 0; i < 21; i++ {
				a := s.do(t, "", "POST", fmt.Sprintf("/reports/attachments?filename=f%d.bin", i), strings.NewReader(strings.Repeat("x", 1<<10)),
					map[string]string{"X-Receipt": f.Receipt, "Content-Type": "application/octet-stream"})
				switch {
				case i < 20 && a.Status != 201:
					t.Fatalf("attachment %d: %d %s", i+1, a.Status, a.Body)
				case i == 20 && (a.Status != 422 || a.problem(t)["code"] != "attachment_limit"):
					t.Errorf("attachment 21 of one report: %d %s", a.Status, a.Body)
				}
			}
			// 100 messages from the reporter, sent 8 at a time (in-flight
			// receipts hold one of the 10 slots for wrong ones until they are
			// found right): exactly 100 are taken.
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[int]int{}
			jobs := make(chan struct{})
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range jobs {
						req, _ := http.NewRequest("POST", s.base+"/api/v1/reports/messages", strings.NewReader(`{"text":"more"}`))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("X-Receipt", f.Receipt)
						st := 0
						if res, err := httpClient().Do(req); err == nil {
							st = res.StatusCode
							_, _ = io.Copy(io.Discard, res.Body)
							_ = res.Body.Close()
						}
						mu.Lock()
						codes[st]++
						mu.Unlock()
					}
				}()
			}
			for range 110 {
				jobs <- struct{}{}
			}
			close(jobs)
			wg.Wait()
			if codes[201] != 100 || codes[422] != 10 {
				t.Errorf("110 parallel messages on one report: %v; want 100 taken and 10 refused", codes)
			}

			// Wrong receipts in parallel: at most 10 are checked.
			codes = map[int]int{}
			for i := 0; i < 30; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest("GET", s.base+"/api/v1/reports/status", nil)
					req.Header.Set("X-Receipt", strings.Split(f.Receipt, ".")[0]+".wrongsecretwrongsecretwrong")
					st := 0
					if res, err := httpClient().Do(req); err == nil {
						st = res.StatusCode
						_ = res.Body.Close()
					}
					mu.Lock()
					codes[st]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if codes[401] > 10 || codes[401]+codes[429] != 30 {
				t.Errorf("30 parallel wrong receipts: %v; want at most 10 checked, the rest 429", codes)
			}

			// Reports in parallel: one was filed above, so at most 19 more.
			filed := 0
			for i := 0; i < 40; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if st, _ := rawJSON(s, "", "POST", "/reports", `{"description":"parallel"}`); st == 201 {
						mu.Lock()
						filed++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if filed != 19 {
				t.Errorf("%d of 40 parallel reports from one client filed after one earlier; want 19 (20 per hour)", filed)
			}
		})
	}
}
