package web

import (
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/supervision"
)

// TestAuditPagesInWords: the audit page names every action in words, the
// sign-ins and account steps included, and actors that are no account
// (the vault's own jobs, the command line); its action filter is a list of
// those words; the complaint's evidence names its actions the same way.
func TestAuditPagesInWords(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	events := []audit.Event{{Seq: 1, Time: at, Actor: "u1", Action: "session.create", Outcome: audit.Allowed},
		{Seq: 2, Time: at, Actor: "system", Action: "deadline.flag", Outcome: audit.Allowed},
		{Seq: 3, Time: at, Actor: "cli", Action: "user.create", Outcome: audit.Allowed},
		{Seq: 4, Time: at, Actor: "me", Action: "material.read", Outcome: audit.Allowed}}
	L := cat.locale(languages[0])
	p := &page{L: L, User: &access.User{ID: "me", DisplayName: "x"}, Roles: []string{"inspector"},
		Data: auditView{Filter: map[string]string{"action": "material.read"}, Events: events, Actions: vault.AuditActions(), People: map[string]person{}}}
	var b strings.Builder
	if err := e.views["audit"].Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"登录", "创建账号", L.T("actor.system"), L.T("actor.cli"), L.T("audit.actor_you"),
		`<select id="f-action" name="action">`, `<option value="material.read" selected>` + L.T("audit_action.material.read") + `</option>`,
		`<option value="session.create">登录</option>`} {
		if !strings.Contains(html, want) {
			t.Errorf("the audit page lacks %q", want)
		}
	}
	ev := &supervision.Evidence{Events: []supervision.EvidenceEvent{{Event: events[3]}}}
	p = &page{L: L, User: &access.User{DisplayName: "x"}, Roles: []string{"inspector"},
		Data: complaintView{Complaint: supervision.Complaint{ID: "k1", CaseID: "c1", Kind: "unfair", Status: "open"}, Evidence: ev, People: map[string]person{}}}
	b.Reset()
	if err := e.views["complaint"].Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	if want := "<td>" + L.T("audit_action.material.read") + "<br>"; !strings.Contains(b.String(), want) {
		t.Errorf("the complaint's evidence lacks %q", want)
	}
	// A party is offered only the actions it may be shown.
	for _, a := range vault.PartyAuditActions() {
		if a == "session.create" || a == "assignment.create" || a == "opinion.create" {
			t.Errorf("a party's filter offers %s", a)
		}
	}
}
