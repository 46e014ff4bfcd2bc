package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFlagsAfterArguments: every vaultd subcommand reads its flags wherever
// they stand, before or after its arguments; "--" ends the flags; commands
// that take no arguments refuse them instead of dropping what follows.
func TestFlagsAfterArguments(t *testing.T) {
	// A flag left unread would put the database in ./vault-data: run where
	// that would show and harm nothing.
	t.Chdir(t.TempDir())
	data := t.TempDir()
	date := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}\n$`)

	code, before := runVaultd(t, nil, "calendar", "workdays-after", "--data", data, "2025-09-26", "10")
	if code != 0 || !date.MatchString(before) {
		t.Fatalf("flags first: exit %d: %q", code, before)
	}
	code, after := runVaultd(t, nil, "calendar", "workdays-after", "2025-09-26", "10", "--data", data)
	if code != 0 || after != before {
		t.Fatalf("flags after the arguments: exit %d: %q, want %q", code, after, before)
	}
	if _, err := os.Stat(filepath.Join(data, "vault.db")); err != nil {
		t.Fatalf("--data after the arguments was not used: %v", err)
	}
	if _, err := os.Stat("vault-data"); err == nil {
		t.Fatal("a flag after the arguments was ignored: ./vault-data was created")
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"flag between arguments", []string{"calendar", "workdays-after", "2025-09-26", "--data", data, "10"}, 0, before},
		{"is-workday, flag after", []string{"calendar", "is-workday", "2025-10-01", "--data", data}, 1, "no"},
		{"double dash ends the flags", []string{"calendar", "is-workday", "--data", data, "--", "2025-09-28"}, 0, "yes"},
		{"org add, flags in any order", []string{"org", "add", "--name", "Review Office", "--data", data, "--kind", "office"}, 0, ""},
		{"org add refuses an argument", []string{"org", "add", "--name", "Grid", "stray", "--kind", "operator", "--data", data}, 2, "takes no arguments"},
		{"unknown flag after an argument", []string{"calendar", "is-workday", "2025-10-01", "--bogus"}, 2, "flag provided but not defined"},
		{"help", []string{"calendar", "status", "--help"}, 0, "-data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runVaultd(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(out, strings.TrimSpace(tc.out)) {
				t.Fatalf("exit %d, want %d: %q (want %q in it)", code, tc.code, out, tc.out)
			}
		})
	}
	if code, out := runVaultd(t, nil, "org", "add", "--name", "Grid", "--kind", "operator", "--data", data); code != 0 {
		t.Fatalf("the refused org was created after all, or the store broke: exit %d %q", code, out)
	}
}

// TestGroupHelp: "vaultd keys -h" (and every other way of asking, on every
// command group) lists the group's commands and exits 0, as a command's
// own -h lists its flags; a group without a command, or with an unknown
// one, is a usage error (exit 2) that lists them too.
func TestGroupHelp(t *testing.T) {
	t.Chdir(t.TempDir()) // nothing here may create ./vault-data
	for _, group := range groups {
		for _, ask := range []string{"-h", "-help", "--help", "help"} {
			code, out := runVaultd(t, nil, group, ask)
			if code != 0 || !strings.HasPrefix(out, "usage: vaultd "+group+" <command>") {
				t.Errorf("vaultd %s %s: exit %d: %q", group, ask, code, out)
				continue
			}
			for _, line := range strings.Split(usage, "\n")[1:] {
				if listed := strings.Contains(out, line); listed != strings.HasPrefix(strings.TrimSpace(line), group+" ") {
					t.Errorf("vaultd %s %s: line %q listed: %v", group, ask, line, listed)
				}
			}
		}
		for _, args := range [][]string{{group}, {group, "bogus"}} {
			if code, out := runVaultd(t, nil, args...); code != 2 || !strings.Contains(out, "usage: vaultd "+group+" <command>") {
				t.Errorf("vaultd %s: exit %d: %q", strings.Join(args, " "), code, out)
			}
		}
	}
	for _, ask := range []string{"-h", "-help", "--help", "help"} {
		if code, out := runVaultd(t, nil, ask); code != 0 || !strings.HasPrefix(out, usage) {
			t.Errorf("vaultd %s: exit %d: %q", ask, code, out)
		}
	}
	if _, err := os.Stat("vault-data"); err == nil {
		t.Fatal("asking for help opened a vault")
	}
}

// TestMigrationsLogJSON: a command other than serve that migrates a fresh
// database logs the migrations as the JSON lines every log line is
// (docs/configuration.md), through its own logger, not slog's default.
func TestMigrationsLogJSON(t *testing.T) {
	t.Chdir(t.TempDir())
	data := t.TempDir()
	code, out := runVaultd(t, []string{"VAULT_DATA_DIR=" + data, "VAULT_LOG_LEVEL=info"}, "keys", "status")
	if code != 0 {
		t.Fatalf("keys status: exit %d: %s", code, out)
	}
	migrated := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "schema migrated") {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil || e["msg"] != "schema migrated" || e["component"] == nil {
			t.Errorf("not a JSON log line: %q", line)
		}
		migrated++
	}
	if migrated == 0 {
		t.Fatalf("no migration logged by the command:\n%s", out)
	}
}
