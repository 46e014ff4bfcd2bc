package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The golden files come from the audit package's golden test: a real log's
// export, checkpoint and key. This test touches no database.
const golden = "../../audit/testdata/"

func TestAuditVerifyOffline(t *testing.T) {
	exp, err := os.ReadFile(golden + "golden-export.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(golden + "golden-key.pub")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.ndjson", exp)
	edited := write("edited.ndjson", bytes.Replace(exp, []byte(`"purpose":"网络安全审查"`), []byte(`"purpose":"other"`), 1))
	ck := golden + "golden-checkpoint.txt"
	otherKey := "crvault.audit+ab9d452a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG5"
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"ok with key file", []string{"audit", "verify", "--export", good, "--checkpoint", ck, "--key", golden + "golden-key.pub"}, 0, "OK: events 1..4 verified, tree size 4"},
		{"ok with key text and old checkpoint", []string{"audit", "verify", "--export", good, "--checkpoint", ck, "--key", strings.TrimSpace(string(key)), "--old-checkpoint", ck}, 0, "checkpoints matched 2"},
		{"edited entry", []string{"audit", "verify", "--export", edited, "--checkpoint", ck, "--key", golden + "golden-key.pub"}, 1, "FAIL: first bad entry seq 3: content does not match"},
		{"wrong key", []string{"audit", "verify", "--export", good, "--checkpoint", ck, "--key", otherKey}, 1, "FAIL: checkpoint"},
		{"missing flag", []string{"audit", "verify", "--export", good}, 2, ""},
		{"unknown command", []string{"cases"}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Fatalf("stdout %q lacks %q", out.String(), tc.out)
			}
		})
	}
}
