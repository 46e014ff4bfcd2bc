package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TestExitStatusOfProblems: each kind of refusal has its own exit status,
// and the error is one line carrying the server's code.
func TestExitStatusOfProblems(t *testing.T) {
	status := map[string]int{"a401": 401, "a403": 403, "a404": 404, "a409": 409, "a422": 422, "a429": 429, "a503": 503, "a500": 500}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/cases/")
		st := status[id]
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(st)
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "x", "title": "t", "status": st, "code": "code_" + id, "detail": "multi\nline detail"})
	}))
	defer srv.Close()
	env := map[string]string{"VAULTCTL_SERVER": srv.URL, "VAULTCTL_TOKEN": "t", "XDG_CONFIG_HOME": t.TempDir()}
	for id, want := range map[string]int{"a401": exitAuth, "a403": exitDenied, "a404": exitNotFound, "a409": exitRefused, "a422": exitRefused,
		"a429": exitRefused, "a503": exitServer, "a500": exitServer} {
		// Flags after the argument, as before it.
		code, _, errs := runCtl(t, env, "", "cases", "show", id, "--json")
		if code != want || !strings.Contains(errs, "code_"+id) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%s: exit %d, want %d; stderr %q", id, code, want, errs)
		}
	}
	if code, _, errs := runCtl(t, map[string]string{"VAULTCTL_SERVER": srv.URL, "XDG_CONFIG_HOME": t.TempDir()}, "", "cases", "list"); code != exitAuth || !strings.Contains(errs, "not signed in") {
		t.Errorf("no token: exit %d %q", code, errs)
	}
	if code, _, errs := runCtl(t, map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, "", "cases", "list"); code != exitUsage || !strings.Contains(errs, "--server") {
		t.Errorf("no server: exit %d %q", code, errs)
	}
	if code, out, _ := runCtl(t, nil, "", "upload", "--help"); code != 0 || !strings.Contains(out, "--resume") || !strings.Contains(out, "7  server error") {
		t.Errorf("upload --help: exit %d %q", code, out)
	}
}

// fakeUploads is a resumable upload server in memory that fails the first
// chunks as the test says (503 store_unavailable, or keeping only part of
// a chunk and answering malformed_body), to drive vaultctl's retries.
type fakeUploads struct {
	mu      sync.Mutex
	data    []byte
	size    int64
	fail503 int // PATCHes to refuse with 503
	keep    int // on the next PATCH, keep only this many bytes (0: all)
	patches int
}

func (f *fakeUploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	session := func() map[string]any {
		m := map[string]any{"id": "up1", "case_id": "c1", "kind": "other", "filename": "f", "offset": len(f.data), "status": "open", "size": f.size}
		if int64(len(f.data)) == f.size {
			sum := sha256.Sum256(f.data)
			m["status"] = "completed"
			m["material"] = map[string]any{"id": "m1", "size": f.size, "sha256": hex.EncodeToString(sum[:])}
		}
		return m
	}
	problem := func(st int, code string) {
		w.Header().Set("Upload-Offset", strconv.Itoa(len(f.data)))
		w.WriteHeader(st)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": st, "code": code, "offset": len(f.data)})
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/cases/c1/uploads":
		var req struct {
			Size int64 `json:"size"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.size = req.Size
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(session())
	case r.Method == "HEAD" && r.URL.Path == "/api/v1/uploads/up1":
		w.Header().Set("Upload-Offset", strconv.Itoa(len(f.data)))
	case r.Method == "GET" && r.URL.Path == "/api/v1/uploads/up1":
		_ = json.NewEncoder(w).Encode(session())
	case r.Method == "PATCH" && r.URL.Path == "/api/v1/uploads/up1":
		f.patches++
		if f.fail503 > 0 {
			f.fail503--
			w.Header().Set("Retry-After", "1")
			problem(503, "store_unavailable")
			return
		}
		if off, _ := strconv.Atoi(r.Header.Get("Upload-Offset")); off != len(f.data) {
			problem(409, "upload_offset_mismatch")
			return
		}
		body, _ := io.ReadAll(r.Body)
		if f.keep > 0 {
			f.data = append(f.data, body[:f.keep]...)
			f.keep = 0
			problem(400, "malformed_body")
			return
		}
		f.data = append(f.data, body...)
		_ = json.NewEncoder(w).Encode(session())
	default:
		w.WriteHeader(404)
	}
}

// TestUploadRetries: a store that is unavailable for a moment, and a
// chunk of which the server kept only part, are both ridden out; the
// document arrives whole and its SHA-256 is checked.
func TestUploadRetries(t *testing.T) {
	f := &fakeUploads{fail503: 1, keep: 1000}
	srv := httptest.NewServer(f)
	defer srv.Close()
	doc := []byte(strings.Repeat("0123456789", 10000))
	path := filepath.Join(t.TempDir(), "doc.bin")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VAULTCTL_SERVER": srv.URL, "VAULTCTL_TOKEN": "t", "XDG_CONFIG_HOME": t.TempDir()}
	code, out, errs := runCtl(t, env, "", "upload", "c1", path, "--kind", "other")
	if code != 0 || strings.TrimSpace(out) != "m1" || string(f.data) != string(doc) {
		t.Fatalf("exit %d, out %q, stderr %q; server holds %d bytes", code, out, errs, len(f.data))
	}
	if f.patches != 3 || strings.Count(errs, "retrying") != 2 {
		t.Fatalf("%d PATCHes, stderr %q", f.patches, errs)
	}
	// Without retries, the first failure ends it, saying how to resume.
	f2 := &fakeUploads{fail503: 1}
	srv2 := httptest.NewServer(f2)
	defer srv2.Close()
	env["VAULTCTL_SERVER"] = srv2.URL
	code, _, errs = runCtl(t, env, "", "upload", "c1", path, "--kind", "other", "--retries", "0")
	if code != exitServer || !strings.Contains(errs, "store_unavailable") || !strings.Contains(errs, "--resume up1") {
		t.Fatalf("no retries: exit %d %q", code, errs)
	}
}

// TestServerTextCannotDriveTheTerminal: whatever text a server sends back
// (a case title typed by another party, an error's detail, an account
// name), vaultctl prints it as text: no escape sequence, no C1 control,
// no bidirectional override reaches the terminal, and a table row stays
// one line.
func TestServerTextCannotDriveTheTerminal(t *testing.T) {
	const evil = "A\x1b]52;c;cGF5bG9hZA==\x07\x1b[2J\u009b31m\u202eB\x7f\r\nC\xff"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/cases":
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{{"id": "c1" + evil, "title": evil, "status": evil, "type": evil}}, "next_cursor": ""})
		case "/api/v1/cases/c1":
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "c1", "title": evil, "product": evil, "status": evil, "type": evil, "edition": evil,
				"operator_org": evil, "providers": []string{evil}})
		case "/api/v1/cases/c1/materials":
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{{"id": "m1", "kind": evil, "filename": evil}}, "next_cursor": ""})
		case "/api/v1/me":
			_ = json.NewEncoder(w).Encode(map[string]any{"id": evil, "username": evil, "org": evil, "roles": []string{evil}})
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": 409, "code": "x" + evil, "detail": evil, "missing": []string{evil}})
		}
	}))
	defer srv.Close()
	env := map[string]string{"VAULTCTL_SERVER": srv.URL, "VAULTCTL_TOKEN": "t", "XDG_CONFIG_HOME": t.TempDir()}
	for _, args := range [][]string{{"cases", "list"}, {"cases", "show", "c1"}, {"whoami"}, {"cases", "submit", "c2"}} {
		_, out, errs := runCtl(t, env, "", args...)
		if !strings.Contains(out+errs, "A") {
			t.Fatalf("%v printed nothing of the server's text: %q %q", args, out, errs)
		}
		for _, printed := range []string{out, errs} {
			for i, r := range printed {
				if (unicode.Is(unicode.Cc, r) && r != '\n') || unicode.Is(unicode.Bidi_Control, r) {
					t.Errorf("%v printed %U at %d: %q", args, r, i, printed)
					break
				}
			}
			if !utf8.ValidString(printed) {
				t.Errorf("%v printed bytes that are not UTF-8: %q", args, printed)
			}
		}
		if len(args) == 2 && args[1] == "list" {
			if lines := strings.Count(out, "\n"); lines != 2 {
				t.Errorf("cases list: %d lines for one case: %q", lines, out)
			}
		}
	}
	// A downloaded file's name from the server is a plain, visible name.
	if got := safeName("..\\evil\u202egpj.exe\u009b", "m1"); got != "evilgpj.exe" {
		t.Errorf("safeName = %q", got)
	}
}
