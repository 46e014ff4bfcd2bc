package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestFormRefusalOnHiddenCase: a request refused on its form (a query
// parameter, a body, a media type, a size) on a case the caller cannot see
// answers the same 404 not_found as for a case that does not exist, on
// every case-scoped route that reads a form before the vault decides;
// the caller learns nothing, not even the order of the checks. The 404 is
// audited as a refusal. A caller who sees the case still hears what is
// wrong with its request. The check does not depend on the backend, so one
// is enough here.
func TestFormRefusalOnHiddenCase(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "MARKER-FORM")
	// A well-formed id that names no case.
	missing := caseID[:len(caseID)-4] + "zzzz"
	var materialID string
	for id := range docs {
		materialID = id
	}
	var upload struct {
		ID string `json:"id"`
	}
	w.op.expect(201, "POST", "/cases/"+caseID+"/uploads", map[string]any{"kind": "other", "filename": "form.txt", "size": 10}).json(t, &upload)

	// Rows whose path starts with /materials are on the case's material
	// (the operator provided it), /uploads on the operator's upload
	// session, the rest under /cases/{case}.
	rows := []struct {
		name, method, path, ctype, body string
		status                          int // what the case's own operator hears
		code                            string
	}{
		{"consent, unknown member", "POST", "/materials/consents", "application/json", `{"zz":1}`, 400, "unknown_field"},
		{"consents, limit 0", "GET", "/materials/consents?limit=0", "", "", 422, "invalid_limit"},
		{"chunk, wrong media type", "PATCH", "/uploads/", "text/plain", "MARKER-FORM", 415, "unsupported_media_type"},
		{"chunk, offset not a number", "PATCH", "/uploads/", "application/offset+octet-stream", "MARKER-FORM", 400, "invalid_upload_offset"},
		{"upload, item not a number", "POST", "/materials?kind=other&filename=a.txt&item=x", "text/plain", "MARKER-FORM", 422, "invalid_item"},
		{"upload, classified not a boolean", "POST", "/materials?kind=other&filename=a.txt&classified=maybe", "text/plain", "MARKER-FORM", 422, "invalid_field"},
		{"upload, multipart without boundary", "POST", "/materials", "multipart/form-data", "MARKER-FORM", 400, "malformed_multipart"},
		{"materials, limit 0", "GET", "/materials?limit=0", "", "", 422, "invalid_limit"},
		{"materials, foreign cursor", "GET", "/materials?cursor=zzz", "", "", 422, "invalid_cursor"},
		{"resumable upload, kind not a string", "POST", "/uploads", "application/json", `{"kind":1}`, 400, "invalid_type"},
		{"uploads, limit 0", "GET", "/uploads?limit=0", "", "", 422, "invalid_limit"},
		{"assignment, broken JSON", "POST", "/assignments", "application/json", `{`, 400, "invalid_json"},
		{"assignments, limit not a number", "GET", "/assignments?limit=abc", "", "", 422, "invalid_limit"},
		{"declaration, conflict not a boolean", "POST", "/declarations", "application/json", `{"conflict":"no","statement":"s"}`, 400, "invalid_type"},
		{"transition, not JSON", "POST", "/transitions", "text/plain", `action=submit`, 415, "unsupported_media_type"},
		{"transition, body too large", "POST", "/transitions", "application/json", `{"reason":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "too_large"},
		{"opinion, unknown member", "POST", "/opinions", "application/json", `{"zz":1}`, 400, "unknown_field"},
		{"history, limit 0", "GET", "/events?limit=0", "", "", 422, "invalid_limit"},
		{"measure report, null", "POST", "/measure-reports", "application/json", `null`, 400, "invalid_json"},
		{"legal hold, unknown member", "PUT", "/legal-hold", "application/json", `{"zz":1}`, 400, "unknown_field"},
		{"legal hold release, unknown member", "DELETE", "/legal-hold", "application/json", `{"zz":1}`, 400, "unknown_field"},
		{"commitment, unknown member", "POST", "/commitments", "application/json", `{"zz":1}`, 400, "unknown_field"},
		{"urge, unknown member", "POST", "/commitments/x/urge", "application/json", `{"zz":1}`, 400, "unknown_field"},
	}
	type refusal struct{ id, row, who, caseID string }
	var refusals []refusal
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			target := func(id string) string { return "/cases/" + id + r.path }
			if r.path == "/uploads/" {
				target = func(id string) string {
					if id == caseID {
						id = upload.ID
					}
					return "/uploads/" + id
				}
			}
			if rest, ok := strings.CutPrefix(r.path, "/materials/"); ok {
				// The material's id, or one that names no material.
				target = func(id string) string {
					if id == caseID {
						id = materialID
					}
					return "/materials/" + id + "/" + rest
				}
			}
			send := func(c *client, id, reqID string) resp {
				h := map[string]string{"X-Request-ID": reqID}
				if r.ctype != "" {
					h["Content-Type"] = r.ctype
				}
				var body *strings.Reader
				if r.body != "" {
					body = strings.NewReader(r.body)
				}
				if body == nil {
					return s.do(t, c.token, r.method, target(id), nil, h)
				}
				return s.do(t, c.token, r.method, target(id), body, h)
			}
			// The case's own operator sees it, so hears what is wrong.
			got := send(w.op, caseID, fmt.Sprintf("form-%d-op", i))
			if got.Status != r.status || got.problem(t)["code"] != r.code {
				t.Fatalf("operator of the case: %d %s, want %d %s", got.Status, got.Body, r.status, r.code)
			}
			for _, who := range []struct {
				name string
				c    *client
				id   string
			}{
				{"another operator", w.op2, caseID},
				{"an unassigned reviewer", w.rev2, caseID},
				{"another operator, no such case", w.op2, missing},
			} {
				reqID := fmt.Sprintf("form-%d-%d", i, len(refusals))
				got := send(who.c, who.id, reqID)
				if got.Status != 404 || got.problem(t)["code"] != "not_found" {
					t.Errorf("%s: %d %s, want 404 not_found", who.name, got.Status, got.Body)
				}
				auditedCase := who.id
				if (strings.HasPrefix(r.path, "/materials/") || strings.HasPrefix(r.path, "/uploads/")) && who.id == missing {
					auditedCase = "" // no material or upload, so no case
				}
				refusals = append(refusals, refusal{reqID, r.name, who.name, auditedCase})
			}
		})
	}
	// Each 404 is in the audit log, under the case it named, as the
	// refusal it was: one event per request, however alike.
	byReq := map[string]event{}
	for _, e := range w.insp.events("outcome=denied") {
		byReq[e.RequestID] = e
	}
	for _, r := range refusals {
		e, ok := byReq[r.id]
		if !ok || e.Detail != "not_found" || e.CaseID != r.caseID {
			t.Errorf("%s, %s: audited as %+v, want a denial with not_found", r.row, r.who, e)
		}
	}
}
