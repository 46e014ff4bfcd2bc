package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// The end-to-end tests run the real vaultd binary as a subprocess over real
// HTTP, on SQLite + local blobs and on PostgreSQL + S3 (versitygw).

var vaultdBin, vaultctlBin string

func TestMain(m *testing.M) {
	if os.Getenv(hardenChildEnv) == "1" {
		os.Exit(hardenChild())
	}
	if os.Getenv(heapFloorChildEnv) == "1" {
		os.Exit(heapFloorChild())
	}
	// The end-to-end tests spend most of their time waiting on vaultd, the
	// databases, S3 and timers, not on the CPU: unless -parallel is given,
	// run up to e2eParallel of them at once instead of GOMAXPROCS (2 on CI).
	// Tests whose assertions are about timing do not call t.Parallel.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", strconv.Itoa(e2eParallel))
	}
	dir, err := os.MkdirTemp("", "vaultd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vaultdBin = filepath.Join(dir, "vaultd")
	vaultctlBin = filepath.Join(dir, "vaultctl")
	// Both at once: each is mostly a link, which uses one core, and every
	// test waits for both (about 11 s one after the other on CI's 2 cores).
	builds := []struct{ name, out, pkg string }{{"vaultd", vaultdBin, "."}, {"vaultctl", vaultctlBin, "../vaultctl"}}
	failed := make([]string, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command("go", "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
				failed[i] = fmt.Sprintf("build %s: %v\n%s", b.name, err, out)
			}
		}()
	}
	wg.Wait()
	for _, f := range failed {
		if f != "" {
			fmt.Fprintln(os.Stderr, f)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend is one storage combination the server runs on.
type backend struct {
	name string
	env  func(t testing.TB) []string
}

var backends = []backend{
	{"sqlite+local", func(t testing.TB) []string { return nil }},
	{"postgres+s3", func(t testing.TB) []string {
		dbURL := sqldbtest.URL(t, "postgres")
		endpoint := sqldbtest.Require(t, "S3 (versitygw)", "VAULT_TEST_S3_ENDPOINT")
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		bucket := "crv-e2e-" + hex.EncodeToString(b)
		// Registered before the server's own cleanup, so it runs after
		// the server stopped: a gigabyte test must not stay on disk.
		t.Cleanup(func() { removeBucket(t, endpoint, bucket) })
		return []string{
			"VAULT_DATABASE_URL=" + dbURL,
			"VAULT_S3_ENDPOINT=" + endpoint,
			"VAULT_S3_BUCKET=" + bucket,
			"VAULT_S3_ACCESS_KEY=" + os.Getenv("VAULT_TEST_S3_ACCESS_KEY"),
			"VAULT_S3_SECRET_KEY=" + os.Getenv("VAULT_TEST_S3_SECRET_KEY"),
		}
	}},
}

// server is a running vaultd with its own data and temp directories.
type server struct {
	t       testing.TB
	env     []string
	data    string
	tmp     string
	addr    string
	base    string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	mu      sync.Mutex
	logFile string
	// metricsBase is the separate metrics listener (VAULT_METRICS_ADDR):
	// /metrics is not served on the API listener without a token.
	metricsBase string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr finds a loopback address nobody listens on, for a vaultd that
// will listen there a moment later. It looks below the kernel's ephemeral
// range (as scripts/services.sh does): a port from that range, which a
// listener on port 0 gets, is handed to the next outgoing connection once
// released, and the suite's many parallel clients took one before vaultd
// could listen, three times in a row in one run. Below the range only
// another explicit bind can take it, and start retries on that.
func freeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := belowEphemeral()
	for range 100 {
		port := 0
		if hi > lo {
			port = lo + mrand.IntN(hi-lo)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			if port == 0 {
				t.Fatal(err)
			}
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// belowEphemeral gives the port range freeAddr picks from: up to 12,000 ports
// just below the kernel's ephemeral range, or none (port 0) where the range
// cannot be read or leaves no room.
func belowEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first < 2048 {
		return 0, 0
	}
	return max(1024, first-12000), first
}

// newServer prepares (but does not start) a server on the backend.
func newServer(t testing.TB, be backend, extraEnv ...string) *server {
	t.Helper()
	root := t.TempDir()
	s := &server{t: t, data: filepath.Join(root, "data"), tmp: filepath.Join(root, "tmp"), addr: freeAddr(t), log: &syncBuffer{}}
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	s.base = "http://" + s.addr
	metricsAddr := freeAddr(t)
	s.metricsBase = "http://" + metricsAddr
	s.env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "TMPDIR=" + s.tmp,
		"VAULT_DATA_DIR=" + s.data, "VAULT_ADDR=" + s.addr, "VAULT_LOG_LEVEL=debug", "VAULT_METRICS_ADDR=" + metricsAddr}, be.env(t)...)
	s.env = append(s.env, extraEnv...)
	t.Cleanup(s.stop)
	return s
}

// cli runs a vaultd subcommand with the server's configuration.
func (s *server) cli(stdin string, args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vaultdBin, args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run vaultd %v: %v", args, err)
	}
	s.log.Write(errb.Bytes())
	return strings.TrimSpace(out.String()), errb.String(), code
}

func (s *server) mustCLI(stdin string, args ...string) string {
	s.t.Helper()
	out, errs, code := s.cli(stdin, args...)
	if code != 0 {
		s.t.Fatalf("vaultd %v: exit %d: %s", args, code, errs)
	}
	return out
}

func (s *server) start() {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		err := s.startOnce()
		if err == nil {
			return
		}
		// freeAddr's port was free when it looked, but with many tests at
		// once an outgoing connection can take it before vaultd listens.
		if errors.Is(err, errPortTaken) && attempt < 3 {
			s.t.Logf("vaultd's port was taken meanwhile; moving to new ports (attempt %d)", attempt)
			s.movePorts()
			continue
		}
		s.t.Fatal(err)
	}
}

var errPortTaken = errors.New("address already in use")

func (s *server) startOnce() error {
	s.cmd = exec.Command(vaultdBin, "serve")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	logStart := int64(len(s.log.String()))
	if s.logFile != "" {
		f, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open vaultd log: %v", err)
		}
		defer f.Close()
		// Only this start's lines say why it failed: an earlier start's
		// port collision must not make any later exit look like one.
		if logStart, err = f.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("open vaultd log: %v", err)
		}
		s.cmd.Stdout, s.cmd.Stderr = f, f
	}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start vaultd: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	probe := &http.Client{Timeout: 2 * time.Second}
	logSince := func() string {
		if s.logFile != "" {
			b, _ := os.ReadFile(s.logFile)
			return tail(string(b[min(logStart, int64(len(b))):]), 16000)
		}
		return s.log.String()[logStart:]
	}
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.cmd = nil
			log := logSince()
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("%w:\n%s", errPortTaken, log)
			}
			return fmt.Errorf("vaultd exited during start:\n%s", log)
		default:
		}
		// The probe has a deadline: whatever else holds the port may
		// accept and never answer.
		resp, err := probe.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			select {
			case <-s.exited:
				// Another server on the port answered; the exit is
				// handled above on the next turn.
				continue
			default:
			}
			// Only once this vaultd says it holds the port: another
			// test's server that took it between freeAddr and this
			// start answers 200 as well, and the test would then talk to
			// it (seen as a first sign-in refused for want of a TOTP
			// code that server's admin had set up).
			if resp.StatusCode == 200 && strings.Contains(logSince(), `"vaultd listening","addr":"`+s.addr+`"`) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("vaultd did not become healthy:\n%s", s.log.String())
}

// movePorts gives the server new API and metrics addresses, everywhere its
// environment names them.
func (s *server) movePorts() {
	pairs := []string{s.addr, freeAddr(s.t)}
	s.addr, s.base = pairs[1], "http://"+pairs[1]
	if old, ok := strings.CutPrefix(s.metricsBase, "http://"); ok && old != "" {
		m := freeAddr(s.t)
		pairs = append(pairs, old, m)
		s.metricsBase = "http://" + m
	}
	r := strings.NewReplacer(pairs...)
	for i, e := range s.env {
		s.env[i] = r.Replace(e)
	}
}

// kill stops the server abruptly (SIGKILL), as a crash would.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	if s.t.Failed() {
		s.t.Logf("vaultd log:\n%s", tail(s.log.String(), 8000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// client is one logged-in user.
type client struct {
	t     testing.TB
	s     *server
	token string
	id    string
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %d body %q: %v", r.Status, r.Body, err)
	}
}

func (r resp) problem(t testing.TB) map[string]any {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (status %d, body %s)", ct, r.Status, r.Body)
	}
	var p map[string]any
	r.json(t, &p)
	for _, k := range []string{"type", "title", "status", "code"} {
		if _, ok := p[k]; !ok {
			t.Fatalf("problem lacks %q: %s", k, r.Body)
		}
	}
	return p
}

func (s *server) do(t testing.TB, token, method, path string, body io.Reader, header map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, s.base+"/api/v1"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if res.Header.Get("X-Request-ID") == "" {
		t.Errorf("%s %s: no X-Request-ID", method, path)
	}
	return resp{res.StatusCode, res.Header, b}
}

func (c *client) do(method, path string, body any) resp {
	c.t.Helper()
	var r io.Reader
	h := map[string]string{}
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
		h["Content-Type"] = "application/json"
	}
	return c.s.do(c.t, c.token, method, path, r, h)
}

func (c *client) expect(status int, method, path string, body any) resp {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	return r
}

// login signs in, with TOTP when the account needs it: a user whose roles
// require TOTP (the default for staff) is enrolled on first sign-in, and
// the harness then keeps the secret and gives a fresh code (or a recovery
// code) on each later sign-in, as the person's authenticator app would.
func (s *server) login(t testing.TB, username, password string) *client {
	t.Helper()
	a := authenticators.get(s.realm(), username)
	body := map[string]string{"username": username, "password": password}
	if a != nil {
		body["totp"] = a.next(t)
	}
	r := s.postJSON(t, "", "/sessions", body)
	if r.Status != 201 {
		t.Fatalf("login %s: %d %s", username, r.Status, r.Body)
	}
	var out struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
		TOTPEnrolmentRequired bool `json:"totp_enrolment_required"`
	}
	r.json(t, &out)
	c := &client{t: t, s: s, token: out.Token, id: out.User.ID}
	if out.TOTPEnrolmentRequired {
		authenticators.put(s.realm(), username, c.enrolTOTP())
	}
	return c
}

// postJSON sends body as JSON.
func (s *server) postJSON(t testing.TB, token, path string, body any) resp {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return s.do(t, token, "POST", path, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
}

// realm names the accounts a server sees: its database.
func (s *server) realm() string {
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, "VAULT_DATABASE_URL="); ok {
			return v
		}
	}
	return s.data
}

// authenticator is a user's TOTP device as the harness keeps it.
type authenticator struct {
	mu       sync.Mutex
	secret   string
	lastStep int64
	recovery []string
}

// enrolTOTP sets up TOTP for the client's user and returns the device.
func (c *client) enrolTOTP() *authenticator {
	c.t.Helper()
	var en struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}
	c.expect(201, "POST", "/me/totp", nil).json(c.t, &en)
	a := &authenticator{secret: en.Secret}
	var rc struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	c.expect(200, "POST", "/me/totp/confirm", map[string]string{"code": a.next(c.t)}).json(c.t, &rc)
	a.recovery = rc.RecoveryCodes
	return a
}

// next is a code the server has not seen yet: the current step's, else the
// next step's (within the accepted skew), else a recovery code, so that
// tests never wait for the clock.
func (a *authenticator) next(t testing.TB) string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	step := now.Unix() / 30
	for _, st := range []int64{step, step + 1} {
		if st > a.lastStep {
			a.lastStep = st
			code, err := access.TOTPCode(a.secret, time.Unix(st*30, 0))
			if err != nil {
				t.Fatal(err)
			}
			return code
		}
	}
	if len(a.recovery) == 0 {
		t.Fatal("TOTP: out of fresh codes and recovery codes")
	}
	code := a.recovery[0]
	a.recovery = a.recovery[1:]
	return code
}

type authenticatorStore struct {
	mu sync.Mutex
	m  map[string]*authenticator
}

// authenticators holds every TOTP device the harness enrolled, by realm and
// username, for the whole test binary.
var authenticators = &authenticatorStore{m: map[string]*authenticator{}}

func (s *authenticatorStore) get(realm, user string) *authenticator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[realm+"\x00"+user]
}

func (s *authenticatorStore) put(realm, user string, a *authenticator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[realm+"\x00"+user] = a
}

// world is the cast of a review: one of each role, bootstrapped by the CLI.
type world struct {
	s                                                  *server
	admin, office, rev1, rev2, op, op2, prov, insp, mu *client
	opOrg, provOrg, officeOrg                          string
}

const pw = "correct horse battery staple"

func bootstrap(t testing.TB, s *server) *world {
	t.Helper()
	w := &world{s: s}
	w.officeOrg = s.mustCLI("", "org", "add", "--name", "Cybersecurity Review Office", "--kind", "office")
	w.opOrg = s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
	s.mustCLI("", "org", "add", "--name", "Other Grid", "--kind", "operator")
	w.provOrg = s.mustCLI("", "org", "add", "--name", "Acme Routers", "--kind", "provider")
	s.mustCLI("", "org", "add", "--name", "Inspectorate", "--kind", "supervision")
	s.mustCLI("", "org", "add", "--name", "Ministry Unit", "--kind", "member_unit")
	users := []struct{ name, org, role string }{
		{"admin", "Cybersecurity Review Office", "sysadmin"},
		{"office", "Cybersecurity Review Office", "office_admin"},
		{"rev1", "Cybersecurity Review Office", "reviewer"},
		{"rev2", "Cybersecurity Review Office", "reviewer"},
		{"operator1", "Grid Co", "operator"},
		{"operator2", "Other Grid", "operator"},
		{"provider1", "Acme Routers", "provider"},
		{"inspector1", "Inspectorate", "inspector"},
		{"memberunit1", "Ministry Unit", "member_unit"},
	}
	for _, u := range users {
		s.mustCLI(pw+"\n", "user", "add", "--username", u.name, "--org", u.org, "--role", u.role, "--password-stdin")
	}
	return w
}

func (w *world) loginAll(t testing.TB) {
	s := w.s
	w.admin, w.office, w.rev1, w.rev2 = s.login(t, "admin", pw), s.login(t, "office", pw), s.login(t, "rev1", pw), s.login(t, "rev2", pw)
	w.op, w.op2, w.prov, w.insp, w.mu = s.login(t, "operator1", pw), s.login(t, "operator2", pw), s.login(t, "provider1", pw), s.login(t, "inspector1", pw), s.login(t, "memberunit1", pw)
}

// uploadRaw sends a document as a raw body.
func (c *client) uploadRaw(caseID, kind, filename, ctype string, body []byte) resp {
	c.t.Helper()
	return c.s.do(c.t, c.token, "POST", fmt.Sprintf("/cases/%s/materials?kind=%s&filename=%s", caseID, kind, urlQuery(filename)),
		bytes.NewReader(body), map[string]string{"Content-Type": ctype})
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "%20", "#", "%23", "?", "%3F", "=", "%3D")
	return r.Replace(s)
}

// newCase files a case with the three required materials, ready to submit.
func (w *world) newCase(t testing.TB, marker string) (string, map[string][]byte) {
	t.Helper()
	var cs struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	w.op.expect(201, "POST", "/cases", map[string]any{"title": "Core routers for the grid", "product": "AR-9000", "providers": []string{w.provOrg}}).json(t, &cs)
	if cs.Status != "draft" {
		t.Fatalf("new case status %q", cs.Status)
	}
	docs := map[string][]byte{}
	for _, k := range []string{"declaration", "impact_analysis", "procurement"} {
		body := []byte(fmt.Sprintf("%s %s of case %s: %s", marker, k, cs.ID, strings.Repeat("confidential ", 1000)))
		r := w.op.uploadRaw(cs.ID, k, k+".txt", "text/plain", body)
		if r.Status != 201 {
			t.Fatalf("upload %s: %d %s", k, r.Status, r.Body)
		}
		var m struct {
			ID string `json:"id"`
		}
		r.json(t, &m)
		docs[m.ID] = body
	}
	return cs.ID, docs
}

func httpClient() *http.Client { return &http.Client{Timeout: time.Minute} }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// removeBucket empties and deletes a test bucket on the test S3 server.
func removeBucket(t testing.TB, endpoint, bucket string) {
	mc, err := minio.New(endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(os.Getenv("VAULT_TEST_S3_ACCESS_KEY"), os.Getenv("VAULT_TEST_S3_SECRET_KEY"), ""), Region: "us-east-1"})
	if err != nil {
		t.Errorf("clean up bucket %s: %v", bucket, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if ok, err := mc.BucketExists(ctx, bucket); err != nil || !ok {
		return
	}
	objects := mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for e := range mc.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		t.Errorf("clean up bucket %s: remove %s: %v", bucket, e.ObjectName, e.Err)
	}
	for u := range mc.ListIncompleteUploads(ctx, bucket, "", true) {
		_ = mc.RemoveIncompleteUpload(ctx, bucket, u.Key)
	}
	if err := mc.RemoveBucket(ctx, bucket); err != nil {
		t.Errorf("clean up bucket %s: %v", bucket, err)
	}
}

// TestHarnessStartsOnFreshPorts checks the harness the whole suite starts
// vaultd with: freeAddr stays below the ephemeral range, a start that finds
// its port taken is told apart from other failures (only this start's log
// lines count, not an earlier one's), a port another server answers on is
// not taken for this one's, and start moves to fresh ports.
func TestHarnessStartsOnFreshPorts(t *testing.T) {
	t.Parallel()
	if lo, hi := belowEphemeral(); hi > lo {
		for range 20 {
			_, p, _ := net.SplitHostPort(freeAddr(t))
			if port, _ := strconv.Atoi(p); port < lo || port >= hi {
				t.Fatalf("freeAddr gave port %d, want one in [%d, %d)", port, lo, hi)
			}
		}
	}
	s := newServer(t, backends[0])
	s.logFile = filepath.Join(t.TempDir(), "vaultd.log")
	taken, err := net.Listen("tcp", strings.TrimPrefix(s.metricsBase, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := s.startOnce(); !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken metrics port: %v, want errPortTaken", err)
	}
	s.movePorts()
	s.env = append(s.env, "VAULT_LOG_LEVEL=loud")
	if err := s.startOnce(); err == nil || errors.Is(err, errPortTaken) {
		t.Fatalf("start with a bad setting after a port collision: %v, want another error", err)
	}
	s.env = s.env[:len(s.env)-1]
	// Another server that answers on the API port (another test's vaultd,
	// which took it between freeAddr and this start) is not this start:
	// the probe's 200 came from it while this vaultd was still opening
	// its database.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go http.Serve(other, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for i, e := range s.env {
		s.env[i] = strings.ReplaceAll(e, s.addr, other.Addr().String())
	}
	s.addr = other.Addr().String()
	s.base = "http://" + s.addr
	if err := s.startOnce(); !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a port another server answers on: %v, want errPortTaken", err)
	}
	for i, e := range s.env {
		s.env[i] = strings.ReplaceAll(e, s.addr, taken.Addr().String())
	}
	s.addr = taken.Addr().String()
	s.base = "http://" + s.addr
	s.start()
	if s.addr == taken.Addr().String() {
		t.Fatal("start stayed on the taken port")
	}
	if res, err := http.Get(s.base + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz after moving ports: %v %v", res, err)
	}
}
