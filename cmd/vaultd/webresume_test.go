package main

// The browser's resumable upload, interrupted for real: a proxy between
// Chromium and vaultd cuts one PATCH after some bytes and then refuses
// that upload's requests until the test lets them through, so the page
// must notice the network error, offer to resume, and continue from the
// offset the server holds, never from zero.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// patchSeen is one PATCH of the watched upload as the proxy passed it on.
type patchSeen struct {
	offset    int64 // Upload-Offset the browser sent
	forwarded int64 // body bytes handed to vaultd
	cut       bool
}

// cutProxy forwards everything to vaultd, and cuts the first PATCH of the
// upload of file `name` after `after` bytes of its body.
type cutProxy struct {
	t      *testing.T
	target *url.URL
	rp     *httputil.ReverseProxy
	name   string
	after  int64

	mu       sync.Mutex
	uploadID string // the watched upload, once the browser opened it
	creates  int    // sessions opened for the watched file
	patches  []patchSeen
	heads    int  // HEADs of the watched upload that reached vaultd
	blocked  bool // refuse the watched upload's requests (after the cut)
	released bool
	srv      *http.Server
	base     string
}

func newCutProxy(t *testing.T, target, name string, after int64) *cutProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, target: u, name: name, after: after}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.ModifyResponse = p.watchCreate
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.base = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// watchCreate learns the id of the watched file's upload session.
func (p *cutProxy) watchCreate(res *http.Response) error {
	r := res.Request
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/uploads") || res.StatusCode != http.StatusCreated {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	var s struct {
		ID       string `json:"id"`
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return err
	}
	if s.Filename == p.name {
		p.mu.Lock()
		p.uploadID = s.ID
		p.creates++
		p.mu.Unlock()
	}
	return nil
}

func (p *cutProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	watched := p.uploadID != "" && r.URL.Path == "/api/v1/uploads/"+p.uploadID
	blocked := watched && p.blocked
	first := watched && r.Method == http.MethodPatch && len(p.patches) == 0
	p.mu.Unlock()
	switch {
	case blocked:
		p.drop(w) // the network is still down for this upload
	case first:
		p.cut(w, r)
	case watched && r.Method == http.MethodPatch:
		off, _ := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
		cr := &countingReader{r: r.Body}
		r.Body = io.NopCloser(cr)
		p.rp.ServeHTTP(w, r)
		p.mu.Lock()
		p.patches = append(p.patches, patchSeen{offset: off, forwarded: cr.n})
		p.mu.Unlock()
	default:
		if watched && r.Method == http.MethodHead {
			p.mu.Lock()
			p.heads++
			p.mu.Unlock()
		}
		p.rp.ServeHTTP(w, r)
	}
}

// cut passes `after` bytes of the PATCH to vaultd and then breaks both
// connections, as a network failure would.
func (p *cutProxy) cut(w http.ResponseWriter, r *http.Request) {
	off, _ := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	head := make([]byte, p.after)
	n, _ := io.ReadFull(r.Body, head)
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target.String()+r.URL.RequestURI(),
		io.MultiReader(bytes.NewReader(head[:n]), errorReader{}))
	if err != nil {
		p.t.Error(err)
		return
	}
	out.Header = r.Header.Clone()
	out.ContentLength = r.ContentLength
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if res, err := tr.RoundTrip(out); err == nil {
		res.Body.Close() // the browser sees the cut either way
	}
	p.mu.Lock()
	p.patches = append(p.patches, patchSeen{offset: off, forwarded: int64(n), cut: true})
	p.blocked = true
	p.mu.Unlock()
	p.drop(w)
}

// drop closes the browser's connection without an answer.
func (p *cutProxy) drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

func (p *cutProxy) release() {
	p.mu.Lock()
	p.blocked = false
	p.released = true
	p.mu.Unlock()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

type errorReader struct{}

func (errorReader) Read([]byte) (int, error) { return 0, errors.New("network cut by the test proxy") }

// testResumedUpload has the operator upload two files at once through the
// proxy; the bigger one is cut mid-PATCH. The page must show the
// interruption with a Resume button, resume by itself once the network is
// back, from the server's offset, and store exactly the file.
func testResumedUpload(t *testing.T, tb *tab, s *server, caseID string) {
	const size = 3<<20 + 12345
	doc := make([]byte, size)
	if _, err := rand.Read(doc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bigPath := filepath.Join(dir, "network-cut.bin")
	smallPath := filepath.Join(dir, "second-file.txt")
	if err := os.WriteFile(bigPath, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	small := bytes.Repeat([]byte("a second file, uploaded beside the interrupted one\n"), 3000)
	if err := os.WriteFile(smallPath, small, 0o600); err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, s.base, "network-cut.bin", 1<<20)

	// The same browser, through the proxy: the session cookie is the
	// host's (cookies do not tell ports apart).
	tb.run(chromedp.Navigate(p.base + "/cases/" + caseID))
	tb.run(chromedp.SetValue(chromedp.CSS("#kind"), "other"),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{bigPath, smallPath}),
		chromedp.Click(chromedp.CSS(`#upload-form button[type=submit]`)))

	// The cut: the page says so and offers to resume.
	tb.run(chromedp.WaitVisible(chromedp.CSS(`#upload-list li.interrupted button.resume`)))
	tb.expectText(msg(t, tb.lang, "upload.interrupted"), msg(t, tb.lang, "upload.resume"))
	tb.shot("upload-interrupted")

	// vaultd kept what arrived before the cut.
	p.mu.Lock()
	id := p.uploadID
	p.mu.Unlock()
	op := s.login(t, "operator1", pw)
	var held int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		var u struct {
			Offset int64 `json:"offset"`
		}
		op.expect(200, "GET", "/uploads/"+id, nil).json(t, &u)
		held = u.Offset
		if held > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("vaultd holds nothing of the cut PATCH")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The network is back: the page resumes by itself (backoff timer).
	p.release()
	deadline = time.Now().Add(90 * time.Second)
	for js[int](tb, `document.querySelectorAll("#upload-list li.done").length`) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the uploads did not finish after the network came back: %s", tb.text())
		}
		time.Sleep(200 * time.Millisecond)
	}
	bars := js[[]map[string]float64](tb, `Array.from(document.querySelectorAll("#upload-list progress")).map(p => ({value: p.value, max: p.max}))`)
	if len(bars) != 2 {
		t.Fatalf("%d progress bars for 2 files", len(bars))
	}
	for _, b := range bars {
		if b["max"] <= 1 || b["value"] != b["max"] {
			t.Fatalf("progress bar not full: %v", bars)
		}
	}

	p.mu.Lock()
	patches, creates, heads := append([]patchSeen(nil), p.patches...), p.creates, p.heads
	p.mu.Unlock()
	t.Logf("cut after %d bytes, vaultd held %d; PATCHes %+v; HEADs %d", p.after, held, patches, heads)
	if creates != 1 {
		t.Errorf("%d upload sessions opened for the file: resuming must continue the first, not open another", creates)
	}
	if heads == 0 {
		t.Error("the page did not ask vaultd (HEAD) where the upload stood")
	}
	if len(patches) < 2 || !patches[0].cut || patches[0].offset != 0 {
		t.Fatalf("PATCHes seen: %+v", patches)
	}
	// After the cut the page continued exactly where vaultd stood, and
	// sent every later byte once: the early part reached vaultd only once.
	next, sent := held, held
	for _, pt := range patches[1:] {
		if pt.offset != next {
			t.Errorf("a PATCH started at %d, want %d (the server's offset): %+v", pt.offset, next, patches)
		}
		next += pt.forwarded
		sent += pt.forwarded
	}
	if sent != size {
		t.Errorf("after the cut the page sent up to byte %d of %d: %+v", sent, size, patches)
	}

	// The stored material is the file, byte for byte.
	var mats struct {
		Items []struct {
			Filename string `json:"filename"`
			SHA256   string `json:"sha256"`
			Size     int64  `json:"size"`
		} `json:"items"`
	}
	op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &mats)
	want := map[string][]byte{"network-cut.bin": doc, "second-file.txt": small}
	for _, m := range mats.Items {
		body, ok := want[m.Filename]
		if !ok {
			continue
		}
		sum := sha256.Sum256(body)
		if m.SHA256 != hex.EncodeToString(sum[:]) || m.Size != int64(len(body)) {
			t.Errorf("%s stored as %d bytes, sha256 %s; the file has %d bytes, sha256 %x", m.Filename, m.Size, m.SHA256, len(body), sum)
		}
		delete(want, m.Filename)
	}
	if len(want) != 0 {
		t.Errorf("not among the case's materials: %v", want)
	}
	js[chromedp.Void](tb, `document.getElementById("upload-list").innerHTML = ""; undefined`)
}
