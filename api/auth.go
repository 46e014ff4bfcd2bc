package api

import (
	"crypto/rand"
	"encoding/hex"
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
	return vault.Actor{P: principal(c), IP: c.ClientIP(), RequestID: requestID(c)}
}

// record appends an audit event for requests outside any case (sessions,
// accounts). Failing to record fails the request.
func (h *handler) record(c *gin.Context, action string, outcome audit.Outcome, resource, detail string) bool {
	p := principal(c)
	_, err := h.Audit.Append(c.Request.Context(), audit.Event{Actor: p.User.ID, ActorOrg: p.User.OrgID, Action: action, Outcome: outcome,
		Resource: resource, IP: c.ClientIP(), RequestID: requestID(c), Detail: detail})
	if err != nil {
		h.log.ErrorContext(c.Request.Context(), "audit append failed", "action", action, "request_id", requestID(c), "err", err)
		problem(c, http.StatusServiceUnavailable, "audit_unavailable", "the audit log cannot be written; the request was refused")
		return false
	}
	return true
}

// authenticate resolves the bearer token. Every refusal is audited as a
// denied attempt on the path it tried.
func (h *handler) authenticate(c *gin.Context) {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		if h.record(c, "auth", audit.Denied, c.Request.Method+" "+c.FullPath(), "missing_token") {
			c.Header("WWW-Authenticate", `Bearer realm="crvault"`)
			problem(c, http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer token is required")
		}
		return
	}
	p, err := h.Access.Authenticate(c.Request.Context(), token)
	if err != nil {
		if h.record(c, "auth", audit.Denied, c.Request.Method+" "+c.FullPath(), "invalid_token") {
			c.Header("WWW-Authenticate", `Bearer realm="crvault", error="invalid_token"`)
			h.fail(c, access.ErrUnauthenticated)
		}
		return
	}
	c.Set(ctxPrincipal, p)
	c.Next()
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

type sessionResponse struct {
	Token     string      `json:"token"`
	ExpiresAt time.Time   `json:"expires_at"`
	User      access.User `json:"user"`
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
	s, err := h.Access.Login(c.Request.Context(), req.Username, req.Password, c.ClientIP())
	if err != nil {
		if h.record(c, "session.create", audit.Denied, "session", "invalid_credentials") {
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
	c.JSON(http.StatusCreated, sessionResponse{Token: s.Token, ExpiresAt: s.ExpiresAt.UTC(), User: s.User})
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
	u, err := h.Access.CreateUser(c.Request.Context(), access.NewUser{Username: req.Username, DisplayName: req.DisplayName, Org: req.Org, Roles: req.Roles, Password: req.Password})
	if err != nil {
		h.fail(c, err)
		return
	}
	if h.record(c, "user.create", audit.Allowed, "user/"+u.ID, "") {
		c.JSON(http.StatusCreated, u)
	}
}

func (h *handler) listUsers(c *gin.Context) {
	if !h.requireAdmin(c, "user.list") {
		return
	}
	limit, cursor, ok := listParams(c)
	if !ok {
		return
	}
	users, next, err := h.Access.ListUsers(c.Request.Context(), limit, cursor)
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
