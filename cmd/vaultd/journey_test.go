package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"
)

type event struct {
	Seq       int64  `json:"seq"`
	Actor     string `json:"actor"`
	ActorOrg  string `json:"actor_org"`
	Action    string `json:"action"`
	Outcome   string `json:"outcome"`
	CaseID    string `json:"case_id"`
	Resource  string `json:"resource"`
	Purpose   string `json:"purpose"`
	IP        string `json:"ip"`
	RequestID string `json:"request_id"`
	Hash      string `json:"hash"`
	Detail    string `json:"detail"`
}

func (c *client) events(query string) []event {
	c.t.Helper()
	var all []event
	cursor := ""
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var page struct {
			Items      []event `json:"items"`
			NextCursor string  `json:"next_cursor"`
		}
		c.expect(200, "GET", "/audit/events?limit=500&"+q, nil).json(c.t, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func find(evs []event, pred func(event) bool) *event {
	for i := range evs {
		if pred(evs[i]) {
			return &evs[i]
		}
	}
	return nil
}

// TestJourney walks a case from filing to reading on each backend, with
// every denial the contract names and the audit events they leave.
func TestJourney(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			marker := "MARKER-JOURNEY-" + be.name
			caseID, docs := w.newCase(t, marker)

			// Multipart upload, kind first, with a non-ASCII filename.
			var mp bytes.Buffer
			mw := multipart.NewWriter(&mp)
			mw.WriteField("kind", "other")
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="file"; filename="合同 附件.pdf"`)
			h.Set("Content-Type", "application/pdf")
			fw, _ := mw.CreatePart(h)
			pdf := []byte(marker + " %PDF-1.7 contract annex")
			fw.Write(pdf)
			mw.Close()
			r := s.do(t, w.op.token, "POST", "/cases/"+caseID+"/materials", &mp, map[string]string{"Content-Type": mw.FormDataContentType()})
			if r.Status != 201 {
				t.Fatalf("multipart upload: %d %s", r.Status, r.Body)
			}
			var annex struct {
				ID          string `json:"id"`
				Filename    string `json:"filename"`
				SHA256      string `json:"sha256"`
				ContentType string `json:"content_type"`
				Size        int64  `json:"size"`
				Version     int    `json:"version"`
			}
			r.json(t, &annex)
			sum := sha256.Sum256(pdf)
			if annex.Filename != "合同 附件.pdf" || annex.Size != int64(len(pdf)) || annex.SHA256 != hex.EncodeToString(sum[:]) || annex.Version != 1 || annex.ContentType != "application/pdf" {
				t.Fatalf("multipart material: %+v", annex)
			}
			docs[annex.ID] = pdf
			// Same kind and filename again: a new version, nothing overwritten.
			var v2 struct {
				Version int `json:"version"`
			}
			w.op.uploadRaw(caseID, "declaration", "declaration.txt", "text/plain", []byte(marker+" declaration v2")).json(t, &v2)
			if v2.Version != 2 {
				t.Fatalf("second upload of declaration.txt has version %d, want 2", v2.Version)
			}

			// Office admins do not see drafts.
			w.office.expect(404, "GET", "/cases/"+caseID, nil)
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			w.office.expect(200, "GET", "/cases/"+caseID, nil)

			var asg struct {
				ID      string `json:"id"`
				Status  string `json:"status"`
				Purpose string `json:"purpose"`
			}
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review (Art. 10)"}).json(t, &asg)
			if asg.Status != "active" || asg.Purpose != "preliminary review (Art. 10)" {
				t.Fatalf("assignment: %+v", asg)
			}
			var matID string
			for id := range docs {
				if id != annex.ID {
					matID = id
					break
				}
			}
			// Assigned but undeclared: 403 declaration_required.
			if p := w.rev1.expect(403, "GET", "/materials/"+matID+"/content", nil).problem(t); p["code"] != "declaration_required" {
				t.Fatalf("undeclared read: %v", p)
			}
			w.rev1.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "No ties to Grid Co or Acme."})

			for id, want := range docs {
				r := w.rev1.expect(200, "GET", "/materials/"+id+"/content", nil)
				if !bytes.Equal(r.Body, want) {
					t.Fatalf("material %s: content differs", id)
				}
				sum := sha256.Sum256(want)
				if r.Header.Get("X-Content-SHA256") != hex.EncodeToString(sum[:]) || r.Header.Get("Accept-Ranges") != "bytes" ||
					r.Header.Get("Content-Length") != fmt.Sprint(len(want)) || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment;") {
					t.Fatalf("material %s: headers %v", id, r.Header)
				}
			}
			cd := w.rev1.expect(200, "GET", "/materials/"+annex.ID+"/content", nil).Header.Get("Content-Disposition")
			if !strings.Contains(cd, "filename*=UTF-8''%E5%90%88%E5%90%8C%20%E9%99%84%E4%BB%B6.pdf") {
				t.Fatalf("Content-Disposition %q lacks the RFC 6266 filename*", cd)
			}
			// A single range.
			rr := s.do(t, w.rev1.token, "GET", "/materials/"+matID+"/content", nil, map[string]string{"Range": "bytes=5-20"})
			if rr.Status != 206 || !bytes.Equal(rr.Body, docs[matID][5:21]) || rr.Header.Get("Content-Range") != fmt.Sprintf("bytes 5-20/%d", len(docs[matID])) {
				t.Fatalf("range: %d %q %v", rr.Status, rr.Body, rr.Header)
			}

			// Denials: unassigned reviewer and sysadmin see nothing (404);
			// office admin and inspector may see but not read (403);
			// another operator sees nothing; a forged token is 401.
			w.rev2.expect(404, "GET", "/materials/"+matID+"/content", nil).problem(t)
			w.rev2.expect(404, "GET", "/cases/"+caseID, nil).problem(t)
			w.admin.expect(404, "GET", "/materials/"+matID+"/content", nil).problem(t)
			w.op2.expect(404, "GET", "/cases/"+caseID, nil).problem(t)
			w.office.expect(403, "GET", "/materials/"+matID+"/content", nil).problem(t)
			w.insp.expect(403, "GET", "/materials/"+matID+"/content", nil).problem(t)
			forged := &client{t: t, s: s, token: "forged-" + strings.Repeat("a", 40)}
			forged.expect(401, "GET", "/materials/"+matID+"/content", nil).problem(t)
			w.op.expect(200, "GET", "/materials/"+matID+"/content", nil)

			// Revocation takes effect on the next request.
			w.office.expect(204, "DELETE", "/cases/"+caseID+"/assignments/"+asg.ID, nil)
			w.rev1.expect(404, "GET", "/materials/"+matID+"/content", nil).problem(t)

			// Conflict declaration suspends a fresh assignment.
			w.office.expect(201, "POST", "/cases/"+caseID+"/assignments", map[string]any{"user": w.rev2.id, "role": "reviewer", "purpose": "second opinion"})
			w.rev2.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": true, "statement": "I advised Acme in 2024."})
			if p := w.rev2.expect(403, "GET", "/materials/"+matID+"/content", nil).problem(t); p["code"] != "assignment_suspended" {
				t.Fatalf("suspended read: %v", p)
			}

			// The audit trail, as an inspector sees it.
			evs := w.insp.events("case=" + caseID)
			read := find(evs, func(e event) bool {
				return e.Action == "material.read" && e.Actor == w.rev1.id && e.Outcome == "allowed" && e.Purpose == "preliminary review (Art. 10)"
			})
			if read == nil || read.RequestID == "" || read.IP == "" || read.Hash == "" {
				t.Fatalf("no allowed material.read by rev1 with its purpose in %d events: %+v", len(evs), read)
			}
			for _, who := range []*client{w.rev2, w.admin, w.office, w.insp, w.rev1} {
				if find(evs, func(e event) bool { return e.Actor == who.id && e.Outcome == "denied" && e.Action == "material.read" }) == nil {
					t.Errorf("no denied material.read by %s", who.id)
				}
			}
			all := w.insp.events("outcome=denied&action=auth")
			if find(all, func(e event) bool { return e.Actor == "" && strings.Contains(e.Resource, "/materials/:id/content") }) == nil {
				t.Errorf("forged token attempt not audited: %+v", all)
			}
			// The operator sees who read its materials, by organisation and
			// pseudonym, never the user id or address; others cannot look.
			if opEvs := w.op.events("case=" + caseID); find(opEvs, func(e event) bool {
				return e.Action == "material.read" && e.Actor == "R1" && e.ActorOrg == w.officeOrg && e.IP == "" && e.Purpose == "preliminary review (Art. 10)"
			}) == nil {
				t.Errorf("operator cannot see rev1's reads as R1: %+v", opEvs)
			}
			if opEvs := w.op2.events("case=" + caseID); len(opEvs) != 0 {
				t.Errorf("another operator sees %d events of this case", len(opEvs))
			}
			w.rev1.expect(403, "GET", "/audit/events", nil).problem(t)

			// Logging out ends the session.
			w.rev1.expect(204, "DELETE", "/sessions/current", nil)
			w.rev1.expect(401, "GET", "/me", nil)

			s.stop()
			if out, errs, code := s.cli("", "audit", "verify"); code != 0 {
				t.Fatalf("audit verify: exit %d: %s %s", code, out, errs)
			}
			assertNoPlaintext(t, s, marker)
		})
	}
}
