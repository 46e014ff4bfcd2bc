package web

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crvault/crvault/access"
	"github.com/crvault/crvault/audit"
)

// blockingVerify is a verification that reports progress, then waits to be
// released (or for its context), and counts how many runs were started.
type blockingVerify struct {
	started  atomic.Int32
	returned atomic.Int32
	release  chan error
}

func (b *blockingVerify) verify(ctx context.Context, progress func(checked, total int64)) (audit.Report, error) {
	b.started.Add(1)
	defer b.returned.Add(1)
	progress(0, 200)
	progress(50, 200)
	select {
	case err := <-b.release:
		if err != nil {
			return audit.Report{}, err
		}
		return audit.Report{From: 1, To: 200, TreeSize: 200, Covered: 200, Checkpoints: 3, Witnessed: 7}, nil
	case <-ctx.Done():
		return audit.Report{}, ctx.Err()
	}
}

func quietVerifier(ctx context.Context, b *blockingVerify, timeout time.Duration) *Verifier {
	return NewVerifier(ctx, b.verify, timeout, slog.New(slog.DiscardHandler))
}

// TestVerifierOneRunAtATime: a press starts a run in the background; a
// second press while it runs gets that run, not a second one; the status
// shows its progress, then its result, who started it and when; a press
// after it ended starts a new one.
func TestVerifierOneRunAtATime(t *testing.T) {
	b := &blockingVerify{release: make(chan error)}
	v := quietVerifier(context.Background(), b, time.Minute)
	defer v.Close()
	run, started, err := v.Start("u-1", "org-1")
	if err != nil || !started || run.ID != 1 || run.By != "u-1" || run.ByOrg != "org-1" || run.Started.IsZero() {
		t.Fatalf("first press: %+v %v %v", run, started, err)
	}
	again, started, err := v.Start("u-2", "org-2")
	if err != nil || started || again.ID != 1 || again.By != "u-1" {
		t.Fatalf("second press while running: %+v %v %v; want run 1, not started", again, started, err)
	}
	waitFor(t, func() bool { r, _ := v.Status(); return r != nil && r.Checked == 50 })
	running, last := v.Status()
	if running.Total != 200 || running.Percent() != 25 || !running.Running() || last != nil {
		t.Fatalf("status while running: %+v %+v", running, last)
	}
	b.release <- nil
	v.Wait(context.Background(), 1, time.Minute)
	running, last = v.Status()
	if running != nil || last == nil || last.Report == nil || last.Report.Witnessed != 7 || last.Running() || last.Failure != "" ||
		last.By != "u-1" || last.Ended.Before(last.Started) || last.Checked != 200 {
		t.Fatalf("status after the run: %+v %+v", running, last)
	}
	if n := b.started.Load(); n != 1 {
		t.Fatalf("%d runs started, want 1", n)
	}
	run, started, err = v.Start("u-2", "org-2")
	if err != nil || !started || run.ID != 2 {
		t.Fatalf("press after the run ended: %+v %v %v", run, started, err)
	}
	b.release <- &audit.VerifyError{Seq: 9, Reason: "content does not match its hash"}
	v.Wait(context.Background(), 2, time.Minute)
	if _, last := v.Status(); last.ID != 2 || !last.Broken || last.Report != nil || !strings.Contains(last.Failure, "at seq 9") {
		t.Fatalf("a run that found tampering: %+v", last)
	}
}

// TestVerifierBoundedAndStopped: a run ends at its timeout, saying it did
// not finish (not that the log is broken), and one in progress stops when
// the server's context ends; Close waits for it, leaving no goroutine, and
// nothing starts after.
func TestVerifierBoundedAndStopped(t *testing.T) {
	b := &blockingVerify{release: make(chan error)}
	v := quietVerifier(context.Background(), b, 50*time.Millisecond)
	run, _, _ := v.Start("u-1", "org-1")
	v.Wait(context.Background(), run.ID, time.Minute)
	if _, last := v.Status(); last == nil || last.Broken || !strings.Contains(last.Failure, "not finished within 50ms") {
		t.Fatalf("a run past its timeout: %+v", last)
	}
	v.Close()

	ctx, cancel := context.WithCancel(context.Background())
	v = quietVerifier(ctx, b, time.Hour)
	if _, started, err := v.Start("u-1", "org-1"); !started || err != nil {
		t.Fatal(started, err)
	}
	waitFor(t, func() bool { return b.started.Load() == 2 })
	cancel() // the server stops
	v.Close()
	if b.returned.Load() != 2 {
		t.Fatal("Close returned before the run ended")
	}
	if _, last := v.Status(); last == nil || !strings.Contains(last.Failure, "shutting down") {
		t.Fatalf("a run stopped with the server: %+v", last)
	}
	if _, _, err := v.Start("u-1", "org-1"); err == nil {
		t.Fatal("a run started after the verifier was closed")
	}
}

// TestAuditPageShowsVerification: the audit page shows a running
// verification's progress and who started it, and the last one's result:
// passed, tampering found, or not finished, in both languages.
func TestAuditPageShowsVerification(t *testing.T) {
	e, cat := viewsAndCatalogue(t)
	at := time.Date(2031, 5, 1, 2, 0, 0, 0, time.UTC)
	people := map[string]person{"u-1": {Name: "检查员甲"}, "org-1": {Name: "监督组"}}
	for _, tag := range languages {
		L := cat.locale(tag)
		for _, c := range []struct {
			running, last *VerifyRun
			want          []string
		}{
			{&VerifyRun{ID: 1, By: "u-1", ByOrg: "org-1", Started: at, Checked: 50, Total: 200}, nil,
				[]string{`id="verify-running"`, L.T("audit.verify_running", "Checked", 50, "Total", 200, "Percent", 25), "检查员甲", "监督组", L.T("audit.verify_show")}},
			{nil, &VerifyRun{ID: 1, By: "u-1", ByOrg: "org-1", Started: at, Ended: at.Add(time.Minute), Report: &audit.Report{TreeSize: 200, Checkpoints: 3, Witnessed: 7, Covered: 200}},
				[]string{`id="verified"`, L.T("audit.verified", "Size", 200, "Checkpoints", 3, "Witnessed", 7, "Covered", 200), `id="verify-last"`, L.Time(at.Add(time.Minute)), L.T("audit.verify")}},
			{nil, &VerifyRun{ID: 1, By: "u-1", Started: at, Ended: at, Broken: true, Failure: "seq 9 forged"},
				[]string{`id="verify-failed"`, "seq 9 forged"}},
			{nil, &VerifyRun{ID: 1, By: "u-1", Started: at, Ended: at, Failure: "not finished within 4h0m0s"},
				[]string{`id="verify-incomplete"`, "not finished within 4h0m0s"}},
		} {
			p := &page{L: L, User: &access.User{DisplayName: "x"}, Roles: []string{"inspector"},
				Data: auditView{Filter: map[string]string{}, Checkpoint: &checkpointView{Size: "200"}, Verifying: c.running, Verified: c.last, People: people}}
			var b strings.Builder
			if err := e.views["audit"].Execute(&b, p); err != nil {
				t.Fatalf("%s: %v", tag, err)
			}
			page := b.String()
			for _, want := range c.want {
				if !strings.Contains(page, want) && !strings.Contains(page, htmlEscape(want)) {
					t.Errorf("%s: audit page lacks %q", tag, want)
				}
			}
		}
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for range 500 {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("timed out")
}

// TestVerifierRecordsResults: each ended run reaches the recorder once, with
// its result: passed, tampering found, or not finished.
func TestVerifierRecordsResults(t *testing.T) {
	b := &blockingVerify{release: make(chan error)}
	var mu sync.Mutex
	var got []VerifyRun
	v := quietVerifier(context.Background(), b, time.Minute).RecordResults(func(_ context.Context, run VerifyRun) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, run)
		return nil
	})
	defer v.Close()
	for i, release := range []error{nil, &audit.VerifyError{Seq: 9, Reason: "content does not match its hash"}, errors.New("database gone")} {
		run, _, err := v.Start("u-1", "org-1")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return b.started.Load() == int32(i+1) })
		b.release <- release
		v.Wait(context.Background(), run.ID, time.Minute)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0].Report == nil || got[0].Report.TreeSize != 200 || !got[1].Broken || got[2].Broken || got[2].Report != nil ||
		got[2].Failure == "" || got[0].By != "u-1" || got[2].Running() {
		t.Fatalf("recorded %+v", got)
	}
}
