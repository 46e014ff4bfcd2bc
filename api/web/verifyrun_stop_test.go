package web

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// A run the server stops (or that loses the database) before
// it has read the log is shown, and logged, as a broken log (tampering),
// not as a run that could not finish.
func TestVerifierStoppedRunIsNotBroken(t *testing.T) {
	db := sqldbtest.Open(t, "sqlite")
	if err := audit.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(context.Background(), db, audit.Options{KeyDir: t.TempDir(), CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	for i := range 5 {
		if _, err := l.Append(context.Background(), audit.Event{Actor: "u", ActorOrg: "o", Action: "case.read", Outcome: audit.Allowed, Resource: "r", RequestID: "x"}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	server, stop := context.WithCancel(context.Background())
	// The server stops (SIGTERM) just as the run starts reading.
	verify := func(ctx context.Context, progress func(checked, total int64)) (audit.Report, error) {
		return l.VerifyProgress(ctx, func(checked, total int64) {
			progress(checked, total)
			if checked == 0 {
				stop()
			}
		})
	}
	v := NewVerifier(server, verify, time.Minute, slog.New(slog.DiscardHandler))
	run, _, err := v.Start("u-1", "org-1")
	if err != nil {
		t.Fatal(err)
	}
	v.Wait(context.Background(), run.ID, 5*time.Second)
	v.Close()
	_, last := v.Status()
	if last == nil {
		t.Fatal("no result")
	}
	if last.Broken {
		t.Errorf("a run stopped by the server is shown as a broken log: Broken=%v Failure=%q", last.Broken, last.Failure)
	}
}
