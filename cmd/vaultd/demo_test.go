package main

import (
	"regexp"
	"strings"
	"testing"
)

// vaultd demo fills an empty data directory with accounts that can sign in
// and a case under review that they can see, and refuses a second time.
func TestDemo(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	out := s.mustCLI("", "demo")
	rows := regexp.MustCompile(`(?m)^(\w+)\s+([a-z0-9]{5}(?:-[a-z0-9]{5}){3})\s+(\w+)\s`).FindAllStringSubmatch(out, -1)
	if len(rows) != 6 {
		t.Fatalf("demo printed %d accounts:\n%s", len(rows), out)
	}
	if _, errs, code := s.cli("", "demo"); code == 0 || !strings.Contains(errs, "empty data directory") {
		t.Fatalf("second demo: exit %d: %s", code, errs)
	}
	s.start()
	if strings.Contains(s.log.String(), "/setup?token=") {
		t.Error("a setup URL was offered on a database with accounts")
	}
	roles := map[string]*client{}
	for _, r := range rows {
		roles[r[3]] = s.login(t, r[1], r[2])
	}
	var page struct {
		Items []struct {
			ID, Status string
		} `json:"items"`
	}
	for _, role := range []string{"operator", "provider", "office_admin", "reviewer"} {
		roles[role].expect(200, "GET", "/cases", nil).json(t, &page)
		if len(page.Items) != 1 || page.Items[0].Status != "under_review" {
			t.Errorf("%s sees %+v, want the one case under review", role, page.Items)
		}
	}
	var mats struct {
		Items []struct{ Kind string } `json:"items"`
	}
	roles["operator"].expect(200, "GET", "/cases/"+page.Items[0].ID+"/materials", nil).json(t, &mats)
	if len(mats.Items) < 3 {
		t.Errorf("demo case has %d materials", len(mats.Items))
	}
}
