package vault

// The review workflow (both editions of the Measures) over storage:
// vault/review decides, this file loads what it needs, audits, and appends
// the decision to the case's append-only history (case_events) together with
// the status change, in one transaction guarded by the case's revision.
// A clock is always derived from the history and the current calendar
// (GET /clock replays it on every call); what is stored besides is each
// case's running due date, written by the same transaction as the event
// that changes it and stamped with the calendar it was derived with, so the
// deadlines list and the sweeper read an index instead of replaying every
// open case, and importing a corrected calendar still moves every open
// deadline (workflow_due.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/crypt"
	"github.com/crvault/crvault/vault/review"
)

// TransitionRequest is the body of POST /cases/{case}/transitions. Each
// action reads the fields it needs; the others must be absent.
type TransitionRequest struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
	Days   int    `json:"days,omitempty"` // extend_special: 1 to review.MaxSpecialExtension
	// request_supplement, mark_incomplete: what is needed.
	Items []string `json:"items,omitempty"`
	// recommend: the organisations asked; absent means the organisations
	// of the member-unit users assigned now.
	Members []string `json:"members,omitempty"`
	// conclude
	Outcome    string                 `json:"outcome,omitempty"`
	Conditions []string               `json:"conditions,omitempty"`
	Factors    []review.FactorFinding `json:"factors,omitempty"`
	// record_approval: the reference of the Commission's approval.
	Reference string `json:"reference,omitempty"`
	// record_measures: the risk prevention and mitigation measures required.
	Measures []string `json:"measures,omitempty"`
	// record_opinion: the overdue member unit (organisation id) whose
	// written answer, received outside crvault, the office records, and
	// whether it agrees; reference is the answer's letter number.
	Org   string `json:"org,omitempty"`
	Agree *bool  `json:"agree,omitempty"`
}

// OpinionRequest is the body of POST /cases/{case}/opinions.
type OpinionRequest struct {
	Agree   *bool  `json:"agree"`
	Comment string `json:"comment"`
}

// MeasureReport is the body of POST /cases/{case}/measure-reports: the
// party's report on one of the measures the review requires.
type MeasureReport struct {
	Measure int    `json:"measure"`
	Report  string `json:"report"`
}

// TransitionResult is the case after a transition or opinion, the event
// appended to its history and the written notice generated, if any.
type TransitionResult struct {
	Case
	Event  review.Event `json:"event"`
	Notice *Material    `json:"notice,omitempty"`
	// noticeDue: Event owes the party a written notice, and its pending
	// marker committed with it.
	noticeDue bool
}

// openStatuses are the statuses whose clock runs (or is paused).
var openStatuses = []string{string(review.Submitted), string(review.UnderReview), string(review.AwaitingSupplement),
	string(review.SolicitingOpinions), string(review.SpecialReview)}

// Transition takes an office action on a case (everything but submit,
// opinions and the party's own steps). Errors: 404/403 from authorisation,
// 422 invalid_action, 409 illegal_transition with Allowed, 422 with a guard
// code, 409 concurrent_update when another transition won the race.
func (s *Service) Transition(ctx context.Context, a Actor, caseID string, in TransitionRequest) (TransitionResult, error) {
	row, providers, d, err := s.authorize(ctx, a, caseID, "case.transition", "case.transition", "case/"+caseID)
	if err != nil {
		return TransitionResult{}, err
	}
	act := review.Action(in.Action)
	if !slices.Contains(review.OfficeActions(), act) {
		names := make([]string, 0, len(review.OfficeActions()))
		for _, x := range review.OfficeActions() {
			names = append(names, string(x))
		}
		return TransitionResult{}, invalid("action", "invalid_action", "action must be one of "+strings.Join(names, ", "))
	}
	reason, err := CleanText("reason", in.Reason, review.MaxReasonLen, false)
	if err != nil {
		return TransitionResult{}, err
	}
	if err := fieldsFor(act, in); err != nil {
		return TransitionResult{}, err
	}
	ri := review.Input{Reason: reason, Days: in.Days, Items: in.Items, Members: in.Members, Outcome: in.Outcome,
		Conditions: in.Conditions, Factors: in.Factors, Reference: in.Reference, Measures: in.Measures, Unit: in.Org, Agree: in.Agree}
	res, err := s.move(ctx, a, row, d.Purpose, "case.transition", act, review.RoleOfficeAdmin, ri)
	if err != nil {
		return TransitionResult{}, err
	}
	if res.Case, err = s.openCase(ctx, row, providers); err != nil {
		return TransitionResult{}, err
	}
	res.Case.Status = string(res.Event.To)
	res.Notice = s.notify(ctx, a, res.Case, d.Purpose, res)
	return res, nil
}

// fieldsFor refuses fields an action does not read, so a misplaced field
// cannot be silently dropped.
func fieldsFor(act review.Action, in TransitionRequest) error {
	type field struct {
		name    string
		present bool
		actions []review.Action
	}
	for _, f := range []field{
		{"days", in.Days != 0, []review.Action{review.ExtendSpecial}},
		{"items", in.Items != nil, []review.Action{review.RequestSupplement, review.MarkIncomplete}},
		{"members", in.Members != nil, []review.Action{review.Recommend}},
		{"outcome", in.Outcome != "", []review.Action{review.Conclude}},
		{"conditions", in.Conditions != nil, []review.Action{review.Conclude}},
		{"factors", in.Factors != nil, []review.Action{review.Conclude}},
		{"reference", in.Reference != "", []review.Action{review.RecordApproval, review.RecordOpinion}},
		{"measures", in.Measures != nil, []review.Action{review.RecordMeasures}},
		{"org", in.Org != "", []review.Action{review.RecordOpinion}},
		{"agree", in.Agree != nil, []review.Action{review.RecordOpinion}},
	} {
		if f.present && !slices.Contains(f.actions, act) {
			code := "invalid_field"
			if f.name == "days" {
				code = "invalid_days"
			}
			return invalid(f.name, code, fmt.Sprintf("%s is not a field of %s", f.name, act))
		}
	}
	return nil
}

// Opinion records an assigned member unit's opinion on the recommendation,
// for its organisation (2020 Art. 11 / 2021 Art. 12); a disagreement in the
// first round moves the case to special_review.
func (s *Service) Opinion(ctx context.Context, a Actor, caseID string, in OpinionRequest) (TransitionResult, error) {
	row, providers, d, err := s.authorize(ctx, a, caseID, "opinion.create", "opinion.create", "case/"+caseID)
	if err != nil {
		return TransitionResult{}, err
	}
	if in.Agree == nil {
		return TransitionResult{}, invalid("agree", "missing_field", "agree (true or false) is required")
	}
	comment, err := CleanText("comment", in.Comment, review.MaxReasonLen, false)
	if err != nil {
		return TransitionResult{}, err
	}
	res, err := s.move(ctx, a, row, d.Purpose, "opinion.create", review.Opinion, review.RoleMemberUnit, review.Input{Reason: comment, Agree: in.Agree})
	if err != nil {
		return TransitionResult{}, err
	}
	if res.Case, err = s.openCase(ctx, row, providers); err != nil {
		return TransitionResult{}, err
	}
	res.Case.Status = string(res.Event.To)
	if res.Event.Seq, err = s.seqSeen(ctx, a.P, caseID, res.Event.Seq); err != nil {
		return TransitionResult{}, err
	}
	// Only the disagreement that starts the special review gives notice,
	// written by the system (noticeAuthor).
	res.Notice = s.notify(ctx, a, res.Case, d.Purpose, res)
	return res, nil
}

// ReportMeasures records the party's report on a risk prevention and
// mitigation measure the review requires (2021 Art. 16).
func (s *Service) ReportMeasures(ctx context.Context, a Actor, caseID string, in MeasureReport) (TransitionResult, error) {
	row, providers, d, err := s.authorize(ctx, a, caseID, "material.upload", "measures.report", "case/"+caseID)
	if err != nil {
		return TransitionResult{}, err
	}
	if !a.P.Has("operator") {
		if err := s.record(ctx, a, "measures.report", audit.Denied, caseID, "case/"+caseID, d.Purpose, "forbidden"); err != nil {
			return TransitionResult{}, err
		}
		return TransitionResult{}, fail(ErrForbidden, "forbidden", "the party reports on the measures")
	}
	report, err := CleanText("report", in.Report, review.MaxReasonLen, true)
	if err != nil {
		return TransitionResult{}, err
	}
	res, err := s.move(ctx, a, row, d.Purpose, "measures.report", review.ReportMeasures, review.RoleOperator, review.Input{Reason: report, Measure: in.Measure})
	if err != nil {
		return TransitionResult{}, err
	}
	if res.Case, err = s.openCase(ctx, row, providers); err != nil {
		return TransitionResult{}, err
	}
	res.Case.Status = string(res.Event.To)
	if res.Event.Seq, err = s.seqSeen(ctx, a.P, caseID, res.Event.Seq); err != nil {
		return TransitionResult{}, err
	}
	return res, nil
}

// seqSeen is the number the caller's own view of the history (historyFor)
// gives the event numbered seq: for a member unit or a party, whose views
// leave others' entries out, the gap between the two would count them.
func (s *Service) seqSeen(ctx context.Context, p access.Principal, caseID string, seq int) (int, error) {
	if !isParty(p) && !p.Has(access.RoleMemberUnit) {
		return seq, nil
	}
	h, err := s.history(ctx, caseID)
	if err != nil {
		return 0, err
	}
	for i, e := range h {
		if e.Seq == seq {
			return len(historyFor(p, h[:i+1], func(string) string { return "" }, true)), nil
		}
	}
	return 0, fmt.Errorf("history of case %s lacks its event %d", caseID, seq)
}

// move decides action act on an authorised case, audits the decision (denied
// with its code, or allowed before anything changes) and appends the event.
// A supplement_item that brings in the last requested item is followed, in
// the same transaction, by the supplement_received that restarts the clock.
func (s *Service) move(ctx context.Context, a Actor, row caseRow, purpose, event string, act review.Action, role string, in review.Input) (TransitionResult, error) {
	resource := "case/" + row.ID
	if row.statusRefused {
		// decideOn refused it already; a row re-read on a retry may not
		// pass either.
		return TransitionResult{}, errStatusDamaged()
	}
	history, err := s.history(ctx, row.ID)
	if err != nil {
		var ve *Error
		if errors.As(err, &ve) && ve.Code == "case_status_damaged" {
			// Refused before any decision, as decideOn refuses a damaged
			// status.
			if err := s.record(ctx, a, event, audit.Denied, row.ID, resource, purpose, ve.Code); err != nil {
				return TransitionResult{}, err
			}
		}
		return TransitionResult{}, err
	}
	facts, err := s.reviewFacts(ctx, row)
	if err != nil {
		return TransitionResult{}, err
	}
	if act == review.RecordOpinion {
		// Only an overdue unit's answer is recorded by the office: the
		// guard counts the unit's working days.
		if facts.Calendar, err = s.calendar(ctx); err != nil {
			return TransitionResult{}, err
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	in.Actor, in.Org, in.At, in.On = a.P.User.ID, a.P.User.OrgID, now, calendar.Today(now)
	if act == review.Submit {
		in.Edition = s.edition().ID
	}
	to, ev, err := review.Apply(review.Status(row.Status), history, act, role, facts, in)
	if errors.Is(err, review.ErrBadHistory) && s.caseMovedOn(ctx, row) {
		// The case row was read before a concurrent transition committed
		// and its history after: this request lost the race.
		err = errConcurrentUpdate()
	}
	if err != nil {
		verr := reviewError(err, act)
		var ve *Error
		if !errors.As(verr, &ve) {
			return TransitionResult{}, fmt.Errorf("%s on case %s: %w", act, row.ID, verr)
		}
		if err := s.record(ctx, a, event, audit.Denied, row.ID, resource, purpose, ve.Code); err != nil {
			return TransitionResult{}, err
		}
		return TransitionResult{}, ve
	}
	evs := []review.Event{ev}
	if act == review.SupplementItem {
		// The party's last requested upload receives the request.
		follow := review.Input{Actor: in.Actor, Org: in.Org, At: in.At, On: in.On}
		if _, rcv, err := review.Apply(to, append(slices.Clone(history), ev), review.SupplementReceived, role, facts, follow); err == nil {
			evs = append(evs, rcv)
		}
	}
	detail := string(act)
	if act == review.RecordOpinion {
		// The office acts for the unit: the trail names whose answer.
		detail += ";org=" + ev.Org
	}
	if err := s.record(ctx, a, event, audit.Allowed, row.ID, resource, purpose, detail); err != nil {
		return TransitionResult{}, err
	}
	cal, err := s.calendar(ctx)
	if err != nil {
		return TransitionResult{}, err
	}
	due, err := deriveDue(cal, dueBasis(cal), string(evs[len(evs)-1].To), append(slices.Clone(history), evs...))
	if err != nil {
		s.log.ErrorContext(ctx, "no deadline for open case", "case", row.ID, "err", err)
	}
	notices := pendingNotices(a, purpose, row.ID, evs)
	if err := s.appendEvents(ctx, row, due, notices, evs...); err != nil {
		s.recordFailure(ctx, a, event, row.ID, resource, err)
		return TransitionResult{}, err
	}
	last := evs[len(evs)-1]
	s.fault(faultAfterDecision)
	return TransitionResult{Event: last, noticeDue: len(notices) > 0 && notices[len(notices)-1].Seq == last.Seq}, nil
}

// appendEvents moves the case on and appends evs in one transaction, with
// the due columns derived from the history they complete (workflow_due.go)
// and the markers of the written notices they owe (workflow_notice.go).
// The revision check makes the loser of a race see concurrent_update; the
// (case_id, seq) key is the backstop should the revision ever be bypassed.
func (s *Service) appendEvents(ctx context.Context, row caseRow, due dueColumns, notices []pendingNoticeRow, evs ...review.Event) error {
	conflict := errConcurrentUpdate()
	last := evs[len(evs)-1]
	key, err := s.caseKey(ctx, row.ID)
	if err != nil {
		return err
	}
	rows, err := s.rowsKey(ctx)
	if err != nil {
		return err
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The status, the due columns and their tags in one statement, the
		// tags naming the event this transaction appends last
		// (statusFields, dueFields).
		change := due.updates(dueTag(rows, row.ID, due, int64(last.Seq)))
		change["status"], change["revision"], change["updated_at"] = string(last.To), row.Revision+1, last.At
		change["status_tag"] = statusTag(rows, row.ID, string(last.To), int64(last.Seq))
		if evs[0].Action == review.Submit {
			change["edition"] = evs[0].Edition
		}
		res := tx.Model(&caseRow{}).Where("id = ? AND revision = ?", row.ID, row.Revision).Updates(change)
		if res.Error != nil {
			return fmt.Errorf("update case %s: %w", row.ID, res.Error)
		}
		if res.RowsAffected != 1 {
			return conflict
		}
		for _, ev := range evs {
			er, err := toEventRow(key, row.ID, ev)
			if err != nil {
				return err
			}
			// Tagged in the statement that appends it (eventtags.go).
			er.Tag = eventTag(rows, er)
			if err := tx.Create(er).Error; err != nil {
				if errors.Is(err, gorm.ErrDuplicatedKey) {
					return conflict
				}
				return fmt.Errorf("append event %d to case %s: %w", ev.Seq, row.ID, err)
			}
		}
		for i := range notices {
			if err := tx.Create(&notices[i]).Error; err != nil {
				return fmt.Errorf("mark notice of event %d of case %s pending: %w", notices[i].Seq, row.ID, err)
			}
		}
		return nil
	})
	return err
}

func errConcurrentUpdate() *Error {
	return &Error{Kind: ErrConflict, Code: "concurrent_update", Detail: "the case changed while this request ran; reload and retry"}
}

// caseMovedOn reports whether the case's revision is no longer the one row
// was read at.
func (s *Service) caseMovedOn(ctx context.Context, row caseRow) bool {
	var cur caseRow
	err := s.db.WithContext(ctx).Select("revision").Where("id = ?", row.ID).Take(&cur).Error
	return err == nil && cur.Revision != row.Revision
}

// reviewError maps vault/review's errors to API errors.
func reviewError(err error, act review.Action) error {
	var ite *review.IllegalTransitionError
	var ge *review.GuardError
	switch {
	case errors.As(err, &ite):
		allowed := make([]string, 0, len(ite.Allowed))
		for _, x := range ite.Allowed {
			allowed = append(allowed, string(x))
		}
		detail := fmt.Sprintf("%s is not possible while the case is %s", act, ite.From)
		if ite.From == review.AwaitingSupplement {
			detail += " (the procedure waits for the requested supplementary materials)"
		}
		if len(allowed) > 0 {
			detail += "; allowed now: " + strings.Join(allowed, ", ")
		}
		return &Error{Kind: ErrConflict, Code: "illegal_transition", Detail: detail, Allowed: allowed}
	case errors.As(err, &ge):
		kind := ErrInvalid
		if ge.Code == review.CodeMaterialsIncomplete {
			kind = ErrIncomplete
		}
		return &Error{Kind: kind, Code: ge.Code, Detail: ge.Detail, Missing: ge.Missing}
	case errors.Is(err, review.ErrForbidden):
		return fail(ErrForbidden, "forbidden", fmt.Sprintf("your role may not %s", act))
	case errors.Is(err, review.ErrUnknownAction):
		return invalid("action", "invalid_action", "unknown action")
	}
	return err
}

// history loads a case's review events in order, checked against their
// tags (eventtags.go): a history edited outside crvault answers
// case_status_damaged, as a damaged status does, for nothing replayed
// from it (the next step, the clock, what the parties are shown) can be
// trusted.
func (s *Service) history(ctx context.Context, caseID string) ([]review.Event, error) {
	rows, err := s.checkedEvents(ctx, s.db, caseID)
	if errors.Is(err, errHistoryDamaged) {
		return nil, fail(ErrDamaged, "case_status_damaged", "the stored history of this case does not authenticate (changed outside crvault); nothing that reads it can be done until it is restored; the operator has been told")
	}
	if err != nil {
		return nil, err
	}
	key, err := s.textKey(ctx, caseID)
	if err != nil {
		return nil, err
	}
	out := make([]review.Event, 0, len(rows))
	for _, r := range rows {
		e, err := fromEventRow(key, r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// histories loads the events of many cases at once. Replaying a history
// needs its sealed payloads (the edition, the items requested, the members
// asked), so each case's key is opened, once per case (and cached by the
// keyring). A case whose history fails its tags (historyChecked) is left
// out of the map and named in refused.
func (s *Service) histories(ctx context.Context, caseIDs []string) (out map[string][]review.Event, refused map[string]bool, err error) {
	out, refused = map[string][]review.Event{}, map[string]bool{}
	err = s.eachHistory(ctx, caseIDs, func(id string, rows []caseEventRow, ok bool) error {
		if !ok {
			refused[id] = true
			return nil
		}
		key, err := s.textKey(ctx, id)
		if err != nil {
			return err
		}
		for _, r := range rows {
			e, err := fromEventRow(key, r)
			if err != nil {
				return err
			}
			out[id] = append(out[id], e)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, refused, nil
}

// eachHistory reads the events of caseIDs, 500 cases a statement, and calls
// fn with each case's events in order and whether they authenticate
// (historyChecked, which logs and counts a history that does not). A case
// without events is not called.
func (s *Service) eachHistory(ctx context.Context, caseIDs []string, fn func(id string, rows []caseEventRow, ok bool) error) error {
	key, err := s.rowsKey(ctx)
	if err != nil {
		return err
	}
	chk := key.NewRowTagChecker(eventTagTable)
	for len(caseIDs) > 0 {
		batch := caseIDs[:min(len(caseIDs), 500)]
		caseIDs = caseIDs[len(batch):]
		var rows []caseEventRow
		if err := s.db.WithContext(ctx).Where("case_id IN ?", batch).Order("case_id, seq").Find(&rows).Error; err != nil {
			return fmt.Errorf("load case histories: %w", err)
		}
		for len(rows) > 0 {
			id := rows[0].CaseID
			n := 1
			for n < len(rows) && rows[n].CaseID == id {
				n++
			}
			one := rows[:n]
			rows = rows[n:]
			if err := fn(id, one, s.historyChecked(ctx, chk, id, one)); err != nil {
				return err
			}
		}
	}
	return nil
}

// eventPayload is the structured part of an event, stored as JSON in
// case_events.payload.
type eventPayload struct {
	Edition    string                 `json:"edition,omitempty"`
	Org        string                 `json:"org,omitempty"`
	Items      []string               `json:"items,omitempty"`
	Item       int                    `json:"item,omitempty"`
	Material   string                 `json:"material,omitempty"`
	Members    []string               `json:"members,omitempty"`
	Outcome    string                 `json:"outcome,omitempty"`
	Conditions []string               `json:"conditions,omitempty"`
	Factors    []review.FactorFinding `json:"factors,omitempty"`
	Reference  string                 `json:"reference,omitempty"`
	Measures   []string               `json:"measures,omitempty"`
	Measure    int                    `json:"measure,omitempty"`
}

// toEventRow and fromEventRow are the one pair that converts between a
// review.Event and its row: every free-text and structured field of an
// event passes here, and is sealed here with the case key (sealing.go),
// bound to the case, the entry and the column: Reason, and Payload as one
// JSON document. A nil key (a crypto-shredded case) leaves them empty.
func toEventRow(key *crypt.CaseKey, caseID string, e review.Event) (*caseEventRow, error) {
	p := eventPayload{Edition: e.Edition, Org: e.Org, Items: e.Items, Item: e.Item, Material: e.Material, Members: e.Members,
		Outcome: e.Outcome, Conditions: e.Conditions, Factors: e.Factors, Reference: e.Reference, Measures: e.Measures, Measure: e.Measure}
	payload := ""
	if !reflect.ValueOf(p).IsZero() {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode event %d of case %s: %w", e.Seq, caseID, err)
		}
		payload = string(b)
	}
	reason, err := sealText(key, labelReason(caseID, e.Seq), e.Reason)
	if err != nil {
		return nil, err
	}
	sealedPayload, err := sealText(key, labelPayload(caseID, e.Seq), payload)
	if err != nil {
		return nil, err
	}
	return &caseEventRow{CaseID: caseID, Seq: e.Seq, Action: string(e.Action), FromStatus: string(e.From), ToStatus: string(e.To),
		OnDate: e.On.String(), At: eventAt(e.At), Actor: e.Actor, Role: e.Role, Reason: reason, Days: e.Days, Agree: e.Agree, Payload: sealedPayload}, nil
}

func fromEventRow(key *crypt.CaseKey, r caseEventRow) (review.Event, error) {
	on, err := calendar.ParseDate(r.OnDate)
	if err != nil {
		return review.Event{}, fmt.Errorf("case %s event %d: %w", r.CaseID, r.Seq, err)
	}
	reason, err := openText(key, labelReason(r.CaseID, r.Seq), r.Reason)
	if err != nil {
		return review.Event{}, err
	}
	payload, err := openText(key, labelPayload(r.CaseID, r.Seq), r.Payload)
	if err != nil {
		return review.Event{}, err
	}
	var p eventPayload
	if payload != "" {
		if err := json.Unmarshal([]byte(payload), &p); err != nil {
			return review.Event{}, fmt.Errorf("case %s event %d: payload: %w", r.CaseID, r.Seq, err)
		}
	}
	return review.Event{Seq: r.Seq, Action: review.Action(r.Action), From: review.Status(r.FromStatus), To: review.Status(r.ToStatus),
		On: on, At: r.At.UTC(), Actor: r.Actor, Role: r.Role, Reason: reason, Days: r.Days, Agree: r.Agree,
		Edition: p.Edition, Org: p.Org, Items: p.Items, Item: p.Item, Material: p.Material, Members: p.Members, Outcome: p.Outcome,
		Conditions: p.Conditions, Factors: p.Factors, Reference: p.Reference, Measures: p.Measures, Measure: p.Measure}, nil
}

// reviewFacts looks up what the guards need, just before deciding.
func (s *Service) reviewFacts(ctx context.Context, row caseRow) (review.Facts, error) {
	caseID := row.ID
	var kinds []string
	if err := s.db.WithContext(ctx).Model(&materialRow{}).Where("case_id = ?", caseID).Distinct("kind").Pluck("kind", &kinds).Error; err != nil {
		return review.Facts{}, fmt.Errorf("material kinds of case %s: %w", caseID, err)
	}
	f := review.Facts{MaterialKinds: kinds, MemberUnits: map[string]string{},
		Case: review.CaseInfo{Type: row.Type, UsersWithPersonalInfo: row.UsersWithPersonalInfo, Origin: row.Origin}}
	var latest []time.Time
	if err := s.db.WithContext(ctx).Model(&materialRow{}).Where("case_id = ? AND kind = ?", caseID, review.MaterialRecommendation).
		Order("uploaded_at DESC").Limit(1).Pluck("uploaded_at", &latest).Error; err != nil {
		return review.Facts{}, fmt.Errorf("recommendations of case %s: %w", caseID, err)
	}
	if len(latest) == 1 {
		f.LatestRecommendation = calendar.Today(latest[0])
		f.LatestRecommendationAt = latest[0]
	}
	users, err := s.access.AssignedUsers(ctx, caseID, "member_unit")
	if err != nil {
		return review.Facts{}, fmt.Errorf("member units of case %s: %w", caseID, err)
	}
	for _, id := range users {
		u, err := s.access.User(ctx, id)
		if err != nil {
			return review.Facts{}, fmt.Errorf("member unit user %s of case %s: %w", id, caseID, err)
		}
		if u.OrgID != "" && !slices.Contains(f.AssignedMemberOrgs, u.OrgID) {
			f.AssignedMemberOrgs = append(f.AssignedMemberOrgs, u.OrgID)
		}
	}
	var units []memberUnitRow
	if err := s.db.WithContext(ctx).Find(&units).Error; err != nil {
		return review.Facts{}, fmt.Errorf("member units: %w", err)
	}
	for _, u := range units {
		f.MemberUnits[u.OrgID] = u.Code
	}
	return f, nil
}

// Clock derives a case's statutory clock (GET /cases/{case}/clock) from its
// history, today's date and the current calendar.
func (s *Service) Clock(ctx context.Context, a Actor, caseID string) (review.Clock, error) {
	_, _, d, err := s.authorize(ctx, a, caseID, access.Action("case.read"), "case.clock", "case/"+caseID)
	if err != nil {
		return review.Clock{}, err
	}
	if err := s.record(ctx, a, "case.clock", audit.Allowed, caseID, "case/"+caseID, d.Purpose, ""); err != nil {
		return review.Clock{}, err
	}
	history, err := s.history(ctx, caseID)
	if err != nil {
		return review.Clock{}, err
	}
	cal, err := s.calendar(ctx)
	if err != nil {
		return review.Clock{}, err
	}
	c, err := review.DeriveClock(cal, history, calendar.Today(s.now()))
	if err != nil {
		if errors.Is(err, calendar.ErrOutOfRange) {
			return review.Clock{}, calendarError(err)
		}
		return review.Clock{}, fmt.Errorf("clock of case %s: %w", caseID, err)
	}
	return s.clockView(ctx, a.P, caseID, c)
}

// History returns a case's review events (who did what, when and why), to
// anyone who may read the case, as visibility.go lets the caller see them.
func (s *Service) History(ctx context.Context, a Actor, caseID string) ([]review.Event, error) {
	row, facts, providers, err := s.caseFacts(ctx, caseID)
	_, _, d, err := s.decideOn(ctx, a, caseID, access.Action("case.read"), "case.history", "case/"+caseID, row, facts, providers, err)
	if err != nil {
		return nil, err
	}
	// An assignee reads the deliberation's texts on the terms it reads the
	// materials (historyFor); the decision is the index's, in memory.
	mayRead := false
	if a.P.Has(access.RoleMemberUnit) || a.P.Has(access.RoleReviewer) {
		rd, err := s.access.Decide(ctx, a.P, facts, access.ActMaterialRead)
		if err != nil {
			return nil, fmt.Errorf("history of case %s: %w", caseID, err)
		}
		mayRead = rd.Allowed && !unitDone(a.P, row.Status)
	}
	if err := s.record(ctx, a, "case.history", audit.Allowed, caseID, "case/"+caseID, d.Purpose, ""); err != nil {
		return nil, err
	}
	h, err := s.history(ctx, caseID)
	if err != nil {
		s.recordFailure(ctx, a, "case.history", caseID, "case/"+caseID, err)
		return nil, err
	}
	return s.historyView(ctx, a.P, caseID, h, mayRead)
}

// Deadline is one entry of GET /deadlines.
type Deadline struct {
	CaseID string        `json:"case_id"`
	Title  string        `json:"title"`
	Status string        `json:"status"`
	Phase  review.Phase  `json:"phase"`
	DueOn  calendar.Date `json:"due_on"`
	// DueOnProvisional: the due date rests on the provisional calendar model.
	DueOnProvisional bool            `json:"due_on_provisional"`
	Overdue          bool            `json:"overdue"`
	Flag             review.FlagKind `json:"flag"` // the standard 3-working-day flag the watcher uses
}

// MaxWithin bounds GET /deadlines?within=N.
const MaxWithin = calendar.MaxDays

// Deadlines lists open, running cases due within the next within working
// days (the due day counted) or overdue, soonest first; an overdue case
// stays listed while it waits for supplements. Office admins only.
func (s *Service) Deadlines(ctx context.Context, a Actor, within int) ([]Deadline, error) {
	ds, _, err := s.deadlines(ctx, a, within, nil, 0)
	if err != nil {
		return nil, err
	}
	return s.titleDeadlines(ctx, ds)
}

// dueCase is a Deadline before its title is decrypted.
type dueCase struct {
	Deadline
	row caseRow
}

// deadlines is Deadlines without the titles (opening each case's key to
// decrypt its title is for the page's rows only), from the stored due
// dates (workflow_due.go): the cases due after the key after, up to limit
// of them (0: all), and whether more follow.
func (s *Service) deadlines(ctx context.Context, a Actor, within int, after *dueKey, limit int) ([]dueCase, bool, error) {
	if !s.access.Can(a.P, "deadline", "list") {
		if err := s.record(ctx, a, "deadline.list", audit.Denied, "", "deadlines", "", "forbidden"); err != nil {
			return nil, false, err
		}
		return nil, false, fail(ErrForbidden, "forbidden", "only the Review Office lists deadlines")
	}
	if within < 0 || within > MaxWithin {
		return nil, false, invalid("within", "invalid_days", fmt.Sprintf("within must be an integer from 0 to %d", MaxWithin))
	}
	if err := s.record(ctx, a, "deadline.list", audit.Allowed, "", "deadlines", "", ""); err != nil {
		return nil, false, err
	}
	return s.dueRows(ctx, within, after, limit)
}

// titleDeadlines fills in the titles, opening each case's key.
func (s *Service) titleDeadlines(ctx context.Context, ds []dueCase) ([]Deadline, error) {
	out := make([]Deadline, len(ds))
	for i, d := range ds {
		c, err := s.openCase(ctx, d.row, nil)
		if err != nil {
			return nil, err
		}
		out[i] = d.Deadline
		out[i].Title = c.Title
	}
	return out, nil
}
