package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
	"github.com/crvault/crvault/vault/blob/blobtest"
)

// These tests break the parts of a running deployment (PostgreSQL, the S3
// server, the disk under the local store) and check what each client sees,
// what the audit log keeps, what is left behind, and that vaultd recovers
// without a restart.

// answer is what one client got, without failing the test from whatever
// goroutine made the request.
type answer struct {
	status int
	code   string
	header http.Header
	body   []byte
	err    error // transport error, or reading the body failed
}

func (a answer) String() string {
	if a.err != nil && a.status == 0 {
		return "transport error: " + a.err.Error()
	}
	s := fmt.Sprintf("%d %s", a.status, a.code)
	if a.err != nil {
		s += fmt.Sprintf(" (body cut after %d bytes: %v)", len(a.body), a.err)
	}
	return s
}

var faultClient = &http.Client{Timeout: 3 * time.Minute}

// call sends one request and reads the whole answer.
func (s *server) call(token, method, path, requestID string, body io.Reader, header map[string]string) answer {
	req, err := http.NewRequest(method, s.base+"/api/v1"+path, body)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-ID", requestID)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	switch b := body.(type) {
	case *bytes.Reader:
		req.ContentLength = int64(b.Len())
	case *sized:
		req.ContentLength = b.n
	}
	res, err := faultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	a.body, a.err = io.ReadAll(res.Body)
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(a.body, &p)
		a.code = p.Code
	}
	return a
}

// logLines returns vaultd's log lines that mention the request id.
func logLines(s *server, rid string) string {
	var out []string
	for _, l := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(l, `"`+rid+`"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// expectOutage checks a 503 with the code and a Retry-After.
func expectOutage(t *testing.T, what string, a answer, code string) {
	t.Helper()
	t.Logf("%s: client sees %v", what, a)
	if a.status != http.StatusServiceUnavailable || a.code != code {
		t.Fatalf("%s: %v, want 503 %s", what, a, code)
	}
	if a.header.Get("Retry-After") == "" {
		t.Fatalf("%s: 503 without Retry-After", what)
	}
}

// TestAuditSurvivesPostgresCrash reads documents from 16 clients at once
// while PostgreSQL is killed (`pg_ctl stop -m immediate`) and started again,
// three times, on a server running with synchronous_commit=off and a WAL
// writer that flushes only every 10 s, and with a database URL that asks
// for asynchronous commits too: every read that returned the document must
// have its material.read event in the log afterwards. Meanwhile no request
// with a valid session may get 401, and no outage may answer 500; vaultd
// is never restarted.
func TestAuditSurvivesPostgresCrash(t *testing.T) {
	t.Parallel() // its services are its own; it mostly waits on them
	pg := startPostgres(t, "-c synchronous_commit=off -c wal_writer_delay=10000")
	s := newServer(t, backend{"private-postgres+local", func(testing.TB) []string {
		return []string{"VAULT_DATABASE_URL=" + pg.url() + "&synchronous_commit=off"}
	}})
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	_, docs := w.newCase(t, "MARKER-PGCRASH")
	var ids []string
	for id := range docs {
		ids = append(ids, id)
	}

	var (
		served   sync.Map // request id of every read that returned the whole document
		outcomes sync.Map // "status code" -> count, for the log
		bad      atomic.Value
	)
	note := func(a answer) {
		k := fmt.Sprintf("%d %s", a.status, a.code)
		if a.status == 0 {
			k = "transport error"
		}
		n, _ := outcomes.LoadOrStore(k, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	for round := range 3 {
		var ok, outage atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					rid := fmt.Sprintf("pgcrash-%d-%d-%d", round, g, i)
					id := ids[i%len(ids)]
					var a answer
					if i%4 == 3 {
						a = s.call(w.op.token, "GET", "/me", rid, nil, nil) // authentication alone
					} else {
						a = s.call(w.op.token, "GET", "/materials/"+id+"/content", rid, nil, nil)
					}
					note(a)
					switch {
					case a.status == 200 && a.err == nil:
						if i%4 != 3 {
							if !bytes.Equal(a.body, docs[id]) {
								bad.Store(fmt.Sprintf("%s: 200 with the wrong body", rid))
							}
							served.Store(rid, id)
						}
						ok.Add(1)
					case a.status == 503 && (a.code == "database_unavailable" || a.code == "audit_unavailable"):
						if a.header.Get("Retry-After") == "" {
							bad.Store(rid + ": 503 without Retry-After")
						}
						outage.Add(1)
						time.Sleep(20 * time.Millisecond) // no need to hammer a server that is down
					default:
						bad.Store(fmt.Sprintf("%s: %v during a database crash (want 200, or 503 database_unavailable/audit_unavailable)", rid, a))
					}
				}
			}()
		}
		// Kill the database while the reads are in full swing.
		for start := ok.Load(); ok.Load() < start+40; {
			time.Sleep(10 * time.Millisecond)
		}
		pg.crash()
		for outage.Load() < 16 {
			time.Sleep(10 * time.Millisecond)
		}
		pg.start()
		// Recovery without restarting vaultd: reads succeed again.
		for start := ok.Load(); ok.Load() < start+40; {
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if v := bad.Load(); v != nil {
			rid, _, _ := strings.Cut(v.(string), ":")
			t.Fatalf("%v\nvaultd's log of %s:\n%s", v, rid, logLines(s, rid))
		}
	}
	outcomes.Range(func(k, v any) bool { t.Logf("answers %q: %d", k, v.(*atomic.Int64).Load()); return true })

	logged := map[string]bool{}
	for _, e := range w.insp.events("action=material.read&outcome=allowed") {
		logged[e.RequestID] = true
	}
	missing, total := 0, 0
	served.Range(func(k, _ any) bool {
		total++
		if !logged[k.(string)] {
			missing++
			if missing <= 10 {
				t.Errorf("read %s returned the document but has no material.read event", k)
			}
		}
		return true
	})
	t.Logf("%d reads returned the document; %d of them missing from the log", total, missing)
	if total == 0 {
		t.Fatal("no read succeeded")
	}
	for _, e := range w.insp.events("action=auth&outcome=denied") {
		if strings.HasPrefix(e.RequestID, "pgcrash-") {
			t.Errorf("a valid session was logged as denied during the crash: %+v", e)
		}
	}
	s.stop()
	if out, errs, code := s.cli("", "audit", "verify"); code != 0 {
		t.Fatalf("audit verify after the crashes: exit %d: %s %s", code, out, errs)
	}
}

// s3Fixture is vaultd on the shared PostgreSQL and a private versitygw
// the test kills, with a janitor that runs every second.
type s3Fixture struct {
	s  *server
	s3 *s3Server
	w  *world
}

func newS3Fixture(t *testing.T) *s3Fixture {
	t.Helper()
	s3 := startS3(t)
	dbURL := sqldbtest.URL(t, "postgres")
	s := newServer(t, backend{"postgres+private-s3", func(testing.TB) []string {
		return append([]string{"VAULT_DATABASE_URL=" + dbURL}, s3.env()...)
	}}, "VAULT_JANITOR_INTERVAL=1s", "VAULT_JANITOR_GRACE=1s")
	w := bootstrap(t, s)
	s.start()
	w.loginAll(t)
	return &s3Fixture{s: s, s3: s3, w: w}
}

// noUploadsLeft waits until the bucket holds no unfinished multipart upload
// (the failed upload's own abort, or the janitor, removed it).
func (f *s3Fixture) noUploadsLeft(t *testing.T, after string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ups, err := f.s3.incompleteUploads()
		if err == nil && len(ups) == 0 {
			t.Logf("%s: no multipart upload left", after)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: multipart uploads left: %q (%v)", after, ups, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// recovered waits until vaultd serves the document again (no restart).
func (f *s3Fixture) recovered(t *testing.T, matID string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		a := f.s.call(f.w.op.token, "GET", "/materials/"+matID+"/content", "recovery", nil, nil)
		if a.status == 200 && bytes.Equal(a.body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaultd did not recover after S3 came back: %v", a)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (f *s3Fixture) upload(caseID, rid string, body io.Reader, size int64) answer {
	h := map[string]string{"Content-Type": "application/octet-stream"}
	req := fmt.Sprintf("/cases/%s/materials?kind=other&filename=%s.bin", caseID, rid)
	if size >= 0 {
		body = &sized{r: body, n: size}
	}
	return f.s.call(f.w.op.token, "POST", req, rid, body, h)
}

// sized gives call a known Content-Length for a reader of n bytes.
type sized struct {
	r io.Reader
	n int64
}

func (s *sized) Read(p []byte) (int, error) { return s.r.Read(p) }

func errorEvent(insp *client, rid string) *event {
	for _, e := range insp.events("outcome=error") {
		if e.RequestID == rid {
			return &e
		}
	}
	return nil
}

// TestS3Outages kills the S3 server before, during and after uploads and
// during a download, and vaultd during an upload: each client gets 503
// store_unavailable with Retry-After (a download already under way is cut
// short of its Content-Length), the audit log and the access log record each
// failure, no multipart upload is left once the failed upload or the
// janitor has cleaned up, and vaultd recovers without a restart.
func TestS3Outages(t *testing.T) {
	t.Parallel() // its services are its own; it mostly waits on them
	f := newS3Fixture(t)
	s, w := f.s, f.w
	caseID, docs := w.newCase(t, "MARKER-S3")
	big := make([]byte, 40<<20)
	g := newGen(int64(len(big)), 9, "MARKER-S3-BIG")
	if _, err := io.ReadFull(g, big); err != nil {
		t.Fatal(err)
	}
	var bigID string
	if a := f.upload(caseID, "big", bytes.NewReader(big), int64(len(big))); a.status != 201 {
		t.Fatalf("upload the big document: %v %s", a, a.body)
	} else {
		var m struct{ ID string }
		_ = json.Unmarshal(a.body, &m)
		bigID = m.ID
	}
	var smallID string
	for id := range docs {
		smallID = id
	}

	t.Run("before", func(t *testing.T) {
		f.s3.kill()
		// At once: each waits out the S3 client's retries against a dead server.
		calls := map[string]func() answer{
			"small upload with S3 down": func() answer {
				return f.upload(caseID, "s3down-small", bytes.NewReader([]byte("small")), 5)
			},
			"multipart upload with S3 down": func() answer {
				return f.upload(caseID, "s3down-big", bytes.NewReader(big[:20<<20]), -1)
			},
			"read with S3 down": func() answer {
				return s.call(w.op.token, "GET", "/materials/"+smallID+"/content", "s3down-read", nil, nil)
			},
			"range read with S3 down": func() answer {
				return s.call(w.op.token, "GET", "/materials/"+bigID+"/content", "s3down-range", nil, map[string]string{"Range": "bytes=1000-2000"})
			},
		}
		answers := make(map[string]answer)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for what, call := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := call()
				mu.Lock()
				answers[what] = a
				mu.Unlock()
			}()
		}
		wg.Wait()
		for what, a := range answers {
			expectOutage(t, what, a, "store_unavailable")
		}
		if a := s.call(w.op.token, "GET", "/materials/"+smallID, "s3down-meta", nil, nil); a.status != 200 {
			t.Fatalf("metadata needs no store, got %v", a)
		}
		for _, rid := range []string{"s3down-small", "s3down-big", "s3down-read", "s3down-range"} {
			if e := errorEvent(w.insp, rid); e == nil || e.Detail != "store_unavailable" {
				t.Errorf("%s: error event %+v, want one with detail store_unavailable", rid, e)
			}
		}
		f.s3.start()
		f.recovered(t, smallID, docs[smallID])
		if a := f.upload(caseID, "s3back", bytes.NewReader(big[:9<<20]), -1); a.status != 201 {
			t.Fatalf("upload after S3 came back: %v", a)
		}
		f.noUploadsLeft(t, "S3 down before the upload")
	})

	t.Run("during upload", func(t *testing.T) {
		src := &killAt{r: newGen(96<<20, 4, "MARKER-S3-CUT"), at: 24 << 20, kill: f.s3.kill}
		a := f.upload(caseID, "s3cut", src, 96<<20)
		t.Logf("upload cut by S3's death: client sees %v", a)
		if a.status != 0 || a.err == nil {
			expectOutage(t, "upload cut by S3's death", a, "store_unavailable")
		} else {
			// The server answered 503 and closed while the client was still
			// sending; not every client reads the answer then. The log says
			// what happened either way.
			t.Logf("the client's send failed before it read the answer: %v", a.err)
		}
		if _, ok := s.waitLog(t, `"msg":"http"`, `"request_id":"s3cut"`); !ok {
			t.Error("the access log has no line for the cut upload")
		}
		f.s3.start()
		f.recovered(t, smallID, docs[smallID])
		if e := errorEvent(w.insp, "s3cut"); e == nil || e.Detail != "store_unavailable" {
			t.Errorf("cut upload: error event %+v, want detail store_unavailable", e)
		}
		f.noUploadsLeft(t, "S3 killed during the upload")
		var l struct{ Items []struct{ Filename string } }
		w.op.expect(200, "GET", "/cases/"+caseID+"/materials", nil).json(t, &l)
		for _, m := range l.Items {
			if strings.HasPrefix(m.Filename, "s3cut") || strings.HasPrefix(m.Filename, "s3down") {
				t.Fatalf("a failed upload is listed: %s", m.Filename)
			}
		}
	})

	t.Run("after upload", func(t *testing.T) {
		a := f.upload(caseID, "s3after", bytes.NewReader(big[:12<<20]), -1)
		if a.status != 201 {
			t.Fatalf("upload: %v", a)
		}
		var m struct{ ID string }
		_ = json.Unmarshal(a.body, &m)
		f.s3.kill()
		expectOutage(t, "read of the new document with S3 down", s.call(w.op.token, "GET", "/materials/"+m.ID+"/content", "s3after-read", nil, nil), "store_unavailable")
		f.s3.start()
		f.recovered(t, m.ID, big[:12<<20])
		f.noUploadsLeft(t, "S3 killed after the upload")
	})

	t.Run("during download", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.base+"/api/v1/materials/"+bigID+"/content", nil)
		req.Header.Set("Authorization", "Bearer "+w.op.token)
		req.Header.Set("X-Request-ID", "s3download")
		res, err := faultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("download: %d", res.StatusCode)
		}
		head := make([]byte, 2<<20)
		if _, err := io.ReadFull(res.Body, head); err != nil {
			t.Fatal(err)
		}
		f.s3.kill()
		rest, err := io.ReadAll(res.Body)
		res.Body.Close()
		got := int64(len(head) + len(rest))
		t.Logf("download cut by S3's death: client got 200 and %d of %d bytes, then %v", got, res.ContentLength, err)
		if err == nil || got >= res.ContentLength {
			t.Fatalf("the download ended cleanly (%d of %d bytes, %v): a short body must not look whole", got, res.ContentLength, err)
		}
		if !bytes.Equal(head, big[:len(head)]) {
			t.Fatal("the bytes before the cut are not the document's")
		}
		f.s3.start()
		f.recovered(t, smallID, docs[smallID])
		var allowed, failed *event
		for _, e := range w.insp.events("action=material.read") {
			if e.RequestID == "s3download" {
				switch e.Outcome {
				case "allowed":
					allowed = &e
				case "error":
					failed = &e
				}
			}
		}
		if allowed == nil || failed == nil {
			t.Fatalf("cut download: allowed %+v, error %+v; want both", allowed, failed)
		}
		if failed.Resource != allowed.Resource || !strings.HasPrefix(failed.Detail, "store_unavailable bytes_sent=") {
			t.Fatalf("error event %+v does not match the read %+v", failed, allowed)
		}
		var line map[string]any
		if l, ok := s.waitLog(t, `"msg":"http"`, `"request_id":"s3download"`); ok {
			_ = json.Unmarshal([]byte(l), &line)
		}
		if line == nil || line["aborted"] != true || line["status"] != float64(200) {
			t.Fatalf("access log line of the cut download: %v", line)
		}
	})

	t.Run("vaultd killed during upload", func(t *testing.T) {
		src := &killAt{r: newGen(64<<20, 5, "MARKER-KILL"), at: 24 << 20, kill: s.kill}
		a := f.upload(caseID, "vaultdkill", src, 64<<20)
		if a.status == 201 {
			t.Fatal("the upload completed although vaultd was killed")
		}
		ups, err := f.s3.incompleteUploads()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after killing vaultd mid-upload: %d unfinished multipart uploads", len(ups))
		if len(ups) == 0 {
			t.Fatal("the kill left no multipart upload: the test did not kill mid-upload")
		}
		s.start()
		f.noUploadsLeft(t, "vaultd killed during an upload, then the janitor")
	})

	s.stop()
	if out, errs, code := s.cli("", "audit", "verify"); code != 0 {
		t.Fatalf("audit verify: exit %d: %s %s", code, out, errs)
	}
}

// killAt yields r and calls kill once at bytes have been read, pausing so
// what was sent reaches the server first.
type killAt struct {
	r    io.Reader
	at   int64
	n    int64
	kill func()
	done bool
}

func (k *killAt) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := k.r.Read(p)
	k.n += int64(n)
	if k.n >= k.at && !k.done {
		k.done = true
		time.Sleep(300 * time.Millisecond)
		k.kill()
	}
	return n, err
}

// TestLocalStoreDiskFull fills the filesystem under the local blob store (a
// small tmpfs): uploads answer 503 store_unavailable with Retry-After and
// leave no temp file, stored documents still read, and once there is room
// again uploads work, all without restarting vaultd.
func TestLocalStoreDiskFull(t *testing.T) {
	t.Parallel() // its services are its own; it mostly waits on them
	s := newServer(t, backends[0])
	blobtest.MountTmpfs(t, filepath.Join(s.data, "blobs"), 8<<20)
	w := bootstrap(t, s)
	s.start()
	defer s.stop() // before the tmpfs goes
	w.loginAll(t)
	caseID, docs := w.newCase(t, "MARKER-FULL")
	filler := filepath.Join(s.data, "blobs", ".filler")
	// Leave less room than the next document needs.
	if err := os.WriteFile(filler, bytes.Repeat([]byte{1}, 7<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := bytes.Repeat([]byte("MARKER-FULL "), 200<<10) // 2.4 MB
	expectOutage(t, "raw upload on a full disk", w.op.uploadRawAnswer(s, caseID, "full-raw", doc), "store_unavailable")
	form, hdr := multipartBody(t, "other", "full.txt", doc)
	expectOutage(t, "multipart upload on a full disk", s.call(w.op.token, "POST", "/cases/"+caseID+"/materials", "full-multipart", form, hdr), "store_unavailable")
	for id, want := range docs {
		if a := s.call(w.op.token, "GET", "/materials/"+id+"/content", "full-read", nil, nil); a.status != 200 || !bytes.Equal(a.body, want) {
			t.Fatalf("read on a full disk: %v", a)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.data, "blobs"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("a failed upload left %s", e.Name())
		}
	}
	if e := errorEvent(w.insp, "full-raw"); e == nil || e.Detail != "store_unavailable" {
		t.Fatalf("error event of the refused upload: %+v", e)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if a := w.op.uploadRawAnswer(s, caseID, "full-after", doc); a.status != 201 {
		t.Fatalf("upload once there is room again: %v", a)
	}
}

func (c *client) uploadRawAnswer(s *server, caseID, rid string, body []byte) answer {
	return s.call(c.token, "POST", fmt.Sprintf("/cases/%s/materials?kind=other&filename=%s.txt", caseID, rid), rid,
		bytes.NewReader(body), map[string]string{"Content-Type": "text/plain"})
}

// multipartBody builds a form with "kind" then "file"; the header map
// carries its content type. Returned as reader and header for call.
func multipartBody(t *testing.T, kind, filename string, doc []byte) (io.Reader, map[string]string) {
	t.Helper()
	const boundary = "faultboundary7MA4YWxkTrZu0gW"
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n%s\r\n", boundary, kind)
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\nContent-Type: text/plain\r\n\r\n", boundary, filename)
	b.Write(doc)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return bytes.NewReader(b.Bytes()), map[string]string{"Content-Type": "multipart/form-data; boundary=" + boundary}
}

// TestFaultConfig: the audit commit level and the janitor's timing are
// read, defaulted and checked.
func TestFaultConfig(t *testing.T) {
	load := func(env map[string]string) (config, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cf := registerConfigFlags(fs)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		return cf.load(fs, func(k string) string { return env[k] })
	}
	c, err := load(nil)
	if err != nil || c.AuditSyncCommit != "on" || c.JanitorInterval != time.Hour || c.JanitorGrace != 24*time.Hour || c.CheckpointInterval != 10*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = load(map[string]string{"VAULT_AUDIT_SYNC_COMMIT": "remote_apply", "VAULT_JANITOR_INTERVAL": "5m", "VAULT_JANITOR_GRACE": "48h",
		"VAULT_CHECKPOINT_INTERVAL": "2s", "VAULT_DATA_DIR": t.TempDir()})
	if err != nil || c.AuditSyncCommit != "remote_apply" || c.JanitorInterval != 5*time.Minute || c.JanitorGrace != 48*time.Hour || c.CheckpointInterval != 2*time.Second {
		t.Fatalf("from the environment: %+v %v", c, err)
	}
	// The interval reaches the audit log's checkpointer.
	if o, err := auditOptions(t.Context(), c, slog.New(slog.DiscardHandler), false); err != nil || o.CheckpointEvery != 2*time.Second {
		t.Fatalf("audit options: checkpoint every %v, %v; want 2s", o.CheckpointEvery, err)
	}
	for k, v := range map[string]string{"VAULT_AUDIT_SYNC_COMMIT": "off", "VAULT_JANITOR_GRACE": "0s", "VAULT_JANITOR_INTERVAL": "soon", "VAULT_CHECKPOINT_INTERVAL": "0s"} {
		if _, err := load(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v, want a refusal naming it", k, v, err)
		}
	}
}
