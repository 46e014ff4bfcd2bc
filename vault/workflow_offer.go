package vault

import (
	"context"
	"slices"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault/calendar"
	"github.com/crvault/crvault/vault/review"
)

// Offered lists the office actions the caller could take on a case right
// now: allowed in its status and history, and passing every guard that
// depends on the case (materials, opinions) rather than on what the caller
// will type (a reason, a number of days). It is what a form should offer;
// Transition still decides each request. Authorised and audited like a
// transition ("case.actions"), it changes nothing.
func (s *Service) Offered(ctx context.Context, a Actor, caseID string) ([]string, error) {
	row, _, d, err := s.authorize(ctx, a, caseID, "case.transition", "case.actions", "case/"+caseID)
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, a, "case.actions", audit.Allowed, caseID, "case/"+caseID, d.Purpose, ""); err != nil {
		return nil, err
	}
	history, err := s.history(ctx, caseID)
	if err != nil {
		return nil, err
	}
	facts, err := s.reviewFacts(ctx, row)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	agree := true
	// A stand-in for what the caller will type, so that only the case's
	// own guards decide.
	in := review.Input{Actor: a.P.User.ID, Org: a.P.User.OrgID, At: now, On: calendar.Today(now), Reason: "-", Days: 1, Agree: &agree,
		Items: []string{"-"}, Outcome: "passed", Reference: "-", Measures: []string{"-"}}
	out := []string{}
	status := review.Status(row.Status)
	for _, act := range review.Allowed(status, history, review.RoleOfficeAdmin) {
		if !slices.Contains(review.OfficeActions(), act) {
			continue
		}
		try := in
		if act == review.RecordOpinion {
			// Offered while a unit of the open round is overdue: the one
			// the guard then counts for is the first of them.
			if facts.Calendar, err = s.calendar(ctx); err != nil {
				return nil, err
			}
			try.Unit = firstOverdue(facts.Calendar, history, try.On)
		}
		if _, err := review.Next(status, history, act, review.RoleOfficeAdmin, facts, try); err == nil {
			out = append(out, string(act))
		}
	}
	return out, nil
}

// firstOverdue is the first member unit of the open round silent past its
// deadline on day on, "" when none is (or the clock cannot be derived).
func firstOverdue(cal *calendar.Calendar, history []review.Event, on calendar.Date) string {
	c, err := review.DeriveClock(cal, history, on)
	if err != nil {
		return ""
	}
	for _, o := range c.Opinions {
		if o.Overdue {
			return o.Org
		}
	}
	return ""
}
