package review

import (
	"errors"
	"fmt"

	"github.com/crvault/crvault/vault/calendar"
)

// Phase names the statutory period a case's clock is in.
type Phase string

// The phases. PhaseNone is a draft; PhaseClosed a case that is not_required
// or concluded (the Clock then describes the last phase, stopped on the day
// the case closed).
const (
	PhaseNone          Phase = "none"
	PhaseDetermination Phase = "determination"
	PhasePreliminary   Phase = "preliminary_review"
	PhaseOpinions      Phase = "member_unit_opinions"
	PhaseSpecial       Phase = "special_review"
	PhaseClosed        Phase = "closed"
)

// Pause is a stop of the clock for supplementary materials (Art. 14): the
// working days From to To inclusive do not count. To is nil while the case
// still waits. From is the day after the request; a supplement received on
// the day of the request stops no day, and leaves no Pause.
type Pause struct {
	From calendar.Date  `json:"from"`
	To   *calendar.Date `json:"to"`
}

// Extension is one extend or extend_special.
type Extension struct {
	On     calendar.Date `json:"on"`
	Days   int           `json:"days"`
	Reason string        `json:"reason"`
	Actor  string        `json:"actor"`
}

// Clock is the state of a case's current statutory period, as served by
// GET /cases/{case}/clock.
type Clock struct {
	Phase     Phase         `json:"phase"`
	Edition   string        `json:"edition,omitempty"` // the edition governing the case; absent for a draft
	StartedOn calendar.Date `json:"started_on"`
	DueOn     calendar.Date `json:"due_on"`
	// DueOnProvisional: DueOn rests on the provisional calendar model (a
	// working day counted lies in a year with no official schedule yet); it
	// is re-derived when that year is imported.
	DueOnProvisional   bool `json:"due_on_provisional"`
	AllowedWorkingDays int  `json:"allowed_working_days"`
	UsedWorkingDays    int  `json:"used_working_days"`
	Paused             bool `json:"paused"`
	// MaterialsIncomplete: the open stop began with mark_incomplete. The
	// determination then runs from the day the materials are complete
	// (2021 Art. 9), not from filing: nothing is used before that day,
	// and DueOn projects the full allowance from today, as if the last
	// item arrived today.
	MaterialsIncomplete bool        `json:"materials_incomplete"`
	Pauses              []Pause     `json:"pauses"`
	Extensions          []Extension `json:"extensions"`
	Overdue             bool        `json:"overdue"`
	// SupplementItems are the items requested in the current phase.
	SupplementItems []RequestedItem `json:"supplement_items"`
	// Opinions are the member units asked in the opinion rounds sent in the
	// current phase (a special review lists only its own), each with its
	// answer or its own 15-day deadline.
	Opinions []MemberOpinion `json:"opinions"`
	// Missed are the statutory periods of the case, this phase's and the
	// earlier ones', that ran out before the office acted on them, oldest
	// first. A late action is allowed (an office sometimes must act late),
	// but ending, extending or restarting a period does not make its
	// lapse undone: Overdue then speaks only of the period running now.
	Missed []Lapse `json:"missed"`
}

// Lapse is a statutory period that had run out when the office ended,
// extended or restarted it: Action, on day On, came after DueOn.
type Lapse struct {
	Phase  Phase         `json:"phase"`
	DueOn  calendar.Date `json:"due_on"`
	Action Action        `json:"action"`
	On     calendar.Date `json:"acted_on"`
}

// DueFixed reports whether DueOn holds whatever today is: the clock runs,
// or it is stopped for supplements after its allowance was used up (the
// due date falls before the stop's first day). A stop keeps later days
// from counting; it does not cure days the office already overran, so
// such a case stays overdue while it waits. Otherwise a stopped clock's
// DueOn is a projection that moves with today.
func (c Clock) DueFixed() bool {
	if c.DueOn.IsZero() {
		return false
	}
	if !c.Paused {
		return true
	}
	return !c.MaterialsIncomplete && c.beforeStop(c.DueOn)
}

// beforeStop reports whether d comes before the first day of the stop under
// way, so that the stop cannot move a date counted to d.
func (c Clock) beforeStop(d calendar.Date) bool {
	return len(c.Pauses) > 0 && d.Before(c.Pauses[len(c.Pauses)-1].From)
}

// Upcoming is a date a case is due on and what falls due then: the phase
// itself, or (PhaseOpinions) the answers of the member units asked in the
// special review's latest round.
type Upcoming struct {
	Phase       Phase
	On          calendar.Date
	Provisional bool
}

// Next is the earliest fixed date the case is due on (see DueFixed): the
// phase's, or, sooner, the latest opinion round's while a unit it asked has
// not answered. In the first round the two are one date; in a special
// review the round's 15 working days end long before the phase's 45 or
// 90, and a silent unit would otherwise be flagged by nobody. ok is false
// when no date is fixed.
func (c Clock) Next() (n Upcoming, ok bool) {
	if c.DueFixed() {
		n, ok = Upcoming{Phase: c.Phase, On: c.DueOn, Provisional: c.DueOnProvisional}, true
	}
	latest := 0
	for _, o := range c.Opinions {
		latest = max(latest, o.Round)
	}
	for _, o := range c.Opinions {
		if o.Round != latest || o.Agree != nil {
			continue
		}
		if c.Paused && !c.beforeStop(o.DueOn) {
			break // a projection, like the phase's
		}
		if !ok || o.DueOn.Before(n.On) {
			n, ok = Upcoming{Phase: PhaseOpinions, On: o.DueOn, Provisional: o.DueOnProvisional}, true
		}
		break // one round, one date
	}
	return n, ok
}

// RequestedItem is one requested item of supplementary material.
type RequestedItem struct {
	No          int           `json:"no"`
	Text        string        `json:"text"`
	RequestedOn calendar.Date `json:"requested_on"`
	Received    bool          `json:"received"`
	ReceivedOn  calendar.Date `json:"received_on"` // null while outstanding
	Material    string        `json:"material,omitempty"`
}

// MemberOpinion is one organisation asked in an opinion round.
type MemberOpinion struct {
	Org              string        `json:"org"`
	Round            int           `json:"round"`
	AskedOn          calendar.Date `json:"asked_on"`
	DueOn            calendar.Date `json:"due_on"`
	DueOnProvisional bool          `json:"due_on_provisional"`
	Agree            *bool         `json:"agree"` // null until answered
	AnsweredOn       calendar.Date `json:"answered_on"`
	// Reference: the answer was given in writing outside crvault and
	// recorded by the office (record_opinion), under this reference.
	Reference string `json:"reference,omitempty"`
	// Overdue: no answer, the round is the latest (no new recommendation
	// has ended it) and its deadline has passed; an answer on the due day
	// is in time. An overdue unit is never counted as agreeing.
	Overdue bool `json:"overdue"`
}

// State is the unit's answer in a word: agree, disagree, overdue or
// awaiting.
func (m MemberOpinion) State() string {
	switch {
	case m.Agree != nil && *m.Agree:
		return "agree"
	case m.Agree != nil:
		return "disagree"
	case m.Overdue:
		return "overdue"
	}
	return "awaiting"
}

// DeriveClock computes the clock of a case from its history, the calendar and
// today's date (calendar.Today). It stores nothing: call it again with a new
// calendar and every date moves accordingly.
//
// A phase that runs into a year with no official schedule is counted by the
// calendar's provisional model and marked DueOnProvisional. Only a year the
// calendar cannot answer at all (calendar.ErrOutOfRange) fails; the Clock
// then still carries phase, start, allowance, pauses and extensions (DueOn
// and the counts are zero). A closed case never fails that way: its DueOn is
// then left zero.
func DeriveClock(cal *calendar.Calendar, history []Event, today calendar.Date) (Clock, error) {
	if !today.Valid() {
		return Clock{}, fmt.Errorf("derive clock: today: %w", calendar.ErrInvalidDate)
	}
	st := state{status: Draft, phase: PhaseNone}
	c := Clock{Phase: PhaseNone, Pauses: []Pause{}, Extensions: []Extension{}, SupplementItems: []RequestedItem{}, Opinions: []MemberOpinion{},
		Missed: []Lapse{}}
	var closedOn *calendar.Date
	start := func(p Phase, on calendar.Date, days int) {
		c = Clock{Phase: p, Edition: c.Edition, StartedOn: on, AllowedWorkingDays: days, Pauses: []Pause{}, Extensions: []Extension{},
			SupplementItems: []RequestedItem{}, Opinions: []MemberOpinion{}, Missed: c.Missed}
	}
	for i, e := range history {
		from, incomplete := st.status, st.incomplete
		if err := st.apply(i, e); err != nil {
			return Clock{}, fmt.Errorf("derive clock: %w", err)
		}
		if movesPeriod(e.Action, from, st.status) && !incomplete {
			if err := c.lapse(cal, e); err != nil {
				return Clock{}, fmt.Errorf("derive clock: %w", err)
			}
		}
		ed := st.edition
		switch e.Action {
		case Submit:
			c.Edition = ed.ID
			start(PhaseDetermination, e.On, ed.DeterminationDays)
		case RequireReview:
			start(PhasePreliminary, e.On, ed.PreliminaryDays)
		case Recommend:
			if from == UnderReview {
				start(PhaseOpinions, e.On, ed.OpinionDays)
			}
		case Opinion, RecordOpinion:
			if from == SolicitingOpinions && st.status == SpecialReview {
				start(PhaseSpecial, e.On, ed.SpecialDays)
			}
		case Extend, ExtendSpecial:
			days := e.Days
			if days == 0 {
				days = ed.ExtensionDays
			}
			c.AllowedWorkingDays += days
			c.Extensions = append(c.Extensions, Extension{On: e.On, Days: days, Reason: e.Reason, Actor: e.Actor})
		case MarkIncomplete, RequestSupplement:
			if from != AwaitingSupplement {
				c.Pauses = append(c.Pauses, Pause{From: e.On.AddDays(1)})
			}
		case SupplementReceived:
			to := e.On
			if last := len(c.Pauses) - 1; to.Before(c.Pauses[last].From) {
				// Received on the day of the request: no day stopped, and
				// a stop ending before it begins is no stop (review h30d).
				c.Pauses = c.Pauses[:last]
			} else {
				c.Pauses[last].To = &to
			}
			if incomplete {
				// 2021 Art. 9: the determination runs from complete materials.
				start(PhaseDetermination, e.On, ed.DeterminationDays)
			}
		case NotRequiredAction, Conclude:
			on := e.On
			closedOn = &on
		}
	}
	if c.Phase == PhaseNone {
		return c, nil
	}
	for _, it := range st.items {
		if it.phase == c.Phase {
			c.SupplementItems = append(c.SupplementItems, RequestedItem{No: it.no, Text: it.text, RequestedOn: it.requestedOn,
				Received: it.received, ReceivedOn: it.receivedOn, Material: it.material})
		}
	}
	c.Paused = len(c.Pauses) > 0 && c.Pauses[len(c.Pauses)-1].To == nil
	end := today
	if closedOn != nil {
		end = *closedOn
	}
	from, pauses := c.StartedOn, c.Pauses
	if c.Paused && st.incomplete {
		// 2021 Art. 9 counts the determination from materials that satisfy
		// Art. 8: the days since filing were never the office's, so the
		// projection counts the whole allowance from today, the earliest
		// day the materials can now be complete.
		c.MaterialsIncomplete = true
		from, pauses = end, nil
	}
	due, used, err := count(cal, from, c.AllowedWorkingDays, pauses, end)
	phase := c.Phase // the period the clock describes, also once closed
	if closedOn != nil {
		c.Phase = PhaseClosed
		if errors.Is(err, calendar.ErrOutOfRange) {
			return c, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("derive clock: %w", err)
	}
	c.DueOn, c.UsedWorkingDays = due, used
	c.DueOnProvisional = cal.ProvisionalIn(from, due) || cal.Provisional(due)
	c.Overdue = closedOn == nil && today.After(due)
	if err := c.opinions(cal, &st, phase, end, closedOn == nil); err != nil {
		return c, fmt.Errorf("derive clock: %w", err)
	}
	return c, nil
}

// movesPeriod reports whether action a, taking the case from status from
// to status to, ends the period running (a new phase, or the close),
// extends it, or restarts it (mark_incomplete: the determination then
// runs from complete materials).
func movesPeriod(a Action, from, to Status) bool {
	switch a {
	case Extend, ExtendSpecial, MarkIncomplete, RequireReview, NotRequiredAction, Conclude:
		return true
	case Recommend:
		return from == UnderReview
	case Opinion:
		return from == SolicitingOpinions && to == SpecialReview
	}
	return false
}

// lapse records in c.Missed that the period c describes had run out on the
// day of e, which ends, extends or restarts it. Its due date on that day is
// counted as DeriveClock counts it then, an open stop running through that
// day: a stopped clock lapsed only if its date came before the stop. A
// period the calendar cannot count (a year it does not cover) is not
// listed; the clock's own date fails for the same reason.
func (c *Clock) lapse(cal *calendar.Calendar, e Event) error {
	if c.Phase == PhaseNone {
		return nil
	}
	due, _, err := count(cal, c.StartedOn, c.AllowedWorkingDays, c.Pauses, e.On)
	if errors.Is(err, calendar.ErrOutOfRange) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.On.After(due) {
		c.Missed = append(c.Missed, Lapse{Phase: c.Phase, DueOn: due, Action: e.Action, On: e.On})
	}
	return nil
}

// opinions lists the members of the opinion rounds of phase, each with a
// deadline of OpinionDays working days from the round, stops of the clock
// after it excluded. A round belongs to the phase it was sent in, not to
// whichever phase started on or before its day: a disagreement on the day
// of the first recommendation starts the special review that same day, and
// that first round, over from then on, is not the special review's. Only
// a member of the latest round can be overdue: a new recommendation ends
// the round before it, whose silent members are asked again (or no more).
func (c *Clock) opinions(cal *calendar.Calendar, st *state, phase Phase, end calendar.Date, open bool) error {
	for i, r := range st.rounds {
		if r.phase != phase {
			continue
		}
		current := i == len(st.rounds)-1
		var pauses []Pause
		for _, p := range c.Pauses {
			if p.From.After(r.on) {
				pauses = append(pauses, p)
			}
		}
		due, _, err := count(cal, r.on, st.edition.OpinionDays, pauses, end)
		if err != nil {
			return err
		}
		prov := cal.ProvisionalIn(r.on, due) || cal.Provisional(due)
		for _, org := range r.members {
			mo := MemberOpinion{Org: org, Round: r.no, AskedOn: r.on, DueOn: due, DueOnProvisional: prov}
			if agree, ok := r.answers[org]; ok {
				mo.Agree, mo.AnsweredOn, mo.Reference = &agree, r.answered[org], r.letters[org]
			} else {
				mo.Overdue = open && current && end.After(due)
			}
			c.Opinions = append(c.Opinions, mo)
		}
	}
	return nil
}

// count walks the calendar from start: due is the day the allowance of
// unpaused working days is used up, used the unpaused working days up to
// end. An open pause counts as running through end.
func count(cal *calendar.Calendar, start calendar.Date, allowance int, pauses []Pause, end calendar.Date) (due calendar.Date, used int, err error) {
	paused := func(d calendar.Date) bool {
		for _, p := range pauses {
			to := end
			if p.To != nil {
				to = *p.To
			}
			if !d.Before(p.From) && !d.After(to) {
				return true
			}
		}
		return false
	}
	if _, err := cal.IsWorkday(start); err != nil {
		return calendar.Date{}, 0, err
	}
	n := 0
	for d := start; n < allowance || d.Before(end); {
		d = d.AddDays(1)
		w, err := cal.IsWorkday(d)
		if err != nil {
			return calendar.Date{}, 0, err
		}
		if !w || paused(d) {
			continue
		}
		if !d.After(end) {
			used++
		}
		n++
		if n == allowance {
			due = d
		}
	}
	if allowance == 0 {
		due = start
	}
	return due, used, nil
}

// FlagKind says whether a case needs attention.
type FlagKind string

// The flags.
const (
	FlagNone    FlagKind = "none"
	FlagDueSoon FlagKind = "due_soon"
	FlagOverdue FlagKind = "overdue"
)

// Flag is FlagWithin with the standard window of DueSoonWorkingDays.
func Flag(c Clock, cal *calendar.Calendar, today calendar.Date) (FlagKind, error) {
	return FlagWithin(c, cal, today, DueSoonWorkingDays)
}

// FlagWithin flags an open clock by its next fixed date (Next): overdue
// after it, or due_soon when at most within working days remain (the due
// day itself included: due today is due_soon). A closed clock is never
// flagged, nor a paused one whose dates are projections; a clock paused
// after its due date passed stays overdue.
func FlagWithin(c Clock, cal *calendar.Calendar, today calendar.Date, within int) (FlagKind, error) {
	if within < 0 || within > calendar.MaxDays {
		return FlagNone, fmt.Errorf("flag: within %d: %w", within, calendar.ErrInvalidDays)
	}
	n, ok := c.Next()
	if c.Phase == PhaseNone || c.Phase == PhaseClosed || !ok {
		return FlagNone, nil
	}
	if today.After(n.On) {
		return FlagOverdue, nil
	}
	left, err := cal.WorkdaysBetween(today, n.On)
	if err != nil {
		return FlagNone, fmt.Errorf("flag: %w", err)
	}
	if left <= within {
		return FlagDueSoon, nil
	}
	return FlagNone, nil
}
