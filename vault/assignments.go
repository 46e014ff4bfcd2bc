package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// NewAssignment is an office admin's grant of need-to-know on a case.
type NewAssignment struct {
	User      string     `json:"user"`
	Role      string     `json:"role"`
	Purpose   string     `json:"purpose"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Assign grants a reviewer or member unit access to one case, for a purpose.
func (s *Service) Assign(ctx context.Context, a Actor, caseID string, in NewAssignment) (access.Assignment, error) {
	_, _, _, err := s.authorize(ctx, a, caseID, "assignment.manage", "assignment.create", "case/"+caseID)
	if err != nil {
		return access.Assignment{}, err
	}
	if in.Role != "reviewer" && in.Role != "member_unit" {
		return access.Assignment{}, invalid("role", "invalid_role", `role must be "reviewer" or "member_unit"`)
	}
	purpose, err := CleanText("purpose", in.Purpose, 500, true)
	if err != nil {
		return access.Assignment{}, err
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		return access.Assignment{}, invalid("expires_at", "invalid_field", "expires_at must be in the future")
	}
	if !validID(in.User) {
		return access.Assignment{}, invalid("user", "unknown_user", "no such user")
	}
	if in.User == a.P.User.ID {
		// Need to know is granted by a second person, never taken.
		if err := s.record(ctx, a, "assignment.create", audit.Denied, caseID, "user/"+in.User, purpose, "self_assignment"); err != nil {
			return access.Assignment{}, err
		}
		return access.Assignment{}, fail(ErrForbidden, "self_assignment", "nobody assigns themselves; another office admin must")
	}
	// What access would refuse (a duplicate, a user who cannot be assigned
	// or is blocked from the case) is refused here, before the write-ahead
	// record, so that the trail reads as one refusal and never as a grant.
	// The check decides nothing: Assign checks again under its lock, and
	// an identical assignment made between the two makes it refuse after
	// all; only then does the trail read "allowed" followed by "denied".
	if err := s.access.CheckAssign(ctx, a.P, caseID, in.User, in.Role, purpose, in.ExpiresAt); err != nil {
		err = accessError(err)
		var ve *Error
		if !errors.As(err, &ve) {
			return access.Assignment{}, fmt.Errorf("assign user %s on case %s: %w", in.User, caseID, err)
		}
		if rerr := s.record(ctx, a, "assignment.create", audit.Denied, caseID, "user/"+in.User, purpose, ve.Code); rerr != nil {
			return access.Assignment{}, rerr
		}
		return access.Assignment{}, err
	}
	if err := s.record(ctx, a, "assignment.create", audit.Allowed, caseID, "user/"+in.User, purpose, in.Role); err != nil {
		return access.Assignment{}, err
	}
	asg, err := s.access.Assign(ctx, a.P, caseID, in.User, in.Role, purpose, in.ExpiresAt)
	if err != nil {
		err = accessError(err)
		s.recordRefusal(ctx, a, "assignment.create", caseID, "user/"+in.User, purpose, err)
		return access.Assignment{}, err
	}
	return asg, nil
}

// recordRefusal follows an action audited as allowed that then failed: a
// refusal of the caller's (a duplicate, a user who does not exist, one
// blocked from the case) is recorded as denied with its code, so the trail
// does not read as a grant and a server fault; anything else as an error.
func (s *Service) recordRefusal(ctx context.Context, a Actor, action, caseID, resource, purpose string, err error) {
	var ve *Error
	if errors.As(err, &ve) && ve.Kind != ErrUnavailable && ve.Kind != ErrDamaged {
		_ = s.record(context.WithoutCancel(ctx), a, action, audit.Denied, caseID, resource, purpose, ve.Code)
		return
	}
	s.recordFailure(ctx, a, action, caseID, resource, err)
}

// Assignments lists a case's assignments.
func (s *Service) Assignments(ctx context.Context, a Actor, caseID string) ([]access.Assignment, error) {
	if _, err := s.assignmentsAllowed(ctx, a, caseID); err != nil {
		return nil, err
	}
	list, err := s.access.Assignments(ctx, caseID)
	if err != nil {
		return nil, fmt.Errorf("list assignments of case %s: %w", caseID, err)
	}
	if list == nil {
		list = []access.Assignment{}
	}
	return list, nil
}

// Revoke ends an assignment; access ends on the caller's next request.
func (s *Service) Revoke(ctx context.Context, a Actor, caseID, assignmentID string) error {
	resource := "assignment/" + assignmentID
	if _, _, _, err := s.authorize(ctx, a, caseID, "assignment.manage", "assignment.revoke", resource); err != nil {
		return err
	}
	seq, err := s.recordSeq(ctx, a, "assignment.revoke", audit.Allowed, caseID, resource, "", "")
	if err != nil {
		return err
	}
	if err := s.access.Revoke(ctx, a.P, caseID, assignmentID); err != nil {
		err = accessError(err)
		s.recordUndo(ctx, a, "assignment.revoke", caseID, resource, seq, err)
		return err
	}
	return nil
}

// NewDeclaration is an assignee's conflict-of-interest declaration (Art. 16).
type NewDeclaration struct {
	Conflict  *bool  `json:"conflict"`
	Statement string `json:"statement"`
}

// Declare records the caller's declaration on a case they are assigned to.
func (s *Service) Declare(ctx context.Context, a Actor, caseID string, in NewDeclaration) (access.Declaration, error) {
	_, _, d, err := s.authorize(ctx, a, caseID, "declaration.create", "declaration.create", "case/"+caseID)
	if err != nil {
		return access.Declaration{}, err
	}
	if in.Conflict == nil {
		return access.Declaration{}, invalid("conflict", "missing_field", "conflict (true or false) is required")
	}
	stmt, err := CleanText("statement", in.Statement, 4000, true)
	if err != nil {
		return access.Declaration{}, err
	}
	detail := "no_conflict"
	if *in.Conflict {
		detail = "conflict"
	}
	seq, err := s.recordSeq(ctx, a, "declaration.create", audit.Allowed, caseID, "case/"+caseID, d.Purpose, detail)
	if err != nil {
		return access.Declaration{}, err
	}
	dec, err := s.access.DeclareAs(ctx, a.P, caseID, *in.Conflict, stmt, seq)
	if err != nil {
		err = accessError(err)
		s.recordUndo(ctx, a, "declaration.create", caseID, "case/"+caseID, seq, err)
		return access.Declaration{}, err
	}
	return dec, nil
}

// OwnDeclaration is where the caller stands on conflicts of interest on
// the case (access.LatestDeclaration): for the case page of a reviewer or
// member unit, who must declare before reading. It is the caller's own
// record, read after the page's case.read, and not audited apart.
func (s *Service) OwnDeclaration(ctx context.Context, a Actor, caseID string) (access.Declaration, bool, error) {
	if !validID(caseID) {
		return access.Declaration{}, false, nil
	}
	return s.access.LatestDeclaration(ctx, caseID, a.P.User.ID)
}

// accessError turns access's sentinels into vault errors for api/.
func accessError(err error) error {
	var fe *access.FieldError
	switch {
	case errors.As(err, &fe):
		return &Error{Kind: ErrInvalid, Code: fe.Code, Detail: fe.Detail, Field: fe.Field}
	case errors.Is(err, access.ErrSelfAssignment):
		return fail(ErrForbidden, "self_assignment", "nobody assigns themselves; another office admin must")
	case errors.Is(err, access.ErrBlocked):
		return fail(ErrConflict, "assignment_blocked", "this user was recused from the case or declared a conflict of interest, and cannot be assigned to it")
	case errors.Is(err, access.ErrForbidden):
		return fail(ErrForbidden, "forbidden", "you may not do this")
	case errors.Is(err, access.ErrNotFound):
		return fail(ErrNotFound, "not_found", "no such user or assignment")
	case errors.Is(err, access.ErrConflict):
		return fail(ErrConflict, "conflict", "that already exists")
	case errors.Is(err, access.ErrInvalid):
		return fail(ErrInvalid, "invalid_field", "the request is not valid")
	}
	return err
}

// assignmentsAllowed authorises and audits a listing of a case's
// assignments.
func (s *Service) assignmentsAllowed(ctx context.Context, a Actor, caseID string) (access.Decision, error) {
	_, _, d, err := s.authorize(ctx, a, caseID, "assignment.list", "assignment.list", "case/"+caseID)
	if err != nil {
		return d, err
	}
	if isParty(a.P) {
		// Who reviews a case is deliberation (visibility.go): parties see
		// the readers of their materials only by pseudonym, in the audit log.
		if err := s.record(ctx, a, "assignment.list", audit.Denied, caseID, "case/"+caseID, d.Purpose, "forbidden"); err != nil {
			return d, err
		}
		return d, fail(ErrForbidden, "forbidden", "the review's assignments are not shown to the parties")
	}
	return d, s.record(ctx, a, "assignment.list", audit.Allowed, caseID, "case/"+caseID, d.Purpose, "")
}
