// Package review is the cybersecurity review workflow as pure logic, to the
// article in both editions of the Measures (2020: Order No. 6; 2021: Order
// No. 8): the state machine of a case and its statutory clock. Everything
// it takes from the text (durations, article numbers, member lists, case
// types, factors) is in one table per edition (edition.go). It stores
// nothing and does no I/O. The caller keeps each case's history, an
// append-only list of Events, and derives everything else from it: the
// current status (Replay), what may happen next (Allowed, Next, Apply) and
// every deadline (DeriveClock, Flag). No due date is ever stored, so a
// corrected calendar re-derives every open deadline. Article numbers below
// are 2020 / 2021.
//
// # States and actions
//
//	draft --submit(party)--> submitted                        (Art. 7/8; records the edition)
//	submitted --mark_incomplete--> awaiting_supplement         (2021 Art. 9: the 10 days run from complete materials)
//	submitted --not_required--> not_required                   (Art. 8/9, final; refused for a mandatory filing, 2021 Art. 7)
//	submitted --require_review--> under_review                  (Art. 8/9)
//	submitted | under_review | soliciting_opinions | special_review
//	    --request_supplement{items}--> awaiting_supplement       (Art. 14/15, clock stopped)
//	awaiting_supplement --request_supplement--> (same)          (more items; the stop goes on)
//	awaiting_supplement --supplement_item(party)--> (same)      (one requested item arrived)
//	awaiting_supplement --supplement_received--> (the phase)     (last item arrived, or the office closes early with a reason)
//	under_review | awaiting (preliminary) --extend--> (same)    (Art. 10/11, +15, once, reason)
//	under_review --recommend{members}--> soliciting_opinions    (Art. 10-11/11-12, recommendation material)
//	soliciting_opinions --opinion(agree)--> (same)
//	soliciting_opinions --opinion(disagree)--> special_review   (Art. 11/12)
//	soliciting_opinions --conclude--> concluded                 (every named unit agreed)
//	soliciting_opinions | special_review
//	    --record_opinion{org, agree, reference}--> (as opinion)   (an overdue unit's written answer received outside crvault)
//	special_review --record_hearing--> (same)                   (Art. 12/13: the departments and units heard)
//	special_review --recommend{members}--> (same)               (the new recommendation, a second opinion round)
//	special_review --opinion--> (same)                          (the second round)
//	special_review --record_approval{reference}--> (same)       (the Commission's approval)
//	special_review --conclude--> concluded                      (after every step above)
//	special_review | awaiting (special) --extend_special--> (same) (Art. 13/14, +days, reason)
//	open --record_measures--> (same)                            (2021 Art. 16, a review a member unit proposed)
//	open --report_measures(party)--> (same)
//
// # Decisions where the Measures or the contract are silent
//
//   - A supplement request lists what is needed (items, numbered per case
//     from 1). The clock stops from the day after the request; each item's
//     upload is a supplement_item event; the day the last one arrives the
//     request is received and the clock resumes the day after. The office
//     may close a request early, with a reason. A request while another is
//     open adds its items to the same stop. While a supplement is awaited the
//     procedure itself waits: no recommendation, opinion, hearing, approval
//     or conclusion until it is received.
//   - mark_incomplete is a supplement request that, once received, restarts
//     the determination clock from that day (2021 only).
//   - extend is once per case, allowed while paused, and adds the edition's
//     ExtensionDays to the preliminary review even if it is already overdue:
//     an office sometimes must act late. The lapse is kept as a fact
//     (Clock.Missed), as for a late extend_special or mark_incomplete and a
//     phase ended after its due date.
//   - extend_special may be repeated ("extended appropriately"), each time with
//     a reason and 1 to MaxSpecialExtension working days.
//   - An opinion round asks the organisations named when the recommendation
//     is sent, fixed then: one opinion per organisation per round, whoever of
//     its assigned users gives it. Losing its assigned users does not remove
//     an organisation; one that has not answered within OpinionDays working
//     days is overdue, never agreeing, until a new recommendation ends the
//     round. An answer on the due day is in time.
//   - A unit that stays silent past its 15 working days blocks the round:
//     silence is neither agreement nor the disagreement (意见不一致) that
//     opens the special review. Art. 11/12 asks for a written answer, not an
//     answer in crvault, so once the unit is overdue, and only then, the
//     office may record_opinion: the answer the unit gave in writing outside
//     crvault (an official letter), with the letter's reference and a
//     reason, attributed to the unit and taken by the office. It counts as
//     that unit's opinion in every respect (a disagreement in the first
//     round opens the special review). Before the unit is overdue, the unit
//     answers for itself.
//   - The first disagreement in the first round moves the case to special
//     review at once, and ends that round: the special review's clock lists
//     only the rounds sent in it, even if it began on the first round's day. In the special review every organisation of the latest
//     round must have answered before the Commission's approval is recorded.
//   - The opinion phase clock keeps running after every unit agreed, until the
//     office concludes: the office is then the one late.
//   - Event dates may not go backwards; Event.Seq is len(history)+1, so a
//     unique (case, seq) key in storage makes one of two concurrent
//     transitions on a case fail instead of both succeeding.
//
// # The clock
//
// Each phase starts on the day of the event that opens it; that day does not
// count, so the phase is due on calendar.WorkdaysAfter(start, allowance).
// Allowances come from the case's edition: determination 10, preliminary
// review 30 (+15 on extend), member-unit opinions 15, special review 45
// (2020) or 90 (2021) (+ extend_special days). A request for supplements on
// day R stops the clock from R+1 up to and including the day S the request
// is received: the working days in (R, S] do not count. An open stop is taken
// to run through today, so the due date moves later day by day while the
// case waits. While a stop that began with mark_incomplete lasts, the
// determination has not begun (2021 Art. 9): its due date is projected as
// the whole allowance from today, nothing used since filing.
package review

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crvault/crvault/vault/calendar"
)

// Status is the state of a case in the review workflow.
type Status string

// The statuses of API.md.
const (
	Draft              Status = "draft"
	Submitted          Status = "submitted"
	NotRequired        Status = "not_required"
	UnderReview        Status = "under_review"
	AwaitingSupplement Status = "awaiting_supplement"
	SolicitingOpinions Status = "soliciting_opinions"
	SpecialReview      Status = "special_review"
	Concluded          Status = "concluded"
)

// Statuses lists every status in workflow order.
func Statuses() []Status {
	return []Status{Draft, Submitted, NotRequired, UnderReview, AwaitingSupplement, SolicitingOpinions, SpecialReview, Concluded}
}

// Action is something that can happen to a case.
type Action string

// The actions. Opinion comes from POST /cases/{case}/opinions, submit from
// POST /cases/{case}/submit, supplement_item from a supplementary upload,
// report_measures from POST /cases/{case}/measure-reports; the others from
// POST /cases/{case}/transitions.
const (
	Submit             Action = "submit"
	MarkIncomplete     Action = "mark_incomplete"
	RequireReview      Action = "require_review"
	NotRequiredAction  Action = "not_required"
	Extend             Action = "extend"
	RequestSupplement  Action = "request_supplement"
	SupplementItem     Action = "supplement_item"
	SupplementReceived Action = "supplement_received"
	Recommend          Action = "recommend"
	Opinion            Action = "opinion"
	RecordOpinion      Action = "record_opinion"
	RecordHearing      Action = "record_hearing"
	RecordApproval     Action = "record_approval"
	Conclude           Action = "conclude"
	ExtendSpecial      Action = "extend_special"
	RecordMeasures     Action = "record_measures"
	ReportMeasures     Action = "report_measures"
)

// Actions lists every action in a stable order (the order Allowed uses).
func Actions() []Action {
	return []Action{Submit, MarkIncomplete, RequireReview, NotRequiredAction, Extend, RequestSupplement, SupplementItem,
		SupplementReceived, Recommend, Opinion, RecordOpinion, RecordHearing, RecordApproval, Conclude, ExtendSpecial, RecordMeasures, ReportMeasures}
}

// OfficeActions are the actions of POST /cases/{case}/transitions.
func OfficeActions() []Action {
	return []Action{MarkIncomplete, RequireReview, NotRequiredAction, Extend, RequestSupplement, SupplementReceived,
		Recommend, RecordOpinion, RecordHearing, RecordApproval, Conclude, ExtendSpecial, RecordMeasures}
}

// Roles that act in the workflow.
const (
	RoleOfficeAdmin = "office_admin"
	RoleOperator    = "operator"
	RoleProvider    = "provider"
	RoleMemberUnit  = "member_unit"
)

// Bounds that are ours, not the Measures'.
const (
	MaxSpecialExtension = 90 // working days in one extend_special
	DueSoonWorkingDays  = 3  // Flag's "due soon" window
	MaxReasonLen        = 4000
	MaxItems            = 50 // items in one supplement request, conditions, measures, members
	MaxItemLen          = 1000
	MaxReferenceLen     = 200
)

// Material kinds the workflow looks at.
const (
	MaterialDeclaration        = "declaration"
	MaterialImpactAnalysis     = "impact_analysis"
	MaterialProcurement        = "procurement"
	MaterialListingApplication = "listing_application"
	MaterialRecommendation     = "recommendation"
)

// Conclusion outcomes.
const (
	OutcomePassed               = "passed"
	OutcomeNotPassed            = "not_passed"
	OutcomePassedWithConditions = "passed_with_conditions"
)

// Outcomes lists the conclusion outcomes.
func Outcomes() []string {
	return []string{OutcomePassed, OutcomeNotPassed, OutcomePassedWithConditions}
}

// Origins of a case.
const (
	OriginApplication = "application" // filed by the party
	OriginProposal    = "proposal"    // opened on the party's behalf after a member unit's proposal
)

// FactorFinding is the office's finding on one factor (2020 Art. 9 / 2021 Art. 10).
type FactorFinding struct {
	Factor  string `json:"factor"`
	Finding string `json:"finding"`
}

// Event is one entry of a case's append-only history: a transition, who made
// it, on which day and why. It is also what the audit trail records. Fields
// after Agree are the action's structured payload.
type Event struct {
	Seq    int           `json:"seq"`
	Action Action        `json:"action"`
	From   Status        `json:"from"`
	To     Status        `json:"to"`
	On     calendar.Date `json:"on"` // the day in Asia/Shanghai; the clock counts from it
	At     time.Time     `json:"at"`
	Actor  string        `json:"actor"`
	Role   string        `json:"role"`
	Reason string        `json:"reason,omitempty"` // reason, an opinion's comment, a hearing's summary, a measures report
	Days   int           `json:"days,omitempty"`   // extend, extend_special
	Agree  *bool         `json:"agree,omitempty"`  // opinion

	Edition    string          `json:"edition,omitempty"`    // submit: the edition governing the case
	Org        string          `json:"org,omitempty"`        // opinion, record_opinion: the member unit's organisation
	Items      []string        `json:"items,omitempty"`      // request_supplement, mark_incomplete: what is needed
	Item       int             `json:"item,omitempty"`       // supplement_item: the item's number
	Material   string          `json:"material,omitempty"`   // supplement_item: the upload
	Members    []string        `json:"members,omitempty"`    // recommend: the organisations asked, fixed now
	Outcome    string          `json:"outcome,omitempty"`    // conclude
	Conditions []string        `json:"conditions,omitempty"` // conclude, passed_with_conditions
	Factors    []FactorFinding `json:"factors,omitempty"`    // conclude
	Reference  string          `json:"reference,omitempty"`  // record_approval: the Commission's reference number; record_opinion: the unit's letter
	Measures   []string        `json:"measures,omitempty"`   // record_measures
	Measure    int             `json:"measure,omitempty"`    // report_measures: the measure's number
}

// Input is what the caller says about a requested action.
type Input struct {
	Actor  string        // user id
	Org    string        // the actor's organisation (opinions are per organisation)
	On     calendar.Date // calendar.Today(At)
	At     time.Time
	Reason string
	Days   int   // extend_special
	Agree  *bool // opinion, record_opinion
	// Unit: record_opinion, the member unit whose written answer the office
	// records (Org is the actor's own organisation).
	Unit string

	Edition    string // submit: the edition in force (or pinned) today
	Items      []string
	Item       int
	Material   string
	Members    []string // recommend: nil means Facts.AssignedMemberOrgs
	Outcome    string
	Conditions []string
	Factors    []FactorFinding
	Reference  string
	Measures   []string
	Measure    int
}

// CaseInfo is what the workflow needs to know about the case itself.
type CaseInfo struct {
	Type                  string // procurement (default), data_processing, listing_abroad
	UsersWithPersonalInfo int64  // listing_abroad
	Origin                string // application (default) or proposal
}

// Facts are what guards need to know beyond the history; the caller looks
// them up in storage just before calling Next.
type Facts struct {
	Case          CaseInfo
	MaterialKinds []string // kinds of the case's materials (any version)
	// LatestRecommendation is the day the newest recommendation material
	// was uploaded (zero: none).
	LatestRecommendation calendar.Date
	// LatestRecommendationAt is when it was uploaded (zero: unknown), which
	// the special review compares with its hearing and rounds.
	LatestRecommendationAt time.Time
	// AssignedMemberOrgs are the organisations of the member-unit users
	// assigned to the case now: the default members of a round.
	AssignedMemberOrgs []string
	// MemberUnits maps each registered member-unit organisation to its code
	// in an edition's member list, or DepartmentMember.
	MemberUnits map[string]string
	// Calendar counts the working days of guards that depend on a deadline
	// (record_opinion: only for an overdue unit). Nil refuses them.
	Calendar *calendar.Calendar
}

// Sentinel errors callers branch on.
var (
	ErrUnknownAction  = errors.New("unknown action")
	ErrUnknownStatus  = errors.New("unknown status")
	ErrUnknownEdition = errors.New("unknown edition")
	// ErrForbidden: the action is possible now but not for this role (403).
	ErrForbidden = errors.New("role may not take this action")
	// ErrInvalidInput: the caller passed an impossible Input (no actor, no date).
	ErrInvalidInput = errors.New("invalid transition input")
	// ErrBadHistory: the history is not one the state machine can produce,
	// or does not lead to the status given. Storage is corrupt: fail closed.
	ErrBadHistory = errors.New("inconsistent case history")
)

// IllegalTransitionError is an action that cannot happen in the current
// status (API: 409 illegal_transition). Allowed is what the caller's role
// could do instead.
type IllegalTransitionError struct {
	From    Status
	Action  Action
	Allowed []Action
}

func (e *IllegalTransitionError) Error() string {
	al := make([]string, len(e.Allowed))
	for i, a := range e.Allowed {
		al[i] = string(a)
	}
	return fmt.Sprintf("illegal transition: %s in status %s (allowed: %s)", e.Action, e.From, strings.Join(al, ", "))
}

// Guard failure codes (API: 422 with this code).
const (
	CodeReasonRequired         = "reason_required"
	CodeReasonTooLong          = "reason_too_long"
	CodeAlreadyExtended        = "already_extended"
	CodeRecommendationRequired = "recommendation_required"
	CodeMaterialsIncomplete    = "materials_incomplete"
	CodeOpinionsPending        = "opinions_pending"
	CodeAgreeRequired          = "agree_required"
	CodeNotSolicited           = "not_solicited"
	CodeOpinionGiven           = "opinion_already_given"
	CodeInvalidDays            = "invalid_days"
	CodeDateOutOfOrder         = "date_out_of_order"
	CodeNotInEdition           = "not_in_edition"
	CodeTypeNotInEdition       = "type_not_in_edition"
	CodeFilingMandatory        = "filing_mandatory"
	CodeCommissionApproved     = "commission_approved"
	CodeItemsRequired          = "items_required"
	CodeUnknownItem            = "unknown_item"
	CodeItemsOutstanding       = "items_outstanding"
	CodeMembersRequired        = "members_required"
	CodeNotAMember             = "not_a_member"
	CodeReferenceRequired      = "reference_required"
	CodeOutcomeRequired        = "outcome_required"
	CodeConditionsRequired     = "conditions_required"
	CodeConditionsNotAllowed   = "conditions_not_allowed"
	CodeUnknownFactor          = "unknown_factor"
	CodeFindingRequired        = "finding_required"
	CodeDuplicateFactor        = "duplicate_factor"
	CodeMeasuresNotApplicable  = "measures_not_applicable"
	CodeMeasuresRequired       = "measures_required"
	CodeUnknownMeasure         = "unknown_measure"
	CodeInvalidItem            = "invalid_item"
	CodeOrgRequired            = "org_required"
	CodeOpinionNotOverdue      = "opinion_not_overdue"
	// The special review's steps (2020 Art. 12 / 2021 Art. 13), in order:
	// a refused step names the first one missing.
	CodeStepMissingHearing        = "step_missing_hearing"
	CodeStepMissingRecommendation = "step_missing_recommendation"
	CodeStepMissingOpinions       = "step_missing_opinions"
	CodeStepMissingApproval       = "step_missing_approval"
)

// GuardError is a legal transition whose precondition does not hold.
type GuardError struct {
	Code    string
	Detail  string
	Missing []string // materials_incomplete: missing kinds; opinions_pending, step_missing_opinions: organisations yet to answer
}

func (e *GuardError) Error() string { return e.Code + ": " + e.Detail }

func guard(code, format string, args ...any) *GuardError {
	return &GuardError{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// rolesFor says who takes an action.
func rolesFor(a Action) []string {
	switch a {
	case Submit, ReportMeasures:
		return []string{RoleOperator}
	case Opinion:
		return []string{RoleMemberUnit}
	case SupplementItem:
		return []string{RoleOperator, RoleProvider}
	case SupplementReceived:
		// The party's last upload receives the request; the office may
		// close it early.
		return []string{RoleOfficeAdmin, RoleOperator, RoleProvider}
	}
	return []string{RoleOfficeAdmin}
}

func knownAction(a Action) bool { return slices.Contains(Actions(), a) }

func knownStatus(s Status) bool { return slices.Contains(Statuses(), s) }

// openStatus: the case is submitted and not closed.
func openStatus(s Status) bool {
	switch s {
	case Submitted, UnderReview, AwaitingSupplement, SolicitingOpinions, SpecialReview:
		return true
	}
	return false
}
