package main

import (
	"bytes"
	"context"
	"io"
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
			code, out, errs := runCtl(t, nil, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out, errs)
			}
			if !strings.Contains(out, tc.out) {
				t.Fatalf("stdout %q lacks %q", out, tc.out)
			}
		})
	}
}

// runCtl runs vaultctl in-process with the given environment and input.
func runCtl(t *testing.T, envVars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv:       func(k string) string { return envVars[k] },
		isTerminal:   func(any) bool { return false },
		readPassword: func() (string, error) { return "", io.EOF }}
	code := run(context.Background(), args, e)
	return code, out.String(), errb.String()
}
