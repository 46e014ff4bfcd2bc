package access

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CaseFacts are the facts about a case that the vault package (which owns
// cases) hands to Decide.
type CaseFacts struct {
	ID           string
	OperatorOrg  string
	ProviderOrgs []string
	Status       string // "draft", "submitted", ...
	// OpenedByOffice: the office opened the case itself (after a member
	// unit's proposal was approved), so its draft is no secret from the
	// office; the party's draft materials still are until it submits.
	OpenedByOffice bool
}

// Action is a case-scoped action, "object.action".
type Action string

// The case-scoped actions.
const (
	ActCaseRead          Action = "case.read"
	ActCaseSubmit        Action = "case.submit"
	ActCaseTransition    Action = "case.transition"
	ActMaterialList      Action = "material.list"
	ActMaterialUpload    Action = "material.upload"
	ActMaterialRead      Action = "material.read" // the plaintext content
	ActMaterialMeta      Action = "material.meta"
	ActAssignmentManage  Action = "assignment.manage"
	ActAssignmentList    Action = "assignment.list"
	ActDeclarationCreate Action = "declaration.create"
	ActOpinionCreate     Action = "opinion.create"
	ActComplaintCreate   Action = "complaint.create"
	ActCommitmentCreate  Action = "commitment.create"
	// ActCaseHold: read a case's retention, set and clear its legal hold.
	ActCaseHold Action = "case.hold"
)

// Actions lists every case-scoped action.
var Actions = []Action{ActCaseRead, ActCaseSubmit, ActCaseTransition, ActMaterialList, ActMaterialUpload,
	ActMaterialRead, ActMaterialMeta, ActAssignmentManage, ActAssignmentList, ActDeclarationCreate,
	ActOpinionCreate, ActComplaintCreate, ActCommitmentCreate, ActCaseHold}

// needsDeclaration lists the actions an assignee may take only after
// declaring no conflict of interest.
var needsDeclaration = map[Action]bool{ActMaterialRead: true, ActOpinionCreate: true}

// Denial codes of Decision.Code.
const (
	CodeNotFound            = "not_found"
	CodeForbidden           = "forbidden"
	CodeDeclarationRequired = "declaration_required"
	CodeAssignmentSuspended = "assignment_suspended"
	CodeAssignmentExpired   = "assignment_expired"
	// CodeCaseConcluded: a member unit's need to know the materials ends
	// with the review (decided by the vault, which knows whose each
	// material is).
	CodeCaseConcluded = "case_concluded"
)

// Decision is the answer of Decide.
type Decision struct {
	Allowed bool
	// Visible false means the caller has no relation to the case: answer
	// 404. Visible but not Allowed: answer 403 with Code.
	Visible bool
	Code    string
	// Purpose and AssignmentID name the assignment the access goes
	// through, for the audit event; empty for other relations.
	Purpose      string
	AssignmentID string
}

// rank orders candidate decisions when a user holds several roles: allowing
// beats denying, an assignment's specific reason beats a generic 403, and a
// 403 beats a 404.
func (d Decision) rank() int {
	switch {
	case d.Allowed && d.AssignmentID != "":
		return 5
	case d.Allowed:
		return 4
	case d.Visible && d.Code != CodeForbidden:
		return 3
	case d.Visible:
		return 2
	}
	return 1
}

var notFound = Decision{Code: CodeNotFound}

// Decide says whether p may take action a on the case c. It reads only
// memory, so it is cheap enough for every request; an assignment change made
// through this Service is seen by the very next call. On PostgreSQL, while
// Listen cannot show that other instances' changes reach this one (see
// noticeTrust), it reads a reviewer's or member unit's grants on the case
// from the database instead.
func (s *Service) Decide(ctx context.Context, p Principal, c CaseFacts, a Action) (Decision, error) {
	obj, act, ok := strings.Cut(string(a), ".")
	if !ok || !slices.Contains(Actions, a) {
		return Decision{}, fmt.Errorf("decide %q: %w", a, invalid("action", "unknown_action", "unknown action"))
	}
	// A session limited to TOTP enrolment reaches nothing; neither does a
	// sysadmin, whatever other role an account made before separation of
	// duties also holds.
	if c.ID == "" || p.User.ID == "" || p.User.Disabled || p.TOTPEnrolmentRequired || p.Has(RoleSysadmin) {
		s.decisions.WithLabelValues("not_found").Inc()
		return notFound, nil
	}
	// Until the index is complete (a start loading in the background), and
	// whenever notices of other instances' changes are not known to arrive
	// (noticesStale), the caller's grants on the case come from the tables:
	// the truth, read fresh, so nothing revoked anywhere is granted. A read
	// that fails fails the decision (closed).
	var fromDB []grant
	fetched := false
	if (p.Has(RoleReviewer) || p.Has(RoleMemberUnit)) && (s.noticesStale() || !s.isReady()) {
		// The trail too, at most once a second: while notices are not
		// proven, an end another instance made may be known to the trail
		// only (its rows kept out of the tables; review h30i).
		if err := s.refreshTrailAtMost(ctx, time.Second); err != nil {
			s.decisions.WithLabelValues("error").Inc()
			return Decision{}, fmt.Errorf("decide %s on case %s: %w", a, c.ID, err)
		}
		gs, err := s.readGrants(ctx, c.ID, p.User.ID)
		if err != nil {
			s.decisions.WithLabelValues("error").Inc()
			return Decision{}, fmt.Errorf("decide %s on case %s: %w", a, c.ID, err)
		}
		fromDB, fetched = gs, true
	}
	best := notFound
	// One read lock over the whole decision: a Reload or grant change is
	// seen entirely or not at all.
	s.mu.RLock()
	defer s.mu.RUnlock()
	grants := fromDB
	if !fetched {
		grants = s.grants.get(c.ID, p.User.ID)
	}
	for _, r := range p.User.Roles {
		d, err := s.decideAs(p, r, c, obj, act, a, grants)
		if err != nil {
			return Decision{}, fmt.Errorf("decide %s on case %s: %w", a, c.ID, err)
		}
		if d.rank() > best.rank() {
			best = d
		}
	}
	outcome := "allowed"
	if !best.Allowed {
		outcome = best.Code
	}
	s.decisions.WithLabelValues(outcome).Inc()
	return best, nil
}

func (s *Service) isReady() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready
}

// decideAs decides for one of the caller's roles; grants are the caller's
// on the case.
func (s *Service) decideAs(p Principal, r Role, c CaseFacts, obj, act string, a Action, grants []grant) (Decision, error) {
	var related bool
	switch r {
	case RoleSysadmin:
		return notFound, nil
	case RoleInspector:
		related = true
	case RoleOperator:
		related = p.User.OrgID != "" && p.User.OrgID == c.OperatorOrg
	case RoleProvider:
		related = p.User.OrgID != "" && slices.Contains(c.ProviderOrgs, p.User.OrgID)
	case RoleOfficeAdmin:
		related = c.Status != "draft" || (c.OpenedByOffice && a == ActCaseRead)
	case RoleReviewer, RoleMemberUnit:
		return s.decideAssignee(p, r, obj, act, a, grants)
	default:
		return notFound, nil
	}
	if !related {
		return notFound, nil
	}
	// A derived relation: the role itself is the subject (g(x, x, dom) holds).
	ok, err := s.permits(string(r), string(r), obj, act, nil)
	if err != nil || !ok {
		return Decision{Visible: true, Code: CodeForbidden}, err
	}
	return Decision{Allowed: true, Visible: true}, nil
}

func (s *Service) decideAssignee(p Principal, r Role, obj, act string, a Action, grants []grant) (Decision, error) {
	now := s.now()
	var g grant
	found := false
	for _, cand := range grants {
		// Prefer an active grant over an expired one of the same role.
		if cand.role == string(r) && (!found || g.status(now) != StatusActive) {
			g, found = cand, true
		}
	}
	if !found {
		return notFound, nil
	}
	d := Decision{Visible: true, Purpose: g.purpose, AssignmentID: g.id}
	switch g.status(now) {
	case StatusSuspended:
		d.Code = CodeAssignmentSuspended
		return d, nil
	case StatusExpired:
		d.Code = CodeAssignmentExpired
		return d, nil
	}
	ok, err := s.permits(p.User.ID, string(r), obj, act, grants)
	switch {
	case err != nil || !ok:
		d.Code = CodeForbidden
		return d, err
	case needsDeclaration[a] && !g.declared:
		d.Code = CodeDeclarationRequired
		return d, nil
	}
	d.Allowed = true
	return d, nil
}

// permits answers the matcher of configs/casbin/model.conf,
//
//	r.role == p.sub && r.obj == p.obj && r.act == p.act && g(r.sub, r.role, r.dom)
//
// by looking the two facts up directly: the p rule in Casbin, the g fact in
// grants (the subject's on the case r.dom, see grouped), where Enforce would
// evaluate the matcher expression against every p rule (about 30 µs;
// Decide must stay under 20 µs with a million grants). It is exact because
// domains match by equality and roles have no hierarchy;
// TestPermitsMatchesEnforce keeps it in step with Casbin's Enforce over the
// same grants as g rules.
func (s *Service) permits(sub, role, obj, act string, grants []grant) (bool, error) {
	ok, err := s.enf.HasPolicy(role, obj, act)
	if err != nil || !ok {
		return false, err
	}
	if sub == role {
		return true, nil
	}
	return grouped(grants, role), nil
}

// grouped answers the model's g(user, role, case) from the user's grants
// on the case: one of them, unsuspended, is in that role. The grants are
// the index of the assignment tables (or, while it loads, read from them);
// Casbin holds the role policy only, so a start loads a million assignments
// into one map instead of a million Casbin role links (issue 10).
func grouped(grants []grant, role string) bool {
	for _, g := range grants {
		if g.role == role && !g.suspended {
			return true
		}
	}
	return false
}

// Can reports a global (not case-scoped) permission of any of p's roles,
// such as ("case", "create"), ("audit", "read_all"), ("user", "manage"),
// ("deadline", "list"). It answers false for case-scoped actions, which only
// Decide may grant.
func (s *Service) Can(p Principal, obj, act string) bool {
	if p.User.Disabled || p.TOTPEnrolmentRequired || slices.Contains(Actions, Action(obj+"."+act)) {
		return false
	}
	roles := p.User.Roles
	if p.Has(RoleSysadmin) {
		// sysadmin combines with no other role: an older account holding
		// more gets the sysadmin's powers only.
		roles = []Role{RoleSysadmin}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range roles {
		if ok, err := s.enf.Enforce(string(r), string(r), "", obj, act); err == nil && ok {
			return true
		}
	}
	return false
}
