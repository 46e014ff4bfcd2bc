package review_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// procedure drives one case through a script of dated steps, checking
// refusals and the clock on the way.
type procedure struct {
	t     *testing.T
	cal   *calendar.Calendar
	f     review.Facts
	h     []review.Event
	s     review.Status
	phase string
}

func (p *procedure) do(st step) review.Event {
	p.t.Helper()
	role := st.role
	if role == "" {
		role = roleOf(st.a)
	}
	next, e, err := review.Apply(p.s, p.h, st.a, role, p.f, input(p.t, st))
	if err != nil {
		p.t.Fatalf("%s: %s on %s: %v", p.phase, st.a, st.on, err)
	}
	p.h, p.s = append(p.h, e), next
	return e
}

// refuse expects st to be refused with code, changing nothing.
func (p *procedure) refuse(st step, code string, missing ...string) {
	p.t.Helper()
	role := st.role
	if role == "" {
		role = roleOf(st.a)
	}
	_, _, err := review.Apply(p.s, p.h, st.a, role, p.f, input(p.t, st))
	var ge *review.GuardError
	var ite *review.IllegalTransitionError
	switch {
	case code == "illegal_transition" && errors.As(err, &ite):
	case errors.As(err, &ge) && ge.Code == code && (missing == nil || slices.Equal(ge.Missing, missing)):
	default:
		p.t.Fatalf("%s: %s on %s: err = %v, want %s %v", p.phase, st.a, st.on, err, code, missing)
	}
}

// lastItem is the number of the newest item requested in the current phase.
func (p *procedure) lastItem(today string) int {
	p.t.Helper()
	its := p.clock(today).SupplementItems
	if len(its) == 0 {
		p.t.Fatal("no items requested")
	}
	return its[len(its)-1].No
}

// wd is n working days after from, by the calendar.
func (p *procedure) wd(from string, n int) string {
	p.t.Helper()
	d, err := p.cal.WorkdaysAfter(day(p.t, from), n)
	if err != nil {
		p.t.Fatal(err)
	}
	return d.String()
}

func (p *procedure) clock(today string) review.Clock {
	p.t.Helper()
	c, err := review.DeriveClock(p.cal, p.h, day(p.t, today))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// want checks the clock on today.
func (p *procedure) want(today string, phase review.Phase, start, due string, allowed int, paused bool) review.Clock {
	p.t.Helper()
	c := p.clock(today)
	if c.Phase != phase || fmtDate(c.StartedOn) != start || fmtDate(c.DueOn) != due || c.AllowedWorkingDays != allowed || c.Paused != paused || c.DueOnProvisional {
		p.t.Fatalf("%s: clock on %s = %+v\nwant phase %s start %s due %s allowed %d paused %v", p.phase, today, c, phase, start, due, allowed, paused)
	}
	return c
}

// TestProcedure walks one case per edition through every phase of the
// procedure, in 2026 (an official year), with supplements in each phase,
// an incomplete application (2021), a silent member unit, the special
// review's steps in order with each refusal when one is missing, and the
// structured conclusion; the clock is checked on dated steps.
func TestProcedure(t *testing.T) {
	for _, ed := range review.Editions() {
		t.Run(ed.ID, func(t *testing.T) {
			f := facts
			f.LatestRecommendation = day(t, "2026-03-30")
			members := []string{"org1", "org2", "org3"} // org3 is the CSRC
			if ed.ID == "2020" {
				members = []string{"dept", "org1", "org2"} // a registered CII protection department
			}
			p := &procedure{t: t, cal: cal(t), f: f, s: review.Draft, phase: "determination"}

			// Determination (2020 Art. 8 / 2021 Art. 9), 10 working days.
			p.do(step{on: "2026-03-02", a: review.Submit, edition: ed.ID})
			p.want("2026-03-03", review.PhaseDetermination, "2026-03-02", "2026-03-16", 10, false)
			start := "2026-03-02"
			if ed.CompleteMaterials {
				// 2021 Art. 9: incomplete materials; the 10 days run from
				// the day the last requested item arrives.
				p.do(step{on: "2026-03-03", a: review.MarkIncomplete, items: []string{"signed declaration form", "impact analysis annex"}})
				// Waiting, the 10 days are projected from today, as if the
				// materials were complete today: nothing counts from filing.
				p.want("2026-03-05", review.PhaseDetermination, "2026-03-02", p.wd("2026-03-05", 10), 10, true)
				p.do(step{on: "2026-03-05", a: review.SupplementItem, item: 1})
				p.refuse(step{on: "2026-03-05", a: review.SupplementReceived, role: review.RoleOperator}, review.CodeItemsOutstanding)
				p.do(step{on: "2026-03-09", a: review.SupplementItem, item: 2, role: review.RoleProvider})
				p.do(step{on: "2026-03-09", a: review.SupplementReceived, role: review.RoleProvider})
				c := p.want("2026-03-09", review.PhaseDetermination, "2026-03-09", "2026-03-23", 10, false)
				if len(c.SupplementItems) != 2 || !c.SupplementItems[1].Received || c.SupplementItems[1].ReceivedOn.String() != "2026-03-09" {
					t.Fatalf("items %+v", c.SupplementItems)
				}
				start = "2026-03-09"
			} else {
				p.refuse(step{on: "2026-03-03", a: review.MarkIncomplete}, review.CodeNotInEdition)
			}
			// A supplement during the determination: stopped 03-11 and 03-12.
			p.do(step{on: "2026-03-10", a: review.RequestSupplement, items: []string{"network diagram"}})
			p.do(step{on: "2026-03-12", a: review.SupplementItem, item: p.lastItem("2026-03-12")})
			p.do(step{on: "2026-03-12", a: review.SupplementReceived, role: review.RoleOperator})
			p.want("2026-03-12", review.PhaseDetermination, start, p.wd(start, 12), 10, false)

			// Preliminary review (Art. 10 / 11), 30 working days; two
			// requests in one stop, and a second stop the office closes
			// early: 4 + 2 stopped working days add up.
			p.phase = "preliminary"
			p.do(step{on: "2026-03-13", a: review.RequireReview})
			p.do(step{on: "2026-03-16", a: review.RequestSupplement, items: []string{"escrow agreement"}})
			p.do(step{on: "2026-03-18", a: review.RequestSupplement, items: []string{"pen-test report"}})
			its := p.clock("2026-03-18").SupplementItems
			n := its[len(its)-1].No // items are numbered per case
			p.do(step{on: "2026-03-19", a: review.SupplementItem, item: n - 1})
			p.do(step{on: "2026-03-20", a: review.SupplementItem, item: n})
			p.do(step{on: "2026-03-20", a: review.SupplementReceived, role: review.RoleOperator})
			p.want("2026-03-20", review.PhasePreliminary, "2026-03-13", p.wd("2026-03-13", 34), 30, false)
			p.do(step{on: "2026-03-23", a: review.RequestSupplement, items: []string{"source code"}})
			p.refuse(step{on: "2026-03-25", a: review.SupplementReceived, reason: " "}, review.CodeReasonRequired)
			p.do(step{on: "2026-03-25", a: review.SupplementReceived, reason: "reviewed on site instead"})
			c := p.want("2026-03-26", review.PhasePreliminary, "2026-03-13", p.wd("2026-03-13", 36), 30, false)
			if len(c.Pauses) != 2 || c.Pauses[0].From.String() != "2026-03-17" || c.Pauses[0].To.String() != "2026-03-20" || c.Pauses[1].To.String() != "2026-03-25" {
				t.Fatalf("pauses %+v", c.Pauses)
			}
			p.do(step{on: "2026-03-26", a: review.Extend, reason: "complex supply chain"})
			p.want("2026-03-26", review.PhasePreliminary, "2026-03-13", p.wd("2026-03-13", 51), 45, false)

			// Opinions (Art. 11 / 12): the round is fixed at the recommendation.
			p.phase = "opinions"
			e := p.do(step{on: "2026-04-01", a: review.Recommend, members: members})
			if !slices.Equal(e.Members, members) {
				t.Fatalf("members %v", e.Members)
			}
			p.do(step{on: "2026-04-02", a: review.Opinion, actor: "mu1", agree: ptr(true)})
			// A supplement in the opinion phase: 04-04..06 are Qingming, so
			// 04-07 and 04-08 are the 2 working days stopped; the units wait.
			p.do(step{on: "2026-04-03", a: review.RequestSupplement})
			p.refuse(step{on: "2026-04-07", a: review.Opinion, actor: "mu2", agree: ptr(true)}, "illegal_transition")
			p.do(step{on: "2026-04-08", a: review.SupplementReceived, reason: "clarified by phone"})
			due := p.wd("2026-04-01", 17)
			p.want("2026-04-09", review.PhaseOpinions, "2026-04-01", due, 15, false)
			third := map[string]string{"2020": "dept", "2021": "org3"}[ed.ID]
			p.do(step{on: "2026-04-09", a: review.Opinion, actor: "third-unit-user", org: third, agree: ptr(true)})
			// org2 stays silent past the deadline: overdue, never agreeing.
			after := day(t, due).AddDays(1).String()
			c = p.clock(after)
			for _, mo := range c.Opinions {
				silent := mo.Org == "org2"
				if mo.DueOn.String() != due || mo.Overdue != silent || (mo.Agree == nil) != silent {
					t.Fatalf("opinion of %s on %s: %+v", mo.Org, after, mo)
				}
			}
			if !c.Overdue || len(c.Opinions) != 3 {
				t.Fatalf("opinion clock %+v", c)
			}
			p.refuse(step{on: after, a: review.Conclude}, review.CodeOpinionsPending, "org2")

			// Special review (Art. 12-13 / 13-14): 45 or 90 working days.
			p.phase = "special"
			p.do(step{on: "2026-04-30", a: review.Opinion, actor: "mu2", agree: ptr(false), reason: "supply continuity"})
			p.want("2026-04-30", review.PhaseSpecial, "2026-04-30", p.wd("2026-04-30", ed.SpecialDays), ed.SpecialDays, false)
			for _, a := range []review.Action{review.Recommend, review.RecordApproval, review.Conclude} {
				p.refuse(step{on: "2026-05-06", a: a}, review.CodeStepMissingHearing)
			}
			p.do(step{on: "2026-05-06", a: review.RequestSupplement})
			p.do(step{on: "2026-05-08", a: review.SupplementItem, item: p.lastItem("2026-05-08")})
			p.do(step{on: "2026-05-08", a: review.SupplementReceived, role: review.RoleOperator})
			p.want("2026-05-08", review.PhaseSpecial, "2026-04-30", p.wd("2026-04-30", ed.SpecialDays+2), ed.SpecialDays, false)
			p.do(step{on: "2026-05-11", a: review.RecordHearing, reason: "heard MIIT, MPS and the operator"})
			p.refuse(step{on: "2026-05-11", a: review.Recommend}, review.CodeRecommendationRequired) // uploaded before the hearing
			p.refuse(step{on: "2026-05-11", a: review.RecordApproval}, review.CodeStepMissingRecommendation)
			p.refuse(step{on: "2026-05-11", a: review.Conclude}, review.CodeStepMissingRecommendation)
			p.f.LatestRecommendation = day(t, "2026-05-12")
			p.do(step{on: "2026-05-12", a: review.Recommend, members: []string{"org1", "org2"}})
			p.refuse(step{on: "2026-05-12", a: review.RecordApproval}, review.CodeStepMissingOpinions, "org1", "org2")
			p.do(step{on: "2026-05-13", a: review.Opinion, actor: "mu1", agree: ptr(true)})
			p.refuse(step{on: "2026-05-13", a: review.Conclude}, review.CodeStepMissingOpinions, "org2")
			p.do(step{on: "2026-05-14", a: review.Opinion, actor: "mu2", agree: ptr(false)}) // still disagrees: the Commission decides
			p.refuse(step{on: "2026-05-14", a: review.Conclude}, review.CodeStepMissingApproval)
			p.refuse(step{on: "2026-05-15", a: review.RecordApproval, ref: " "}, review.CodeReferenceRequired)
			e = p.do(step{on: "2026-05-15", a: review.RecordApproval, ref: "CCAC approval [2026] No. 12"})
			if e.Reference != "CCAC approval [2026] No. 12" || e.Actor == "" || e.At.IsZero() {
				t.Fatalf("approval %+v", e)
			}
			p.refuse(step{on: "2026-05-15", a: review.RecordHearing}, "illegal_transition")
			p.do(step{on: "2026-05-18", a: review.ExtendSpecial, reason: "complex", days: 10})
			p.want("2026-05-18", review.PhaseSpecial, "2026-04-30", p.wd("2026-04-30", ed.SpecialDays+12), ed.SpecialDays+10, false)
			factor := "data_security"
			if ed.ID == "2020" {
				factor = "supply_interruption"
			}
			foreign := map[string]string{"2020": "data_security", "2021": "market_share"}[ed.ID] // not a factor of this edition
			p.refuse(step{on: "2026-05-20", a: review.Conclude, outcome: review.OutcomePassed, factors: []review.FactorFinding{{Factor: foreign, Finding: "x"}}}, review.CodeUnknownFactor)
			e = p.do(step{on: "2026-05-20", a: review.Conclude, outcome: review.OutcomePassedWithConditions, conds: []string{"keep logs in China"},
				factors: []review.FactorFinding{{Factor: factor, Finding: "a second source is contracted"}}})
			if e.Outcome != review.OutcomePassedWithConditions || len(e.Conditions) != 1 || len(e.Factors) != 1 || e.Factors[0].Factor != factor {
				t.Fatalf("conclusion %+v", e)
			}
			c = p.clock("2026-06-01")
			if p.s != review.Concluded || c.Phase != review.PhaseClosed || c.Overdue {
				t.Fatalf("after conclusion: %s %+v", p.s, c)
			}
		})
	}
}

// TestEditions: the tables hold what the two texts say.
func TestEditions(t *testing.T) {
	e20, e21 := review.Edition2020, review.Edition2021
	if len(e20.Members) != 12 || len(e21.Members) != 13 {
		t.Fatalf("members: %d, %d", len(e20.Members), len(e21.Members))
	}
	if _, ok := e20.Member("csrc"); ok {
		t.Error("the CSRC is a member in 2020")
	}
	if _, ok := e21.Member("csrc"); !ok {
		t.Error("the CSRC is not a member in 2021")
	}
	if e20.SpecialDays != 45 || e21.SpecialDays != 90 || len(e20.Factors) != 5 || len(e21.Factors) != 7 {
		t.Errorf("special days %d/%d, factors %d/%d", e20.SpecialDays, e21.SpecialDays, len(e20.Factors), len(e21.Factors))
	}
	for _, tt := range []struct {
		ed   *review.Edition
		a    review.Article
		want string
	}{
		{e20, review.ArtDetermination, "Art. 8"}, {e21, review.ArtDetermination, "Art. 9"},
		{e20, review.ArtSupplements, "Art. 14"}, {e21, review.ArtSupplements, "Art. 15"},
		{e20, review.ArtSpecialDuration, "Art. 13"}, {e21, review.ArtSpecialDuration, "Art. 14"},
		{e20, review.ArtStateSecrets, "Art. 21"}, {e21, review.ArtStateSecrets, "Art. 22"},
		{e20, review.ArtListing, ""}, {e21, review.ArtListing, "Art. 7"},
	} {
		if got := tt.ed.Art(tt.a); got != tt.want {
			t.Errorf("%s: article %d = %q, want %q", tt.ed.ID, tt.a, got, tt.want)
		}
	}
	for d, want := range map[string]string{"2020-06-01": "2020", "2022-02-14": "2020", "2022-02-15": "2021", "2026-11-30": "2021"} {
		if got := review.EditionOn(day(t, d)).ID; got != want {
			t.Errorf("EditionOn(%s) = %s, want %s", d, got, want)
		}
	}
	if e20.HasCaseType(review.TypeListingAbroad) || !e21.HasCaseType(review.TypeDataProcessing) {
		t.Error("case types")
	}
	// Chinese citations, as the pages and notices write them.
	for _, tt := range []struct {
		ed   *review.Edition
		a    review.Article
		want string
	}{
		{e20, review.ArtMaterials, "第七条"}, {e21, review.ArtMaterials, "第八条"},
		{e20, review.ArtPreliminary, "第十条"}, {e21, review.ArtPreliminary, "第十一条"},
		{e21, review.ArtSupplements, "第十五条"}, {e21, review.ArtStateSecrets, "第二十二条"},
		{e20, review.ArtListing, ""},
	} {
		if got := tt.ed.ArtZh(tt.a); got != tt.want {
			t.Errorf("%s: article %d in Chinese = %q, want %q", tt.ed.ID, tt.a, got, tt.want)
		}
	}
	if !strings.Contains(e21.TitleZh, "第8号") || !strings.Contains(e20.TitleZh, "第6号") {
		t.Errorf("Chinese titles: %q, %q", e20.TitleZh, e21.TitleZh)
	}
	if _, err := review.EditionByID("2019"); !errors.Is(err, review.ErrUnknownEdition) {
		t.Errorf("EditionByID(2019): %v", err)
	}
}
