package review

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crvault/crvault/vault/calendar"
)

// item is one requested supplementary item.
type item struct {
	no          int
	text        string
	requestedOn calendar.Date
	phase       Phase
	received    bool
	receivedOn  calendar.Date
	material    string
}

// round is one opinion round: the organisations asked, fixed when the
// recommendation was sent, and their answers.
type round struct {
	no int
	on calendar.Date
	// phase is the period the round belongs to: the member-unit opinions,
	// or the special review its first disagreement began (which may begin
	// on the very day of the round).
	phase    Phase
	members  []string
	answers  map[string]bool
	answered map[string]calendar.Date
	// letters are the references of the answers the office recorded from
	// letters received outside crvault (record_opinion), by organisation.
	letters map[string]string
	// legacy: a recommend stored before rounds named their members; its
	// members are whoever answered.
	legacy bool
}

// state is what a history adds up to: the status plus what guards and the
// clock need to remember.
type state struct {
	edition  *Edition // nil until submitted
	status   Status
	phase    Phase  // the statutory period the case is in
	resume   Status // awaiting_supplement: the status a received request returns to
	last     calendar.Date
	extended bool

	items      []item
	incomplete bool // the open stop began with mark_incomplete

	rounds []round // every opinion round, oldest first

	specialOn  calendar.Date // the day the special review began
	hearings   []calendar.Date
	specialRec bool // a new recommendation was sent in the special review
	// recBasis is when the special review last heard the units or sent a
	// recommendation: the next recommend needs a recommendation material
	// uploaded after it (zero in histories without event times).
	recBasis time.Time
	approved bool

	measures []string
}

func (st *state) lastRound() *round {
	if len(st.rounds) == 0 {
		return nil
	}
	return &st.rounds[len(st.rounds)-1]
}

// outstanding lists the numbers of requested items not yet received.
func (st *state) outstanding() []int {
	var out []int
	for _, it := range st.items {
		if !it.received {
			out = append(out, it.no)
		}
	}
	return out
}

// pending lists the organisations of the latest round that have not
// answered (all: false) or not agreed (all: true).
func (r *round) pending(agreeOnly bool) []string {
	var out []string
	for _, m := range r.members {
		agree, answered := r.answers[m]
		if !answered || (agreeOnly && !agree) {
			out = append(out, m)
		}
	}
	return out
}

// can reports whether a may structurally follow in the current state:
// status, phase and the order of the special review's steps that the
// history alone decides. Guards on input and facts come later.
func (st *state) can(a Action) bool {
	s := st.status
	switch a {
	case Submit:
		return s == Draft
	case MarkIncomplete:
		return s == Submitted && st.edition != nil && st.edition.CompleteMaterials
	case RequireReview, NotRequiredAction:
		return s == Submitted
	case Extend:
		return st.phase == PhasePreliminary && (s == UnderReview || s == AwaitingSupplement)
	case RequestSupplement:
		return s == Submitted || s == UnderReview || s == SolicitingOpinions || s == SpecialReview || s == AwaitingSupplement
	case SupplementItem, SupplementReceived:
		return s == AwaitingSupplement
	case Recommend:
		return s == UnderReview || (s == SpecialReview && !st.approved)
	case Opinion, RecordOpinion:
		return s == SolicitingOpinions || (s == SpecialReview && st.specialRec && !st.approved)
	case RecordHearing, RecordApproval:
		return s == SpecialReview && !st.approved
	case Conclude:
		return s == SolicitingOpinions || s == SpecialReview
	case ExtendSpecial:
		return st.phase == PhaseSpecial && (s == SpecialReview || s == AwaitingSupplement)
	case RecordMeasures:
		return openStatus(s) && st.edition != nil && st.edition.RiskMeasures
	case ReportMeasures:
		return openStatus(s) && len(st.measures) > 0
	}
	return false
}

// target is the status after a (legal) action.
func (st *state) target(a Action, agree *bool) Status {
	s := st.status
	switch a {
	case Submit:
		return Submitted
	case RequireReview:
		return UnderReview
	case NotRequiredAction:
		return NotRequired
	case MarkIncomplete, RequestSupplement:
		return AwaitingSupplement
	case SupplementReceived:
		return st.resume
	case Recommend:
		if s == UnderReview {
			return SolicitingOpinions
		}
	case Opinion, RecordOpinion:
		if s == SolicitingOpinions && agree != nil && !*agree {
			return SpecialReview
		}
	case Conclude:
		return Concluded
	}
	return s
}

// apply checks that e can follow st structurally (status, order,
// history-only invariants) and advances st. Roles and Facts are checked when
// an event is created, not when it is replayed: assignments change
// afterwards.
func (st *state) apply(i int, e Event) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: event %d (%s): %s", ErrBadHistory, e.Seq, e.Action, fmt.Sprintf(format, args...))
	}
	if e.Seq != i+1 {
		return fmt.Errorf("%w: event %d has seq %d", ErrBadHistory, i+1, e.Seq)
	}
	if !knownAction(e.Action) {
		return fmt.Errorf("%w: event %d: %w %q", ErrBadHistory, e.Seq, ErrUnknownAction, e.Action)
	}
	if !st.can(e.Action) {
		return bad("not possible in status %s", st.status)
	}
	if !e.On.Valid() || e.On.Before(st.last) {
		return bad("date %v before %v or invalid", e.On, st.last)
	}
	to := st.target(e.Action, e.Agree)
	// From and To are checked when the caller stored them.
	if (e.From != "" && e.From != st.status) || (e.To != "" && e.To != to) {
		return bad("records %s->%s, replay gives %s->%s", e.From, e.To, st.status, to)
	}
	switch e.Action {
	case Submit:
		ed := EditionOn(e.On) // histories from before editions were recorded
		if e.Edition != "" {
			var err error
			if ed, err = EditionByID(e.Edition); err != nil {
				return bad("%v", err)
			}
		}
		st.edition, st.phase = ed, PhaseDetermination
	case RequireReview:
		st.phase = PhasePreliminary
	case Extend:
		if st.extended {
			return bad("second extend")
		}
		st.extended = true
	case ExtendSpecial:
		if e.Days < 1 || e.Days > MaxSpecialExtension {
			return bad("extend_special by %d days", e.Days)
		}
	case MarkIncomplete, RequestSupplement:
		if st.status != AwaitingSupplement {
			st.resume = st.status
			st.incomplete = e.Action == MarkIncomplete
		}
		for _, t := range e.Items {
			st.items = append(st.items, item{no: len(st.items) + 1, text: t, requestedOn: e.On, phase: st.phase})
		}
	case SupplementItem:
		k := e.Item - 1
		if k < 0 || k >= len(st.items) || st.items[k].received {
			return bad("item %d is not outstanding", e.Item)
		}
		st.items[k].received, st.items[k].receivedOn, st.items[k].material = true, e.On, e.Material
	case SupplementReceived:
		if e.Role != RoleOfficeAdmin && len(st.outstanding()) > 0 {
			return bad("received by the party with items outstanding")
		}
		// Closing early drops what is still outstanding: a new request
		// asks again.
		for k := range st.items {
			if !st.items[k].received {
				st.items[k].received, st.items[k].receivedOn = true, e.On
			}
		}
		st.incomplete = false
	case Recommend:
		if st.status == UnderReview {
			st.phase = PhaseOpinions
		} else {
			st.specialRec = true
			st.recBasis = e.At
		}
		st.rounds = append(st.rounds, round{no: len(st.rounds) + 1, on: e.On, phase: st.phase, members: slices.Clone(e.Members),
			answers: map[string]bool{}, answered: map[string]calendar.Date{}, letters: map[string]string{}, legacy: len(e.Members) == 0})
	case Opinion, RecordOpinion:
		r := st.lastRound()
		if e.Agree == nil || r == nil {
			return bad("opinion without agree or round")
		}
		org := e.Org
		if e.Action == RecordOpinion {
			if org == "" || r.legacy {
				return bad("recorded opinion without its organisation")
			}
			r.letters[org] = e.Reference
		} else if org == "" {
			org = e.Actor // histories from before opinions were per organisation
		}
		if r.legacy {
			r.members = append(r.members, org)
		} else if !slices.Contains(r.members, org) {
			return bad("%s was not asked", org)
		}
		if _, dup := r.answers[org]; dup {
			return bad("second opinion from %s", org)
		}
		r.answers[org], r.answered[org] = *e.Agree, e.On
		if to == SpecialReview {
			st.phase, st.specialOn = PhaseSpecial, e.On
		}
	case RecordHearing:
		st.hearings = append(st.hearings, e.On)
		st.recBasis = e.At
	case RecordApproval:
		st.approved = true
	case RecordMeasures:
		st.measures = append(st.measures, e.Measures...)
	case ReportMeasures:
		if e.Measure < 1 || e.Measure > len(st.measures) {
			return bad("no measure %d", e.Measure)
		}
	case NotRequiredAction, Conclude:
		st.phase = PhaseClosed
	}
	st.status, st.last = to, e.On
	return nil
}

func replay(history []Event) (state, error) {
	st := state{status: Draft, phase: PhaseNone}
	for i, e := range history {
		if err := st.apply(i, e); err != nil {
			return state{}, err
		}
	}
	return st, nil
}

// Replay returns the status a history leads to, checking that the state
// machine could have produced it. An empty history is a draft.
func Replay(history []Event) (Status, error) {
	st, err := replay(history)
	return st.status, err
}

// EditionOf is the edition a history's submit event fixed (nil for a draft).
func EditionOf(history []Event) (*Edition, error) {
	st, err := replay(history)
	return st.edition, err
}

// Allowed lists the actions role may take in status given the history, in
// Actions order. Guards that need input or Facts are not evaluated here, so
// Next may still refuse an action listed. Actions only the system takes on
// the party's behalf (supplement_item, supplement_received by the party)
// are not listed for the party.
func Allowed(status Status, history []Event, role string) []Action {
	st, err := replay(history)
	if err != nil || st.status != status {
		return nil
	}
	return st.allowed(role, nil)
}

// allowed lists role's actions in the current state. With the case's facts
// (f non-nil) it also leaves out actions the case's kind rules out whatever
// the input, so that a 409 does not advertise them.
func (st *state) allowed(role string, f *Facts) []Action {
	var out []Action
	for _, a := range Actions() {
		if !slices.Contains(rolesFor(a), role) || !st.can(a) || (a == Extend && st.extended) {
			continue
		}
		if f != nil && a == RecordMeasures && f.Case.Origin != OriginProposal {
			continue
		}
		if f != nil && a == NotRequiredAction && st.reviewDecided(f) {
			continue
		}
		if role != RoleOfficeAdmin && (a == SupplementItem || a == SupplementReceived) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// reviewDecided reports whether the case must be reviewed whatever the
// office finds: a listing above the threshold, or a review the Commission
// approved on a member unit's proposal. not_required is refused for them.
func (st *state) reviewDecided(f *Facts) bool {
	return f.Case.Origin == OriginProposal || (st.edition != nil && st.edition.MandatoryFiling(f.Case))
}

// Next decides whether role may take action a on a case in status with this
// history, and returns the status it leads to. It changes nothing. Errors:
// ErrUnknownAction, ErrUnknownStatus, ErrInvalidInput, ErrBadHistory (status
// and history disagree), *IllegalTransitionError (409), ErrForbidden (403),
// *GuardError (422).
func Next(status Status, history []Event, a Action, role string, f Facts, in Input) (Status, error) {
	to, _, err := next(status, history, a, role, f, in)
	return to, err
}

// next is Next that also returns the event's payload as decided (members
// defaulted, items cleaned).
func next(status Status, history []Event, a Action, role string, f Facts, in Input) (Status, Event, error) {
	var e Event
	if !knownAction(a) {
		return "", e, fmt.Errorf("%w: %q", ErrUnknownAction, clip(string(a)))
	}
	if !knownStatus(status) {
		return "", e, fmt.Errorf("%w: %q", ErrUnknownStatus, clip(string(status)))
	}
	st, err := replay(history)
	if err != nil {
		return "", e, err
	}
	if st.status != status {
		return "", e, fmt.Errorf("%w: history leads to %s, case says %s", ErrBadHistory, st.status, status)
	}
	if !st.can(a) {
		if alt := st; st.edition != nil && (a == MarkIncomplete || a == RecordMeasures) {
			// Possible under the other edition: say which rule is missing.
			alt.edition = Edition2021
			if alt.can(a) && st.edition != Edition2021 {
				art := map[Action]Article{MarkIncomplete: ArtDetermination, RecordMeasures: ArtProposal}[a]
				return "", e, guard(CodeNotInEdition, "%s rests on %s; this case follows the %s edition", a, Edition2021.Cite(art), st.edition.ID)
			}
		}
		return "", e, &IllegalTransitionError{From: status, Action: a, Allowed: st.allowed(role, &f)}
	}
	if !slices.Contains(rolesFor(a), role) {
		return "", e, fmt.Errorf("%w: %s needs %s", ErrForbidden, a, strings.Join(rolesFor(a), " or "))
	}
	if strings.TrimSpace(in.Actor) == "" {
		return "", e, fmt.Errorf("%w: no actor", ErrInvalidInput)
	}
	if !in.On.Valid() {
		return "", e, fmt.Errorf("%w: no valid date", ErrInvalidInput)
	}
	if in.On.Before(st.last) {
		return "", e, guard(CodeDateOutOfOrder, "%s is before the last event on %s", in.On, st.last)
	}
	if len(in.Reason) > MaxReasonLen {
		return "", e, guard(CodeReasonTooLong, "reason longer than %d bytes", MaxReasonLen)
	}
	if a == RecordOpinion {
		err = st.checkRecordOpinion(history, f, in, &e)
	} else {
		err = st.check(a, role, f, in, &e)
	}
	if err != nil {
		return "", e, err
	}
	return st.target(a, in.Agree), e, nil
}

// check runs the guards of action a and fills the payload of e.
func (st *state) check(a Action, role string, f Facts, in Input, e *Event) error {
	ed := st.edition
	hasReason := strings.TrimSpace(in.Reason) != ""
	switch a {
	case Submit:
		sub, err := EditionByID(in.Edition)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		typ := caseType(f.Case)
		if !sub.HasCaseType(typ) {
			return guard(CodeTypeNotInEdition, "a %s case cannot be filed under the %s edition, which knows %s", typ, sub.ID, strings.Join(sub.CaseTypes, ", "))
		}
		if missing := sub.missingMaterials(typ, f.MaterialKinds); len(missing) > 0 {
			g := guard(CodeMaterialsIncomplete, "missing materials (%s): %s", sub.Art(ArtMaterials), strings.Join(missing, ", "))
			g.Missing = missing
			return g
		}
		e.Edition = sub.ID
	case MarkIncomplete, RequestSupplement:
		items, err := cleanList(in.Items, CodeItemsRequired, "items", "list what is needed ("+ed.Art(ArtSupplements)+")")
		if err != nil {
			return err
		}
		e.Items = items
	case NotRequiredAction:
		if ed.MandatoryFiling(f.Case) {
			return guard(CodeFilingMandatory, "a listing abroad by a party holding personal information of more than %d users must be reviewed (%s); it cannot be found not to require review",
				ed.ListingThreshold, ed.Art(ArtListing))
		}
		if f.Case.Origin == OriginProposal {
			// The Commission approved this review; the office carries it
			// out and cannot overrule the approval with its own finding.
			return guard(CodeCommissionApproved, "the Commission approved the review a member unit proposed (%s); it cannot be found not to require review",
				ed.Art(ArtProposal))
		}
	case Extend:
		if st.extended {
			return guard(CodeAlreadyExtended, "the preliminary review was already extended once (%s)", ed.Art(ArtPreliminary))
		}
		if !hasReason {
			return guard(CodeReasonRequired, "extend needs a reason: why the situation is complex (%s)", ed.Art(ArtPreliminary))
		}
		e.Days = ed.ExtensionDays
	case ExtendSpecial:
		if !hasReason {
			return guard(CodeReasonRequired, "extend_special needs a reason (%s)", ed.Art(ArtSpecialDuration))
		}
		if in.Days < 1 || in.Days > MaxSpecialExtension {
			return guard(CodeInvalidDays, "days must be 1 to %d, got %d", MaxSpecialExtension, in.Days)
		}
		e.Days = in.Days
	case SupplementItem:
		k := in.Item - 1
		if k < 0 || k >= len(st.items) || st.items[k].received {
			return guard(CodeUnknownItem, "item %d is not an outstanding item of the supplement request (outstanding: %v)", in.Item, st.outstanding())
		}
		if in.Material == "" {
			return fmt.Errorf("%w: no material", ErrInvalidInput)
		}
		e.Item, e.Material = in.Item, in.Material
	case SupplementReceived:
		out := st.outstanding()
		switch {
		case role != RoleOfficeAdmin && len(out) > 0:
			return guard(CodeItemsOutstanding, "items %v are still outstanding", out)
		case role == RoleOfficeAdmin && len(out) > 0 && !hasReason:
			return guard(CodeReasonRequired, "items %v are still outstanding: closing the request early needs a reason (%s)", out, ed.Art(ArtSupplements))
		}
	case Recommend:
		if st.status == SpecialReview {
			if len(st.hearings) == 0 {
				return guard(CodeStepMissingHearing, "the special review first hears the departments and units concerned (%s): record_hearing", ed.Art(ArtSpecial))
			}
			// Compared as instants where both are known: a first-round
			// recommendation uploaded earlier on the day of the hearing is
			// not the new one, nor is the one a round of this special
			// review was already sent on (review h30d).
			stale := f.LatestRecommendation.IsZero() || f.LatestRecommendation.Before(st.hearings[len(st.hearings)-1])
			if !f.LatestRecommendationAt.IsZero() && !st.recBasis.IsZero() {
				stale = !f.LatestRecommendationAt.After(st.recBasis)
			}
			if stale {
				return guard(CodeRecommendationRequired, "upload the new recommendation formed after the hearing (%s) first", ed.Art(ArtSpecial))
			}
		} else if f.LatestRecommendation.IsZero() && !slices.Contains(f.MaterialKinds, MaterialRecommendation) {
			return guard(CodeRecommendationRequired, "upload a recommendation material first (%s)", ed.Art(ArtPreliminary))
		}
		members, err := st.members(f, in.Members)
		if err != nil {
			return err
		}
		e.Members = members
	case Opinion:
		r := st.lastRound()
		if in.Agree == nil {
			return guard(CodeAgreeRequired, "an opinion must say agree true or false")
		}
		if !r.legacy && !slices.Contains(r.members, in.Org) {
			return guard(CodeNotSolicited, "your organisation was not asked for its opinion on this recommendation (%s)", ed.Art(ArtOpinions))
		}
		if _, dup := r.answers[in.Org]; dup {
			return guard(CodeOpinionGiven, "your organisation has already given its opinion on this recommendation")
		}
		e.Org = in.Org
	case RecordHearing:
		if !hasReason {
			return guard(CodeReasonRequired, "record_hearing needs a summary of the opinions heard (%s)", ed.Art(ArtSpecial))
		}
	case RecordApproval:
		if err := st.specialSteps(false); err != nil {
			return err
		}
		ref := strings.TrimSpace(in.Reference)
		if ref == "" || len(ref) > MaxReferenceLen {
			return guard(CodeReferenceRequired, "record_approval needs the reference number of the Commission's approval (%s), at most %d bytes", ed.Art(ArtSpecial), MaxReferenceLen)
		}
		e.Reference = ref
	case Conclude:
		if st.status == SolicitingOpinions {
			r := st.lastRound()
			if p := r.pending(true); len(p) > 0 {
				g := guard(CodeOpinionsPending, "%d of %d member units asked have not agreed (%s); silence is not agreement: an overdue unit's written answer received outside crvault is recorded with record_opinion", len(p), len(r.members), ed.Art(ArtOpinions))
				g.Missing = p
				return g
			}
		} else if err := st.specialSteps(true); err != nil {
			return err
		}
		if err := ed.conclusion(in, e); err != nil {
			return err
		}
	case RecordMeasures:
		if f.Case.Origin != OriginProposal {
			return guard(CodeMeasuresNotApplicable, "risk prevention and mitigation measures are recorded for reviews a member unit proposed (%s)", ed.Art(ArtProposal))
		}
		ms, err := cleanList(in.Measures, CodeMeasuresRequired, "measures", "list the measures the review requires")
		if err != nil {
			return err
		}
		e.Measures = ms
	case ReportMeasures:
		if in.Measure < 1 || in.Measure > len(st.measures) {
			return guard(CodeUnknownMeasure, "measure %d was not recorded (1 to %d)", in.Measure, len(st.measures))
		}
		if !hasReason {
			return guard(CodeReasonRequired, "a report on the measures needs its text")
		}
		e.Measure = in.Measure
	}
	return nil
}

// specialSteps checks the special review's steps in order (2020 Art. 12 /
// 2021 Art. 13): hearing, new recommendation, second opinions, and, for the
// conclusion, the Commission's approval.
func (st *state) specialSteps(approval bool) error {
	ed := st.edition
	art := ed.Art(ArtSpecial)
	if len(st.hearings) == 0 {
		return guard(CodeStepMissingHearing, "the special review has not heard the departments and units concerned (%s): record_hearing", art)
	}
	if !st.specialRec {
		return guard(CodeStepMissingRecommendation, "the special review has formed no new recommendation (%s): recommend", art)
	}
	r := st.lastRound()
	if p := r.pending(false); len(p) > 0 {
		g := guard(CodeStepMissingOpinions, "%d of %d member units asked again have not answered (%s)", len(p), len(r.members), art)
		g.Missing = p
		return g
	}
	if approval && !st.approved {
		return guard(CodeStepMissingApproval, "the Commission's approval is not recorded (%s): record_approval", art)
	}
	return nil
}

// members fixes the organisations of an opinion round: those named, or the
// organisations of the member-unit users assigned now. Each must be a
// registered member unit that serves under the case's edition.
func (st *state) members(f Facts, named []string) ([]string, error) {
	ed := st.edition
	src := named
	if src == nil {
		src = f.AssignedMemberOrgs
	}
	var out, bad []string
	for _, org := range src {
		org = strings.TrimSpace(org)
		if org == "" || slices.Contains(out, org) {
			continue
		}
		code, registered := f.MemberUnits[org]
		if _, listed := ed.Member(code); !registered || (!listed && code != DepartmentMember) {
			bad = append(bad, org)
			continue
		}
		out = append(out, org)
	}
	if len(bad) > 0 {
		g := guard(CodeNotAMember, "not member units of the review mechanism under the %s edition (%s), nor registered departments: %s",
			ed.ID, ed.Art(ArtOpinions), strings.Join(bad, ", "))
		g.Missing = bad
		return nil, g
	}
	if len(out) == 0 {
		return nil, guard(CodeMembersRequired, "name the member units to ask (members), or assign member-unit users first (%s)", ed.Art(ArtOpinions))
	}
	if len(out) > MaxItems {
		return nil, guard(CodeMembersRequired, "at most %d member units in one round", MaxItems)
	}
	slices.Sort(out)
	return out, nil
}

// conclusion checks a conclusion's outcome, conditions and factors against
// the edition and fills e.
func (ed *Edition) conclusion(in Input, e *Event) error {
	if !slices.Contains(Outcomes(), in.Outcome) {
		return guard(CodeOutcomeRequired, "outcome must be one of %s", strings.Join(Outcomes(), ", "))
	}
	conds, err := cleanList(in.Conditions, CodeConditionsRequired, "conditions", "passed_with_conditions needs the conditions")
	switch {
	case in.Outcome == OutcomePassedWithConditions && err != nil:
		return err
	case in.Outcome != OutcomePassedWithConditions && len(in.Conditions) > 0:
		return guard(CodeConditionsNotAllowed, "conditions go with outcome passed_with_conditions only")
	}
	var fs []FactorFinding
	for _, ff := range in.Factors {
		key := strings.TrimSpace(ff.Factor)
		if _, ok := ed.Factor(key); !ok {
			keys := make([]string, len(ed.Factors))
			for i, x := range ed.Factors {
				keys[i] = x.Key
			}
			return guard(CodeUnknownFactor, "%q is not a factor of %s (%s): one of %s", clip(key), ed.Art(ArtFactors), ed.ID, strings.Join(keys, ", "))
		}
		if slices.ContainsFunc(fs, func(x FactorFinding) bool { return x.Factor == key }) {
			return guard(CodeDuplicateFactor, "factor %s given twice", key)
		}
		finding := strings.TrimSpace(ff.Finding)
		if finding == "" || len(finding) > MaxReasonLen {
			return guard(CodeFindingRequired, "factor %s needs a finding of at most %d bytes", key, MaxReasonLen)
		}
		fs = append(fs, FactorFinding{Factor: key, Finding: finding})
	}
	e.Outcome, e.Conditions, e.Factors = in.Outcome, conds, fs
	if in.Outcome != OutcomePassedWithConditions {
		e.Conditions = nil
	}
	return nil
}

// missingMaterials lists what the materials article still needs.
func (ed *Edition) missingMaterials(typ string, have []string) []string {
	var missing []string
	for _, k := range []string{MaterialDeclaration, MaterialImpactAnalysis} {
		if !slices.Contains(have, k) {
			missing = append(missing, k)
		}
	}
	item3 := ed.Item3Kinds(typ)
	if !slices.ContainsFunc(item3, func(k string) bool { return slices.Contains(have, k) }) {
		missing = append(missing, item3[0])
	}
	return missing
}

// cleanList trims a list of short texts: at least one, at most MaxItems,
// each non-empty and at most MaxItemLen bytes.
func cleanList(in []string, code, field, what string) ([]string, error) {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if len(s) > MaxItemLen {
			return nil, guard(CodeInvalidItem, "each of %s is at most %d bytes", field, MaxItemLen)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, guard(code, "%s: %s", field, what)
	}
	if len(out) > MaxItems {
		return nil, guard(CodeInvalidItem, "at most %d %s", MaxItems, field)
	}
	return out, nil
}

func caseType(c CaseInfo) string {
	if c.Type == "" {
		return TypeProcurement
	}
	return c.Type
}

// Apply is Next plus the Event to append to the history when it succeeds.
// Only the fields that matter for the action are copied from in.
func Apply(status Status, history []Event, a Action, role string, f Facts, in Input) (Status, Event, error) {
	to, e, err := next(status, history, a, role, f, in)
	if err != nil {
		return "", Event{}, err
	}
	e.Seq, e.Action, e.From, e.To = len(history)+1, a, status, to
	e.On, e.At, e.Actor, e.Role = in.On, in.At.UTC(), in.Actor, role
	e.Reason = strings.TrimSpace(in.Reason)
	if a == Opinion || a == RecordOpinion {
		agree := *in.Agree
		e.Agree = &agree
	}
	return to, e, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// OutstandingItems lists the numbers of the requested supplementary items
// not yet received, in order.
func OutstandingItems(history []Event) ([]int, error) {
	st, err := replay(history)
	return st.outstanding(), err
}

// checkRecordOpinion runs the guards of record_opinion and fills e. The
// office records, for a unit of the latest round, the answer the unit gave
// in writing outside crvault (2020 Art. 11 / 2021 Art. 12 ask for a written
// answer, not one in crvault), only once the unit's own 15 working days ran
// out without an answer: before that, the unit answers for itself, and
// after, its silence still counts for nothing until its answer is recorded.
func (st *state) checkRecordOpinion(history []Event, f Facts, in Input, e *Event) error {
	ed := st.edition
	art := ed.Art(ArtOpinions)
	r := st.lastRound()
	org := strings.TrimSpace(in.Unit)
	if org == "" {
		return guard(CodeOrgRequired, "name the member unit (org) whose written answer is recorded (%s)", art)
	}
	if r.legacy || !slices.Contains(r.members, org) {
		g := guard(CodeNotSolicited, "%s was not asked for its opinion on the latest recommendation (%s)", clip(org), art)
		g.Missing = r.pending(false)
		return g
	}
	if _, dup := r.answers[org]; dup {
		return guard(CodeOpinionGiven, "%s has already given its opinion on this recommendation", org)
	}
	if f.Calendar == nil {
		return fmt.Errorf("%w: record_opinion needs the calendar", ErrInvalidInput)
	}
	c, err := DeriveClock(f.Calendar, history, in.On)
	if err != nil {
		return fmt.Errorf("record_opinion: %w", err)
	}
	i := slices.IndexFunc(c.Opinions, func(m MemberOpinion) bool { return m.Round == r.no && m.Org == org })
	if i < 0 || !c.Opinions[i].Overdue {
		due := ""
		if i >= 0 {
			due = " (due " + c.Opinions[i].DueOn.String() + ")"
		}
		g := guard(CodeOpinionNotOverdue, "%s may still answer itself: its %d working days to answer (%s) have not run out%s; an answer received outside crvault is recorded only once the unit is overdue",
			org, ed.OpinionDays, art, due)
		g.Missing = []string{org}
		return g
	}
	if in.Agree == nil {
		return guard(CodeAgreeRequired, "say whether the unit's written answer agrees (agree true or false)")
	}
	ref := strings.TrimSpace(in.Reference)
	if ref == "" || len(ref) > MaxReferenceLen {
		return guard(CodeReferenceRequired, "record_opinion needs the reference of the unit's written answer (its letter's number), at most %d bytes", MaxReferenceLen)
	}
	if strings.TrimSpace(in.Reason) == "" {
		return guard(CodeReasonRequired, "record_opinion needs a reason: how the written answer was received and why it is recorded by the office (%s)", art)
	}
	e.Org, e.Reference = org, ref
	return nil
}
