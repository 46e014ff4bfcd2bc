package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/vault"
)

//go:embed templates
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// engine holds every page's template, parsed once at start: the layout and
// its partials, plus one view each (the miniflux pattern). A view defines
// "title" and "content".
type engine struct {
	views map[string]*template.Template
}

var funcs = template.FuncMap{
	"join":    strings.Join,
	"grouped": grouped,
	"deref":   func(b *bool) bool { return b != nil && *b },
	// materialOf is the material an audit event's resource names.
	"materialOf": materialOf,
	// dict builds a map for passing several values to a partial.
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"has": func(list any, v string) bool {
		switch l := list.(type) {
		case []string:
			for _, x := range l {
				if x == v {
					return true
				}
			}
		case []access.Role:
			for _, x := range l {
				if string(x) == v {
					return true
				}
			}
		}
		return false
	},
}

func loadEngine() (*engine, error) {
	views, err := fs.Glob(templateFS, "templates/views/*.html")
	if err != nil {
		return nil, err
	}
	e := &engine{views: map[string]*template.Template{}}
	for _, v := range views {
		name := strings.TrimSuffix(path.Base(v), ".html")
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html", v)
		if err != nil {
			return nil, fmt.Errorf("parse view %s: %w", name, err)
		}
		e.views[name] = t
	}
	return e, nil
}

// page is what every template sees.
type page struct {
	L    *Locale
	User *access.User
	// Roles of the signed-in user, for the navigation.
	Roles   []string
	OrgKind string
	CSRF    string
	Path    string // the current path and query, for the language switch
	Flash   string // message id of a notice after a redirect
	// FlashCount is the count a plural notice tells (?count=), or 0.
	FlashCount int
	Error      string // a translated error to show above the content
	// refused is the error of a refused form of a case page, which the
	// case page translates (into Error) once it knows the case's edition.
	refused error
	// ErrorLink, when set, is a page that mends the Error, shown after it
	// with ErrorLinkLabel.
	ErrorLink, ErrorLinkLabel string
	Data                      any
	NoHeader                  bool
	// PlainHTTP: the request came over plain HTTP for a host that is not
	// this machine, so the browser will drop the Secure session cookie.
	// The sign-in pages show it to browsers without JavaScript, whose
	// own check (isSecureContext) is exact where this is a guess.
	PlainHTTP bool
}

// Is reports whether the signed-in user holds a role.
func (p *page) Is(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// render writes a page with status. Rendering into a buffer first means a
// template error becomes a clean 500, never half a page.
func (a *app) render(c *gin.Context, status int, view string, p *page) {
	t, ok := a.engine.views[view]
	if !ok {
		a.log.ErrorContext(c.Request.Context(), "no such view", "view", view)
		c.Status(http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		a.log.ErrorContext(c.Request.Context(), "render page", "view", view, "err", err)
		c.Header("Content-Type", "text/plain; charset=utf-8")
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	_, _ = c.Writer.Write(dropControls(buf.Bytes()))
}

// dropControls removes from a rendered page what no text saved today can
// hold (vault.CleanText refuses or drops it) but text saved by earlier
// versions may: control characters other than tab and line breaks (C0,
// DEL, C1) and the explicit bidi embeddings, overrides and isolates that
// make "invoice<RLO>gpj.exe" display as "invoiceexe.jpg". The templates
// hold none, so only stored text is touched; vaultctl drops the same
// when it prints. A page without any (every page today) is returned as it
// is, after one pass over its bytes.
func dropControls(b []byte) []byte {
	if !bytes.ContainsFunc(b, pageControl) {
		return b
	}
	return bytes.Map(func(r rune) rune {
		if pageControl(r) {
			return -1
		}
		return r
	}, b)
}

func pageControl(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20 || 0x7f <= r && r <= 0x9f:
		return true
	}
	return vault.BidiOverride(r)
}

// grouped writes a receipt for a person to copy by hand: its id and secret
// in groups of four, as card numbers are printed. ParseReceipt ignores the
// spaces, so a receipt copied from the page still opens the report.
func grouped(receipt string) string {
	var b strings.Builder
	for i, part := range strings.SplitN(receipt, ".", 2) {
		if i > 0 {
			b.WriteString(" . ")
		}
		for j, r := range []rune(part) {
			if j > 0 && j%4 == 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}
