// Package web is crvault's web application: server-rendered pages in
// Chinese and English for every role, served by vaultd at / beside the JSON
// API. Handlers call the same vault, access, audit and supervision services
// as the API and hold no rule of their own: whatever a page shows or offers
// comes from a service call made as the signed-in user, and every refusal is
// the service's (and audited by it).
//
// Pages work without JavaScript; small scripts (static/*.js) add drag and
// drop uploads with progress. The Content-Security-Policy allows no inline
// script or style. Sessions live in a __Host- cookie (HttpOnly, Secure,
// SameSite=Strict); every state-changing request carries a CSRF token.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/text/language"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/vault"
	"github.com/crvault/crvault/vault/supervision"
)

// Deps are the services the pages call.
type Deps struct {
	Vault       *vault.Service
	Access      *access.Service
	Audit       *audit.Log
	Supervision *supervision.Service
	// Prefs remembers each account's language (nil: cookie only).
	Prefs *Prefs
	// Setup is the first-run setup (nil: none).
	Setup  *Setup
	Logger *slog.Logger
	// Classify answers the HTTP status, problem code and detail the JSON API
	// gives an error: api/problem.go stays the one place errors become
	// statuses.
	Classify func(error) (status int, code, detail string)
	// RequestID is the id the API's middleware gave the request.
	RequestID func(*gin.Context) string
	// API is the JSON API itself: the account pages call it in process as
	// the signed-in user (apicall.go), where its handlers hold the rules.
	API http.Handler
	// Verifier runs the audit page's full verification in the background
	// (nil: the button answers that the service is unavailable).
	Verifier *Verifier
}

type app struct {
	Deps
	log    *slog.Logger
	engine *engine
	cat    *catalogue
}

const (
	ctxPage      = "crvault.web.page"
	ctxPrincipal = "crvault.web.principal"
	ctxToken     = "crvault.web.token"
)

// Register adds the web application's routes to r, and returns the handlers
// of its "page not found" page for the caller's NoRoute. It fails only if
// the embedded templates or catalogues are broken.
func Register(r *gin.Engine, d Deps) ([]gin.HandlerFunc, error) {
	a := &app{Deps: d, log: d.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.RequestID == nil {
		a.RequestID = func(*gin.Context) string { return "" }
	}
	var err error
	if a.engine, err = loadEngine(); err != nil {
		return nil, err
	}
	if a.cat, err = loadCatalogue(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	assets := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	r.GET("/static/*file", func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=3600")
		c.Header("X-Content-Type-Options", "nosniff")
		assets.ServeHTTP(c.Writer, c.Request)
	})
	r.GET("/favicon.ico", func(c *gin.Context) { c.Status(http.StatusNoContent) })

	g := r.Group("", a.headers, a.identify)
	g.GET("/", a.home)
	g.GET("/login", a.loginPage)
	g.POST("/login", a.csrf, a.login)
	g.POST("/logout", a.csrf, a.logout)
	g.POST("/lang", a.csrf, a.setLang)
	g.GET("/setup", a.setupPage)
	g.POST("/setup", a.csrf, a.setup)
	a.publicRoutes(g)

	in := g.Group("", a.signedIn)
	a.accountRoutes(in)
	a.accountPages(in)
	a.partyRoutes(in)
	a.caseRoutes(in)
	a.auditRoutes(in)
	a.supervisionRoutes(in)
	a.proposalRoutes(in)
	return []gin.HandlerFunc{a.headers, a.identify, func(c *gin.Context) { a.errorPage(c, http.StatusNotFound, "error.not_found") }}, nil
}

// headers sets the strict policy of HTML pages. A handler serving document
// content replaces it with the sandbox of contentCSP.
func (a *app) headers(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	c.Next()
}

// identify finds the signed-in user, if any, and the page's language and
// CSRF token. A stale session cookie is dropped, and the page served as to
// someone signed out.
func (a *app) identify(c *gin.Context) {
	p := &page{Path: c.Request.URL.RequestURI()}
	if c.Request.Method != http.MethodGet {
		p.Path = "/" // a page answering a form cannot be fetched again
	}
	chosen := ""
	if ck, err := c.Request.Cookie(langCookie); err == nil {
		chosen = ck.Value
	}
	if token, ok := SessionToken(c.Request); ok {
		pr, err := a.Access.Authenticate(c.Request.Context(), token)
		switch {
		case err == nil:
			c.Set(ctxPrincipal, pr)
			c.Set(ctxToken, token)
			u := pr.User
			p.User = &u
			for _, r := range u.Roles {
				p.Roles = append(p.Roles, string(r))
			}
			p.OrgKind = string(pr.OrgKind)
			p.CSRF = sessionCSRF(token)
		case errors.Is(err, access.ErrUnauthenticated), errors.Is(err, access.ErrDisabled):
			clearCookie(c.Writer, SessionCookie)
		default:
			a.log.ErrorContext(c.Request.Context(), "authenticate web session", "request_id", a.RequestID(c), "err", err)
			p.L = a.newLocale(pick(chosen, c.Request))
			c.Set(ctxPage, p)
			a.fail(c, err)
			c.Abort()
			return
		}
	}
	if p.CSRF == "" {
		if ck, err := c.Request.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
			p.CSRF = ck.Value
		} else {
			p.CSRF = randomToken()
			setCookie(c.Writer, csrfCookie, p.CSRF, timeZero, true)
		}
	}
	p.L = a.newLocale(pick(chosen, c.Request))
	p.PlainHTTP = plainHTTPFromAfar(c.Request)
	if f := c.Query("done"); f != "" && a.cat.has("flash."+f) {
		p.Flash = "flash." + f
		// A notice with a count (flash.*_n) says nothing without one.
		if n, err := strconv.Atoi(c.Query("count")); err == nil && n > 0 {
			p.FlashCount = n
		} else if strings.HasSuffix(f, "_n") {
			p.Flash = ""
		}
	}
	c.Set(ctxPage, p)
	c.Next()
}

// csrf refuses a state-changing request that does not carry this
// browser's token, whatever the form's encoding: it reads the form here (1
// MiB at most), url-encoded or multipart, and checks the token before the
// handler sees a field. Handlers then read fields with c.PostForm.
// Uploads, which must stream, are the exception: their routes use
// csrfStreamed instead, and their handlers check the token themselves.
func (a *app) csrf(c *gin.Context) {
	if !crossSiteOK(c.Request) {
		a.csrfRefused(c)
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	if err := parseSmallForm(c.Request); err != nil {
		a.errorPage(c, http.StatusBadRequest, "error.bad_form")
		c.Abort()
		return
	}
	if !tokenEqual(submittedCSRF(c.Request), pageOf(c).CSRF) {
		a.csrfRefused(c)
		return
	}
	c.Next()
}

// csrfStreamed guards a route whose handler streams a multipart body
// (documents go to the store as they arrive, never to memory or disk
// whole) and so checks the form's token itself, from its first part,
// before acting on anything (multipartCSRF). Here only what needs no body:
// the request's site, and the token header a script sends. Only the
// upload routes may use it; every other route uses csrf.
func (a *app) csrfStreamed(c *gin.Context) {
	if !crossSiteOK(c.Request) || (c.GetHeader(CSRFHeader) != "" && !tokenEqual(c.GetHeader(CSRFHeader), pageOf(c).CSRF)) {
		a.csrfRefused(c)
		return
	}
	c.Next()
}

// maxFormBytes bounds a form that is not an upload.
const maxFormBytes = 1 << 20

// errFileInForm refuses a file sent to a form that takes none.
var errFileInForm = errors.New("a file part in a form without files")

// parseSmallForm reads a form that is not an upload into r.PostForm and
// r.Form. A multipart body is read here, its fields kept in memory (the
// body is bounded) and a file part refused: no handler but the streaming
// ones reads files, and nothing of a document is to be buffered or written
// to a temporary file. Afterwards r.MultipartForm holds the fields, so
// that Gin's c.PostForm does not try to parse the spent body again.
func parseSmallForm(r *http.Request) error {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return r.ParseForm()
	}
	if params["boundary"] == "" {
		return errors.New("multipart form without a boundary")
	}
	values := url.Values{}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read multipart form: %w", err)
		}
		if part.FileName() != "" {
			return errFileInForm
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return fmt.Errorf("read multipart field %q: %w", part.FormName(), err)
		}
		values.Add(part.FormName(), string(b))
	}
	r.PostForm = values
	r.Form = url.Values{}
	for k, vs := range r.URL.Query() {
		r.Form[k] = append(r.Form[k], vs...)
	}
	for k, vs := range values {
		r.Form[k] = append(r.Form[k], vs...)
	}
	r.MultipartForm = &multipart.Form{Value: values, File: map[string][]*multipart.FileHeader{}}
	return nil
}

func (a *app) csrfRefused(c *gin.Context) {
	pr := principalOf(c)
	ip := c.ClientIP()
	if reporterPages[c.Request.Method+" "+c.FullPath()] {
		ip = "" // the report desk's visitors stay anonymous (as on the API's desk routes)
	}
	_, _ = a.Audit.Append(c.Request.Context(), audit.Event{Actor: pr.User.ID, ActorOrg: pr.User.OrgID, Action: "web.csrf", Outcome: audit.Denied,
		Resource: c.Request.Method + " " + c.FullPath(), IP: ip, RequestID: a.RequestID(c), Detail: "csrf_failed"})
	a.errorPage(c, http.StatusForbidden, "error.csrf_failed")
	c.Abort()
}

// signedIn sends a visitor without a session to the sign-in page, and a
// session limited to TOTP enrolment to the enrolment page.
func (a *app) signedIn(c *gin.Context) {
	if _, ok := c.Get(ctxPrincipal); !ok {
		next := url.QueryEscape(c.Request.URL.RequestURI())
		if c.Request.Method != http.MethodGet {
			// A form sent after the session ended: back to its page once
			// signed in again, told why (what was typed is lost, but the
			// browser's Back button may still hold it).
			c.Redirect(http.StatusSeeOther, "/login?done=session_ended&next="+url.QueryEscape(formPage(c, false)))
			c.Abort()
			return
		}
		c.Redirect(http.StatusSeeOther, "/login?next="+next)
		c.Abort()
		return
	}
	if principalOf(c).TOTPEnrolmentRequired && !enrolmentPaths[c.FullPath()] {
		c.Redirect(http.StatusSeeOther, "/account/totp")
		c.Abort()
		return
	}
	c.Next()
}

func pageOf(c *gin.Context) *page {
	v, _ := c.Get(ctxPage)
	p, _ := v.(*page)
	if p == nil {
		p = &page{}
	}
	return p
}

func principalOf(c *gin.Context) access.Principal {
	v, _ := c.Get(ctxPrincipal)
	p, _ := v.(access.Principal)
	return p
}

func (a *app) actor(c *gin.Context) vault.Actor {
	return vault.Actor{P: principalOf(c), IP: c.ClientIP(), RequestID: a.RequestID(c)}
}

func (a *app) client(c *gin.Context) supervision.Client {
	return supervision.Client{Addr: c.ClientIP(), RequestID: a.RequestID(c)}
}

// fail answers a service error as a page, with the status the JSON API
// would give it. A lost session goes back to the sign-in page.
func (a *app) fail(c *gin.Context, err error) {
	status, code, _ := a.Classify(err)
	if status == http.StatusUnauthorized {
		clearCookie(c.Writer, SessionCookie)
		c.Redirect(http.StatusSeeOther, "/login")
		c.Abort()
		return
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		a.log.ErrorContext(c.Request.Context(), "web page failed", "request_id", a.RequestID(c), "path", c.FullPath(), "err", err)
	}
	if text, ok := a.fieldMessage(c, err, code); ok {
		a.errorPageText(c, status, text)
		return
	}
	a.errorPage(c, status, a.errorMessage(code, status))
}

// fieldMessage names the field of a missing or invalid free-text entry,
// when the page can say which it is in the reader's words: "check what you
// filled in" leaves a form of five fields to guess at.
func (a *app) fieldMessage(c *gin.Context, err error, code string) (string, bool) {
	var ve *vault.Error
	if code != "missing_field" && code != "invalid_field" || !errors.As(err, &ve) || !a.cat.has("field."+ve.Field) {
		return "", false
	}
	L := a.locale(c)
	return L.T("error."+code+"_named", "Field", L.T("field."+ve.Field)), true
}

// errorMessage is the message id for a problem code, falling back to one
// for the status.
func (a *app) errorMessage(code string, status int) string {
	if a.cat.has("error." + code) {
		return "error." + code
	}
	switch status {
	case http.StatusNotFound:
		return "error.not_found"
	case http.StatusForbidden:
		return "error.forbidden"
	case http.StatusServiceUnavailable:
		return "error.unavailable"
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusConflict:
		return "error.invalid"
	}
	return "error.internal"
}

// formError is the translated message of a refused form, shown above it.
func (a *app) formError(c *gin.Context, err error) (int, string) {
	status, code, _ := a.Classify(err)
	if text, ok := a.fieldMessage(c, err, code); ok {
		return status, text
	}
	return status, a.locale(c).T(a.errorMessage(code, status))
}

// locale is the page's language, or the request's before a page has one.
func (a *app) locale(c *gin.Context) *Locale {
	p := pageOf(c)
	if p.L == nil {
		p.L = a.newLocale(pick("", c.Request))
	}
	return p.L
}

// newLocale is a page's locale, citing by default the edition a case
// submitted today follows: the office may pin one by configuration.
func (a *app) newLocale(tag language.Tag) *Locale {
	l := a.cat.locale(tag)
	if a.Vault != nil {
		l.current = a.Vault.CurrentEdition()
	}
	return l
}

func (a *app) errorPage(c *gin.Context, status int, msgID string) {
	a.errorPageText(c, status, a.locale(c).T(msgID))
}

// errorPageText shows an error page with a message already translated.
// A refused form links back to the page it was on.
func (a *app) errorPageText(c *gin.Context, status int, text string) {
	a.errorPageBack(c, status, text, backTo(c), "error.back")
}

// errorPageBack shows an error page that links to back (if not empty),
// the link saying backLabel: where the person goes next.
func (a *app) errorPageBack(c *gin.Context, status int, text, back, backLabel string) {
	p := pageOf(c)
	a.locale(c)
	p.Data = map[string]any{"Status": status, "Message": text, "Back": back, "BackLabel": backLabel, "Form": c.Request.Method == http.MethodPost}
	a.render(c, status, "error", p)
	c.Abort()
}

// backTo is the page a form posted to this route is on, derived from the
// route and its ids (never from the Referer, which another site can
// set): where someone whose form was refused goes to try again. Empty
// when there is no such page (a GET, or a route it does not know).
func backTo(c *gin.Context) string { return formPage(c, true) }

// formPage is backTo, reading the posted form only if readForm: before
// the csrf middleware has read it, reading it would let Gin parse a
// multipart body its own way (into temporary files).
func formPage(c *gin.Context, readForm bool) string {
	if c.Request.Method != http.MethodPost {
		return ""
	}
	id := func(name string) string {
		if v := c.Param(name); isID(v) {
			return v
		}
		return ""
	}
	posted := func(name string) string {
		if !readForm {
			return ""
		}
		return c.PostForm(name)
	}
	route := c.FullPath()
	switch {
	case strings.HasPrefix(route, "/cases/:case/"):
		if v := id("case"); v != "" {
			return "/cases/" + v
		}
	case route == "/cases":
		return "/cases/new"
	case route == "/complaints":
		// Filed from the case page, which names its case.
		if v := posted("case"); isID(v) {
			return "/cases/" + v
		}
		return "/complaints"
	case strings.HasPrefix(route, "/complaints/:id/"):
		if v := id("id"); v != "" {
			return "/complaints/" + v
		}
	case strings.HasPrefix(route, "/reports/:id/"):
		if v := id("id"); v != "" {
			return "/reports/" + v
		}
	case strings.HasPrefix(route, "/commitments/"):
		return "/commitments"
	case route == "/materials/:id/consents":
		if v := id("id"); v != "" {
			return "/materials/" + v + "/consents"
		}
	case route == "/consents/:id/revoke":
		if v := posted("material"); isID(v) {
			return "/materials/" + v + "/consents"
		}
	case strings.HasPrefix(route, "/admin/"):
		return "/admin/users"
	case strings.HasPrefix(route, "/approvals/"):
		return "/approvals"
	case strings.HasPrefix(route, "/account/totp"):
		return "/account/totp"
	case strings.HasPrefix(route, "/account/"):
		return "/account"
	case route == "/member-units":
		return "/member-units"
	case route == "/proposals", strings.HasPrefix(route, "/proposals/"):
		return "/proposals"
	case route == "/audit/verify":
		return "/audit"
	case route == "/report/status", route == "/report/messages":
		return "/report/status"
	case route == "/report":
		return "/report"
	case route == "/login", route == "/setup":
		return route
	}
	return ""
}

// confirmView is the page that asks before an irreversible step: what it
// will do, what follows, and the same form again, with confirm=1.
type confirmView struct {
	Title, Summary, Consequence, Button string
	Warning                             string // something the person may not have meant (their own account)
	Action                              string // where the form posts: the step's own route
	Fields                              []formField
	Back                                string // the page the form was on
}

type formField struct {
	Name, Value string
}

// confirmFirst reports whether the post is the confirmation of an
// irreversible step (confirm=1). Otherwise it answers with the page that
// asks, carrying the fields named in keep, and the handler must stop: one
// click, or a submit without reading, must not disable an account or end
// someone's access. It works without JavaScript.
func (a *app) confirmFirst(c *gin.Context, v confirmView, keep ...string) bool {
	if c.PostForm("confirm") == "1" {
		return true
	}
	for _, k := range keep {
		for _, val := range c.PostFormArray(k) {
			v.Fields = append(v.Fields, formField{k, val})
		}
	}
	p := pageOf(c)
	p.Data = v
	a.render(c, http.StatusOK, "confirm", p)
	return false
}

// home is the dashboard of the signed-in user, or the sign-in page.
func (a *app) home(c *gin.Context) {
	if _, ok := c.Get(ctxPrincipal); !ok {
		a.loginPage(c)
		return
	}
	if principalOf(c).TOTPEnrolmentRequired {
		// As every other page: a session limited to enrolment sees none
		// of the vault, the dashboard's list of cases included.
		c.Redirect(http.StatusSeeOther, "/account/totp")
		return
	}
	a.dashboard(c)
}

// setLang switches the language, remembers it in a cookie and, once signed
// in, on the account; then goes back to the page it was chosen on.
func (a *app) setLang(c *gin.Context) {
	tag, ok := supported(c.PostForm("lang"))
	if !ok {
		a.errorPage(c, http.StatusUnprocessableEntity, "error.invalid")
		return
	}
	setCookie(c.Writer, langCookie, tag.String(), oneYear(), true)
	if pr, ok := c.Get(ctxPrincipal); ok && a.Prefs != nil {
		if err := a.Prefs.SetLang(c.Request.Context(), pr.(access.Principal).User.ID, tag.String()); err != nil {
			a.log.WarnContext(c.Request.Context(), "remember language", "err", err)
		}
	}
	c.Redirect(http.StatusSeeOther, safeNext(c.PostForm("next")))
}

// accountLang applies the account's remembered language at sign-in.
func (a *app) accountLang(ctx context.Context, c *gin.Context, userID string) {
	if a.Prefs == nil {
		return
	}
	lang, err := a.Prefs.Lang(ctx, userID)
	if err != nil {
		a.log.WarnContext(ctx, "read language", "err", err)
		return
	}
	if _, ok := supported(lang); ok {
		setCookie(c.Writer, langCookie, lang, oneYear(), true)
	}
}
