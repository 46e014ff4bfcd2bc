package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// Setup is the first run: on a database without a single account, a
// one-time token that vaultd logs at start lets whoever reads the server's
// log create the office organisation and its first office admin from the
// browser. Once any account exists the page is gone (404), also after a
// restart, since that is decided from the database and not remembered.
type Setup struct {
	run    sync.Mutex // one setup at a time
	mu     sync.Mutex // guards token
	token  string
	access *access.Service
}

// NewSetup returns the setup when the database has no account yet, with a
// fresh random token; nil when there is nothing to set up.
func NewSetup(ctx context.Context, acc *access.Service) (*Setup, error) {
	users, _, err := acc.ListUsers(ctx, access.UserFilter{}, 1, "")
	if err != nil {
		return nil, fmt.Errorf("first-run check: %w", err)
	}
	if len(users) > 0 {
		return nil, nil
	}
	return &Setup{token: randomToken(), access: acc}, nil
}

// URL is the path to open in a browser, token included.
func (s *Setup) URL() string { return "/setup?token=" + s.token }

// open reports whether token opens the setup now: it is the right one, not
// yet used, and the database still has no account.
func (s *Setup) open(ctx context.Context, token string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	valid := s.token != "" && len(token) == len(s.token) && subtle.ConstantTimeCompare([]byte(token), []byte(s.token)) == 1
	s.mu.Unlock()
	if !valid {
		return false
	}
	users, _, err := s.access.ListUsers(ctx, access.UserFilter{}, 1, "")
	return err == nil && len(users) == 0
}

type setupForm struct {
	Token, OrgName, Username, DisplayName string
}

func (a *app) setupPage(c *gin.Context) {
	p := pageOf(c)
	token := c.Query("token")
	if !a.Setup.open(c.Request.Context(), token) {
		a.errorPage(c, http.StatusNotFound, "error.not_found")
		return
	}
	p.Data = setupForm{Token: token, OrgName: p.L.T("setup.default_org")}
	a.render(c, http.StatusOK, "setup", p)
}

// setup creates the office and its first office admin, then signs the new
// admin in. The token is spent only when the account exists.
func (a *app) setup(c *gin.Context) {
	p := pageOf(c)
	ctx := c.Request.Context()
	s := a.Setup
	form := setupForm{Token: c.PostForm("token"), OrgName: strings.TrimSpace(c.PostForm("org_name")),
		Username: strings.TrimSpace(c.PostForm("username")), DisplayName: strings.TrimSpace(c.PostForm("display_name"))}
	if s == nil {
		a.errorPage(c, http.StatusNotFound, "error.not_found")
		return
	}
	// One setup at a time: two browsers racing with the token get one
	// office admin between them.
	s.run.Lock()
	defer s.run.Unlock()
	if !s.open(ctx, form.Token) {
		a.errorPage(c, http.StatusNotFound, "error.not_found")
		return
	}
	again := func(msg string) {
		p.Error = msg
		p.Data = form
		a.render(c, http.StatusUnprocessableEntity, "setup", p)
	}
	password := c.PostForm("password")
	if password != c.PostForm("password2") {
		again(p.L.T("setup.password_mismatch"))
		return
	}
	if form.DisplayName == "" {
		form.DisplayName = form.Username
	}
	org, err := a.Access.CreateOrg(ctx, form.OrgName, access.OrgOffice)
	if errors.Is(err, access.ErrConflict) {
		org, err = a.Access.OrgByName(ctx, form.OrgName)
		if err == nil && org.Kind != access.OrgOffice {
			again(p.L.T("setup.org_taken"))
			return
		}
	}
	if err != nil {
		_, msg := a.formError(c, err)
		again(msg)
		return
	}
	u, err := a.Access.CreateUser(ctx, access.NewUser{Username: form.Username, DisplayName: form.DisplayName, Org: org.ID,
		Roles: []access.Role{access.RoleOfficeAdmin}, Password: password})
	if err != nil {
		_, msg := a.formError(c, err)
		again(msg)
		return
	}
	s.mu.Lock()
	s.token = ""
	s.mu.Unlock()
	for _, e := range []audit.Event{
		{Actor: "setup", Action: "org.create", Outcome: audit.Allowed, Resource: "org/" + org.ID, IP: c.ClientIP(), RequestID: a.RequestID(c)},
		{Actor: "setup", Action: "user.create", Outcome: audit.Allowed, Resource: "user/" + u.ID, IP: c.ClientIP(), RequestID: a.RequestID(c)},
	} {
		if _, err := a.Audit.Append(ctx, e); err != nil {
			a.fail(c, err)
			return
		}
	}
	a.log.InfoContext(ctx, "first-run setup done", "org", org.ID, "user", u.ID)
	sess, err := a.Access.Login(ctx, access.Credentials{Username: form.Username, Password: password}, c.ClientIP())
	if err != nil {
		c.Redirect(http.StatusSeeOther, "/login?done=setup")
		return
	}
	if _, err := a.Audit.Append(ctx, audit.Event{Actor: u.ID, ActorOrg: org.ID, Action: "session.create", Outcome: audit.Allowed,
		Resource: "session/" + sess.ID, IP: c.ClientIP(), RequestID: a.RequestID(c)}); err != nil {
		_ = a.Access.Logout(ctx, sess.ID)
		a.fail(c, err)
		return
	}
	setCookie(c.Writer, SessionCookie, sess.Token, sess.ExpiresAt, true)
	clearCookie(c.Writer, csrfCookie)
	if sess.TOTPEnrolmentRequired {
		// Office admins sign in with TOTP: enrol the device next.
		c.Redirect(http.StatusSeeOther, "/account/totp?done=setup")
		return
	}
	c.Redirect(http.StatusSeeOther, "/?done=setup")
}
