package web

import (
	"errors"
	"html/template"
	"net/http"
	"strings"

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
	form := loginForm{Username: c.PostForm("username"), Next: safeNext(c.PostForm("next")), NeedTOTP: c.PostForm("totp") != ""}
	s, err := a.Access.Login(ctx, access.Credentials{Username: form.Username, Password: c.PostForm("password"), TOTP: c.PostForm("totp")}, c.ClientIP())
	if err != nil {
		status, code, _ := a.Classify(err)
		detail := code
		if code != "totp_required" && code != "totp_invalid" && status == http.StatusUnauthorized {
			detail = "invalid_credentials"
		}
		if _, aerr := a.Audit.Append(ctx, audit.Event{Action: "session.create", Outcome: audit.Denied, Resource: "session",
			IP: c.ClientIP(), RequestID: a.RequestID(c), Detail: detail}); aerr != nil {
			a.fail(c, aerr)
			return
		}
		status, msg := a.formError(c, err)
		switch {
		case detail == "totp_required" || detail == "totp_invalid":
			form.NeedTOTP = true
		case status == http.StatusUnauthorized:
			msg = p.L.T("error.invalid_credentials")
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
	if s.TOTPEnrolmentRequired {
		c.Redirect(http.StatusSeeOther, "/account/totp")
		return
	}
	c.Redirect(http.StatusSeeOther, form.Next)
}

func (a *app) accountRoutes(g *gin.RouterGroup) {
	g.GET("/account/totp", a.totpPage)
	g.POST("/account/totp/start", a.csrf, a.totpStart)
	g.POST("/account/totp/confirm", a.csrf, a.totpConfirm)
}

// enrolmentPaths are all a session limited to TOTP enrolment may open, as
// the JSON API allows such a session only its enrolment routes.
var enrolmentPaths = map[string]bool{"/account/totp": true, "/account/totp/start": true, "/account/totp/confirm": true}

type totpView struct {
	Required   bool
	Secret     string
	OTPAuthURL template.URL  // the link that opens an authenticator app on this device
	QR         template.HTML // the same URL as a QR code
	Recovery   []string
}

func (a *app) totpPage(c *gin.Context) {
	p := pageOf(c)
	p.Data = totpView{Required: principalOf(c).TOTPEnrolmentRequired}
	a.render(c, http.StatusOK, "totp", p)
}

// totpStart begins enrolment: a fresh secret, shown once, to put in an
// authenticator app. Audited as the API audits it.
func (a *app) totpStart(c *gin.Context) {
	p := pageOf(c)
	pr := principalOf(c)
	en, err := a.Access.StartTOTP(c.Request.Context(), pr)
	if !a.recordAccount(c, "totp.enrol_start", err) {
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	v := totpView{Required: pr.TOTPEnrolmentRequired, Secret: en.Secret, OTPAuthURL: otpauthLink(en.OTPAuthURL)}
	if v.QR, err = qrSVG(en.OTPAuthURL, p.L.T("totp.qr_label")); err != nil {
		// The key and the link still enrol; never the secret in a log.
		a.log.WarnContext(c.Request.Context(), "TOTP enrolment page without its QR code", "err", err)
	}
	p.Data = v
	a.render(c, http.StatusOK, "totp", p)
}

// otpauthLink lets the enrolment URL into a link. html/template turns any
// scheme but http, https and mailto into "#ZgotmplZ", so a phone, which
// cannot scan its own screen, had no way to hand the key to its app; it is
// trusted only once it is checked to be a TOTP key URI, nothing a browser
// would run. Anything else gives no link (the key is still shown).
func otpauthLink(u string) template.URL {
	if !strings.HasPrefix(u, "otpauth://totp/") || strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '<' || r == '>' }) {
		return ""
	}
	return template.URL(u)
}

// totpConfirm finishes enrolment with a code from the app and shows the
// recovery codes, once.
func (a *app) totpConfirm(c *gin.Context) {
	p := pageOf(c)
	pr := principalOf(c)
	codes, err := a.Access.ConfirmTOTP(c.Request.Context(), pr, c.PostForm("code"))
	if !a.recordAccount(c, "totp.enrol", err) {
		return
	}
	if err != nil {
		status, msg := a.formError(c, err)
		p.Error = msg
		p.Data = totpView{Required: pr.TOTPEnrolmentRequired}
		a.render(c, status, "totp", p)
		return
	}
	p.Flash = "flash.totp_enrolled"
	p.Data = totpView{Recovery: codes}
	a.render(c, http.StatusOK, "totp", p)
}

// recordAccount audits an account action on the user's own account; false
// when the audit log refused (the page is then answered).
func (a *app) recordAccount(c *gin.Context, action string, err error) bool {
	pr := principalOf(c)
	e := audit.Event{Actor: pr.User.ID, ActorOrg: pr.User.OrgID, Action: action, Outcome: audit.Allowed, Resource: "user/" + pr.User.ID,
		IP: c.ClientIP(), RequestID: a.RequestID(c)}
	if err != nil {
		_, code, _ := a.Classify(err)
		e.Outcome, e.Detail = audit.Denied, code
	}
	if _, aerr := a.Audit.Append(c.Request.Context(), e); aerr != nil {
		a.fail(c, aerr)
		return false
	}
	return true
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
