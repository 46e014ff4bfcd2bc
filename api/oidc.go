package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// Single sign-on (access/oidc.go): GET /oidc/login sends the browser to the
// identity provider, which sends it back to GET /oidc/callback; that
// answers the same session as POST /sessions, or 401 totp_required with a
// one-time oidc_ticket that POST /oidc/totp redeems with the account's
// TOTP code. Every route answers 404 oidc_not_configured without an IdP.

// oidcStateCookie binds a sign-in's state to the browser that began it
// (against login CSRF). SameSite=Lax, not Strict: the IdP's redirect back
// is a cross-site top-level navigation that must carry it.
const oidcStateCookie = "crvault_oidc_state"

func (h *handler) oidcRoutes(public *gin.RouterGroup) {
	public.GET("/oidc/login", h.oidcLogin)
	public.GET("/oidc/callback", h.oidcCallback)
	public.POST("/oidc/totp", h.oidcTOTP)
}

func (h *handler) oidcConfigured(c *gin.Context) bool {
	if h.OIDC == nil {
		problem(c, http.StatusNotFound, "oidc_not_configured", "single sign-on is not configured on this server")
		return false
	}
	return true
}

func (h *handler) oidcLogin(c *gin.Context) {
	if !h.oidcConfigured(c) {
		return
	}
	u, state, err := h.OIDC.Begin(c.Request.Context())
	if err != nil {
		h.failOIDC(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: oidcStateCookie, Value: state, Path: "/api/v1/oidc", MaxAge: 600,
		HttpOnly: true, Secure: c.Request.TLS != nil || c.GetHeader("X-Forwarded-Proto") == "https", SameSite: http.SameSiteLaxMode})
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, u)
}

// oidcTicketProblem is the 401 of a sign-in that needs the account's TOTP.
type oidcTicketProblem struct {
	Problem
	OIDCTicket string `json:"oidc_ticket"`
}

func (h *handler) oidcCallback(c *gin.Context) {
	if !h.oidcConfigured(c) {
		return
	}
	browser, _ := c.Cookie(oidcStateCookie)
	// The state cookie has done its work, whatever happens next.
	http.SetCookie(c.Writer, &http.Cookie{Name: oidcStateCookie, Value: "", Path: "/api/v1/oidc", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode})
	if e := c.Query("error"); e != "" {
		if h.recordDenied(c, "session.oidc", "session", "idp_error") {
			problem(c, http.StatusUnauthorized, "oidc_failed", "the identity provider did not sign you in")
		}
		return
	}
	res, err := h.OIDC.Finish(c.Request.Context(), c.Query("state"), browser, c.Query("code"), c.ClientIP())
	if err != nil {
		if res.User.ID != "" {
			c.Set(ctxPrincipal, access.Principal{User: res.User})
		}
		if !h.recordDenied(c, "session.oidc", "session", oidcCode(err)) {
			return
		}
		if errors.Is(err, access.ErrTOTPRequired) {
			c.Header("Cache-Control", "no-store")
			c.AbortWithStatusJSON(http.StatusUnauthorized, oidcTicketProblem{Problem: Problem{Type: problemBase + "totp_required",
				Title: http.StatusText(http.StatusUnauthorized), Status: http.StatusUnauthorized, Code: "totp_required",
				Detail: "send a TOTP code (or a recovery code) with this oidc_ticket to POST /api/v1/oidc/totp", Instance: c.Request.URL.Path},
				OIDCTicket: res.Ticket})
			c.Writer.Header().Set("Content-Type", "application/problem+json")
			return
		}
		h.failOIDC(c, err)
		return
	}
	h.sessionCreated(c, res.Session, "oidc")
}

type oidcTOTPRequest struct {
	Ticket string `json:"oidc_ticket"`
	TOTP   string `json:"totp"`
}

func (h *handler) oidcTOTP(c *gin.Context) {
	if !h.oidcConfigured(c) {
		return
	}
	var req oidcTOTPRequest
	if !decode(c, &req) {
		return
	}
	s, err := h.OIDC.FinishTOTP(c.Request.Context(), req.Ticket, req.TOTP, c.ClientIP())
	if err != nil {
		if h.recordDenied(c, "session.oidc", "session", oidcCode(err)) {
			h.failOIDC(c, err)
		}
		return
	}
	h.sessionCreated(c, s, "oidc+totp")
}

// sessionCreated audits and answers a new session as POST /sessions does.
func (h *handler) sessionCreated(c *gin.Context, s access.Session, detail string) {
	c.Set(ctxPrincipal, access.Principal{User: s.User})
	if !h.record(c, "session.create", audit.Allowed, "session/"+s.ID, detail) {
		_ = h.Access.Logout(c.Request.Context(), s.ID)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, sessionResponse{Token: s.Token, ExpiresAt: s.ExpiresAt.UTC(), User: s.User,
		TOTPEnrolmentRequired: s.TOTPEnrolmentRequired})
}

func oidcCode(err error) string {
	switch {
	case errors.Is(err, access.ErrOIDCState):
		return "oidc_state_invalid"
	case errors.Is(err, access.ErrOIDCToken):
		return "oidc_failed"
	case errors.Is(err, access.ErrOIDCNotMapped):
		return "oidc_not_mapped"
	case errors.Is(err, access.ErrAccountPending):
		return "account_pending_approval"
	case errors.Is(err, access.ErrOIDCUnavailable):
		return "idp_unavailable"
	case errors.Is(err, access.ErrTOTPRequired):
		return "totp_required"
	case errors.Is(err, access.ErrTOTPInvalid):
		return "totp_invalid"
	case errors.Is(err, access.ErrBadCredentials):
		return "invalid_credentials"
	}
	return "error"
}

// failOIDC answers the sign-on errors; anything else goes to fail.
func (h *handler) failOIDC(c *gin.Context, err error) {
	switch {
	case errors.Is(err, access.ErrOIDCState):
		problem(c, http.StatusBadRequest, "oidc_state_invalid", "this sign-in is unknown, expired, already used or was begun in another browser; start again")
	case errors.Is(err, access.ErrOIDCToken):
		problem(c, http.StatusUnauthorized, "oidc_failed", "the identity provider's answer does not verify")
	case errors.Is(err, access.ErrOIDCNotMapped):
		problem(c, http.StatusForbidden, "oidc_not_mapped", "your identity provider account gives no organisation or role here")
	case errors.Is(err, access.ErrAccountPending):
		problem(c, http.StatusForbidden, "account_pending_approval", "your account awaits an office admin's approval")
	case errors.Is(err, access.ErrOIDCUnavailable):
		c.Header("Retry-After", "30")
		problem(c, http.StatusServiceUnavailable, "idp_unavailable", "the identity provider cannot be reached")
	case errors.Is(err, access.ErrBadCredentials):
		problem(c, http.StatusUnauthorized, "invalid_credentials", "this account cannot sign in")
	default:
		h.fail(c, err)
	}
}
