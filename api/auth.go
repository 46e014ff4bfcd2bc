package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
)

const ctxPrincipal = "crvault.principal"

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func principal(c *gin.Context) access.Principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(access.Principal)
	return pr
}

func actorID(c *gin.Context) string { return principal(c).User.ID }

func actor(c *gin.Context) vault.Actor {
	return vault.Actor{P: principal(c), IP: auditIP(c), RequestID: requestID(c)}
}

// record appends an audit event for requests outside any case (sessions,
// accounts). Failing to record fails the request.
func (h *handler) record(c *gin.Context, action string, outcome audit.Outcome, resource, detail string) bool {
	p := principal(c)
	_, err := h.Audit.Append(c.Request.Context(), audit.Event{Actor: p.User.ID, ActorOrg: p.User.OrgID, Action: action, Outcome: outcome,
		Resource: resource, IP: auditIP(c), RequestID: requestID(c), Detail: detail})
	if err != nil {
		h.log.ErrorContext(c.Request.Context(), "audit append failed", "action", action, "request_id", requestID(c), "err", err)
		problem(c, http.StatusServiceUnavailable, "audit_unavailable", "the audit log cannot be written; the request was refused")
		return false
	}
	return true
}

// recordDenied audits a refusal of a request made without a valid session
// through the DenialLog, which counts repeats from one client instead of
// writing each. False (after answering 503) if it cannot be written.
func (h *handler) recordDenied(c *gin.Context, action, resource, detail string) bool {
	p := principal(c)
	err := h.denials.Record(c.Request.Context(), audit.Event{Actor: p.User.ID, ActorOrg: p.User.OrgID, Action: action,
		Outcome: audit.Denied, Resource: resource, IP: auditIP(c), RequestID: requestID(c), Detail: detail})
	if err != nil {
		h.log.ErrorContext(c.Request.Context(), "audit append failed", "action", action, "request_id", requestID(c), "err", err)
		problem(c, http.StatusServiceUnavailable, "audit_unavailable", "the audit log cannot be written; the request was refused")
		return false
	}
	return true
}

// reporterRoutes are the public report desk's routes ("METHOD /path"):
// whoever uses them must stay anonymous, so no audit event of a request to
// them carries the client's address, refusals before the desk included (a
// rate limit, a CSRF check): beside the reporter's own events, which name
// the report, an address would say who filed it.
var reporterRoutes = map[string]bool{
	"POST /api/v1/reports":             true,
	"GET /api/v1/reports/status":       true,
	"POST /api/v1/reports/messages":    true,
	"POST /api/v1/reports/attachments": true,
}

// auditIP is the client address an audit event of c records: none on the
// report desk's routes.
func auditIP(c *gin.Context) string {
	if reporterRoutes[c.Request.Method+" "+c.FullPath()] {
		return ""
	}
	return c.ClientIP()
}

// enrolmentRoutes are all a session limited to TOTP enrolment may use.
var enrolmentRoutes = map[string]bool{
	"GET /api/v1/me":                  true,
	"POST /api/v1/me/totp":            true,
	"POST /api/v1/me/totp/confirm":    true,
	"POST /api/v1/me/password":        true,
	"DELETE /api/v1/sessions/current": true,
}

// authenticate resolves the bearer token. Every refusal is audited as a
// denied attempt on the path it tried.
func (h *handler) authenticate(c *gin.Context) {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok && !h.cookieSession(c, &token, &ok) {
		return
	}
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		if !h.takeAnonymous(c) {
			return
		}
		if h.recordDenied(c, "auth", c.Request.Method+" "+c.FullPath(), "missing_token") {
			c.Header("WWW-Authenticate", `Bearer realm="crvault"`)
			problem(c, http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer token is required")
		}
		return
	}
	p, err := h.Access.Authenticate(c.Request.Context(), token)
	if err != nil && !errors.Is(err, access.ErrUnauthenticated) {
		// Not a verdict on the token: the sessions could not be read. The
		// client hears why (503 database_unavailable) and nothing is
		// recorded as a denial, for nothing was denied.
		h.fail(c, err)
		return
	}
	if err != nil {
		if !h.takeAnonymous(c) {
			return
		}
		if h.recordDenied(c, "auth", c.Request.Method+" "+c.FullPath(), "invalid_token") {
			c.Header("WWW-Authenticate", `Bearer realm="crvault", error="invalid_token"`)
			h.fail(c, access.ErrUnauthenticated)
		}
		return
	}
	c.Set(ctxPrincipal, p)
	if p.TOTPEnrolmentRequired && !enrolmentRoutes[c.Request.Method+" "+c.FullPath()] {
		if h.record(c, "auth", audit.Denied, c.Request.Method+" "+c.FullPath(), "totp_enrolment_required") {
			problem(c, http.StatusForbidden, "totp_enrolment_required", "set up TOTP first (POST /api/v1/me/totp, then POST /api/v1/me/totp/confirm)")
		}
		return
	}
	c.Next()
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

type sessionResponse struct {
	Token                 string      `json:"token"`
	ExpiresAt             time.Time   `json:"expires_at"`
	User                  access.User `json:"user"`
	TOTPEnrolmentRequired bool        `json:"totp_enrolment_required"`
}

func (h *handler) login(c *gin.Context) {
	var req loginRequest
	if !decode(c, &req) {
		return
	}
	if req.Username == "" || req.Password == "" {
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "missing_field", Detail: "username and password are required"})
		return
	}
	s, err := h.Access.Login(c.Request.Context(), access.Credentials{Username: req.Username, Password: req.Password, TOTP: req.TOTP}, c.ClientIP())
	if err != nil {
		detail := "invalid_credentials"
		switch {
		case errors.Is(err, access.ErrThrottled):
			detail = "throttled"
		case errors.Is(err, access.ErrTOTPRequired):
			detail = "totp_required"
		case errors.Is(err, access.ErrTOTPInvalid):
			detail = "totp_invalid"
		case !errors.Is(err, access.ErrBadCredentials):
			h.fail(c, err)
			return
		}
		if h.recordDenied(c, "session.create", "session", detail) {
			h.fail(c, err)
		}
		return
	}
	c.Set(ctxPrincipal, access.Principal{User: s.User})
	if !h.record(c, "session.create", audit.Allowed, "session/"+s.ID, "") {
		_ = h.Access.Logout(c.Request.Context(), s.ID)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, sessionResponse{Token: s.Token, ExpiresAt: s.ExpiresAt.UTC(), User: s.User,
		TOTPEnrolmentRequired: s.TOTPEnrolmentRequired})
}

func (h *handler) logout(c *gin.Context) {
	p := principal(c)
	if err := h.Access.Logout(c.Request.Context(), p.SessionID); err != nil {
		h.fail(c, err)
		return
	}
	if !h.record(c, "session.delete", audit.Allowed, "session/"+p.SessionID, "") {
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *handler) me(c *gin.Context) { c.JSON(http.StatusOK, principal(c).User) }

type totpCodeRequest struct {
	Code string `json:"code"`
}

type recoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// startTOTP begins TOTP enrolment. Audited as totp.enrol_start.
func (h *handler) startTOTP(c *gin.Context) {
	p := principal(c)
	en, err := h.Access.StartTOTP(c.Request.Context(), p)
	if err != nil {
		if h.record(c, "totp.enrol_start", audit.Denied, "user/"+p.User.ID, errCode(err)) {
			h.fail(c, err)
		}
		return
	}
	if h.record(c, "totp.enrol_start", audit.Allowed, "user/"+p.User.ID, "") {
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusCreated, en)
	}
}

// confirmTOTP finishes enrolment. Audited as totp.enrol.
func (h *handler) confirmTOTP(c *gin.Context) {
	var req totpCodeRequest
	if !decode(c, &req) {
		return
	}
	p := principal(c)
	codes, err := h.Access.ConfirmTOTP(c.Request.Context(), p, req.Code)
	if err != nil {
		if h.record(c, "totp.enrol", audit.Denied, "user/"+p.User.ID, errCode(err)) {
			h.failCode(c, err)
		}
		return
	}
	if h.record(c, "totp.enrol", audit.Allowed, "user/"+p.User.ID, "") {
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, recoveryCodes{RecoveryCodes: codes})
	}
}

// removeTOTP turns TOTP off. Audited as totp.remove.
func (h *handler) removeTOTP(c *gin.Context) {
	var req totpCodeRequest
	if !decode(c, &req) {
		return
	}
	p := principal(c)
	if err := h.Access.RemoveTOTP(c.Request.Context(), p, req.Code, c.ClientIP()); err != nil {
		if h.record(c, "totp.remove", audit.Denied, "user/"+p.User.ID, errCode(err)) {
			h.failCode(c, err)
		}
		return
	}
	if h.record(c, "totp.remove", audit.Allowed, "user/"+p.User.ID, "") {
		c.Status(http.StatusNoContent)
	}
}

type passwordChange struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

// changePassword replaces the caller's password; every session of the
// account ends, this one included. Audited as user.password_change.
func (h *handler) changePassword(c *gin.Context) {
	var req passwordChange
	if !decode(c, &req) {
		return
	}
	p := principal(c)
	if err := h.Access.ChangePassword(c.Request.Context(), p, req.Current, req.New, c.ClientIP()); err != nil {
		if h.record(c, "user.password_change", audit.Denied, "user/"+p.User.ID, errCode(err)) {
			if errors.Is(err, access.ErrBadCredentials) {
				writeProblem(c, Problem{Status: http.StatusForbidden, Code: "invalid_current_password", Field: "current",
					Detail: "the current password is wrong"})
				return
			}
			h.fail(c, err)
		}
		return
	}
	if h.record(c, "user.password_change", audit.Allowed, "user/"+p.User.ID, "sessions_ended") {
		c.Status(http.StatusNoContent)
	}
}

// failCode answers a wrong code given while signed in: 422, not 401, which
// would tell the client its session is gone.
func (h *handler) failCode(c *gin.Context, err error) {
	if errors.Is(err, access.ErrTOTPInvalid) {
		writeProblem(c, Problem{Status: http.StatusUnprocessableEntity, Code: "totp_invalid", Field: "code",
			Detail: "the code is wrong, expired or already used"})
		return
	}
	h.fail(c, err)
}

// errCode is the short audit detail for a refusal.
func errCode(err error) string {
	var fe *access.FieldError
	var se *access.StateError
	switch {
	case errors.As(err, &fe):
		return fe.Code
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, access.ErrTOTPInvalid):
		return "totp_invalid"
	case errors.Is(err, access.ErrBadCredentials):
		return "invalid_credentials"
	case errors.Is(err, access.ErrSelfApproval):
		return "self_approval"
	case errors.Is(err, access.ErrForbidden):
		return "forbidden"
	case errors.Is(err, access.ErrNotFound):
		return "not_found"
	case errors.Is(err, access.ErrThrottled):
		return "throttled"
	}
	return "error"
}

// requireAdmin gates the account API to sysadmins, auditing refusals.
func (h *handler) requireAdmin(c *gin.Context, action string) bool {
	if h.Access.Can(principal(c), "user", "manage") {
		return true
	}
	if h.record(c, action, audit.Denied, "accounts", "forbidden") {
		problem(c, http.StatusForbidden, "forbidden", "only system administrators manage accounts")
	}
	return false
}

type orgRequest struct {
	Name string         `json:"name"`
	Kind access.OrgKind `json:"kind"`
}

func (h *handler) createOrg(c *gin.Context) {
	if !h.requireAdmin(c, "org.create") {
		return
	}
	var req orgRequest
	if !decode(c, &req) {
		return
	}
	org, err := h.Access.CreateOrg(c.Request.Context(), req.Name, req.Kind)
	if err != nil {
		h.fail(c, err)
		return
	}
	if h.record(c, "org.create", audit.Allowed, "org/"+org.ID, "") {
		c.JSON(http.StatusCreated, org)
	}
}

type userRequest struct {
	Username    string        `json:"username"`
	DisplayName string        `json:"display_name"`
	Org         string        `json:"org"`
	Roles       []access.Role `json:"roles"`
	Password    string        `json:"password"`
}

func (h *handler) createUser(c *gin.Context) {
	if !h.requireAdmin(c, "user.create") {
		return
	}
	var req userRequest
	if !decode(c, &req) {
		return
	}
	by := principal(c)
	u, err := h.Access.CreateUser(c.Request.Context(), access.NewUser{Username: req.Username, DisplayName: req.DisplayName,
		Org: req.Org, Roles: req.Roles, Password: req.Password, By: &by})
	if err != nil {
		h.fail(c, err)
		return
	}
	// The detail says whether a second person must still approve.
	if h.record(c, "user.create", audit.Allowed, "user/"+u.ID, u.Status) {
		c.JSON(http.StatusCreated, u)
	}
}

// approveUser activates an account a sysadmin created with a role that
// reaches content: an office_admin, or for operator and provider accounts an
// account of the same organisation, other than its creator. Audited as
// user.approve, refusals included.
func (h *handler) approveUser(c *gin.Context) {
	id := c.Param("id")
	p := principal(c)
	target, err := h.Access.User(c.Request.Context(), id)
	if err == nil {
		var may bool
		if may, err = h.Access.MayApprove(c.Request.Context(), p, target); err == nil && !may && !p.Has(access.RoleSysadmin) {
			// Someone with no say over this account learns nothing of it.
			err = access.ErrNotFound
		}
	}
	if err == nil {
		target, err = h.Access.ApproveUser(c.Request.Context(), p, id)
	}
	if err != nil {
		if h.record(c, "user.approve", audit.Denied, "user/"+id, errCode(err)) {
			switch {
			case errors.Is(err, access.ErrSelfApproval):
				problem(c, http.StatusForbidden, "self_approval", "a second person must approve an account: not its creator, not its holder")
			case errors.Is(err, access.ErrForbidden):
				problem(c, http.StatusForbidden, "forbidden", "only an office admin, or for operator and provider accounts the organisation's own account, approves")
			default:
				h.fail(c, err)
			}
		}
		return
	}
	if h.record(c, "user.approve", audit.Allowed, "user/"+id, "") {
		c.JSON(http.StatusOK, target)
	}
}

// listUsers lists accounts to sysadmins; office admins and operator or
// provider accounts may list, with status=pending_approval, the pending
// accounts they may approve.
func (h *handler) listUsers(c *gin.Context) {
	p := principal(c)
	f := access.UserFilter{Status: c.Query("status")}
	approver := !h.Access.Can(p, "user", "manage") && f.Status == access.UserPendingApproval &&
		(p.Has(access.RoleOfficeAdmin) || p.Has(access.RoleOperator) || p.Has(access.RoleProvider))
	if !approver && !h.requireAdmin(c, "user.list") {
		return
	}
	if approver && !p.Has(access.RoleOfficeAdmin) {
		f.OrgID = p.User.OrgID
	}
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	users, next, err := h.Access.ListUsers(c.Request.Context(), f, limit, cursor)
	if approver && err == nil {
		kept := users[:0]
		for _, u := range users {
			if may, _ := h.Access.MayApprove(c.Request.Context(), p, u); may && u.CreatedBy != p.User.ID {
				kept = append(kept, u)
			}
		}
		users = kept
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	if users == nil {
		users = []access.User{}
	}
	c.JSON(http.StatusOK, vault.Page[access.User]{Items: users, NextCursor: next})
}

func (h *handler) disableUser(c *gin.Context) {
	if !h.requireAdmin(c, "user.disable") {
		return
	}
	id := c.Param("id")
	if _, err := h.Access.User(c.Request.Context(), id); err != nil {
		if h.record(c, "user.disable", audit.Denied, "user/"+id, "not_found") {
			h.fail(c, err)
		}
		return
	}
	if id == principal(c).User.ID {
		// Nothing enables an account again: an administrator who disabled
		// their own (perhaps the only one) would leave the vault to
		// whoever holds its data directory.
		if h.record(c, "user.disable", audit.Denied, "user/"+id, "self_disable") {
			problem(c, http.StatusForbidden, "self_disable", "you cannot disable your own account; another administrator can")
		}
		return
	}
	if !h.record(c, "user.disable", audit.Allowed, "user/"+id, "") {
		return
	}
	if err := h.Access.DisableUser(c.Request.Context(), id); err != nil {
		h.fail(c, err)
		return
	}
	u, err := h.Access.User(c.Request.Context(), id)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}
