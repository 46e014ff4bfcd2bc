package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
	req, err := a.apiRequest(c, method, path, rd)
	if err != nil {
		return apiAnswer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	a.API.ServeHTTP(w, req)
	return answer(w.status, w.header, w.body.Bytes()), nil
}

// apiRequest is method path (under /api/v1) as the signed-in user's
// browser would send it with its cookie session.
func (a *app) apiRequest(c *gin.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(c.Request.Context(), method, "/api/v1"+path, body)
	if err != nil {
		return nil, fmt.Errorf("call %s %s: %w", method, path, err)
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
	req.Header.Set("Accept", "application/json")
	if token, ok := c.Get(ctxToken); ok {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token.(string)})
		req.Header.Set(CSRFHeader, sessionCSRF(token.(string)))
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	return req, nil
}

// answer reads the API's answer, with the problem code of a refusal.
func answer(status int, header http.Header, body []byte) apiAnswer {
	ans := apiAnswer{Status: status, Body: body, Header: header}
	if !ans.ok() && strings.HasPrefix(header.Get("Content-Type"), "application/problem+json") {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(ans.Body, &p)
		ans.Code = p.Code
	}
	return ans
}

// streamAPI runs GET path (under /api/v1) through the JSON API as
// callAPI does, but sends a successful answer to the browser as it
// comes, headers and all: a download too large to hold (the audit
// export) passes through, while the API keeps its rules and its audit
// records. A refusal is not sent: it comes back (ok false) for the page
// to answer in words.
func (a *app) streamAPI(c *gin.Context, path string) (ans apiAnswer, ok bool) {
	if a.API == nil {
		a.log.ErrorContext(c.Request.Context(), "web API call", "request_id", a.RequestID(c), "err", "the web application has no API handler")
		return apiAnswer{Status: http.StatusInternalServerError}, false
	}
	req, err := a.apiRequest(c, http.MethodGet, path, http.NoBody)
	if err != nil {
		a.log.ErrorContext(c.Request.Context(), "web API call", "request_id", a.RequestID(c), "err", err)
		return apiAnswer{Status: http.StatusInternalServerError}, false
	}
	w := &passWriter{dst: c.Writer, header: http.Header{}}
	a.API.ServeHTTP(w, req)
	if w.passing {
		return apiAnswer{Status: w.status}, true
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return answer(w.status, w.header, w.body.Bytes()), false
}

// passWriter sends a 2xx answer on to dst as it is written, and keeps
// the start of any other (a problem+json body) for the page to read.
type passWriter struct {
	dst     http.ResponseWriter
	header  http.Header
	status  int
	passing bool
	body    bytes.Buffer
}

func (w *passWriter) Header() http.Header { return w.header }

func (w *passWriter) WriteHeader(s int) {
	if w.status != 0 {
		return
	}
	w.status = s
	if s >= 200 && s < 300 {
		w.passing = true
		h := w.dst.Header()
		for k, v := range w.header {
			h[k] = v
		}
		w.dst.WriteHeader(s)
	}
}

func (w *passWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.passing {
		return w.dst.Write(b)
	}
	if w.body.Len() < 64<<10 {
		w.body.Write(b)
	}
	return len(b), nil
}

// Flush lets a streamed answer out as the API flushes it.
func (w *passWriter) Flush() {
	if f, ok := w.dst.(http.Flusher); ok && w.passing {
		f.Flush()
	}
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
