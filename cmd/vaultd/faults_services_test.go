package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The fault tests need services they may kill: a PostgreSQL cluster and a
// versitygw of their own, started here from the same installed binaries
// scripts/services.sh uses, in temp dirs, on free loopback ports. A missing
// binary skips the test, or fails it under CI=true.

func requireTool(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// pgUser runs the cluster when the tests run as root (postgres refuses
// root); the same system user scripts/services.sh creates.
const pgUser = "crvault-pg"

// pgCluster is a private PostgreSQL cluster.
type pgCluster struct {
	t      testing.TB
	bindir string
	dir    string // socket dir and log; data under dir/data
	port   int
	opts   string
	asUser bool
}

// pgBindir finds the newest installed server, as svc_pg_bindir does.
func pgBindir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server under /usr/lib/postgresql/*/bin (scripts/test.sh installs it)")
}

// startPostgres initialises and starts a cluster with the given extra
// server options (e.g. "-c synchronous_commit=off"); it is stopped and
// removed at cleanup.
func startPostgres(t testing.TB, opts string) *pgCluster {
	t.Helper()
	bindir, err := pgBindir()
	requireTool(t, "PostgreSQL", err)
	base, err := os.MkdirTemp("/tmp", "crvault-faultpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	p := &pgCluster{t: t, bindir: bindir, dir: filepath.Join(base, "pg"), opts: opts, asUser: os.Getuid() == 0}
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if p.asUser {
		u, err := user.Lookup(pgUser)
		if err != nil {
			out, uerr := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", pgUser).CombinedOutput()
			if uerr != nil {
				t.Fatalf("create system user %s: %v: %s", pgUser, uerr, out)
			}
			if u, err = user.Lookup(pgUser); err != nil {
				t.Fatal(err)
			}
		}
		uid, _ := strconv.Atoi(u.Uid)
		if err := os.Chmod(base, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p.dir, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	p.port, _ = strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
	p.start()
	t.Cleanup(func() { _, _ = p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop") })
	return p
}

func (p *pgCluster) data() string { return filepath.Join(p.dir, "data") }

func (p *pgCluster) run(tool string, args ...string) ([]byte, error) {
	bin := filepath.Join(p.bindir, tool)
	var cmd *exec.Cmd
	if p.asUser {
		cmd = exec.Command("runuser", append([]string{"-u", pgUser, "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	return cmd.CombinedOutput()
}

// start starts the server (again) on its port and waits until it accepts
// connections.
func (p *pgCluster) start() {
	p.t.Helper()
	o := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=100 %s", p.port, p.dir, p.opts)
	if out, err := p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "120", "-o", o, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		p.t.Fatalf("start PostgreSQL: %v\n%s\n%s", err, out, tail(string(log), 3000))
	}
}

// crash stops the server the way a crash does: no checkpoint, no flush of
// what is still in shared memory.
func (p *pgCluster) crash() {
	p.t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop"); err != nil {
		p.t.Fatalf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}

func (p *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// s3Server is a private versitygw.
type s3Server struct {
	t              testing.TB
	bin, root      string
	sidecar        string // metadata dir when the filesystem has no user xattrs
	addr           string
	access, secret string
	bucket         string
	cmd            *exec.Cmd
	exited         chan struct{}
	log            *syncBuffer
}

func startS3(t testing.TB) *s3Server {
	t.Helper()
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(strings.Split(strings.TrimSpace(string(out)), string(os.PathListSeparator))[0], "bin", "versitygw")
	_, err = os.Stat(bin)
	requireTool(t, "versitygw", err)
	key := make([]byte, 20)
	_, _ = rand.Read(key)
	dir := t.TempDir()
	s := &s3Server{t: t, bin: bin, root: filepath.Join(dir, "root"), addr: freeAddr(t), access: "fault" + hex.EncodeToString(key[:6]),
		secret: hex.EncodeToString(key), bucket: "crv-faults", log: &syncBuffer{}}
	if err := os.Mkdir(s.root, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	// As svc_start_s3: metadata in xattrs, or a sidecar dir where the
	// filesystem has no user xattrs.
	s.start()
	if err := s.makeBucket(); err != nil {
		s.kill()
		s.sidecar = filepath.Join(dir, "meta")
		if err := os.Mkdir(s.sidecar, 0o700); err != nil {
			t.Fatal(err)
		}
		s.start()
		if err := s.makeBucket(); err != nil {
			t.Fatalf("versitygw cannot store objects: %v\n%s", err, s.log.String())
		}
	}
	return s
}

func (s *s3Server) start() {
	s.t.Helper()
	args := []string{"--port", s.addr, "--health", "/health", "--quiet", "--access", s.access, "--secret", s.secret, "posix"}
	if s.sidecar != "" {
		args = append(args, "--sidecar", s.sidecar)
	}
	s.cmd = exec.Command(s.bin, append(args, s.root)...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.t.Fatalf("versitygw exited at start:\n%s", s.log.String())
		default:
		}
		if res, err := http.Get("http://" + s.addr + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("versitygw did not become healthy:\n%s", s.log.String())
}

// kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (s *s3Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

func (s *s3Server) client() *minio.Client {
	s.t.Helper()
	mc, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(s.access, s.secret, ""), Region: "us-east-1"})
	if err != nil {
		s.t.Fatal(err)
	}
	return mc
}

func (s *s3Server) makeBucket() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc := s.client()
	if err := mc.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return err
		}
	}
	if _, err := mc.PutObject(ctx, s.bucket, "probe", bytes.NewReader([]byte("probe")), 5, minio.PutObjectOptions{}); err != nil {
		_ = mc.RemoveBucket(ctx, s.bucket)
		return err
	}
	return mc.RemoveObject(ctx, s.bucket, "probe", minio.RemoveObjectOptions{})
}

// incompleteUploads lists the bucket's unfinished multipart uploads.
func (s *s3Server) incompleteUploads() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	for u := range s.client().ListIncompleteUploads(ctx, s.bucket, "", true) {
		if u.Err != nil {
			return nil, u.Err
		}
		keys = append(keys, u.Key+" "+u.UploadID)
	}
	return keys, nil
}

func (s *s3Server) env() []string {
	return []string{"VAULT_S3_ENDPOINT=" + s.addr, "VAULT_S3_BUCKET=" + s.bucket,
		"VAULT_S3_ACCESS_KEY=" + s.access, "VAULT_S3_SECRET_KEY=" + s.secret}
}
