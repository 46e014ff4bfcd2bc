// Package review is the cybersecurity review workflow (Measures 2020, Art. 8
// to 15) as pure logic: the state machine of a case and its statutory clock.
// It stores nothing and does no I/O. The caller keeps each case's history,
// an append-only list of Events, and derives everything else from it: the
// current status (Replay), what may happen next (Allowed, Next, Apply) and
// every deadline (DeriveClock, Flag). No due date is ever stored, so a
// corrected calendar re-derives every open deadline.
//
// # States and actions
//
//	draft --submit(operator)--> submitted
//	submitted --not_required--> not_required                         (Art. 8, final)
//	submitted --require_review--> under_review                        (Art. 8)
//	under_review --request_supplement--> awaiting_supplement          (Art. 14, clock paused)
//	awaiting_supplement --supplement_received--> under_review         (Art. 14, clock resumes)
//	under_review | awaiting_supplement --extend--> (same)             (Art. 10, +15, once, reason)
//	under_review --recommend--> soliciting_opinions                   (Art. 10-11, recommendation material)
//	soliciting_opinions --opinion(member_unit, agree)--> (same)       (Art. 11)
//	soliciting_opinions --opinion(member_unit, disagree)--> special_review (Art. 12)
//	soliciting_opinions --conclude--> concluded                       (Art. 11, every solicited unit agreed)
//	special_review --extend_special--> (same)                         (Art. 13, +days, reason)
//	special_review --conclude--> concluded                            (Art. 12, final)
//
// Every action but submit and opinion belongs to office_admin.
//
// # Decisions where the Measures or the contract are silent
//
//   - Supplements can be requested only in under_review, as the contract says;
//     the determination (Art. 8) and opinion phases cannot be paused.
//   - extend is once per case, allowed while paused, and adds 15 working days
//     to the preliminary review even if it is already overdue.
//   - extend_special may be repeated ("extended appropriately"), each time with
//     a reason and 1 to MaxSpecialExtension working days; each is recorded.
//   - Opinions: one per solicited member unit (Facts.SolicitedMemberUnits) per
//     recommendation. The first disagreement moves the case to special_review
//     at once. conclude from soliciting_opinions needs at least one solicited
//     unit and an agreeing opinion from every one currently solicited.
//   - The opinion phase clock keeps running after every unit agreed, until the
//     office concludes: the office is then the one late.
//   - submit needs at least one declaration, impact_analysis and procurement
//     material (Facts.MaterialKinds), else GuardError materials_incomplete.
//   - Event dates may not go backwards; Event.Seq is len(history)+1, so a
//     unique (case, seq) key in storage makes one of two concurrent
//     transitions on a case fail instead of both succeeding.
//
// # The clock
//
// Each phase starts on the day of the event that opens it; that day does not
// count, so the phase is due on calendar.WorkdaysAfter(start, allowance).
// Allowances: determination 10 (Art. 8), preliminary_review 30 (+15 on
// extend, Art. 10), member_unit_opinions 15 (Art. 11), special_review 45
// (+ extend_special days, Art. 13). A request for supplements on day R pauses
// the clock from R+1 up to and including the day S the materials arrive: the
// working days in (R, S] do not count. An open pause is taken to run through
// today, so the due date moves later day by day while the case waits.
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

// The actions. Opinion comes from POST /cases/{case}/opinions, the others from
// POST /cases/{case}/transitions.
const (
	Submit             Action = "submit"
	RequireReview      Action = "require_review"
	NotRequiredAction  Action = "not_required"
	Extend             Action = "extend"
	RequestSupplement  Action = "request_supplement"
	SupplementReceived Action = "supplement_received"
	Recommend          Action = "recommend"
	Opinion            Action = "opinion"
	Conclude           Action = "conclude"
	ExtendSpecial      Action = "extend_special"
)

// Actions lists every action in a stable order (the order Allowed uses).
func Actions() []Action {
	return []Action{Submit, RequireReview, NotRequiredAction, Extend, RequestSupplement, SupplementReceived, Recommend, Opinion, Conclude, ExtendSpecial}
}

// Roles that act in the workflow.
const (
	RoleOfficeAdmin = "office_admin"
	RoleOperator    = "operator"
	RoleMemberUnit  = "member_unit"
)

// Statutory allowances in working days.
const (
	DeterminationDays      = 10 // Art. 8
	PreliminaryDays        = 30 // Art. 10
	ExtensionDays          = 15 // Art. 10
	OpinionDays            = 15 // Art. 11
	SpecialReviewDays      = 45 // Art. 13
	MaxSpecialExtension    = 45 // our bound on one extend_special
	DueSoonWorkingDays     = 3  // Flag's "due soon" window
	MaxReasonLen           = 4000
	MaterialRecommendation = "recommendation"
)

// RequiredMaterials are the material kinds submit needs (Art. 7).
func RequiredMaterials() []string { return []string{"declaration", "impact_analysis", "procurement"} }

// Event is one entry of a case's append-only history: a transition, who made
// it, on which day and why. It is also what the audit trail records.
type Event struct {
	Seq    int           `json:"seq"`
	Action Action        `json:"action"`
	From   Status        `json:"from"`
	To     Status        `json:"to"`
	On     calendar.Date `json:"on"` // the day in Asia/Shanghai; the clock counts from it
	At     time.Time     `json:"at"`
	Actor  string        `json:"actor"`
	Role   string        `json:"role"`
	Reason string        `json:"reason,omitempty"` // reason, or an opinion's comment
	Days   int           `json:"days,omitempty"`   // extend_special only
	Agree  *bool         `json:"agree,omitempty"`  // opinion only
}

// Input is what the caller says about a requested action.
type Input struct {
	Actor  string        // user id
	On     calendar.Date // calendar.Today(At)
	At     time.Time
	Reason string
	Days   int   // extend_special
	Agree  *bool // opinion
}

// Facts are what guards need to know beyond the history; the caller looks
// them up in storage just before calling Next.
type Facts struct {
	MaterialKinds        []string // kinds of the case's materials (any version)
	HasRecommendation    bool     // a recommendation material exists
	SolicitedMemberUnits []string // user ids currently assigned to the case as member_unit
}

// Sentinel errors callers branch on.
var (
	ErrUnknownAction = errors.New("unknown action")
	ErrUnknownStatus = errors.New("unknown status")
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
)

// GuardError is a legal transition whose precondition does not hold.
type GuardError struct {
	Code    string
	Detail  string
	Missing []string // materials_incomplete: missing kinds; opinions_pending: units yet to agree
}

func (e *GuardError) Error() string { return e.Code + ": " + e.Detail }

func guard(code, format string, args ...any) *GuardError {
	return &GuardError{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// rule is where an action may start and who may take it.
type rule struct {
	from []Status
	role string
}

func ruleFor(a Action) (rule, bool) {
	switch a {
	case Submit:
		return rule{[]Status{Draft}, RoleOperator}, true
	case RequireReview, NotRequiredAction:
		return rule{[]Status{Submitted}, RoleOfficeAdmin}, true
	case Extend:
		return rule{[]Status{UnderReview, AwaitingSupplement}, RoleOfficeAdmin}, true
	case RequestSupplement, Recommend:
		return rule{[]Status{UnderReview}, RoleOfficeAdmin}, true
	case SupplementReceived:
		return rule{[]Status{AwaitingSupplement}, RoleOfficeAdmin}, true
	case Opinion:
		return rule{[]Status{SolicitingOpinions}, RoleMemberUnit}, true
	case Conclude:
		return rule{[]Status{SolicitingOpinions, SpecialReview}, RoleOfficeAdmin}, true
	case ExtendSpecial:
		return rule{[]Status{SpecialReview}, RoleOfficeAdmin}, true
	}
	return rule{}, false
}

// target is the status after a (legal) action.
func target(s Status, a Action, agree *bool) Status {
	switch a {
	case Submit:
		return Submitted
	case RequireReview, SupplementReceived:
		return UnderReview
	case NotRequiredAction:
		return NotRequired
	case RequestSupplement:
		return AwaitingSupplement
	case Recommend:
		return SolicitingOpinions
	case Opinion:
		if agree != nil && !*agree {
			return SpecialReview
		}
		return s
	case Conclude:
		return Concluded
	}
	return s // extend, extend_special
}

func knownStatus(s Status) bool { return slices.Contains(Statuses(), s) }
