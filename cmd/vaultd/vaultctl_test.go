package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy is a TCP proxy between vaultctl and vaultd that breaks the
// transfer the way a network does: once armed, the next connection that
// carries more than `after` bytes in one direction is cut there (both
// sides closed at once), or has one byte flipped there.
type faultProxy struct {
	t    testing.TB
	ln   net.Listener
	to   string
	mu   sync.Mutex
	rule *faultRule
	hits atomic.Int64
}

type faultRule struct {
	upstream bool  // client to server (uploads), else server to client
	after    int64 // bytes passed before the fault
	flip     bool  // flip a byte instead of cutting
}

func newFaultProxy(t testing.TB, to string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, ln: ln, to: to}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *faultProxy) url() string { return "http://" + p.ln.Addr().String() }

// arm sets the fault for the next connection that reaches it; it fires once.
func (p *faultProxy) arm(r faultRule) {
	p.mu.Lock()
	p.rule = &r
	p.mu.Unlock()
}

// take claims the armed rule for a connection that got this far.
func (p *faultProxy) take(upstream bool, n int64) *faultRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rule; r != nil && r.upstream == upstream && n > r.after {
		p.rule = nil
		p.hits.Add(1)
		return r
	}
	return nil
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *faultProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.to)
	if err != nil {
		client.Close()
		return
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			// A reset, as when a route fails: no orderly end for either side.
			for _, c := range []net.Conn{client, server} {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				c.Close()
			}
		})
	}
	copyDir := func(dst, src net.Conn, upstream bool) {
		defer closeBoth()
		buf := make([]byte, 32<<10)
		var n int64
		for {
			k, err := src.Read(buf)
			if k > 0 {
				chunk := buf[:k]
				if r := p.take(upstream, n+int64(k)); r != nil {
					at := r.after - n
					if !r.flip {
						_, _ = dst.Write(chunk[:at])
						return
					}
					chunk[at] ^= 0x55
				}
				if _, werr := dst.Write(chunk); werr != nil {
					return
				}
				n += int64(k)
			}
			if err != nil {
				return
			}
		}
	}
	go copyDir(server, client, true)
	copyDir(client, server, false)
}

// ctlEnv is a vaultctl user's environment: a home and configuration
// directory of its own.
type ctlEnv struct {
	t   testing.TB
	env []string
	cfg string
}

func newCtl(t testing.TB, server string, extra ...string) *ctlEnv {
	t.Helper()
	home := t.TempDir()
	cfg := filepath.Join(home, "config")
	return &ctlEnv{t: t, cfg: cfg, env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + cfg,
		"VAULTCTL_SERVER=" + server, "TMPDIR=" + home}, extra...)}
}

// run runs vaultctl; exit status, stdout, stderr.
func (c *ctlEnv) run(stdin io.Reader, args ...string) (int, string, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vaultctlBin, args...)
	cmd.Env = c.env
	cmd.Dir = filepath.Dir(c.cfg)
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run vaultctl %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// must runs vaultctl and fails the test unless it exits 0; stdout trimmed.
func (c *ctlEnv) must(stdin io.Reader, args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(stdin, args...)
	if code != 0 {
		c.t.Fatalf("vaultctl %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return strings.TrimSpace(out)
}

// expectExit runs vaultctl and checks the exit status and that stderr (or
// stdout for verification failures) names the reason.
func (c *ctlEnv) expectExit(code int, reason string, args ...string) {
	c.t.Helper()
	got, out, errs := c.run(nil, args...)
	if got != code || !strings.Contains(out+errs, reason) {
		c.t.Fatalf("vaultctl %v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", args, got, code, reason, out, errs)
	}
	if code >= 2 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		c.t.Fatalf("vaultctl %v: the error is not one line: %q", args, errs)
	}
}

func writeDoc(t testing.TB, path string, size int64, seed byte, marker string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(size, seed, marker)
	if _, err := io.CopyBuffer(f, g, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(g.sum.Sum(nil))
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var idLine = regexp.MustCompile(`^[0-9a-z]{26}$`)

// TestVaultctl drives the shipped vaultctl against a real vaultd over HTTP:
// sign-in (with TOTP), cases, 256 MiB up and down with the checksum
// verified, an upload whose connection is cut mid-way and resumed (by
// itself, and with --resume), a download cut and resumed, a download
// corrupted in transit refused without a file, and each exit status.
func TestVaultctl(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t) // enrols the staff's TOTP devices
	px := newFaultProxy(t, s.addr)
	op := newCtl(t, px.url())
	dir := t.TempDir()

	// Sign in: the token is kept readable by the user alone.
	if code, _, errs := op.run(strings.NewReader("wrong password here\n"), "login", "--username", "operator1", "--password-stdin"); code != 3 || !strings.Contains(errs, "invalid_credentials") {
		t.Fatalf("wrong password: exit %d %q", code, errs)
	}
	out := op.must(strings.NewReader(pw+"\n"), "login", "--password-stdin", "--username", "operator1")
	if !strings.Contains(out, "signed in as operator1") {
		t.Fatalf("login: %q", out)
	}
	st, err := os.Stat(filepath.Join(op.cfg, "crvault", "credentials.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v", err, st)
	}
	if who := op.must(nil, "whoami"); !strings.Contains(who, "operator1") {
		t.Fatalf("whoami: %q", who)
	}
	// A staff account with TOTP: the code is asked for (here, the second
	// line of standard input).
	office := newCtl(t, s.base)
	totp := authenticators.get(s.realm(), "office").next(t)
	if out := office.must(strings.NewReader(pw+"\n"+totp+"\n"), "login", "--username", "office", "--password-stdin"); !strings.Contains(out, "office_admin") {
		t.Fatalf("TOTP login: %q", out)
	}

	// Cases: create (flags after the arguments work too), upload the
	// required materials, list, show.
	caseID := op.must(nil, "cases", "create", "--title", "Core routers", "--product", "AR-9000", "--provider", w.provOrg)
	if !idLine.MatchString(caseID) {
		t.Fatalf("cases create printed %q", caseID)
	}
	op.expectExit(6, "materials_incomplete", "cases", "submit", caseID)
	for _, k := range []string{"declaration", "impact_analysis"} {
		p := filepath.Join(dir, k+".txt")
		if err := os.WriteFile(p, []byte(k+" of the case"), 0o600); err != nil {
			t.Fatal(err)
		}
		if id := op.must(nil, "upload", caseID, p, "--kind", k); !idLine.MatchString(id) {
			t.Fatalf("upload %s printed %q", k, id)
		}
	}
	// From standard input, in chunks smaller than the document.
	stdinDoc := bytes.Repeat([]byte("procurement contract clause. "), 5000)
	if id := op.must(bytes.NewReader(stdinDoc), "upload", "--kind", "procurement", "--filename", "contract.txt", "--chunk-size", "32768", caseID, "-"); !idLine.MatchString(id) {
		t.Fatalf("upload from stdin printed %q", id)
	}
	if list := op.must(nil, "cases", "list"); !strings.Contains(list, caseID) || !strings.Contains(list, "draft") {
		t.Fatalf("cases list: %q", list)
	}
	show := op.must(nil, "cases", "show", caseID)
	for _, want := range []string{"Core routers", "declaration.txt", "contract.txt", "materials (3)"} {
		if !strings.Contains(show, want) {
			t.Fatalf("cases show lacks %q: %s", want, show)
		}
	}

	// 256 MiB up, through a network that cuts the connection after 100 MiB:
	// vaultctl asks where the server stands and continues from there.
	const marker = "VAULTCTL-256-PLAINTEXT-MARKER-a9"
	big := filepath.Join(dir, "big.bin")
	bigSum := writeDoc(t, big, 256<<20, 3, marker)
	px.arm(faultRule{upstream: true, after: 100 << 20})
	code, out, errs := op.run(nil, "upload", caseID, big, "--kind", "other", "--json", "--progress", "always")
	if code != 0 {
		t.Fatalf("256 MiB upload: exit %d\n%s\n%s", code, out, errs)
	}
	if px.hits.Load() != 1 || !strings.Contains(errs, "retrying") {
		t.Fatalf("the connection was not cut (%d) or vaultctl did not say it resumed: %s", px.hits.Load(), tail(errs, 2000))
	}
	if !strings.Contains(errs, "MB/s") && !strings.Contains(errs, "MiB/s") {
		t.Fatalf("no progress bar with a rate on stderr: %q", tail(errs, 500))
	}
	var m struct {
		ID     string `json:"id"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	if err := jsonUnmarshal([]byte(out), &m); err != nil || m.SHA256 != bigSum || m.Size != 256<<20 {
		t.Fatalf("uploaded material %s (%v), want sha256 %s", out, err, bigSum)
	}
	segs := s.query(t, "SELECT segments FROM materials WHERE id = '"+m.ID+"'")
	if len(segs) != 1 || segs[0] == "0" || segs[0] == "1" {
		t.Fatalf("the cut upload was not stored in segments: %v", segs)
	}

	// 256 MiB down, cut after 90 MiB: resumed with a range, verified,
	// and only then under its name.
	got := filepath.Join(dir, "down.bin")
	px.arm(faultRule{upstream: false, after: 90 << 20})
	out = op.must(nil, "download", m.ID, "-o", got)
	if !strings.Contains(out, "verified") || fileSHA(t, got) != bigSum {
		t.Fatalf("download: %q, sha %s", out, fileSHA(t, got))
	}
	if px.hits.Load() != 2 {
		t.Fatal("the download was not cut")
	}
	if st, _ := os.Stat(got); st.Mode().Perm() != 0o600 {
		t.Fatalf("downloaded file mode %v", st.Mode())
	}
	op.expectExit(2, "exists", "download", m.ID, "-o", got)
	// A byte changed in transit: refused, nothing left under the name or
	// beside it.
	bad := filepath.Join(dir, "bad.bin")
	px.arm(faultRule{upstream: false, after: 50 << 20, flip: true})
	op.expectExit(1, "SHA-256", "download", m.ID, "-o", bad)
	if entries, _ := filepath.Glob(filepath.Join(dir, "*bad.bin*")); len(entries) != 0 {
		t.Fatalf("a failed download left %v", entries)
	}

	// --resume: an upload that gives up at the first cut says how to go on.
	mid := filepath.Join(dir, "mid.bin")
	midSum := writeDoc(t, mid, 24<<20, 4, marker)
	px.arm(faultRule{upstream: true, after: 10 << 20})
	code, _, errs = op.run(nil, "upload", caseID, mid, "--kind", "other", "--retries", "0")
	resume := regexp.MustCompile(`vaultctl upload --resume ([0-9a-z]{26}) `).FindStringSubmatch(errs)
	if code != 7 || resume == nil {
		t.Fatalf("cut upload without retries: exit %d, %q", code, errs)
	}
	// The server commits what arrived once it sees the connection end.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		held := s.query(t, "SELECT received FROM upload_sessions WHERE id = '"+resume[1]+"'")
		if len(held) == 1 && held[0] != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server kept nothing of the cut upload: %v", held)
		}
	}
	out = op.must(nil, "upload", "--resume", resume[1], mid, "--json")
	if !strings.Contains(out, midSum) {
		t.Fatalf("resumed upload: %s, want sha256 %s", out, midSum)
	}
	op.expectExit(2, "do not apply", "upload", "--resume", resume[1], mid, "--kind", "other")
	assertNoPlaintext(t, s, marker)

	// Exit statuses, each for its reason, each error one line with the
	// server's code.
	op.expectExit(2, "upload takes CASE and FILE", "upload", caseID)
	op.expectExit(2, "flag provided but not defined", "cases", "list", "--bogus")
	newCtl(t, s.base).expectExit(3, "not signed in", "cases", "list")
	newCtl(t, s.base, "VAULTCTL_TOKEN=forged-token").expectExit(3, "unauthenticated", "cases", "list")
	prov := newCtl(t, s.base)
	prov.must(strings.NewReader(pw+"\n"), "login", "--username", "provider1", "--password-stdin")
	prov.expectExit(4, "forbidden", "cases", "submit", caseID)
	op.expectExit(5, "not_found", "cases", "show", "00000000000000000000000000")
	op.expectExit(5, "not_found", "download", "00000000000000000000000000", "-o", filepath.Join(dir, "none"))
	out = op.must(nil, "cases", "submit", caseID)
	if !strings.Contains(out, "submitted") {
		t.Fatalf("submit: %q", out)
	}
	op.expectExit(6, "case_not_editable", "upload", caseID, filepath.Join(dir, "declaration.txt"), "--kind", "declaration")
	// Every command answers --help, with the exit statuses.
	for _, c := range [][]string{{"login"}, {"cases", "list"}, {"cases", "show"}, {"cases", "create"}, {"cases", "submit"}, {"upload"}, {"download"},
		{"audit", "export"}, {"audit", "verify"}, {"evidence", "verify"}, {"whoami"}, {"logout"}} {
		code, out, _ := op.run(nil, append(c, "--help")...)
		if code != 0 || !strings.Contains(out, "usage: vaultctl "+strings.Join(c, " ")) || !strings.Contains(out, "5  not found") {
			t.Fatalf("%v --help: exit %d %q", c, code, out)
		}
	}

	// The inspector exports the audit log, which verifies offline, and
	// shows the chunks and the resumed upload.
	insp := newCtl(t, s.base)
	insp.must(strings.NewReader(pw+"\n"+authenticators.get(s.realm(), "inspector1").next(t)+"\n"), "login", "--username", "inspector1", "--password-stdin")
	export := filepath.Join(dir, "export.ndjson")
	insp.must(nil, "audit", "export", "-o", export)
	ck := w.insp.expect(200, "GET", "/audit/checkpoint", nil)
	ckFile := filepath.Join(dir, "checkpoint")
	if err := os.WriteFile(ckFile, ck.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	key := s.mustCLI("", "audit", "pubkey")
	if out := insp.must(nil, "audit", "verify", "--export", export, "--checkpoint", ckFile, "--key", key); !strings.HasPrefix(out, "OK:") {
		t.Fatalf("audit verify: %q", out)
	}
	exp, _ := os.ReadFile(export)
	if n := strings.Count(string(exp), `"action":"upload.chunk"`); n < 6 {
		t.Fatalf("only %d upload.chunk events in the export", n)
	}
	op.must(nil, "logout")
	op.expectExit(3, "not signed in", "whoami")

	// The server gone: a server error, not a hang.
	s.stop()
	newCtl(t, s.base, "VAULTCTL_TOKEN=x").expectExit(7, "connection refused", "cases", "list")
}
