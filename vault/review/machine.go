package review

import (
	"fmt"
	"slices"
	"strings"

	"github.com/crvault/crvault/vault/calendar"
)

// state is what a history adds up to: the status plus what guards and the
// clock need to remember.
type state struct {
	status   Status
	last     calendar.Date
	extended bool
	opinions map[string]bool // member unit -> agreed, since the last recommend
}

// apply checks that e can follow st structurally (status, order, history-only
// guards) and advances st. Roles and Facts are checked when an event is
// created, not when it is replayed: assignments change afterwards.
func (st *state) apply(i int, e Event) error {
	if e.Seq != i+1 {
		return fmt.Errorf("%w: event %d has seq %d", ErrBadHistory, i+1, e.Seq)
	}
	r, ok := ruleFor(e.Action)
	if !ok {
		return fmt.Errorf("%w: event %d: %w %q", ErrBadHistory, e.Seq, ErrUnknownAction, e.Action)
	}
	if !slices.Contains(r.from, st.status) {
		return fmt.Errorf("%w: event %d: %s in status %s", ErrBadHistory, e.Seq, e.Action, st.status)
	}
	if !e.On.Valid() || e.On.Before(st.last) {
		return fmt.Errorf("%w: event %d: date %v before %v or invalid", ErrBadHistory, e.Seq, e.On, st.last)
	}
	switch e.Action {
	case Extend:
		if st.extended {
			return fmt.Errorf("%w: event %d: second extend", ErrBadHistory, e.Seq)
		}
		st.extended = true
	case ExtendSpecial:
		if e.Days < 1 || e.Days > MaxSpecialExtension {
			return fmt.Errorf("%w: event %d: extend_special by %d days", ErrBadHistory, e.Seq, e.Days)
		}
	case Recommend:
		st.opinions = map[string]bool{}
	case Opinion:
		if e.Agree == nil {
			return fmt.Errorf("%w: event %d: opinion without agree", ErrBadHistory, e.Seq)
		}
		if _, dup := st.opinions[e.Actor]; dup {
			return fmt.Errorf("%w: event %d: second opinion from %s", ErrBadHistory, e.Seq, e.Actor)
		}
		st.opinions[e.Actor] = *e.Agree
	}
	to := target(st.status, e.Action, e.Agree)
	// From and To are checked when the caller stored them.
	if (e.From != "" && e.From != st.status) || (e.To != "" && e.To != to) {
		return fmt.Errorf("%w: event %d records %s->%s, replay gives %s->%s", ErrBadHistory, e.Seq, e.From, e.To, st.status, to)
	}
	st.status, st.last = to, e.On
	return nil
}

func replay(history []Event) (state, error) {
	st := state{status: Draft}
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

// Allowed lists the actions role may take in status given the history, in
// Actions order. Guards that need Facts (materials, opinions) are not
// evaluated here, so Next may still refuse an action listed.
func Allowed(status Status, history []Event, role string) []Action {
	extended := slices.ContainsFunc(history, func(e Event) bool { return e.Action == Extend })
	var out []Action
	for _, a := range Actions() {
		r, _ := ruleFor(a)
		if r.role != role || !slices.Contains(r.from, status) || (a == Extend && extended) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Next decides whether role may take action a on a case in status with this
// history, and returns the status it leads to. It changes nothing. Errors:
// ErrUnknownAction, ErrUnknownStatus, ErrInvalidInput, ErrBadHistory (status
// and history disagree), *IllegalTransitionError (409), ErrForbidden (403),
// *GuardError (422).
func Next(status Status, history []Event, a Action, role string, f Facts, in Input) (Status, error) {
	r, ok := ruleFor(a)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownAction, clip(string(a)))
	}
	if !knownStatus(status) {
		return "", fmt.Errorf("%w: %q", ErrUnknownStatus, clip(string(status)))
	}
	st, err := replay(history)
	if err != nil {
		return "", err
	}
	if st.status != status {
		return "", fmt.Errorf("%w: history leads to %s, case says %s", ErrBadHistory, st.status, status)
	}
	if !slices.Contains(r.from, status) {
		return "", &IllegalTransitionError{From: status, Action: a, Allowed: Allowed(status, history, role)}
	}
	if role != r.role {
		return "", fmt.Errorf("%w: %s needs %s", ErrForbidden, a, r.role)
	}
	if strings.TrimSpace(in.Actor) == "" {
		return "", fmt.Errorf("%w: no actor", ErrInvalidInput)
	}
	if !in.On.Valid() {
		return "", fmt.Errorf("%w: no valid date", ErrInvalidInput)
	}
	if in.On.Before(st.last) {
		return "", guard(CodeDateOutOfOrder, "%s is before the last event on %s", in.On, st.last)
	}
	if len(in.Reason) > MaxReasonLen {
		return "", guard(CodeReasonTooLong, "reason longer than %d bytes", MaxReasonLen)
	}
	hasReason := strings.TrimSpace(in.Reason) != ""
	switch a {
	case Submit:
		var missing []string
		for _, k := range RequiredMaterials() {
			if !slices.Contains(f.MaterialKinds, k) {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			g := guard(CodeMaterialsIncomplete, "missing materials: %s", strings.Join(missing, ", "))
			g.Missing = missing
			return "", g
		}
	case Extend:
		if st.extended {
			return "", guard(CodeAlreadyExtended, "the preliminary review was already extended once (Art. 10)")
		}
		if !hasReason {
			return "", guard(CodeReasonRequired, "extend needs a reason")
		}
	case ExtendSpecial:
		if !hasReason {
			return "", guard(CodeReasonRequired, "extend_special needs a reason")
		}
		if in.Days < 1 || in.Days > MaxSpecialExtension {
			return "", guard(CodeInvalidDays, "days must be 1 to %d, got %d", MaxSpecialExtension, in.Days)
		}
	case Recommend:
		if !f.HasRecommendation && !slices.Contains(f.MaterialKinds, MaterialRecommendation) {
			return "", guard(CodeRecommendationRequired, "upload a recommendation material first")
		}
	case Opinion:
		if in.Agree == nil {
			return "", guard(CodeAgreeRequired, "an opinion must say agree true or false")
		}
		if !slices.Contains(f.SolicitedMemberUnits, in.Actor) {
			return "", guard(CodeNotSolicited, "this member unit is not assigned to the case")
		}
		if _, dup := st.opinions[in.Actor]; dup {
			return "", guard(CodeOpinionGiven, "this member unit has already given its opinion")
		}
	case Conclude:
		if status == SolicitingOpinions {
			var pending []string
			for _, u := range f.SolicitedMemberUnits {
				if !st.opinions[u] {
					pending = append(pending, u)
				}
			}
			if len(f.SolicitedMemberUnits) == 0 {
				return "", guard(CodeOpinionsPending, "no member unit has been solicited (Art. 11)")
			}
			if len(pending) > 0 {
				g := guard(CodeOpinionsPending, "%d of %d member units have not agreed", len(pending), len(f.SolicitedMemberUnits))
				g.Missing = pending
				return "", g
			}
		}
	}
	return target(status, a, in.Agree), nil
}

// Apply is Next plus the Event to append to the history when it succeeds.
// Only the fields that matter for the action are copied from in.
func Apply(status Status, history []Event, a Action, role string, f Facts, in Input) (Status, Event, error) {
	to, err := Next(status, history, a, role, f, in)
	if err != nil {
		return "", Event{}, err
	}
	e := Event{
		Seq: len(history) + 1, Action: a, From: status, To: to,
		On: in.On, At: in.At.UTC(), Actor: in.Actor, Role: role,
		Reason: strings.TrimSpace(in.Reason),
	}
	switch a {
	case ExtendSpecial:
		e.Days = in.Days
	case Extend:
		e.Days = ExtensionDays
	case Opinion:
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
