// Package access decides who a caller is and what the caller may do.
//
// It owns organisations, user accounts (argon2id password hashes in PHC
// form), sessions (random 256-bit bearer tokens of which only the SHA-256 is
// stored; idle and absolute expiry; revocable) and need-to-know authorisation:
// role permissions come from the Casbin policy embedded in configs/, and
// case-scoped grants (assignments) are Casbin grouping rules whose domain is the
// case, matched by equality only. The relations that follow from facts owned by
// other packages (an operator owns its organisation's cases, a provider is a
// party to a case, the office sees submitted cases) are derived in Go from the
// CaseFacts the caller passes in.
//
// Promises: a sysadmin or inspector is never allowed to read document
// content; a reviewer or member unit reads content only through an active,
// unexpired assignment with a conflict-free declaration; a revocation,
// suspension or recusal takes effect on the very next Decide of this Service,
// and of every other instance on the same PostgreSQL database within
// noticeTrust (3 s) at worst: past that without proof that notices arrive,
// Decide reads grants from the database (notify.go).
package access

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Role is a global role held by a user.
type Role string

// The roles of the contract.
const (
	RoleSysadmin    Role = "sysadmin"
	RoleOfficeAdmin Role = "office_admin"
	RoleReviewer    Role = "reviewer"
	RoleMemberUnit  Role = "member_unit"
	RoleOperator    Role = "operator"
	RoleProvider    Role = "provider"
	RoleInspector   Role = "inspector"
)

// Roles lists every known role.
var Roles = []Role{RoleSysadmin, RoleOfficeAdmin, RoleReviewer, RoleMemberUnit, RoleOperator, RoleProvider, RoleInspector}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// OrgKind is the kind of an organisation.
type OrgKind string

// The organisation kinds of the contract.
const (
	OrgOperator    OrgKind = "operator"
	OrgProvider    OrgKind = "provider"
	OrgOffice      OrgKind = "office"
	OrgMemberUnit  OrgKind = "member_unit"
	OrgSupervision OrgKind = "supervision"
)

// OrgKinds lists every known organisation kind.
var OrgKinds = []OrgKind{OrgOperator, OrgProvider, OrgOffice, OrgMemberUnit, OrgSupervision}

// Valid reports whether k is a known organisation kind.
func (k OrgKind) Valid() bool { return slices.Contains(OrgKinds, k) }

// roleOrgKind is the organisation kind a role requires; sysadmin fits any.
var roleOrgKind = map[Role]OrgKind{
	RoleOperator:    OrgOperator,
	RoleOfficeAdmin: OrgOffice,
	RoleReviewer:    OrgOffice,
	RoleMemberUnit:  OrgMemberUnit,
	RoleProvider:    OrgProvider,
	RoleInspector:   OrgSupervision,
}

// Sentinel errors callers branch on (map them to HTTP status in one place).
var (
	ErrNotFound        = errors.New("not found")
	ErrConflict        = errors.New("conflict")
	ErrInvalid         = errors.New("invalid input")
	ErrBadCredentials  = errors.New("bad credentials")
	ErrThrottled       = errors.New("too many attempts")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrDisabled        = errors.New("account disabled")
	// ErrBlocked refuses an assignment of a user who was recused from the
	// case or declared a conflict of interest on it.
	ErrBlocked = errors.New("blocked")
	// ErrForbidden refuses a management call by a principal lacking the role;
	// the API normally decides first and never reaches it.
	ErrForbidden = errors.New("forbidden")
	// ErrSelfAssignment refuses an office admin assigning themselves.
	ErrSelfAssignment = errors.New("self assignment")
	// ErrSelfApproval refuses approving an account one created, or one's own.
	ErrSelfApproval = errors.New("self approval")
	// ErrTOTPRequired answers a sign-in with the right password but no code
	// from a user who has TOTP (or must give one).
	ErrTOTPRequired = errors.New("totp required")
	// ErrTOTPInvalid answers a wrong, expired or already used code.
	ErrTOTPInvalid = errors.New("totp code invalid")
	// ErrTOTPUnavailable means no Sealer was configured, so TOTP secrets
	// cannot be stored or read.
	ErrTOTPUnavailable = errors.New("totp unavailable: no sealer configured")
)

// StateError refuses an action the account's state does not allow; Code
// names it (not_pending, totp_already_enrolled, totp_not_started,
// totp_not_enrolled). It matches ErrConflict.
type StateError struct {
	Code   string
	Detail string
}

func (e *StateError) Error() string { return e.Detail }

// Is makes errors.Is(err, ErrConflict) true.
func (e *StateError) Is(target error) bool { return target == ErrConflict }

// FieldError says which input field is wrong; it matches ErrInvalid.
type FieldError struct {
	Field  string `json:"field"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Detail)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, code, detail string) error {
	return &FieldError{Field: field, Code: code, Detail: detail}
}

// ThrottledError tells the client when to retry; it matches ErrThrottled.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many login attempts; retry after %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Org is an organisation.
type Org struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Kind      OrgKind   `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
}

// Account statuses (User.Status).
const (
	UserActive          = "active"
	UserPendingApproval = "pending_approval"
	UserDisabled        = "disabled"
)

// User is an account. It never carries the password hash or a TOTP secret.
type User struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	OrgID       string `json:"org"`
	Roles       []Role `json:"roles"`
	Disabled    bool   `json:"disabled"`
	// Status is active, pending_approval (created by a sysadmin with a role
	// that reaches content; cannot sign in yet) or disabled.
	Status      string     `json:"status"`
	CreatedBy   string     `json:"created_by"` // "" when made on the command line
	ApprovedBy  string     `json:"approved_by,omitempty"`
	ApprovedAt  *time.Time `json:"approved_at,omitempty"`
	TOTPEnabled bool       `json:"totp_enabled"`
	CreatedAt   time.Time  `json:"created_at"`
}

// Has reports whether the user holds the global role r.
func (u User) Has(r Role) bool { return slices.Contains(u.Roles, r) }

// Principal is an authenticated caller.
type Principal struct {
	User      User
	SessionID string
	OrgKind   OrgKind
	// TOTPEnrolmentRequired marks a session limited to TOTP enrolment: the
	// user's roles require TOTP and the user has none yet. Decide and Can
	// refuse such a principal everything.
	TOTPEnrolmentRequired bool
}

// Has reports whether the caller holds the global role r.
func (p Principal) Has(r Role) bool { return p.User.Has(r) }

// NewUser is the input of CreateUser.
type NewUser struct {
	Username    string
	DisplayName string
	Org         string // name or id
	Password    string
	Roles       []Role
	// By is the sysadmin creating the account through the API; nil for the
	// command line (whoever runs it holds the data directory and its keys),
	// whose accounts are active at once.
	By *Principal
}

// Session is a login. Token is set only in the answer of Login; it is never
// stored and cannot be recovered.
type Session struct {
	ID        string    `json:"id"`
	Token     string    `json:"token,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
	// TOTPEnrolmentRequired: the session may only enrol TOTP (see Principal).
	TOTPEnrolmentRequired bool `json:"totp_enrolment_required"`
}

// Assignment grants a reviewer or member unit need-to-know access to a case.
// Status is derived from revocation, declarations and expiry.
type Assignment struct {
	ID        string     `json:"id"`
	CaseID    string     `json:"case_id"`
	UserID    string     `json:"user"`
	Role      string     `json:"role"`
	Purpose   string     `json:"purpose"`
	GrantedBy string     `json:"granted_by"`
	GrantedAt time.Time  `json:"granted_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	Status    string     `json:"status"`
}

// Assignment statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusRevoked   = "revoked"
	StatusExpired   = "expired"
)

// Declaration is an assigned user's statement on conflicts of interest.
type Declaration struct {
	ID        string    `json:"id"`
	CaseID    string    `json:"case_id"`
	UserID    string    `json:"user"`
	Conflict  bool      `json:"conflict"`
	Statement string    `json:"statement"`
	CreatedAt time.Time `json:"created_at"`
}
