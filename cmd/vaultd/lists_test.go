package main

import (
	"net/url"
	"testing"
)

// TestListPagesOverHTTP: the list routes read ?limit= and ?cursor= as
// API.md's conventions say; a page of materials holds only what the caller
// may see and says nothing of the rest (the provider's materials, hidden
// from the operator, leave no cursor behind the last visible one); a
// forged cursor or a bad limit is 422 with its own code.
func TestListPagesOverHTTP(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			w := bootstrap(t, s)
			s.start()
			w.loginAll(t)
			caseID, _ := w.newCase(t, "paging")
			for _, name := range []string{"a.txt", "b.txt"} {
				if r := w.prov.uploadRaw(caseID, "other", name, "text/plain", []byte("provider's own")); r.Status != 201 {
					t.Fatalf("provider upload: %d %s", r.Status, r.Body)
				}
			}
			type page struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			var p page
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials?limit=3", nil).json(t, &p)
			if len(p.Items) != 3 || p.NextCursor != "" {
				t.Fatalf("operator's page of 3: %d items, cursor %q: hidden materials showed through", len(p.Items), p.NextCursor)
			}
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials?limit=2", nil).json(t, &p)
			if len(p.Items) != 2 || p.NextCursor == "" {
				t.Fatalf("page of 2: %+v", p)
			}
			first := p.Items[0].ID
			w.op.expect(200, "GET", "/cases/"+caseID+"/materials?limit=2&cursor="+url.QueryEscape(p.NextCursor), nil).json(t, &p)
			if len(p.Items) != 1 || p.NextCursor != "" || p.Items[0].ID == first {
				t.Fatalf("second page: %+v", p)
			}
			w.prov.expect(200, "GET", "/cases/"+caseID+"/materials?limit=50", nil).json(t, &p)
			if len(p.Items) != 2 {
				t.Fatalf("provider sees %d materials, want its own 2", len(p.Items))
			}
			for _, path := range []string{"/cases/" + caseID + "/materials", "/cases/" + caseID + "/events", "/cases", "/audit/events", "/editions"} {
				p := w.op.expect(422, "GET", path+"?cursor=Zm9yZ2Vk", nil).problem(t)
				if p["code"] != "invalid_cursor" {
					t.Fatalf("%s with a forged cursor: %v", path, p)
				}
				p = w.op.expect(422, "GET", path+"?limit=0", nil).problem(t)
				if p["code"] != "invalid_limit" {
					t.Fatalf("%s with limit=0: %v", path, p)
				}
			}
			provMaterial := p.Items[0].ID
			for _, path := range []string{"/cases/" + caseID + "/uploads"} {
				if p := w.op.expect(422, "GET", path+"?cursor=Zm9yZ2Vk", nil).problem(t); p["code"] != "invalid_cursor" {
					t.Fatalf("%s with a forged cursor: %v", path, p)
				}
			}
			for _, path := range []string{"/materials/" + provMaterial + "/consents"} {
				if p := w.prov.expect(422, "GET", path+"?limit=501", nil).problem(t); p["code"] != "invalid_limit" {
					t.Fatalf("%s with limit=501: %v", path, p)
				}
			}
			// Submitted, so that the office sees the case: on a case it
			// cannot see, a forged cursor is the case's 404.
			w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
			for _, path := range []string{"/cases/" + caseID + "/assignments", "/deadlines", "/member-units", "/proposals"} {
				p := w.office.expect(422, "GET", path+"?cursor=Zm9yZ2Vk", nil).problem(t)
				if p["code"] != "invalid_cursor" {
					t.Fatalf("%s with a forged cursor: %v", path, p)
				}
			}
		})
	}
}
