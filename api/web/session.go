package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Cookie names. The __Host- prefix makes the browser refuse any such cookie
// that is not Secure, host-only and Path=/, so a sibling subdomain or a
// network attacker cannot plant one.
//
// Secure on plain HTTP: vaultd serves plain HTTP only on loopback (or behind
// a TLS proxy, where the browser sees HTTPS). Chromium and Firefox treat
// http://127.0.0.1 and http://localhost as secure contexts and accept Secure
// cookies, __Host- ones included, from them; the browser tests check this in
// Chromium on every run (they sign in over http://127.0.0.1). So the cookies
// are always Secure and there is no insecure variant to misconfigure.
const (
	SessionCookie = "__Host-crvault-session"
	csrfCookie    = "__Host-crvault-csrf"
	langCookie    = "__Host-crvault-lang"
	// CSRFHeader carries the CSRF token of a script's request (fetch or
	// XMLHttpRequest), to the pages and to the JSON API alike.
	CSRFHeader = "X-CSRF-Token"
	csrfField  = "csrf"
)

// SessionToken returns the session token a browser sent in its cookie.
func SessionToken(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 256 {
		return "", false
	}
	return c.Value, true
}

// sessionCSRF is the CSRF token of a signed-in browser: a hash of its
// session token under a fixed label. It needs no storage, survives restarts,
// ends with the session, and reveals nothing about the token; a page on
// another site can neither read the cookie nor, so, compute it.
func sessionCSRF(token string) string {
	sum := sha256.Sum256([]byte("crvault csrf v1\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CSRFValid reports whether a state-changing request carries the CSRF token
// that belongs to its session (header or form field) and does not come from
// another site. The JSON API calls it for cookie sessions.
func CSRFValid(r *http.Request, sessionToken string) bool {
	return crossSiteOK(r) && tokenEqual(submittedCSRF(r), sessionCSRF(sessionToken))
}

// submittedCSRF reads the token from the header, else from an already
// parsed form (the web's csrf middleware parses multipart forms too, all
// but the streamed uploads, whose handlers read the token from the stream).
func submittedCSRF(r *http.Request) string {
	if h := r.Header.Get(CSRFHeader); h != "" {
		return h
	}
	if r.PostForm != nil {
		return r.PostForm.Get(csrfField)
	}
	return ""
}

// crossSiteOK refuses requests a browser marks as coming from another site
// (Fetch Metadata); browsers that send no such header rely on the token.
func crossSiteOK(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func tokenEqual(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func setCookie(w http.ResponseWriter, name, value string, expires time.Time, httpOnly bool) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: httpOnly, SameSite: http.SameSiteStrictMode}
	if !expires.IsZero() {
		c.Expires = expires.UTC()
		c.MaxAge = int(time.Until(expires).Seconds())
		if c.MaxAge <= 0 {
			c.MaxAge = -1
		}
	}
	http.SetCookie(w, c)
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// csp is the Content-Security-Policy of every HTML page: scripts, styles
// and images from this origin only, nothing inline, no plugins, no framing,
// forms posting only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// contentCSP confines a document shown inline (a PDF or an image): a unique
// opaque origin with no script, so even a hostile file can neither run code
// as this site nor read its cookies or pages.
const contentCSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; plugin-types application/pdf"

// safeNext keeps a redirect whose target came from the request (the page
// to return to after signing in or switching language) on this site: a
// path, never a scheme, host or protocol-relative URL, and never the API.
// It answers the path as cleaned, because http.Redirect cleans it again
// (path.Clean turns "/./\evil.example" into "/\evil.example", which
// browsers read as "//evil.example"): what is checked is what is sent.
// A backslash anywhere, or any control character, is refused outright.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsFunc(next, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) {
		return "/"
	}
	p, rest := next, ""
	if i := strings.IndexAny(next, "?#"); i >= 0 {
		p, rest = next[:i], next[i:]
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/" // as http.Redirect keeps it
	}
	u, err := url.Parse(clean + rest)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		strings.HasPrefix(clean, "//") || strings.HasPrefix(u.Path, "//") || strings.Contains(u.Path, "\\") ||
		clean == "/api" || strings.HasPrefix(clean, "/api/") || strings.HasPrefix(u.Path, "/api/") {
		return "/"
	}
	return clean + rest
}

var timeZero time.Time

func oneYear() time.Time { return time.Now().Add(365 * 24 * time.Hour) }

// plainHTTPFromAfar guesses whether the browser sees this page as an
// insecure context: plain HTTP (no TLS here, and no proxy in front saying
// it ended TLS) for a host name that is not this machine. Browsers treat
// http://localhost and http://127.0.0.1 as secure, so the Secure cookies
// work there. A TLS proxy that sends neither X-Forwarded-Proto nor
// Forwarded makes this guess wrong, which is why only browsers without
// JavaScript are shown it.
func plainHTTPFromAfar(r *http.Request) bool {
	if r.TLS != nil {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if strings.EqualFold(strings.TrimSpace(proto), "https") {
		return false
	}
	for _, f := range strings.FieldsFunc(strings.ToLower(r.Header.Get("Forwarded")), func(c rune) bool { return c == ';' || c == ',' }) {
		if strings.TrimSpace(f) == "proto=https" || strings.TrimSpace(f) == `proto="https"` {
			return false
		}
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
