package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vault.yaml")
	os.WriteFile(file, []byte("addr: 127.0.0.1:7001\ndata: /from/file\ns3_bucket: file-bucket\nsession_idle: 2h\n"), 0o600)
	env := map[string]string{"VAULT_ADDR": "127.0.0.1:7002", "VAULT_S3_BUCKET": "env-bucket"}
	getenv := func(k string) string { return env[k] }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cf := registerConfigFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--addr", "127.0.0.1:7003"}); err != nil {
		t.Fatal(err)
	}
	c, err := cf.load(fs, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7003" || c.S3Bucket != "env-bucket" || c.DataDir != "/from/file" || c.SessionIdle != 2*time.Hour {
		t.Fatalf("precedence flags > env > file broken: %+v", c)
	}
	if c.DatabaseURL != "sqlite:/from/file/vault.db" {
		t.Fatalf("default database under the data dir: %q", c.DatabaseURL)
	}
	os.WriteFile(file, []byte("adress: typo\n"), 0o600)
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	cf = registerConfigFlags(fs)
	fs.Parse([]string{"--config", file})
	if _, err := cf.load(fs, getenv); err == nil {
		t.Fatal("an unknown key in the config file was accepted")
	}
	env["VAULT_S3_TLS"] = "perhaps"
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	cf = registerConfigFlags(fs)
	fs.Parse(nil)
	if _, err := cf.load(fs, getenv); err == nil || !strings.Contains(err.Error(), "VAULT_S3_TLS") {
		t.Fatalf("bad boolean not named: %v", err)
	}
	delete(env, "VAULT_S3_TLS")
	for level, ok := range map[string]bool{"debug": true, "WARN": true, "error": true, "loud": false, "info+4": false, "": true} {
		env["VAULT_LOG_LEVEL"] = level
		fs = flag.NewFlagSet("t", flag.ContinueOnError)
		cf = registerConfigFlags(fs)
		fs.Parse(nil)
		if _, err := cf.load(fs, getenv); (err == nil) != ok || !ok && !strings.Contains(err.Error(), "VAULT_LOG_LEVEL") {
			t.Errorf("log level %q: %v", level, err)
		}
	}
}

func TestListenCheck(t *testing.T) {
	for _, tc := range []struct {
		c  config
		ok bool
	}{
		{config{Addr: "127.0.0.1:8080"}, true},
		{config{Addr: "[::1]:8080"}, true},
		{config{Addr: "localhost:8080"}, true},
		{config{Addr: "0.0.0.0:8080"}, false},
		{config{Addr: ":8080"}, false},
		{config{Addr: "10.1.2.3:8080"}, false},
		{config{Addr: "0.0.0.0:8080", InsecureHTTP: true}, true},
		{config{Addr: "0.0.0.0:8443", TLSCert: "c", TLSKey: "k"}, true},
	} {
		if err := tc.c.checkListen(); (err == nil) != tc.ok {
			t.Errorf("%+v: err %v", tc.c, err)
		}
	}
}

func runVaultd(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	getenv := func(k string) string {
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, k+"="); ok {
				return v
			}
		}
		return ""
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, strings.NewReader(""), &out, &errb, getenv)
	return code, out.String() + errb.String()
}

// TestServeRefusals: plain HTTP on a public address, and a database that a
// newer vaultd migrated, each stop the server with one clear line.
func TestServeRefusals(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	code, out := runVaultd(t, []string{"VAULT_DATA_DIR=" + data}, "serve", "--addr", "0.0.0.0:0")
	if code == 0 || !strings.Contains(out, "refusing to listen on 0.0.0.0:0 without TLS") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("exit %d: %q", code, out)
	}

	s := newServer(t, backends[0])
	s.mustCLI("", "org", "add", "--name", "Office", "--kind", "office")
	s.sql(t, `INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ('vault', 99, 'from the future', CURRENT_TIMESTAMP)`)
	_, errs, code := s.cli("", "serve")
	if code == 0 || !strings.Contains(errs, "vault is at version 99") || !strings.Contains(errs, "upgrade vaultd") {
		t.Fatalf("newer schema: exit %d: %s", code, errs)
	}
	last := strings.TrimSpace(errs)
	if i := strings.LastIndex(last, "\n"); i >= 0 {
		last = last[i+1:]
	}
	if !strings.HasPrefix(last, "vaultd: ") {
		t.Fatalf("the refusal is not one clear last line: %q", last)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := newServer(t, backends[0])
	s.start()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		base := s.base
		if path == "/metrics" {
			base = s.metricsBase // its own listener
		}
		res, err := httpGet(base + path)
		if err != nil || res.status != 200 {
			t.Fatalf("%s: %v %+v", path, err, res)
		}
		if path == "/metrics" && !strings.Contains(res.body, "crvault_http_requests_total") {
			t.Fatalf("metrics lack request counter")
		}
	}
}

type simpleResp struct {
	status int
	body   string
}

func httpGet(url string) (simpleResp, error) {
	res, err := httpClient().Get(url)
	if err != nil {
		return simpleResp{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return simpleResp{res.StatusCode, string(b)}, nil
}
