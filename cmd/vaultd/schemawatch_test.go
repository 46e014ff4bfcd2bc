package main

import (
	"strings"
	"testing"
	"time"
)

// TestServingInstanceStopsWhenANewerVaultdMigrates: an upgrade's new binary
// migrates the database while an old instance still serves. The old one
// must stop serving (it would write rows the new schema refuses and read
// columns moved under its prepared statements), say why, and not come back
// on the old binary.
func TestServingInstanceStopsWhenANewerVaultdMigrates(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, be)
			s.start()
			if r := s.do(t, "", "GET", "/healthz", nil, nil); r.Status != 200 {
				t.Fatalf("healthz before the migration: %d", r.Status)
			}
			// What a newer vaultd's migrations leave behind: first a step
			// marked to keep older instances, which this one serves on
			// beside (a rolling upgrade), then one that must stop them.
			newerStep := func(stopsOlder string) {
				s.sql(t, `INSERT INTO schema_migrations (component, version, name, applied_at, stops_older)
					SELECT component, MAX(version) + 1, 'a newer vaultd''s step', CURRENT_TIMESTAMP, `+stopsOlder+` FROM schema_migrations
					WHERE component = 'vault' GROUP BY component`)
			}
			newerStep("false")
			select {
			case <-s.exited:
				t.Fatalf("vaultd stopped for a step that keeps older instances:\n%s", tail(s.log.String(), 4000))
			case <-time.After(3 * schemaWatchEvery):
			}
			if r := s.do(t, "", "GET", "/healthz", nil, nil); r.Status != 200 {
				t.Fatalf("healthz after a step that keeps older instances: %d", r.Status)
			}
			newerStep("true")
			cmd := s.cmd
			select {
			case <-s.exited:
			case <-time.After(20 * time.Second):
				t.Fatalf("vaultd still serves 20 s after a newer vaultd migrated its database:\n%s", tail(s.log.String(), 4000))
			}
			s.cmd = nil
			if code := cmd.ProcessState.ExitCode(); code == 0 {
				t.Errorf("vaultd stopped with status 0; an instance stopped by an upgrade must not look like a clean stop")
			}
			log := s.log.String()
			if !strings.Contains(log, "migrated by a newer vaultd") || !strings.Contains(log, `"component":"vault"`) {
				t.Errorf("the log does not say why vaultd stopped:\n%s", tail(log, 4000))
			}
			// The old binary stays down: it refuses the newer schema.
			err := s.startOnce()
			if err == nil {
				t.Fatal("the old vaultd started again on the migrated database")
			}
			if !strings.Contains(err.Error(), "newer than this binary") {
				t.Fatalf("restart on the old binary: %v", err)
			}
		})
	}
}
