package web

import (
	htmlstd "html"
	"strings"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// renderCasePage renders the case page for roles, in each language, and
// hands each page (unescaped) and its locale to check.
func renderCasePage(t *testing.T, roles []string, v caseView, check func(L *Locale, html string)) {
	t.Helper()
	e, cat := viewsAndCatalogue(t)
	for _, tag := range languages {
		L := cat.locale(tag)
		p := &page{L: L, User: &access.User{ID: "u-self", DisplayName: "x"}, Roles: roles, Data: v}
		var b strings.Builder
		if err := e.views["case"].Execute(&b, p); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		check(L, htmlstd.UnescapeString(b.String()))
	}
}

func day(t *testing.T, s string) calendar.Date {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCasePageShowsTheConclusion: a concluded case says how it ended (the
// outcome in words, the conditions) among its facts, and the history's
// lines carry what each step decided: the outcome and conditions of the
// conclusion, the items a request asked for, the item an upload answered.
func TestCasePageShowsTheConclusion(t *testing.T) {
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	hist := []review.Event{
		{Seq: 1, Action: review.RequestSupplement, To: review.AwaitingSupplement, At: at, Items: []string{"供应链安全说明", "源代码审计报告"}},
		{Seq: 2, Action: review.SupplementItem, To: review.AwaitingSupplement, At: at, Item: 2},
		{Seq: 3, Action: review.Conclude, To: review.Concluded, At: at, On: day(t, "2026-12-23"), Outcome: "passed_with_conditions",
			Conditions: []string{"每年报告供应链情况"}},
	}
	v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "concluded"}, History: hist, Conclusion: &hist[2], ClosedOn: hist[2].On}
	renderCasePage(t, []string{"operator"}, v, func(L *Locale, html string) {
		_, fact, ok := strings.Cut(html, `id="conclusion"`)
		if !ok {
			t.Fatalf("%s: no conclusion among the facts", L.Lang())
		}
		fact, _, _ = strings.Cut(fact, "</dd>")
		for _, want := range []string{L.T("case.conclusion"), L.Enum("outcome", "passed_with_conditions"), "每年报告供应链情况", L.Date("2026-12-23")} {
			if !strings.Contains(html, want) {
				t.Errorf("%s: the page lacks %q", L.Lang(), want)
			}
		}
		if !strings.Contains(fact, "每年报告供应链情况") || !strings.Contains(fact, L.Enum("outcome", "passed_with_conditions")) {
			t.Errorf("%s: the conclusion fact lacks the outcome or the condition: %s", L.Lang(), fact)
		}
		_, history, _ := strings.Cut(html, `id="hist-h"`)
		for _, want := range []string{L.T("history.outcome", "Outcome", L.Enum("outcome", "passed_with_conditions")), "每年报告供应链情况",
			"供应链安全说明", "源代码审计报告", L.T("history.item", "No", 2)} {
			if !strings.Contains(history, want) {
				t.Errorf("%s: the history lacks %q", L.Lang(), want)
			}
		}
	})
	// A running case has no conclusion to show.
	v = caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "under_review"}}
	renderCasePage(t, []string{"operator"}, v, func(L *Locale, html string) {
		if strings.Contains(html, `id="conclusion"`) {
			t.Errorf("%s: a running case shows a conclusion", L.Lang())
		}
	})
}

// TestClockPanelPausedAndClosed: while the clock is stopped for
// supplements, the panel says since when, and gives the due date as a
// projection that moves, not as a deadline with days left; once the case
// is closed it says when the review ended and counts no days left.
func TestClockPanelPausedAndClosed(t *testing.T) {
	due := day(t, "2027-01-14")
	paused := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "awaiting_supplement"}, DaysLeft: 30,
		Clock: &review.Clock{Phase: review.PhasePreliminary, DueOn: due, AllowedWorkingDays: 30, UsedWorkingDays: 0, Paused: true,
			Pauses: []review.Pause{{From: day(t, "2026-12-03")}}}}
	renderCasePage(t, []string{"operator"}, paused, func(L *Locale, html string) {
		_, clock, _ := strings.Cut(html, `id="clock-h"`)
		clock, _, _ = strings.Cut(clock, "</section>")
		for _, want := range []string{L.T("clock.paused_since", "On", L.Date("2026-12-03")), L.T("clock.projected"), L.Date("2027-01-14"),
			L.T("clock.projected_help")} {
			if !strings.Contains(clock, want) {
				t.Errorf("%s: the paused clock lacks %q", L.Lang(), want)
			}
		}
		for _, not := range []string{">" + L.T("clock.due_on") + "<", L.N("clock.days_left", 30)} {
			if strings.Contains(clock, not) {
				t.Errorf("%s: the paused clock shows %q as if it ran", L.Lang(), not)
			}
		}
	})
	closed := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "concluded"}, DaysLeft: 15, ClosedOn: day(t, "2026-12-02"),
		Clock: &review.Clock{Phase: review.PhaseClosed, DueOn: day(t, "2026-12-23"), AllowedWorkingDays: 15, UsedWorkingDays: 0}}
	renderCasePage(t, []string{"operator"}, closed, func(L *Locale, html string) {
		_, clock, _ := strings.Cut(html, `id="clock-h"`)
		clock, _, _ = strings.Cut(clock, "</section>")
		if !strings.Contains(clock, L.T("clock.ended_on", "On", L.Date("2026-12-02"))) {
			t.Errorf("%s: the closed clock does not say when the review ended", L.Lang())
		}
		for _, not := range []string{">" + L.T("clock.due_on") + "<", L.N("clock.days_left", 15), L.Date("2026-12-23")} {
			if strings.Contains(clock, not) {
				t.Errorf("%s: the closed clock shows %q", L.Lang(), not)
			}
		}
	})
}

// TestInspectorIsLinkedNoContent: an inspector reads no document but the
// evidence a complaint cites, so the case page links no other (each click
// was a refused read in the audit trail under the inspector's name); the
// office still gets every link. A workflow notice is never offered for
// consent: it is the office's, not the party's to disclose.
func TestInspectorIsLinkedNoContent(t *testing.T) {
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	ms := []vault.Material{{ID: "m-decl", Kind: "declaration", Filename: "declaration.pdf", UploadedAt: at, UploadedBy: "u-self"},
		{ID: "m-evid", Kind: "evidence", Filename: "evidence.pdf", UploadedAt: at, UploadedBy: "u-self"},
		{ID: "m-note", Kind: "notice", Filename: "notice.txt", UploadedAt: at, UploadedBy: "u-self"}}
	v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "under_review"}, Materials: ms, Notices: ms[2:], NoContent: true}
	renderCasePage(t, []string{"inspector"}, v, func(L *Locale, html string) {
		for _, id := range []string{"m-decl", "m-note"} {
			if strings.Contains(html, `href="/materials/`+id) {
				t.Errorf("%s: the inspector is linked %s", L.Lang(), id)
			}
		}
		if !strings.Contains(html, `href="/materials/m-evid"`) || !strings.Contains(html, "declaration.pdf") {
			t.Errorf("%s: the inspector lost the evidence link or the list", L.Lang())
		}
	})
	v.NoContent = false
	renderCasePage(t, []string{"operator"}, v, func(L *Locale, html string) {
		for _, id := range []string{"m-decl", "m-note", "m-evid"} {
			if !strings.Contains(html, `href="/materials/`+id+`"`) {
				t.Errorf("%s: %s is not linked", L.Lang(), id)
			}
		}
		if !strings.Contains(html, `href="/materials/m-decl/consents"`) || strings.Contains(html, `href="/materials/m-note/consents"`) {
			t.Errorf("%s: consent links: declaration %v, notice %v; want only the declaration", L.Lang(),
				strings.Contains(html, `href="/materials/m-decl/consents"`), strings.Contains(html, `href="/materials/m-note/consents"`))
		}
	})
}

// TestUploadFormOffersWhatMayBeStored: the upload form lists only the
// kinds it is given (vault.UploadKinds), and none at all means no form;
// while supplements are outstanding it asks which requested item the
// files answer, by number and text.
func TestUploadFormOffersWhatMayBeStored(t *testing.T) {
	v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "awaiting_supplement"}, Kinds: []string{"other", "supplementary", "evidence"},
		OpenItems: []review.RequestedItem{{No: 1, Text: "供应链安全说明"}, {No: 2, Text: "源代码审计报告"}}}
	renderCasePage(t, []string{"operator"}, v, func(L *Locale, html string) {
		_, form, ok := strings.Cut(html, `id="upload-form"`)
		if !ok {
			t.Fatalf("%s: no upload form", L.Lang())
		}
		form, _, _ = strings.Cut(form, "</form>")
		for _, k := range vault.Kinds {
			if got, want := strings.Contains(form, `<option value="`+k+`">`), k == "other" || k == "supplementary" || k == "evidence"; got != want {
				t.Errorf("%s: kind %s offered %v, want %v", L.Lang(), k, got, want)
			}
		}
		for _, want := range []string{`<select id="item" name="item"`, `<option value="2">2. 源代码审计报告</option>`, L.T("upload.item")} {
			if !strings.Contains(form, want) {
				t.Errorf("%s: the upload form lacks %q", L.Lang(), want)
			}
		}
		// The item comes after the kind and before the files, the order
		// the streamed form reads its parts in.
		if k, i, f := strings.Index(form, `name="kind"`), strings.Index(form, `name="item"`), strings.Index(form, `name="file"`); !(k < i && i < f) {
			t.Errorf("%s: parts in the order kind %d, item %d, file %d", L.Lang(), k, i, f)
		}
	})
	v.OpenItems = nil
	renderCasePage(t, []string{"operator"}, v, func(L *Locale, html string) {
		if strings.Contains(html, `name="item"`) {
			t.Errorf("%s: an item choice with nothing outstanding", L.Lang())
		}
	})
	v.Kinds = nil
	renderCasePage(t, []string{"member_unit"}, v, func(L *Locale, html string) {
		if strings.Contains(html, `id="upload-form"`) {
			t.Errorf("%s: an upload form with no kind to upload", L.Lang())
		}
	})
}

// TestOpinionFormWhenTheRoundAwaitsTheUnit: the opinion form is there
// when the unit's answer is due (either round), and for a unit that has
// not declared yet it is the way to the declaration instead, which the
// opinion needs first.
func TestOpinionFormWhenTheRoundAwaitsTheUnit(t *testing.T) {
	form := `action="/cases/c1/opinions"`
	for _, c := range []struct {
		due, declared, wantForm, wantDeclare bool
	}{
		{due: true, declared: true, wantForm: true},
		{due: true, declared: false, wantDeclare: true},
		{due: false, declared: true},
	} {
		v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "special_review"}, OpinionDue: c.due}
		if c.declared {
			v.Declaration = &access.Declaration{}
		}
		renderCasePage(t, []string{"member_unit"}, v, func(L *Locale, html string) {
			if got := strings.Contains(html, form); got != c.wantForm {
				t.Errorf("%s %+v: opinion form %v", L.Lang(), c, got)
			}
			if got := strings.Contains(html, `<a href="#decl-h">`+L.T("opinion.declare_first")); got != c.wantDeclare {
				t.Errorf("%s %+v: the way to the declaration %v", L.Lang(), c, got)
			}
		})
	}
}

// TestSpecialExtensionBoundIsTheService: the extension field allows what
// the service allows; a lower bound in the page stopped the office in the
// browser before the server could answer.
func TestSpecialExtensionBoundIsTheService(t *testing.T) {
	v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "special_review"}, Actions: []string{"extend_special"},
		MaxSpecialDays: review.MaxSpecialExtension}
	renderCasePage(t, []string{"office_admin"}, v, func(L *Locale, html string) {
		_, input, ok := strings.Cut(html, `<input id="days"`)
		input, _, _ = strings.Cut(input, ">")
		if !ok || !strings.Contains(input, ` max="90"`) {
			t.Errorf("%s: the days field %q, want max=\"90\"", L.Lang(), input)
		}
	})
}

// TestAccountApprovalHelpNamesTheException: every role but the system
// administrator's reaches content (access.reachesContent), so the help on
// creating accounts names that one role as the exception rather than
// listing a few that need approval.
func TestAccountApprovalHelpNamesTheException(t *testing.T) {
	_, cat := viewsAndCatalogue(t)
	for _, tag := range languages {
		L := cat.locale(tag)
		help := strings.ToLower(L.T("users.create_help"))
		if !strings.Contains(help, strings.ToLower(L.Enum("role", "sysadmin"))) {
			t.Errorf("%s: %q does not name the system administrator as the exception", tag, help)
		}
		for _, r := range []string{"reviewer", "member_unit", "inspector"} {
			if !strings.Contains(help, strings.ToLower(L.Enum("role", r))) {
				t.Errorf("%s: %q does not say %s accounts need approval too", tag, help, r)
			}
		}
	}
}

// TestUploadItemRefusalsInWords: a supplementary upload naming an item
// that is not outstanding (a second file for an item already answered) is
// refused with a message that says why, not the generic "invalid".
func TestUploadItemRefusalsInWords(t *testing.T) {
	_, cat := viewsAndCatalogue(t)
	a := &app{cat: cat}
	for _, code := range []string{review.CodeUnknownItem, "invalid_item"} {
		if got := a.errorMessage(code, 422); got != "error."+code {
			t.Errorf("%s is shown as %s", code, got)
		}
	}
}

// TestConclusionFormAsksTheEditionsFactors: the conclusion form has a
// finding field for each factor of the case's own edition, named in its
// wording with its item, and no other.
func TestConclusionFormAsksTheEditionsFactors(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	for _, ed := range review.Editions() {
		for _, tag := range languages {
			L := cat.locale(tag).ForEdition(ed.ID)
			v := caseView{Case: vault.Case{ID: "c1", Title: "T", Status: "soliciting_opinions", Edition: ed.ID}, Actions: []string{"conclude"}, Outcomes: review.Outcomes()}
			p := &page{L: L, User: &access.User{ID: "u-self"}, Roles: []string{"office_admin"}, Data: v}
			var b strings.Builder
			if err := e.views["case"].Execute(&b, p); err != nil {
				t.Fatal(err)
			}
			html := htmlstd.UnescapeString(b.String())
			if n := strings.Count(html, `name="factor_`); n != len(ed.Factors) {
				t.Errorf("%s %s: %d factor fields, want %d", ed.ID, tag, n, len(ed.Factors))
			}
			last := ed.Factors[len(ed.Factors)-1]
			label := L.Factor(last.Key)
			if !strings.Contains(html, label) || strings.Contains(label, "factor.") {
				t.Errorf("%s %s: the last factor is not named in words: %q", ed.ID, tag, label)
			}
		}
	}
	// The two editions word "other" differently.
	zh := cat.locale(languages[0])
	if a, b := zh.ForEdition("2020").Factor("other"), zh.ForEdition("2021").Factor("other"); a == b || !strings.HasPrefix(a, "（五）") || !strings.HasPrefix(b, "（七）") {
		t.Errorf("other factors: 2020 %q, 2021 %q", a, b)
	}
}

// TestMeasuresNumberedAsTheServiceDoes: measures recorded in two steps are
// numbered on from the first, as review.Apply numbers those a report
// names, and each report lands under its measure.
func TestMeasuresNumberedAsTheServiceDoes(t *testing.T) {
	h := []review.Event{
		{Action: review.RecordMeasures, Measures: []string{"a", "b"}},
		{Action: review.ReportMeasures, Measure: 2, Reason: "b done"},
		{Action: review.RecordMeasures, Measures: []string{"c"}},
		{Action: review.ReportMeasures, Measure: 3, Reason: "c done"},
	}
	ms := measuresOf(h)
	if len(ms) != 3 || ms[2].No != 3 || ms[2].Text != "c" || len(ms[0].Reports) != 0 ||
		len(ms[1].Reports) != 1 || ms[1].Reports[0].Reason != "b done" || len(ms[2].Reports) != 1 {
		t.Fatalf("measures: %+v", ms)
	}
}
