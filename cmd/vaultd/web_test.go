package main

// Browser tests of the web application, in real headless Chromium driven
// by chromedp, against the real vaultd binary. One server and one browser
// serve every subtest (each person in their own browser context, so their
// cookies stay apart); the subtests run in order and build on each other:
// setup, the operator's case, the office's decision, the reviewer's read,
// the inspector's search. Screenshots of every main page in both languages
// go to $CRVAULT_TEST_OUTPUT (or a temporary directory the test logs).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	htmlstd "html"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"
)

// chromiumPath finds Debian's chromium; without it the browser tests skip,
// or fail under CI=true (scripts/test.sh installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CRVAULT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is required under CI=true for the browser tests (scripts/test.sh installs Debian's chromium)")
	}
	t.Skip("Chromium not found: install Debian's chromium or run scripts/test.sh")
	return ""
}

// insecureHost reaches the test server under a name that is not loopback.
const insecureHost = "crvault.insecure.test"

// browser is one headless Chromium shared by the subtests.
type browser struct {
	t     *testing.T
	srv   *server
	alloc context.Context
	root  context.Context
	base  string
	shots string
	axe   string

	mu      sync.Mutex
	checked map[string]bool // pages axe-core has checked
}

func newBrowser(t *testing.T, srv *server) *browser {
	base := srv.base
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in a container: Chromium's sandbox needs user namespaces
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		// A name for this server that is not loopback, hence not a secure
		// context over plain HTTP, as a LAN address would be.
		chromedp.Flag("host-resolver-rules", "MAP "+insecureHost+" 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	if err := chromedp.Do(root); err != nil {
		cancelRoot()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { cancelRoot(); cancelAlloc() })
	shots := os.Getenv("CRVAULT_TEST_OUTPUT")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "crvault-web-shots-"); err != nil {
			t.Fatal(err)
		}
	}
	shots = filepath.Join(shots, "web-screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	axe, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, srv: srv, alloc: alloc, root: root, base: base, shots: shots, axe: string(axe), checked: map[string]bool{}}
}

// tab is one person's browser context (own cookies) with one tab.
type tab struct {
	t    *testing.T
	b    *browser
	ctx  context.Context
	lang string
	// noJS: the page's scripts are off while pages load and forms are sent
	// (DevTools evaluates between, to read the page).
	noJS bool
	// accountLang: after signing in, keep the language the account
	// remembered rather than switch to the browser's.
	accountLang bool

	mu        sync.Mutex
	responses map[string]*network.Response // by URL, the newest
	csp       []string                     // Content-Security-Policy violations the browser logged
}

// person opens a fresh browser context whose Accept-Language is lang.
func (b *browser) person(t *testing.T, lang string, js bool) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, b: b, ctx: ctx, lang: lang, noJS: !js, responses: map[string]*network.Response{}}
	err := chromedp.Listen(ctx, func(ev any) {
		var r *network.Response
		switch e := ev.(type) {
		case *network.EventResponseReceived:
			r = e.Response
		case network.EventResponseReceived:
			r = e.Response
		}
		if r != nil {
			tb.mu.Lock()
			tb.responses[r.URL] = r
			tb.mu.Unlock()
		}
		var entry *cdplog.Entry
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			entry = e.Entry
		case cdplog.EventEntryAdded:
			entry = e.Entry
		}
		if entry != nil && strings.Contains(entry.Text, "Content Security Policy") {
			tb.mu.Lock()
			tb.csp = append(tb.csp, entry.URL+": "+entry.Text)
			tb.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, v := range tb.csp {
			t.Errorf("CSP violation: %s", v)
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	steps := []chromedp.Action[chromedp.Void]{
		call(network.Enable, network.EnableParams{}),
		call(network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}}),
		call(cdplog.Enable, cdp.Empty{}),
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("open browser context: %v", err)
	}
	return tb
}

// call makes an action of one DevTools command.
func call[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

func (tb *tab) run(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("browser: %v\npage text: %s", err, tb.textQuiet())
	}
}

// get runs one action that returns a value.
func get[T any](tb *tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("browser: %v\npage text: %s", err, tb.textQuiet())
	}
	return v
}

func js[T any](tb *tab, expr string) T {
	tb.t.Helper()
	return get(tb, chromedp.Evaluate[T](expr))
}

func (tb *tab) textQuiet() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return tail(s, 2000)
}

// open navigates to path and returns the HTTP status of the document.
func (tb *tab) open(path string) int64 {
	tb.t.Helper()
	tb.scripts(false)
	tb.run(chromedp.Navigate(tb.b.base + path))
	tb.scripts(true)
	return tb.status(tb.b.base + path)
}

// scripts turns the page's JavaScript off and on for a person without it.
func (tb *tab) scripts(on bool) {
	tb.t.Helper()
	if tb.noJS {
		tb.run(call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on}))
	}
}

func (tb *tab) status(u string) int64 {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if r := tb.responses[u]; r != nil {
		return r.Status
	}
	return 0
}

// location is the current path and query.
func (tb *tab) location() string { return js[string](tb, `location.pathname + location.search`) }

func (tb *tab) text() string { return js[string](tb, `document.body.innerText`) }

func (tb *tab) expectText(want ...string) {
	tb.t.Helper()
	got := tb.text()
	for _, w := range want {
		if !strings.Contains(got, w) {
			tb.t.Fatalf("page %s lacks %q:\n%s", tb.location(), w, tail(got, 3000))
		}
	}
}

// fill sets form fields by CSS selector and submits the form of the last
// one with the given button.
func (tb *tab) fill(fields map[string]string) {
	tb.t.Helper()
	for sel, v := range fields {
		tb.run(chromedp.SetValue(chromedp.CSS(sel), v))
	}
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.run(chromedp.Click(chromedp.CSS(sel)))
}

// submit clicks a submit button and waits for the next page.
func (tb *tab) submit(sel string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	loaded := chromedp.Events(ctx, page.LoadEventFired)
	tb.scripts(false)
	tb.run(chromedp.Click(chromedp.CSS(sel)))
	for _, err := range loaded {
		if err != nil {
			tb.t.Fatalf("no new page after clicking %s: %v", sel, err)
		}
		break
	}
	tb.scripts(true)
}

// signIn signs in through the form, with a code from the person's
// authenticator when the account has TOTP (the harness's authenticators,
// shared with API sign-ins), and enrols one when the role requires it.
func (tb *tab) signIn(username, password string) {
	tb.t.Helper()
	tb.open("/login")
	fields := map[string]string{"#username": username, "#password": password}
	if a := authenticators.get(tb.b.srv.realm(), username); a != nil {
		fields["#totp"] = a.next(tb.t)
	}
	tb.fill(fields)
	tb.submit(`form[action="/login"] button[type=submit]`)
	if strings.HasPrefix(tb.location(), "/account/totp") {
		tb.enrolTOTP(username)
	}
	if strings.HasPrefix(tb.location(), "/login") {
		tb.t.Fatalf("sign-in as %s failed: %s", username, tb.text())
	}
	if !tb.accountLang {
		tb.useLang(tb.lang) // an account may remember the other language
	}
}

// enrolTOTP sets up TOTP on the enrolment page, as a person with an
// authenticator app would: it scans the QR code the browser shows (a
// screenshot, read by ZXing's decoder) and checks it holds the key the
// page prints. It keeps the device for later sign-ins.
func (tb *tab) enrolTOTP(username string) {
	tb.t.Helper()
	tb.submit(`form[action="/account/totp/start"] button`)
	shot := get(tb, chromedp.Screenshot("#totp-qr svg", chromedp.NodeVisible))
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		tb.t.Fatalf("QR screenshot: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		tb.t.Fatal(err)
	}
	// The screenshot is the code alone, quiet zone included: read it as a
	// pure barcode, as a phone's scanner locks onto a code it has framed.
	scanned, err := zxingqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		tb.t.Fatalf("the enrolment QR code does not scan: %v", err)
	}
	u, err := url.Parse(scanned.GetText())
	if err != nil || u.Scheme != "otpauth" {
		tb.t.Fatalf("QR code holds %q", scanned.GetText())
	}
	a := &authenticator{secret: u.Query().Get("secret")}
	if printed := strings.TrimSpace(get(tb, chromedp.Text(chromedp.ID("totp-secret")))); a.secret != printed {
		tb.t.Fatalf("QR code key %q, printed key %q", a.secret, printed)
	}
	tb.fill(map[string]string{"#code": a.next(tb.t)})
	tb.submit(`form[action="/account/totp/confirm"] button`)
	a.recovery = js[[]string](tb, `Array.from(document.querySelectorAll("#recovery-codes code")).map(c => c.textContent)`)
	if len(a.recovery) == 0 {
		tb.t.Fatalf("no recovery codes after enrolling %s: %s", username, tb.text())
	}
	authenticators.put(tb.b.srv.realm(), username, a)
	tb.open("/")
}

// shot saves a full-page screenshot named after the page and language.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	buf := get(tb, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(tb.b.shots, name+"."+tb.lang+".png"), buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// useLang switches the page to lang with its own switch when the account
// remembered another language.
func (tb *tab) useLang(lang string) {
	tb.t.Helper()
	if js[string](tb, `document.documentElement.lang`) != lang {
		tb.submit(`form[action="/lang"] button`)
	}
	tb.lang = lang
}

// shotBoth saves the page in both languages: as it is, then switched to
// the other language with the page's own switch, and back.
func (tb *tab) shotBoth(name string) {
	tb.t.Helper()
	lang := tb.lang
	// The account's language may differ from what the browser asked for.
	tb.lang = js[string](tb, `document.documentElement.lang`)
	tb.shot(name)
	tb.lang = map[string]string{"en": "zh-CN", "zh-CN": "en"}[tb.lang]
	tb.submit(`form[action="/lang"] button`)
	if got := js[string](tb, `document.documentElement.lang`); got != tb.lang {
		tb.t.Fatalf("language switch on %s gave %s", name, got)
	}
	tb.shot(name)
	tb.submit(`form[action="/lang"] button`)
	tb.lang = lang
}

// axeCheck runs axe-core on the current page and fails on any serious or
// critical WCAG 2.1 A/AA violation.
func (tb *tab) axeCheck(name string) {
	tb.t.Helper()
	tb.b.mu.Lock()
	done := tb.b.checked[name]
	tb.b.checked[name] = true
	tb.b.mu.Unlock()
	if done {
		return // once per page: the other language has the same structure
	}
	script := tb.b.axe + `;
	(async () => {
	  const r = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
	  return JSON.stringify(r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
	    .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))})));
	})()`
	res := get(tb, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if res != "[]" {
		tb.t.Errorf("axe-core on %s (%s): serious or critical violations: %s", name, tb.lang, res)
	}
}

// narrow checks the page is usable at 360 px: nothing wider than the
// viewport but scrollable table regions.
func (tb *tab) narrow(name string) {
	tb.t.Helper()
	tb.b.mu.Lock()
	done := tb.b.checked["narrow "+name]
	tb.b.checked["narrow "+name] = true
	tb.b.mu.Unlock()
	if done {
		return
	}
	tb.run(call(emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 360, Height: 740, DeviceScaleFactor: 2, Mobile: true}))
	width := js[int](tb, `document.documentElement.scrollWidth`)
	if width > 360 {
		tb.t.Errorf("%s (%s) is %d px wide at a 360 px viewport", name, tb.lang, width)
	}
	buf := get(tb, chromedp.FullScreenshot(100))
	tb.run(call(emulation.ClearDeviceMetricsOverride, cdp.Empty{}))
	_ = os.WriteFile(filepath.Join(tb.b.shots, name+".360px."+tb.lang+".png"), buf, 0o644)
}

// cookieClient is a plain HTTP client holding a session cookie, to check
// answers the browser would hide (status codes, refusals).
type cookieClient struct {
	t     *testing.T
	base  string
	token string
}

func (c cookieClient) do(method, path, body, ctype string, header map[string]string) (int, string, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-crvault-session", Value: c.token})
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := cl.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// setupURL waits for the one-time setup URL in the server's log.
func setupURL(t *testing.T, s *server) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(s.log.String(), "\n") {
			var e struct {
				URL string `json:"url"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(e.URL, "/setup?token=") {
				return e.URL
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no setup URL in the log:\n%s", tail(s.log.String(), 4000))
	return ""
}

// msg reads a message from the shipped catalogues, so the tests follow
// the wording without repeating it.
func msg(t *testing.T, lang, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "api", "web", "locales", lang+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	s, ok := m[id].(string)
	if !ok {
		t.Fatalf("no message %s in %s", id, lang)
	}
	return s
}

var langs = []string{"zh-CN", "en"}

func TestWebBrowser(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	s.start()
	b := newBrowser(t, s)
	setup := setupURL(t, s)
	u, err := url.Parse(setup)
	if err != nil {
		t.Fatal(err)
	}
	setupPath := u.RequestURI()
	const officePW = "office passphrase 123"

	t.Run("first-run setup", func(t *testing.T) {
		tb := b.person(t, "zh-CN", true)
		if st := tb.open("/setup?token=wrong"); st != 404 {
			t.Fatalf("setup with a wrong token: %d, want 404", st)
		}
		if st := tb.open(setupPath); st != 200 {
			t.Fatalf("setup page: %d", st)
		}
		tb.shotBoth("setup")
		tb.axeCheck("setup")
		tb.fill(map[string]string{"#username": "office", "#display_name": "王主任", "#password": officePW, "#password2": officePW})
		tb.submit(`form[action="/setup"] button[type=submit]`)
		// Signed in at once; an office admin enrols TOTP before anything else.
		tb.expectText(msg(t, "zh-CN", "flash.setup"))
		if tb.open("/cases"); !strings.HasPrefix(tb.location(), "/account/totp") {
			t.Fatalf("a session awaiting TOTP enrolment reached %s", tb.location())
		}
		tb.shotBoth("totp")
		tb.axeCheck("totp")
		tb.enrolTOTP("office")
		tb.expectText("王主任", msgPrefix(t, "zh-CN", "dashboard.intake"))
		if st := tb.open(setupPath); st != 404 {
			t.Fatalf("setup page after setup: %d, want 404", st)
		}
		// Gone across a restart too, and no new URL is logged.
		s.stop()
		s.log = &syncBuffer{}
		s.start()
		if strings.Contains(s.log.String(), "/setup?token=") {
			t.Fatalf("a setup URL was logged after setup:\n%s", s.log.String())
		}
		if st := tb.open(setupPath); st != 404 {
			t.Fatalf("setup page after restart: %d, want 404", st)
		}
		// The session survived the restart: signed in, no other step.
		tb.open("/")
		tb.expectText("王主任")
	})

	// Everyone else is bootstrapped from the command line.
	s.mustCLI("", "org", "add", "--name", "Grid Co", "--kind", "operator")
	s.mustCLI("", "org", "add", "--name", "Other Grid", "--kind", "operator")
	s.mustCLI("", "org", "add", "--name", "Acme Routers", "--kind", "provider")
	s.mustCLI("", "org", "add", "--name", "Inspectorate", "--kind", "supervision")
	s.mustCLI("", "org", "add", "--name", "Ministry Unit", "--kind", "member_unit")
	ids := map[string]string{}
	for _, p := range []struct{ name, org, role string }{
		{"rev1", "网络安全审查办公室", "reviewer"},
		{"operator1", "Grid Co", "operator"},
		{"operator2", "Other Grid", "operator"},
		{"provider1", "Acme Routers", "provider"},
		{"inspector1", "Inspectorate", "inspector"},
		{"memberunit1", "Ministry Unit", "member_unit"},
	} {
		ids[p.name] = s.mustCLI(pw+"\n", "user", "add", "--username", p.name, "--org", p.org, "--role", p.role, "--password-stdin")
	}
	people := map[string]string{"office": officePW, "rev1": pw, "operator1": pw, "provider1": pw, "inspector1": pw, "memberunit1": pw}

	t.Run("sign in as each role in each language", func(t *testing.T) {
		for _, lang := range langs {
			for _, name := range []string{"office", "rev1", "operator1", "provider1", "inspector1", "memberunit1"} {
				tb := b.person(t, lang, true)
				tb.signIn(name, people[name])
				htmlLang := js[string](tb, `document.documentElement.lang`)
				if htmlLang != lang {
					t.Errorf("%s in %s: <html lang=%q>", name, lang, htmlLang)
				}
				tb.expectText(msg(t, lang, "nav.sign_out"))
				tb.shot("dashboard-" + name)
				tb.axeCheck("dashboard-" + name)
				tb.narrow("dashboard-" + name)
				// The pages of the procedures only these roles have.
				if path, ok := map[string]string{"office": "/proposals", "memberunit1": "/proposals", "inspector1": "/workload"}[name]; ok {
					tb.open(path)
					tb.shot(name + strings.ReplaceAll(path, "/", "-"))
					tb.axeCheck(name + strings.ReplaceAll(path, "/", "-"))
					tb.narrow(name + strings.ReplaceAll(path, "/", "-"))
				}
				tb.submit(`form[action="/logout"] button`)
				tb.expectText(msg(t, lang, "flash.signed_out"))
			}
		}
	})

	t.Run("TOTP at sign-in", func(t *testing.T) {
		tb := b.person(t, "en", true)
		tb.open("/login")
		tb.fill(map[string]string{"#username": "office", "#password": officePW})
		tb.submit(`form[action="/login"] button[type=submit]`)
		tb.expectText(msg(t, "en", "error.totp_required"))
		if req := js[bool](tb, `document.getElementById("totp").required`); !req {
			t.Fatal("the code field is not required after totp_required")
		}
		tb.fill(map[string]string{"#password": officePW, "#totp": "000000"})
		tb.submit(`form[action="/login"] button[type=submit]`)
		tb.expectText(msg(t, "en", "error.totp_invalid"))
		tb.signIn("office", officePW)
		tb.expectText(msgPrefix(t, "en", "dashboard.intake"))
	})

	t.Run("language switch is remembered per account", func(t *testing.T) {
		tb := b.person(t, "zh-CN", true)
		tb.signIn("operator1", pw)
		tb.expectText(msg(t, "zh-CN", "nav.cases"))
		tb.submit(`form[action="/lang"] button`)
		tb.expectText(msg(t, "en", "nav.cases"))
		// A new browser asking for Chinese gets the account's English.
		tb2 := b.person(t, "zh-CN", true)
		tb2.accountLang = true
		tb2.signIn("operator1", pw)
		tb2.expectText(msg(t, "en", "nav.cases"))
		// Signed out, the cookie still speaks for the browser.
		tb2.submit(`form[action="/logout"] button`)
		tb2.expectText(msg(t, "en", "flash.signed_out"))
	})

	var caseID string
	pdf := SamplePDF("Declaration of the Core routers case")
	dir := t.TempDir()
	write := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	declPath := write("declaration.pdf", pdf)
	// Most materials are named in Chinese, brackets full-width.
	impactPath := write("国家安全影响分析（第二版）.txt", bytes.Repeat([]byte("national security impact analysis\n"), 20000))
	procPath := write("contract.txt", []byte("procurement contract\n"))

	t.Run("operator creates a case and uploads with progress", func(t *testing.T) {
		tb := b.person(t, "en", true)
		tb.signIn("operator1", pw)
		tb.open("/cases/new")
		tb.shotBoth("case-new")
		tb.axeCheck("case-new")
		// The provider's name as typed, not as registered.
		tb.fill(map[string]string{"#title": "Core routers", "#product": "AR-9000", "#providers": "ACME  routers"})
		tb.submit(`form[action="/cases"] button[type=submit]`)
		loc := tb.location()
		m := regexp.MustCompile(`^/cases/([0-9a-z]+)\?done=case_created$`).FindStringSubmatch(loc)
		if m == nil {
			t.Fatalf("after creating: at %s: %s", loc, tb.text())
		}
		caseID = m[1]
		// The case names its operator and provider, as registered.
		if got := get(tb, chromedp.Text(chromedp.ID("case-providers"))); got != "Acme Routers" {
			t.Fatalf("providers shown as %q", got)
		}
		tb.expectText("Grid Co")
		upload := func(kind string, files ...string) {
			tb.run(chromedp.SetValue(chromedp.CSS("#kind"), kind),
				chromedp.SetUploadFiles(chromedp.CSS("#file"), files),
				chromedp.Click(chromedp.CSS(`#upload-form button[type=submit]`)))
			want := len(files)
			deadline := time.Now().Add(60 * time.Second)
			for {
				n := js[int](tb, `document.querySelectorAll("#upload-list li.done").length`)
				if n == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("uploads did not finish: %s", tb.text())
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Each file had its own progress bar, now full.
			bars := js[[]map[string]float64](tb, `Array.from(document.querySelectorAll("#upload-list progress")).map(p => ({value: p.value, max: p.max}))`)
			if len(bars) != want {
				t.Fatalf("%d progress bars for %d files", len(bars), want)
			}
			for _, b := range bars {
				if b["max"] <= 1 || b["value"] != b["max"] {
					t.Fatalf("progress bar not full: %v", bars)
				}
			}
			js[chromedp.Void](tb, `document.getElementById("upload-list").innerHTML = ""; undefined`)
		}
		tb.open("/cases/" + caseID)
		// Two files at once, each with a progress bar.
		upload("impact_analysis", impactPath, procPath)
		// One of two files cut mid-PATCH resumes from the server's offset
		// (webresume_test.go).
		testResumedUpload(t, tb, s, caseID)
		// The network down before the upload began: the page offers to
		// resume and, with the network back, the Resume button completes it.
		block := func(on bool) {
			tb.run(call(network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{
				{URLPattern: b.base + "/api/v1/cases/*/uploads", Block: on}}}))
		}
		block(true)
		tb.open("/cases/" + caseID)
		tb.run(chromedp.SetValue(chromedp.CSS("#kind"), "declaration"),
			chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{declPath}),
			chromedp.Click(chromedp.CSS(`#upload-form button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#upload-list li.interrupted button.resume`)))
		block(false)
		// (The backoff timer may have resumed it first: click if still offered.)
		js[chromedp.Void](tb, `var r = document.querySelector("#upload-list li.interrupted button.resume"); if (r) { r.click(); }; undefined`)
		tb.run(chromedp.WaitVisible(chromedp.CSS(`#upload-list li.done`)))
		tb.run(chromedp.Evaluate[chromedp.Void](`document.getElementById("upload-list").innerHTML = ""; undefined`))
		tb.open("/cases/" + caseID)
		tb.expectText("declaration.pdf", "国家安全影响分析（第二版）.txt", "contract.txt")
		// contract.txt went up as an impact analysis; the third kind is
		// still missing, so submission is refused, naming it.
		tb.submit(`form[action$="/submit"] button`)
		tb.expectText(msgPrefix(t, "en", "error.materials_missing"), msg(t, "en", "kind.procurement"))
		tb.open("/cases/" + caseID)
		upload("procurement", procPath)
		tb.open("/cases/" + caseID)
		tb.submit(`form[action$="/submit"] button`)
		tb.expectText(msg(t, "en", "flash.submitted"), msg(t, "en", "status.submitted"), msg(t, "en", "phase.determination"))
		tb.shotBoth("case-operator")
		tb.axeCheck("case-operator")
		tb.narrow("case-operator")
	})
	if caseID == "" {
		t.Fatal("no case")
	}

	t.Run("office admin moves the case and assigns a reviewer", func(t *testing.T) {
		tb := b.person(t, "zh-CN", true)
		tb.signIn("office", officePW)
		tb.expectText("Core routers") // in the intake queue
		tb.shot("dashboard-office-intake")
		tb.open("/cases/" + caseID)
		// Only what the guards allow from submitted is offered.
		offeredJS := `Array.from(document.querySelectorAll("#transition-form input[name=action]")).map(i => i.value)`
		offered := js[[]string](tb, offeredJS)
		if !slices.Contains(offered, "require_review") || !slices.Contains(offered, "not_required") || slices.Contains(offered, "conclude") ||
			slices.Contains(offered, "recommend") {
			t.Fatalf("offered %v in status submitted", offered)
		}
		tb.click(`#action-require_review`)
		tb.submit(`#transition-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.moved"), msg(t, "zh-CN", "status.under_review"))
		// The decision produced a written notice (Art. 8), listed apart.
		if n := js[int](tb, `document.querySelectorAll("#notices li").length`); n != 1 {
			t.Fatalf("%d notices after require_review", n)
		}
		offered = js[[]string](tb, offeredJS)
		for _, a := range offered {
			if a == "recommend" {
				t.Fatalf("recommend offered without a recommendation material: %v", offered)
			}
		}
		// The form suggests the accounts that may be assigned, and no other.
		suggested := js[[]string](tb, `Array.from(document.querySelectorAll("#assignable option")).map(o => o.value)`)
		if !slices.Contains(suggested, "rev1") || !slices.Contains(suggested, "memberunit1") ||
			slices.Contains(suggested, "operator1") || slices.Contains(suggested, "office") || slices.Contains(suggested, "inspector1") {
			t.Fatalf("assignment suggestions: %q", suggested)
		}
		// A name that is no account is answered in words.
		tb.fill(map[string]string{"#assign-user": "nobody", "#assign-purpose": "初步审查"})
		tb.submit(`#assign-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "error.unknown_user"))
		tb.open("/cases/" + caseID)
		// By username, capitalised as a phone would: the page finds the account
		// and lists it by name, with its id.
		tb.fill(map[string]string{"#assign-user": "Rev1", "#assign-purpose": "初步审查"})
		tb.submit(`#assign-form button[type=submit]`)
		tb.expectText(msg(t, "zh-CN", "flash.assigned"), ids["rev1"], "rev1")
		tb.shotBoth("case-office")
		// The office's page has the widest tables (assignments with their
		// hidden "revoke" header): still 360 px.
		tb.narrow("case-office")
		tb.axeCheck("case-office")
		// The deadline shows as the service derives it, marked provisional
		// when it rests on a year without an official holiday schedule.
		var clk struct {
			DueOn       string `json:"due_on"`
			Provisional bool   `json:"due_on_provisional"`
		}
		s.login(t, "office", officePW).expect(200, "GET", "/cases/"+caseID+"/clock", nil).json(t, &clk)
		badge := js[int](tb, `document.querySelectorAll("#clock-h ~ dl .badge").length`)
		if clk.DueOn == "" || (badge == 1) != clk.Provisional {
			t.Fatalf("clock %+v, %d provisional badges", clk, badge)
		}
		tb.open("/deadlines?within=30")
		tb.expectText("Core routers")
		tb.shotBoth("deadlines")
		tb.axeCheck("deadlines")
	})

	var pdfID string
	t.Run("reviewer declares and opens a PDF inline", func(t *testing.T) {
		tb := b.person(t, "en", true)
		tb.signIn("rev1", pw)
		tb.expectText("Core routers")
		tb.open("/cases/" + caseID)
		pdfID = strings.TrimPrefix(js[string](tb, `document.evaluate('//a[text()="declaration.pdf"]', document).iterateNext().getAttribute("href")`), "/materials/")
		if st := tb.open("/materials/" + pdfID); st != 403 {
			t.Fatalf("reading before declaring: %d, want 403", st)
		}
		tb.expectText(msg(t, "en", "error.declaration_required"))
		tb.open("/cases/" + caseID)
		tb.shotBoth("case-reviewer")
		tb.axeCheck("case-reviewer")
		tb.click("#conflict-no")
		tb.fill(map[string]string{"#statement": "No ties to the operator or its providers."})
		tb.submit(`form[action$="/declarations"] button`)
		tb.expectText(msg(t, "en", "flash.declared"))
		// The PDF opens in the browser: its type, inline, sandboxed.
		ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
		defer cancel()
		_ = chromedp.Do(ctx, chromedp.Navigate(b.base+"/materials/"+pdfID)) // a viewer or a download; both end the navigation
		deadline := time.Now().Add(10 * time.Second)
		var r *network.Response
		for r == nil && time.Now().Before(deadline) {
			tb.mu.Lock()
			r = tb.responses[b.base+"/materials/"+pdfID]
			tb.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		if r == nil || r.Status != 200 {
			t.Fatalf("PDF response: %+v", r)
		}
		h := map[string]string{}
		for k, v := range r.Headers {
			h[strings.ToLower(k)] = fmt.Sprint(v)
		}
		if h["content-type"] != "application/pdf" || !strings.HasPrefix(h["content-disposition"], "inline;") {
			t.Fatalf("PDF headers in the browser: %v", h)
		}
		// A text file is downloaded, never shown.
		cl := cookieClient{t: t, base: b.base, token: s.login(t, "rev1", pw).token}
		tb.open("/cases/" + caseID)
		txtID := js[string](tb, `document.evaluate('//a[text()="contract.txt"]', document).iterateNext().getAttribute("href")`)
		st, _, hd := cl.do("GET", txtID, "", "", nil)
		if st != 200 || !strings.HasPrefix(hd.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("text material: %d %v", st, hd)
		}
		// The inline PDF is confined to a sandbox with no script.
		st, body, hd := cl.do("GET", "/materials/"+pdfID, "", "", nil)
		if st != 200 || body != string(pdf) || !strings.HasPrefix(hd.Get("Content-Security-Policy"), "sandbox;") ||
			strings.Contains(hd.Get("Content-Security-Policy"), "allow-scripts") {
			t.Fatalf("PDF: %d, CSP %q", st, hd.Get("Content-Security-Policy"))
		}
	})

	t.Run("inspector finds the read in the audit search", func(t *testing.T) {
		tb := b.person(t, "zh-CN", true)
		tb.signIn("inspector1", pw)
		tb.open("/audit")
		tb.expectText(msg(t, "zh-CN", "audit.checkpoint"))
		// The inspector looks for the reviewer by username, and sees the
		// reader and their organisation by name.
		tb.fill(map[string]string{"#f-case": caseID, "#f-action": "material.read", "#f-actor": "rev1"})
		tb.run(chromedp.SetValue(chromedp.CSS("#f-outcome"), "allowed"))
		tb.submit(`form[action="/audit"] button[type=submit]`)
		rows := js[[]string](tb, `Array.from(document.querySelectorAll("#events tbody tr")).map(r => r.innerText)`)
		found := false
		for _, r := range rows {
			if strings.Contains(r, ids["rev1"]) && strings.Contains(r, "rev1") && strings.Contains(r, "网络安全审查办公室") &&
				strings.Contains(r, "material.read") && strings.Contains(r, pdfID) {
				found = true
			}
		}
		if !found {
			t.Fatalf("the reviewer's read is not in the results: %q", rows)
		}
		tb.shotBoth("audit")
		tb.axeCheck("audit")
		tb.narrow("audit")
		tb.submit(`form[action="/audit/verify"] button`)
		tb.run(chromedp.WaitVisible(chromedp.ID("verified")))
		tb.open("/complaints")
		tb.shotBoth("complaints")
		tb.open("/reports")
		tb.shotBoth("reports")
		tb.axeCheck("reports")
	})

	t.Run("sign-in over plain HTTP from another machine says it cannot work", func(t *testing.T) {
		tb := b.person(t, "zh-CN", true)
		tb.open("/login")
		if !js[bool](tb, `document.getElementById("insecure-context").hidden`) {
			t.Fatal("the plain-HTTP warning shows on http://127.0.0.1, a secure context")
		}
		tb.run(chromedp.Navigate(strings.Replace(b.base, "127.0.0.1", insecureHost, 1) + "/login"))
		tb.run(chromedp.WaitVisible(chromedp.ID("insecure-context")))
		tb.expectText(msg(t, "zh-CN", "login.insecure_context"))
	})

	t.Run("public report without JavaScript and follow-up by receipt", func(t *testing.T) {
		for _, lang := range langs {
			tb := b.person(t, lang, false)
			tb.open("/report")
			tb.shot("public-report")
			tb.axeCheck("public-report")
			tb.narrow("public-report")
			att := write("photo-"+lang+".txt", []byte("what I saw"))
			// Two paragraphs: the browser sends the line break as CRLF.
			tb.fill(map[string]string{"#subject_org": "Acme Routers", "#description": "Routers phone home to an unknown server.\n\nSeen at three sites."})
			tb.run(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{att}))
			tb.submit(`#report-form button[type=submit]`)
			receipt := get(tb, chromedp.Text(chromedp.ID("receipt")))
			if len(receipt) < 16 {
				t.Fatalf("receipt %q", receipt)
			}
			tb.expectText(strings.ReplaceAll(msg(t, lang, "public.receipt_once"), "{{.Count}}", "1"))
			tb.shot("public-filed")
			tb.open("/report/status")
			// As printed, in groups; in English as copied by hand, in capitals
			// and without the dot.
			if lang == "en" {
				receipt = strings.ToUpper(strings.ReplaceAll(receipt, ".", ""))
			}
			tb.fill(map[string]string{"#receipt": receipt})
			tb.submit(`form[action="/report/status"] button[type=submit]`)
			tb.expectText(msg(t, lang, "rstatus.received"))
			tb.fill(map[string]string{"#text": "One more detail.\nAnd a second line."})
			tb.submit(`form[action="/report/messages"] button[type=submit]`)
			tb.expectText(msg(t, lang, "flash.message_sent"), "One more detail.")
			tb.shot("public-status")
			tb.axeCheck("public-status")
		}
		// The inspector sees both, with the attachment.
		tb := b.person(t, "en", true)
		tb.signIn("inspector1", pw)
		tb.open("/reports")
		tb.submit(`table a`)
		// The reported organisation by name.
		tb.expectText("Routers phone home", "photo-", "Acme Routers")
		tb.shotBoth("report-inspector")
		tb.axeCheck("report-inspector")
		// What the browsers sent as CRLF is stored with plain line breaks.
		req, _ := http.NewRequest("GET", b.base+"/api/v1/reports", nil)
		req.Header.Set("Authorization", "Bearer "+s.login(t, "inspector1", pw).token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var reports struct {
			Items []struct {
				Description string `json:"description"`
			} `json:"items"`
		}
		err = json.NewDecoder(res.Body).Decode(&reports)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		filed := 0
		for _, r := range reports.Items {
			if strings.HasPrefix(r.Description, "Routers phone home") {
				filed++
				if r.Description != "Routers phone home to an unknown server.\n\nSeen at three sites." {
					t.Errorf("stored description %q", r.Description)
				}
			}
		}
		if filed != len(langs) {
			t.Fatalf("%d reports filed from the browser, want %d: %+v", filed, len(langs), reports.Items)
		}
	})

	t.Run("complaint about a reader the operator knows by pseudonym", func(t *testing.T) {
		op := s.login(t, "operator1", pw)
		var events struct {
			Items []struct {
				Actor, Action, Resource string
			} `json:"items"`
		}
		op.expect(200, "GET", "/audit/events?case="+caseID+"&action=material.read", nil).json(t, &events)
		pseudonym, readID := "", ""
		for _, e := range events.Items {
			if strings.HasPrefix(e.Actor, "R") {
				pseudonym = e.Actor
				readID = strings.Fields(strings.TrimPrefix(e.Resource, "material/"))[0]
			}
		}
		if pseudonym == "" {
			t.Fatalf("the operator sees no reviewer's read: %+v", events.Items)
		}
		// Typed in lower case, the description in two paragraphs as a
		// Windows client sends them.
		var cp struct {
			ID string `json:"id"`
		}
		op.expect(201, "POST", "/complaints", map[string]any{"case": caseID, "subject": strings.ToLower(pseudonym), "kind": "unfair",
			"description": "第一段。\r\n第二段。"}).json(t, &cp)
		// The inspector sees the subject by name, beside the pseudonym.
		insp := cookieClient{t: t, base: b.base, token: s.login(t, "inspector1", pw).token}
		st, body, _ := insp.do("GET", "/complaints/"+cp.ID, "", "", nil)
		if st != 200 || !strings.Contains(body, "rev1") || !strings.Contains(body, ids["rev1"]) || !strings.Contains(body, pseudonym) {
			t.Fatalf("complaint page for the inspector: %d %s", st, tail(body, 3000))
		}
		// The operator, who filed it, sees the pseudonym only; in the access
		// log of its materials, the reader's organisation by name.
		opWeb := cookieClient{t: t, base: b.base, token: op.token}
		if st, body, _ := opWeb.do("GET", "/complaints/"+cp.ID, "", "", nil); st != 200 || strings.Contains(body, "rev1") || strings.Contains(body, ids["rev1"]) {
			t.Fatalf("complaint page for the operator: %d %s", st, tail(body, 3000))
		}
		// The list of its complaints names the case, not only its id.
		if st, body, _ := opWeb.do("GET", "/complaints", "", "", nil); st != 200 || !strings.Contains(body, "Core routers") || !strings.Contains(body, caseID) {
			t.Fatalf("complaints list for the operator: %d %s", st, tail(body, 3000))
		}
		st, body, _ = opWeb.do("GET", "/audit?case="+caseID+"&action=material.read", "", "", nil)
		if st != 200 || !strings.Contains(body, pseudonym) || !strings.Contains(body, "网络安全审查办公室") || strings.Contains(body, "rev1") || strings.Contains(body, ids["rev1"]) {
			t.Fatalf("access log for the operator: %d %s", st, tail(body, 3000))
		}
		// Which document was read, in words: the action, and the material
		// by its name.
		var read struct {
			Filename string `json:"filename"`
		}
		op.expect(200, "GET", "/materials/"+readID, nil).json(t, &read)
		if read.Filename == "" || !strings.Contains(body, html.EscapeString(read.Filename)) || !strings.Contains(body, msg(t, "zh-CN", "audit_action.material.read")) {
			t.Fatalf("access log for the operator names neither the material %q nor the action: %s", read.Filename, tail(body, 3000))
		}
	})

	t.Run("other roles get 403 and 404", func(t *testing.T) {
		op := cookieClient{t: t, base: b.base, token: s.login(t, "operator1", pw).token}
		op2 := cookieClient{t: t, base: b.base, token: s.login(t, "operator2", pw).token}
		insp := cookieClient{t: t, base: b.base, token: s.login(t, "inspector1", pw).token}
		rev := cookieClient{t: t, base: b.base, token: s.login(t, "rev1", pw).token}
		for _, c := range []struct {
			who    cookieClient
			path   string
			status int
		}{
			{op2, "/cases/" + caseID, 404},
			{op2, "/materials/" + pdfID, 404},
			{op, "/deadlines", 403},
			{op, "/reports", 403},
			{rev, "/reports", 403},
			{insp, "/materials/" + pdfID, 403},
			{op, "/audit?case=" + caseID, 200},
		} {
			if st, body, _ := c.who.do("GET", c.path, "", "", nil); st != c.status {
				t.Errorf("GET %s: %d, want %d: %s", c.path, st, c.status, tail(body, 300))
			}
		}
		// An action of another role, with a valid CSRF token, is refused by
		// the service.
		_, page, _ := op.do("GET", "/cases/"+caseID, "", "", nil)
		m := csrfInput.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no CSRF token on the case page")
		}
		form := url.Values{"csrf": {m[1]}, "action": {"conclude"}}.Encode()
		if st, _, _ := op.do("POST", "/cases/"+caseID+"/transitions", form, "application/x-www-form-urlencoded", nil); st != 403 {
			t.Errorf("operator's transition: %d, want 403", st)
		}
		if st, _, _ := op2.do("POST", "/cases/"+caseID+"/transitions", url.Values{"csrf": {m[1]}, "action": {"conclude"}}.Encode(),
			"application/x-www-form-urlencoded", nil); st != 403 {
			t.Errorf("another session's CSRF token: %d, want 403", st)
		}
	})

	// Accounts, approvals, password, consents, member units, commitment
	// statuses (webaccounts_test.go).
	testAccountPages(t, b, s, caseID, officePW)

	t.Run("a form or API call without its CSRF token is refused", func(t *testing.T) {
		c := cookieClient{t: t, base: b.base, token: s.login(t, "operator1", pw).token}
		_, page, _ := c.do("GET", "/cases/new", "", "", nil)
		token := csrfInput.FindStringSubmatch(page)[1]
		form := url.Values{"title": {"No token"}, "product": {"X"}}
		st, body, _ := c.do("POST", "/cases", form.Encode(), "application/x-www-form-urlencoded", nil)
		if st != 403 || !strings.Contains(body, msg(t, "zh-CN", "error.csrf_failed")) {
			t.Fatalf("form without token: %d %s", st, tail(body, 300))
		}
		form.Set("csrf", token)
		if st, _, _ := c.do("POST", "/cases", form.Encode(), "application/x-www-form-urlencoded", map[string]string{"Sec-Fetch-Site": "cross-site"}); st != 403 {
			t.Fatalf("cross-site form with token: %d, want 403", st)
		}
		if st, body, _ := c.do("POST", "/cases", form.Encode(), "application/x-www-form-urlencoded", nil); st != 303 {
			t.Fatalf("form with token: %d %s", st, tail(body, 300))
		}
		// A title of spaces passes the browser's "required" but not the
		// server, which says which field it wants.
		blank := url.Values{"csrf": {token}, "title": {"   "}, "product": {"X"}}
		want := strings.ReplaceAll(msg(t, "zh-CN", "error.missing_field_named"), "{{.Field}}", msg(t, "zh-CN", "field.title"))
		if st, body, _ := c.do("POST", "/cases", blank.Encode(), "application/x-www-form-urlencoded", nil); st != 422 || !strings.Contains(htmlstd.UnescapeString(body), want) {
			t.Fatalf("form with a blank title: %d, want 422 and %q: %s", st, want, tail(body, 600))
		}
		// The JSON API takes the cookie session only with the token header.
		js := `{"title":"Via cookie","product":"X","providers":[]}`
		st, body, _ = c.do("POST", "/api/v1/cases", js, "application/json", nil)
		if st != 403 || !strings.Contains(body, `"csrf_failed"`) {
			t.Fatalf("API with cookie, no token: %d %s", st, body)
		}
		if st, body, _ = c.do("POST", "/api/v1/cases", js, "application/json", map[string]string{"X-CSRF-Token": token}); st != 201 {
			t.Fatalf("API with cookie and token: %d %s", st, body)
		}
		// A multipart upload form without its token.
		st, body, _ = c.do("POST", "/cases/"+caseID+"/materials", "--b\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nother\r\n--b--\r\n",
			"multipart/form-data; boundary=b", nil)
		if st != 403 {
			t.Fatalf("upload form without token: %d %s", st, tail(body, 300))
		}
	})
}
