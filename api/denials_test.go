package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestDenialLogCountsExactly: identical denials from one client in a minute
// are one event written at once plus one summary with the exact count of
// the rest; other clients and other refusals are kept apart.
func TestDenialLogCountsExactly(t *testing.T) {
	ctx := context.Background()
	db := sqldbtest.Open(t, "sqlite")
	if err := audit.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(ctx, db, audit.Options{KeyDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close(ctx) })
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 9, 0, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d := NewDenialLog(log, slog.New(slog.DiscardHandler), clock)
	deny := func(ip, detail string) {
		t.Helper()
		if err := d.Record(ctx, audit.Event{Action: "auth", Outcome: audit.Denied, Resource: "GET /api/v1/cases", IP: ip, Detail: detail}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() map[string]int {
		evs, _, err := log.Query(ctx, audit.Filter{Action: "auth", Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, e := range evs {
			n := 1
			base, rest, ok := strings.Cut(e.Detail, ";repeated=")
			if ok {
				fmt.Sscanf(rest, "%d", &n)
			}
			got[e.IP+" "+base] += n
			got["events"]++
		}
		return got
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				deny("203.0.113.9", "invalid_token")
			}
		}()
	}
	wg.Wait()
	deny("203.0.113.9", "missing_token")
	deny("2001:db8::1", "invalid_token")
	deny("2001:db8::2", "invalid_token") // the same /64: the same client
	if got := count(); got["events"] > 3+4 {
		t.Fatalf("%d events written during the minute: %v", got["events"], got)
	}
	// Nothing of a minute still running is flushed early...
	if err := d.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	deny("203.0.113.9", "invalid_token") // a new minute: written at once
	if err := d.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	got := count()
	if got["203.0.113.9 invalid_token"] != 101 || got["203.0.113.9 missing_token"] != 1 || got["2001:db8::1 invalid_token"]+got["2001:db8::2 invalid_token"] != 2 {
		t.Fatalf("counts %v", got)
	}
	if got["events"] > 3+4+2 {
		t.Fatalf("%d events for 105 denials", got["events"])
	}
	deny("203.0.113.9", "invalid_token")
	if err := d.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := count(); got["203.0.113.9 invalid_token"] != 102 {
		t.Fatalf("after the final flush: %v", got)
	}
}
