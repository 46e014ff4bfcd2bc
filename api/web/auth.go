package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

type loginForm struct {
	Username string
	Next     string
	NeedTOTP bool
}

func (a *app) loginPage(c *gin.Context) {
	p := pageOf(c)
	if _, ok := c.Get(ctxPrincipal); ok && c.FullPath() == "/login" {
		c.Redirect(http.StatusSeeOther, "/")
		return
	}
	p.Data = loginForm{Next: safeNext(c.Query("next"))}
	a.render(c, http.StatusOK, "login", p)
}

// login signs in with the access service and keeps the session token in
// the session cookie. The attempt is audited as the JSON API audits it.
func (a *app) login(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	form := loginForm{Username: c.PostForm("username"), Next: safeNext(c.PostForm("next"))}
	s, err := a.Access.Login(ctx, form.Username, c.PostForm("password"), c.ClientIP())
	if err != nil {
		if _, aerr := a.Audit.Append(ctx, audit.Event{Action: "session.create", Outcome: audit.Denied, Resource: "session",
			IP: c.ClientIP(), RequestID: a.RequestID(c), Detail: "invalid_credentials"}); aerr != nil {
			a.fail(c, aerr)
			return
		}
		status, msg := a.formError(c, err)
		if errors.Is(err, access.ErrBadCredentials) || errors.Is(err, access.ErrDisabled) {
			status, msg = http.StatusUnauthorized, p.L.T("error.invalid_credentials")
		}
		p.Error = msg
		p.Data = form
		a.render(c, status, "login", p)
		return
	}
	if _, err := a.Audit.Append(ctx, audit.Event{Actor: s.User.ID, ActorOrg: s.User.OrgID, Action: "session.create", Outcome: audit.Allowed,
		Resource: "session/" + s.ID, IP: c.ClientIP(), RequestID: a.RequestID(c)}); err != nil {
		_ = a.Access.Logout(ctx, s.ID)
		a.fail(c, err)
		return
	}
	setCookie(c.Writer, SessionCookie, s.Token, s.ExpiresAt, true)
	clearCookie(c.Writer, csrfCookie)
	a.accountLang(ctx, c, s.User.ID)
	c.Redirect(http.StatusSeeOther, form.Next)
}

// logout ends the session on the server, not only the cookie.
func (a *app) logout(c *gin.Context) {
	pr, ok := c.Get(ctxPrincipal)
	if ok {
		p := pr.(access.Principal)
		if err := a.Access.Logout(c.Request.Context(), p.SessionID); err != nil && !errors.Is(err, access.ErrNotFound) {
			a.fail(c, err)
			return
		}
		_, _ = a.Audit.Append(c.Request.Context(), audit.Event{Actor: p.User.ID, ActorOrg: p.User.OrgID, Action: "session.delete",
			Outcome: audit.Allowed, Resource: "session/" + p.SessionID, IP: c.ClientIP(), RequestID: a.RequestID(c)})
	}
	clearCookie(c.Writer, SessionCookie)
	c.Redirect(http.StatusSeeOther, "/login?done=signed_out")
}
