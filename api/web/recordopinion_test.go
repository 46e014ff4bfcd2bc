package web

import (
	"strings"
	"testing"

	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/review"
)

// TestRecordOpinionForm: when the office may record an overdue unit's
// written answer, the transition form offers the overdue units (by name),
// the answer and the letter's number, and its help cites the opinions
// article through the edition (no number in the catalogue); with no unit
// overdue it says so instead.
// The clock shows an answer recorded from a letter with its reference.
func TestRecordOpinionForm(t *testing.T) {
	yes := true
	clk := &review.Clock{Phase: review.PhaseOpinions, DueOn: day(t, "2026-09-24"), AllowedWorkingDays: 15,
		Opinions: []review.MemberOpinion{
			{Org: "org1", Round: 1, DueOn: day(t, "2026-09-24"), Agree: &yes, AnsweredOn: day(t, "2026-09-04"), Reference: "工信部网安函〔2026〕17号"},
			{Org: "org2", Round: 1, DueOn: day(t, "2026-09-24"), Overdue: true},
		}}
	{
		v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "soliciting_opinions"},
			Actions: []string{"request_supplement", "record_opinion", "conclude"}, Clock: clk, OverdueUnits: []string{"org2"},
			People: map[string]person{"org2": {Name: "公安部"}}}
		renderCasePage(t, []string{"office_admin"}, v, func(L *Locale, html string) {
			_, form, ok := strings.Cut(html, `id="record-opinion"`)
			form, _, _ = strings.Cut(form, "</fieldset>")
			if !ok {
				t.Fatalf("%s: no record_opinion fields", L.Lang())
			}
			for _, want := range []string{`name="org"`, `<option value="org2">公安部</option>`, `name="agree" value="true"`, `name="agree" value="false"`,
				`name="opinion_reference"`, L.T("actions.record_opinion_help"), L.Art("opinions")} {
				if !strings.Contains(form, want) {
					t.Errorf("%s: the form lacks %q", L.Lang(), want)
				}
			}
			if !strings.Contains(html, L.Enum("action", "record_opinion")) {
				t.Errorf("%s: the step is not named", L.Lang())
			}
			_, clock, _ := strings.Cut(html, `id="opinions"`)
			clock, _, _ = strings.Cut(clock, "</table>")
			if !strings.Contains(clock, L.T("clock.by_letter", "Reference", "工信部网安函〔2026〕17号")) {
				t.Errorf("%s: the clock does not show the letter", L.Lang())
			}
		})
		v.OverdueUnits = nil
		renderCasePage(t, []string{"office_admin"}, v, func(L *Locale, html string) {
			if !strings.Contains(html, `id="no-overdue-unit"`) || strings.Contains(html, `name="opinion_reference"`) {
				t.Errorf("%s: with no unit overdue the form still asks for one", L.Lang())
			}
		})
	}
}

// TestRecordOpinionFields: the transition form's record_opinion fields
// reach the service as the request's org, agree and reference; an answer
// not chosen stays absent (the service refuses it), never a default.
func TestRecordOpinionFields(t *testing.T) {
	form := map[string]string{"org": "org2", "agree": "false", "opinion_reference": " 函〔2026〕1号 ", "reference": "CCAC-1"}
	org, agree, ref := recordOpinionFields(func(k string) string { return form[k] })
	if org != "org2" || agree == nil || *agree || ref != "函〔2026〕1号" {
		t.Fatalf("got %q %v %q", org, agree, ref)
	}
	form["agree"] = "true"
	if _, agree, _ = recordOpinionFields(func(k string) string { return form[k] }); agree == nil || !*agree {
		t.Fatalf("agree %v", agree)
	}
	delete(form, "agree")
	if _, agree, _ = recordOpinionFields(func(k string) string { return form[k] }); agree != nil {
		t.Fatalf("an unchosen answer became %v", *agree)
	}
}
