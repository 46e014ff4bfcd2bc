package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/crvault/crvault/vault/crypt"
)

// loadClients is how many clients drive the server at once (issue 10).
const loadClients = 64

// loadDuration is how long each row runs: 5 s unless CRVAULT_LOAD_SECONDS
// says otherwise.
func loadDuration() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("CRVAULT_LOAD_SECONDS")); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return 5 * time.Second
}

type loadResult struct {
	// commits and events are the audit log's group commits and events
	// during the row (from vaultd's metrics).
	commits, events float64
	// cpu is where the machine's time went during the row.
	cpu   cpuSplit
	n     int
	bytes int64
	dur   time.Duration
	p50   time.Duration
	p99   time.Duration
}

func (r loadResult) rps() float64  { return float64(r.n) / r.dur.Seconds() }
func (r loadResult) mbps() float64 { return float64(r.bytes) / r.dur.Seconds() / 1e6 }

// drive runs fn from loadClients goroutines for d and collects every
// request's latency. fn returns the bytes it received.
func drive(b *testing.B, d time.Duration, fn func(ctx context.Context) (int64, error)) loadResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lat := make([][]time.Duration, loadClients)
	bytesOf := make([]int64, loadClients)
	errs := make(chan error, loadClients)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s := time.Now()
				n, err := fn(context.Background())
				if err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(s))
				bytesOf[i] += n
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := loadResult{n: len(all), dur: elapsed}
	for _, n := range bytesOf {
		r.bytes += n
	}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}

// BenchmarkLoad drives the real vaultd (PostgreSQL on durable settings,
// versitygw) with 64 concurrent clients over keep-alive connections, one
// row after the other on the same server: GET /healthz, GET /api/v1/me,
// material metadata, a 4 KiB and a 1 MiB document (audited reads), and, as
// the baseline of the 1 MiB row, minio-go GetObject of that document's very
// ciphertext from the same S3 server. It reports requests/s and p99 of
// every row and the ratios issue 10 sets targets for:
//   - small_read_vs_me: 4 KiB reads/s over /me requests/s (target >= 0.6);
//   - mib_read_vs_raw: 1 MiB read throughput over raw GetObject (>= 0.8).
//
// It also reports where the CPU went in each row, per request (vaultd, the
// clients in this process, the rest of the machine, idle), and
// small_read_vs_me_vaultd_cpu: vaultd's CPU per /me over its CPU per 4 KiB
// read, the first ratio as it would be if vaultd had the machine alone.
//
// It runs on vaultd's embedded defaults (SQLite and the local blob store,
// where the table was measured), on PostgreSQL with versitygw and on
// SQLite with versitygw, all durable. Run with
// scripts/bench.sh -bench Load -benchtime 1x -count 3 ./cmd/vaultd/.
// CRVAULT_LOAD_SECONDS sets each row's duration; CRVAULT_LOAD_PROFILE=dir
// records a perf profile of vaultd per row (perf record -g) into dir;
// CRVAULT_LOAD_CIPHERTEXT_CACHE=0 turns vaultd's ciphertext cache off;
// CRVAULT_LOAD_GOGC=n runs vaultd with GOGC=n (no heap floor).
func BenchmarkLoad(b *testing.B) {
	// The database is where the audited rows differ (the audit log's group
	// commit); both databases durable, both on the same S3 server.
	sqliteS3 := backend{"sqlite+s3", func(t testing.TB) []string {
		return slices.DeleteFunc(backends[1].env(t), func(e string) bool { return strings.HasPrefix(e, "VAULT_DATABASE_URL=") })
	}}
	// sqlite+local is vaultd on its embedded defaults, where issue 10's
	// targets are stated; it has no S3 server, hence no raw_get_1MiB row.
	for _, be := range []backend{backends[0], backends[1], sqliteS3} {
		b.Run(be.name, func(b *testing.B) { benchLoad(b, be) })
	}
}

func benchLoad(b *testing.B, be backend) {
	// 64 clients from one address: lift the per-client caps meant for
	// abuse.
	env := []string{"VAULT_LOG_LEVEL=info", "VAULT_ANONYMOUS_RATE=100000000", "VAULT_HTTP_MAX_CONNS_PER_CLIENT=0"}
	// Every row rereads one document, which the ciphertext cache serves
	// after the second read; CRVAULT_LOAD_CIPHERTEXT_CACHE=0 measures the
	// reads that go to the store.
	if v := os.Getenv("CRVAULT_LOAD_CIPHERTEXT_CACHE"); v != "" {
		env = append(env, "VAULT_CIPHERTEXT_CACHE_BYTES="+v)
	}
	// CRVAULT_LOAD_GOGC runs vaultd with that GOGC instead of its own
	// default, to weigh the collector's share of a row.
	if v := os.Getenv("CRVAULT_LOAD_GOGC"); v != "" {
		env = append(env, "GOGC="+v)
	}
	if v := os.Getenv("XB"); v != "" {
		env = append(env, "XB="+v)
	}
	s := newServer(b, be, env...)
	w := bootstrap(b, s)
	// Its log goes to a file, as in production; a pipe drained by this
	// busy process would make the server wait on its own log lines.
	s.logFile = filepath.Join(b.TempDir(), "vaultd.log")
	s.start()
	w.loginAll(b)
	caseID, _ := w.newCase(b, "load")
	small, err := w.op.uploadStream(caseID, bytes.NewReader(benchData(4<<10)), 4<<10)
	if err != nil {
		b.Fatal(err)
	}
	big, err := w.op.uploadStream(caseID, bytes.NewReader(benchData(1<<20)), 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	onS3 := slices.ContainsFunc(s.env, func(e string) bool { return strings.HasPrefix(e, "VAULT_S3_ENDPOINT=") })
	var raw func(context.Context) (int64, error)
	if onS3 {
		mc, bucket, key := rawObjectOfSize(b, s, crypt.PayloadSize(1<<20))
		raw = func(ctx context.Context) (int64, error) {
			obj, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
			if err != nil {
				return 0, err
			}
			defer obj.Close()
			return io.Copy(io.Discard, obj)
		}
	}

	tr := &http.Transport{MaxIdleConns: 2 * loadClients, MaxIdleConnsPerHost: 2 * loadClients, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	get := func(path string, auth bool, want int64) func(context.Context) (int64, error) {
		return func(ctx context.Context) (int64, error) {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
			if auth {
				req.Header.Set("Authorization", "Bearer "+w.op.token)
			}
			res, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			n, err := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if err == nil && res.StatusCode != 200 {
				err = fmt.Errorf("GET %s: %d", path, res.StatusCode)
			}
			if err == nil && want >= 0 && n != want {
				err = fmt.Errorf("GET %s: %d bytes, want %d", path, n, want)
			}
			return n, err
		}
	}
	rows := []struct {
		name string
		fn   func(context.Context) (int64, error)
	}{
		{"healthz", get("/healthz", false, -1)},
		{"me", get("/api/v1/me", true, -1)},
		{"metadata", get("/api/v1/materials/"+small, true, -1)},
		{"read_4KiB", get("/api/v1/materials/"+small+"/content", true, 4<<10)},
		{"read_1MiB", get("/api/v1/materials/"+big+"/content", true, 1<<20)},
	}
	if onS3 {
		rows = append(rows, struct {
			name string
			fn   func(context.Context) (int64, error)
		}{"raw_get_1MiB", raw})
	}
	d := loadDuration()
	profDir := os.Getenv("CRVAULT_LOAD_PROFILE")
	results := map[string]loadResult{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, row := range rows {
			// A short warm-up opens the keep-alive connections.
			drive(b, d/10, row.fn)
			stop := startPerf(b, profDir, s.cmd.Process.Pid, be.name+"-"+row.name)
			c0, e0 := auditBatches(b, s)
			u0 := cpuNow(b, s.cmd.Process.Pid)
			r := drive(b, d, row.fn)
			r.cpu = cpuNow(b, s.cmd.Process.Pid).since(u0)
			c1, e1 := auditBatches(b, s)
			stop()
			r.commits, r.events = c1-c0, e1-e0
			results[row.name] = r
		}
	}
	b.StopTimer()
	for _, row := range rows {
		r := results[row.name]
		b.ReportMetric(r.rps(), row.name+"_req/s")
		b.ReportMetric(float64(r.p99.Microseconds())/1000, row.name+"_p99_ms")
		b.ReportMetric(r.cpuPerReq(r.cpu.server), row.name+"_vaultd_cpu_us")
		b.Logf("%-13s %8.0f req/s  p50 %6.1f ms  p99 %6.1f ms  %7.1f MB/s  audit: %5.0f commits/s, %5.1f events/commit", row.name, r.rps(),
			float64(r.p50.Microseconds())/1000, float64(r.p99.Microseconds())/1000, r.mbps(),
			r.commits/r.dur.Seconds(), r.events/max(1, r.commits))
		b.Logf("%-13s CPU per request: vaultd %5.0f us, clients %5.0f us, rest of the machine %5.0f us; idle %4.1f%%", "",
			r.cpuPerReq(r.cpu.server), r.cpuPerReq(r.cpu.clients), r.cpuPerReq(r.cpu.rest), 100*r.cpu.idle.Seconds()/max(1e-9, r.cpu.total.Seconds()))
	}
	b.ReportMetric(results["read_4KiB"].rps()/results["me"].rps(), "small_read_vs_me")
	// The same ratio in vaultd's own CPU per request: what it would be if
	// vaultd had the machine to itself, without the clients' share or other
	// work on the machine.
	b.ReportMetric(results["me"].cpuPerReq(results["me"].cpu.server)/results["read_4KiB"].cpuPerReq(results["read_4KiB"].cpu.server), "small_read_vs_me_vaultd_cpu")
	if onS3 {
		b.ReportMetric(results["read_1MiB"].mbps()/results["raw_get_1MiB"].mbps(), "mib_read_vs_raw")
	}
}

// rawObjectOfSize finds the one object of that size in the server's bucket:
// the ciphertext of the document the benchmark uploaded.
func rawObjectOfSize(b *testing.B, s *server, size int64) (*minio.Client, string, string) {
	b.Helper()
	mc, bucket := rawS3(b, s)
	var found []string
	for obj := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			b.Fatal(obj.Err)
		}
		if obj.Size == size {
			found = append(found, obj.Key)
		}
	}
	if len(found) != 1 {
		b.Fatalf("%d objects of %d bytes in the bucket, want 1", len(found), size)
	}
	return mc, bucket, found[0]
}

// auditBatches reads vaultd's count of audit group commits and the events
// they held.
func auditBatches(b *testing.B, s *server) (commits, events float64) {
	b.Helper()
	res, err := http.Get(s.metricsBase + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(line, " ")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case !ok || err != nil:
		case name == "crvault_audit_batch_size_count":
			commits = f
		case name == "crvault_audit_batch_size_sum":
			events = f
		}
	}
	return commits, events
}

// cpuSplit is CPU time over an interval: vaultd's (all its threads, user
// and system), this benchmark process's (the clients), the rest of the
// machine's busy time (kernel threads such as the file system's journal,
// other processes) and the machine's idle time, all cores together. The
// kernel keeps a process's time and the CPUs' time apart, in different
// units, so on a quiet machine the rest can read a few microseconds per
// request below zero.
type cpuSplit struct{ server, clients, rest, idle, total time.Duration }

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

func cpuNow(b *testing.B, pid int) cpuSplit {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name may hold spaces; the fields after it do not.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14 of proc(5)
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	var ru syscall.Rusage
	err3 := syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	all, err4 := os.ReadFile("/proc/stat")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(all), "\n")
	var busy, idle int64
	for i, v := range strings.Fields(line)[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		switch i {
		case 3, 4: // idle, iowait
			idle += n
		case 8, 9: // guest time is already in user time
		default:
			busy += n
		}
	}
	c := cpuSplit{server: time.Duration(utime+stime) * clockTick, idle: time.Duration(idle) * clockTick,
		clients: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	c.total = time.Duration(busy)*clockTick + c.idle
	c.rest = time.Duration(busy)*clockTick - c.server - c.clients
	return c
}

func (c cpuSplit) since(o cpuSplit) cpuSplit {
	return cpuSplit{server: c.server - o.server, clients: c.clients - o.clients, rest: c.rest - o.rest, idle: c.idle - o.idle, total: c.total - o.total}
}

func (r loadResult) cpuPerReq(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(max(1, r.n))
}

// startPerf records vaultd's CPU profile with perf until stop is called,
// when dir is set.
func startPerf(b *testing.B, dir string, pid int, name string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", filepath.Join(dir, name+".perf.data"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf: %v", err)
	}
	return func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
}
