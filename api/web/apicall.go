package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Account management (users, approvals, password, TOTP removal) keeps
// rules in the JSON API's handlers (who may list pending accounts, the
// "learns nothing" 404 of an approval, the audit records of each refusal).
// Rather than restate them, the pages make the very same API call in
// process, as the signed-in user's cookie session with its CSRF token
// (exactly what the page's scripts could do), and show its answer.

// apiAnswer is the JSON API's answer to an in-process call.
type apiAnswer struct {
	Status int
	Body   []byte
	Header http.Header
	Code   string // the problem code of a refusal
}

func (r apiAnswer) ok() bool { return r.Status >= 200 && r.Status < 300 }

// callAPI runs method path (under /api/v1) with body as JSON through the
// JSON API, on behalf of the page's signed-in user.
func (a *app) callAPI(c *gin.Context, method, path string, body any) (apiAnswer, error) {
	if a.API == nil {
		return apiAnswer{}, fmt.Errorf("call %s %s: the web application has no API handler", method, path)
	}
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiAnswer{}, fmt.Errorf("call %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(c.Request.Context(), method, "/api/v1"+path, rd)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("call %s %s: %w", method, path, err)
	}
	req.RemoteAddr = c.Request.RemoteAddr
	req.Host = c.Request.Host
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "User-Agent"} {
		if v := c.Request.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if id := a.RequestID(c); id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token, ok := c.Get(ctxToken); ok {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token.(string)})
		req.Header.Set(CSRFHeader, sessionCSRF(token.(string)))
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	a.API.ServeHTTP(w, req)
	ans := apiAnswer{Status: w.status, Body: w.body.Bytes(), Header: w.header}
	if !ans.ok() && strings.HasPrefix(w.header.Get("Content-Type"), "application/problem+json") {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(ans.Body, &p)
		ans.Code = p.Code
	}
	return ans, nil
}

// apiJSON calls the API and decodes a successful answer into out. A
// refusal comes back as the API's status and problem code (ok false).
func (a *app) apiJSON(c *gin.Context, method, path string, body, out any) (ans apiAnswer, ok bool) {
	ans, err := a.callAPI(c, method, path, body)
	if err != nil {
		a.log.ErrorContext(c.Request.Context(), "web API call", "request_id", a.RequestID(c), "err", err)
		return apiAnswer{Status: http.StatusInternalServerError}, false
	}
	if !ans.ok() {
		return ans, false
	}
	if out != nil && len(ans.Body) > 0 {
		if err := json.Unmarshal(ans.Body, out); err != nil {
			a.log.ErrorContext(c.Request.Context(), "decode web API answer", "request_id", a.RequestID(c), "path", path, "err", err)
			return apiAnswer{Status: http.StatusInternalServerError}, false
		}
	}
	return ans, true
}

// apiFail answers a refused API call as a page with the API's status; a
// lost session goes back to the sign-in page.
func (a *app) apiFail(c *gin.Context, ans apiAnswer) {
	if ans.Status == http.StatusUnauthorized {
		clearCookie(c.Writer, SessionCookie)
		c.Redirect(http.StatusSeeOther, "/login")
		c.Abort()
		return
	}
	a.errorPage(c, ans.Status, a.errorMessage(ans.Code, ans.Status))
}

// apiMessage is the translated reason of a refused API call, for a form.
func (a *app) apiMessage(c *gin.Context, ans apiAnswer) string {
	return pageOf(c).L.T(a.errorMessage(ans.Code, ans.Status))
}

// recorder keeps an in-process answer.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int
	wrote  bool
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}
func (w *recorder) WriteHeader(s int) {
	if !w.wrote {
		w.status = s
		w.wrote = true
	}
}
