package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Timeouts. Small calls have a total deadline; transfers have none (a
// large document may take hours) but every read and write on the
// connection must make progress within idleTimeout.
const (
	callTimeout    = 30 * time.Second
	dialTimeout    = 10 * time.Second
	defaultIdle    = 60 * time.Second
	maxAnswerBytes = 4 << 20 // JSON answers; documents stream
)

// netFlags are the flags every command that talks to a server takes.
type netFlags struct {
	server, caCert string
	idle           time.Duration
	e              *env
}

func registerNetFlags(fs *flag.FlagSet, e *env) *netFlags {
	n := &netFlags{e: e}
	fs.StringVar(&n.server, "server", "", "server URL, e.g. https://vault.example (VAULTCTL_SERVER; default: the one login used)")
	fs.StringVar(&n.caCert, "ca-cert", "", "PEM file of the CA that signed the server's certificate (VAULTCTL_CA_CERT)")
	fs.DurationVar(&n.idle, "idle-timeout", defaultIdle, "give up on a connection that moves no byte for this long")
	return n
}

type netKey struct{}

func withNet(ctx context.Context, n *netFlags) context.Context {
	return context.WithValue(ctx, netKey{}, n)
}

func netOf(ctx context.Context) *netFlags {
	n, _ := ctx.Value(netKey{}).(*netFlags)
	return n
}

// errNotSignedIn: no token anywhere.
var errNotSignedIn = errors.New(`not signed in: run "vaultctl login" or set VAULTCTL_TOKEN`)

// apiError is a problem+json answer (or any non-2xx one).
type apiError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	// Offset is where a resumable upload stands, when the server says.
	Offset *int64   `json:"offset"`
	Field  string   `json:"field"`
	Miss   []string `json:"missing"`
	Allow  []string `json:"allowed"`
	retry  time.Duration
}

func (a *apiError) Error() string {
	code := a.Code
	if code == "" {
		code = "http_" + strconv.Itoa(a.Status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d)", code, a.Status)
	if a.Detail != "" {
		b.WriteString(": " + a.Detail)
	}
	if len(a.Miss) > 0 {
		b.WriteString("; missing: " + strings.Join(a.Miss, ", "))
	}
	if len(a.Allow) > 0 {
		b.WriteString("; allowed now: " + strings.Join(a.Allow, ", "))
	}
	if a.Status == http.StatusUnauthorized && a.Code == "unauthenticated" {
		b.WriteString(` (sign in again with "vaultctl login")`)
	}
	return b.String()
}

func (a *apiError) exitCode() int {
	switch {
	case a.Status == http.StatusUnauthorized:
		return exitAuth
	case a.Status == http.StatusForbidden:
		return exitDenied
	case a.Status == http.StatusNotFound:
		return exitNotFound
	case a.Status >= 500:
		return exitServer
	}
	return exitRefused
}

// readProblem turns a non-2xx answer into an apiError.
func readProblem(res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	a := &apiError{}
	if err := json.Unmarshal(body, a); err != nil || a.Status == 0 {
		a = &apiError{}
	}
	a.Status = res.StatusCode
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
		a.retry = time.Duration(s) * time.Second
	}
	if a.Offset == nil {
		if off, err := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64); err == nil {
			a.Offset = &off
		}
	}
	return a
}

// client talks to one server with one token.
type client struct {
	api   string // https://host/api/v1
	token string
	hc    *http.Client
}

// credentials are what login keeps, in a 0600 file under the user's
// configuration directory.
type credentials struct {
	Server    string    `json:"server"`
	Token     string    `json:"token"`
	Username  string    `json:"username"`
	ExpiresAt time.Time `json:"expires_at"`
}

func credentialsPath(e *env) (string, error) {
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		var err error
		if dir, err = os.UserConfigDir(); err != nil {
			return "", localError{fmt.Errorf("find the configuration directory: %w", err)}
		}
	}
	return filepath.Join(dir, "crvault", "credentials.json"), nil
}

func loadCredentials(e *env) (credentials, error) {
	var c credentials
	p, err := credentialsPath(e)
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, localError{fmt.Errorf("read %s: %w", p, err)}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, localError{fmt.Errorf("%s is damaged (%v): run \"vaultctl login\" again", p, err)}
	}
	return c, nil
}

// saveCredentials writes the file atomically, readable by the user alone.
func saveCredentials(e *env, c credentials) (string, error) {
	p, err := credentialsPath(e)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", localError{err}
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := writeFileAtomic(p, b, 0o600); err != nil {
		return "", localError{err}
	}
	return p, nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// serverURL is --server, else VAULTCTL_SERVER, else the one login kept.
func serverURL(ctx context.Context, e *env, kept string) (string, error) {
	n := netOf(ctx)
	s := n.server
	if s == "" {
		s = e.getenv("VAULTCTL_SERVER")
	}
	if s == "" {
		s = kept
	}
	if s == "" {
		return "", usagef("no server: give --server URL or set VAULTCTL_SERVER")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("server %q is not an http:// or https:// URL", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// newClient builds the client for the server; the token is VAULTCTL_TOKEN,
// else the kept one if it was issued by that server. needToken false is
// for login, which has none yet.
func newClient(ctx context.Context, e *env, needToken bool) (*client, credentials, error) {
	creds, err := loadCredentials(e)
	if err != nil {
		return nil, creds, err
	}
	base, err := serverURL(ctx, e, creds.Server)
	if err != nil {
		return nil, creds, err
	}
	token := e.getenv("VAULTCTL_TOKEN")
	if token == "" && creds.Server == base {
		token = creds.Token
	}
	if needToken && token == "" {
		return nil, creds, errNotSignedIn
	}
	n := netOf(ctx)
	ca := n.caCert
	if ca == "" {
		ca = e.getenv("VAULTCTL_CA_CERT")
	}
	hc, err := httpClient(ca, n.idle)
	if err != nil {
		return nil, creds, err
	}
	return &client{api: base + "/api/v1", token: token, hc: hc}, creds, nil
}

// httpClient has a deadline on every phase that is not a body, and an idle
// deadline on the connection for bodies: no total timeout, so a long
// transfer is never cut for being long, only for stalling.
func httpClient(caFile string, idle time.Duration) (*http.Client, error) {
	if idle <= 0 {
		idle = defaultIdle
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, localError{fmt.Errorf("read CA certificate: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, localError{fmt.Errorf("%s holds no PEM certificate", caFile)}
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: idle}, nil
		},
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		// Documents must arrive byte for byte as the server sent them.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	return &http.Client{Transport: tr}, nil
}

// idleConn moves its deadline forward before every read and write: a
// connection that stops moving for idle fails, one that moves never does.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// request builds a request to the API.
func (c *client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, body)
	if err != nil {
		return nil, usagef("bad request path %q: %v", path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "vaultctl")
	return req, nil
}

// do sends a small call (JSON in and out) with a total deadline; a non-2xx
// answer is an *apiError. out may be nil.
func (c *client) do(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, netError(method, req.URL, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return res.Header, readProblem(res)
	}
	if out != nil && res.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(io.LimitReader(res.Body, maxAnswerBytes)).Decode(out); err != nil {
			return res.Header, fmt.Errorf("%s %s: unreadable answer: %w", method, redact(req.URL), err)
		}
	}
	return res.Header, nil
}

// netError words a failure to reach the server.
func netError(method string, u *url.URL, err error) error {
	return fmt.Errorf("%s %s: %w", method, redact(u), err)
}

func redact(u *url.URL) string { return u.Redacted() }

// page is a list answer.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}
