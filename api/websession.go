package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/api/web"
	"github.com/crvault/crvault/audit"
)

// webRoutes serves the web application at / when configured. It calls the
// same services, and maps their errors through fail, so the pages answer
// exactly as the JSON API would.
func (h *handler) webRoutes(r *gin.Engine) error {
	if h.Web == nil {
		return nil
	}
	d := *h.Web
	d.Vault, d.Access, d.Audit, d.Supervision = h.Vault, h.Access, h.Audit, h.Supervision
	if d.Logger == nil {
		d.Logger = h.log
	}
	d.Classify = h.classify
	d.RequestID = requestID
	d.API = r
	notFound, err := web.Register(r, d)
	if err != nil {
		return err
	}
	// A browser asking for a page that does not exist gets a page; the
	// API and every other client keep the problem+json answer.
	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") || !strings.Contains(c.GetHeader("Accept"), "text/html") {
			problem(c, http.StatusNotFound, "no_route", "no such endpoint")
			return
		}
		for _, f := range notFound {
			if f(c); c.IsAborted() {
				return
			}
		}
	})
	return nil
}

// cookieSession lets the browser's scripts call the JSON API with the web
// session cookie instead of a bearer token (API.md "Conventions"): for any
// method but GET, HEAD and OPTIONS the request must carry the session's CSRF
// token in the X-CSRF-Token header and not come from another site. A
// refusal is audited and answered 403 csrf_failed; the return value says
// whether authentication may go on (with *token set when a cookie was found).
func (h *handler) cookieSession(c *gin.Context, token *string, found *bool) bool {
	if h.Web == nil {
		return true
	}
	t, ok := web.SessionToken(c.Request)
	if !ok {
		return true
	}
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !web.CSRFValid(c.Request, t) {
			if h.record(c, "auth", audit.Denied, c.Request.Method+" "+c.FullPath(), "csrf_failed") {
				problem(c, http.StatusForbidden, "csrf_failed", "a cookie session needs its CSRF token in the "+web.CSRFHeader+" header")
			}
			return false
		}
	}
	*token, *found = t, true
	return true
}

// classify answers the status, code and detail fail gives err, so the web
// pages need no mapping of their own.
func (h *handler) classify(err error) (int, string, string) {
	w := &captureWriter{header: http.Header{}}
	c, _ := gin.CreateTestContext(w)
	c.Request, _ = http.NewRequest(http.MethodGet, "/", nil)
	h.fail(c, err)
	var p Problem
	_ = json.Unmarshal(w.body.Bytes(), &p)
	if p.Status == 0 {
		p.Status = http.StatusInternalServerError
	}
	return p.Status, p.Code, p.Detail
}

// captureWriter is a response writer that keeps what fail writes.
type captureWriter struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (w *captureWriter) Header() http.Header         { return w.header }
func (w *captureWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *captureWriter) WriteHeader(s int)           { w.status = s }
