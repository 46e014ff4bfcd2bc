package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// benchSize is 256 MiB unless CRVAULT_BENCH_MIB says otherwise.
func benchSize() int64 {
	if v, err := strconv.Atoi(os.Getenv("CRVAULT_BENCH_MIB")); err == nil && v > 0 {
		return int64(v) << 20
	}
	return 256 << 20
}

func benchData(n int64) []byte {
	buf := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(buf)
	return buf
}

// benchServer starts vaultd on PostgreSQL + S3 and returns the operator's
// client, a draft case and a raw minio client on the same versitygw bucket.
func benchServer(b *testing.B) (*server, *world, string, *minio.Client, string) {
	b.Helper()
	s := newServer(b, backends[1])
	w := bootstrap(b, s)
	s.start()
	w.loginAll(b)
	caseID, _ := w.newCase(b, "bench")
	mc, bucket := rawS3(b, s)
	return s, w, caseID, mc, bucket
}

// rawS3 is a minio client on the server's own bucket, for baselines.
func rawS3(b *testing.B, s *server) (*minio.Client, string) {
	b.Helper()
	var bucket string
	for _, e := range s.env {
		if v, ok := strings.CutPrefix(e, "VAULT_S3_BUCKET="); ok {
			bucket = v
		}
	}
	mc, err := minio.New(os.Getenv("VAULT_TEST_S3_ENDPOINT"), &minio.Options{
		Creds: credentials.NewStaticV4(os.Getenv("VAULT_TEST_S3_ACCESS_KEY"), os.Getenv("VAULT_TEST_S3_SECRET_KEY"), ""), Region: "us-east-1"})
	if err != nil {
		b.Fatal(err)
	}
	return mc, bucket
}

func (c *client) uploadStream(caseID string, body io.Reader, size int64) (string, error) {
	req, _ := http.NewRequest("POST", c.s.base+"/api/v1/cases/"+caseID+"/materials?kind=other&filename=bench.bin", body)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 201 {
		return "", fmt.Errorf("upload: %d %s", res.StatusCode, b)
	}
	var m struct {
		ID string `json:"id"`
	}
	if err := jsonUnmarshal(b, &m); err != nil {
		return "", err
	}
	return m.ID, nil
}

func (c *client) downloadTo(id string, w io.Writer) (int64, error) {
	req, _ := http.NewRequest("GET", c.s.base+"/api/v1/materials/"+id+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("download: %d", res.StatusCode)
	}
	return io.Copy(w, res.Body)
}

// BenchmarkTransferVsRawS3 puts and gets the same bytes through the vault
// (HTTP, SHA-256, age, blob store) and straight through minio-go against the
// same versitygw, in the same run, and reports vault/raw throughput ratios.
// Run with scripts/bench.sh -bench TransferVsRawS3 ./cmd/vaultd/.
func BenchmarkTransferVsRawS3(b *testing.B) {
	size := benchSize()
	_, w, caseID, mc, bucket := benchServer(b)
	data := benchData(size)
	ctx := context.Background()
	var rawPut, vaultPut, rawGet, vaultGet time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("raw-%d", i)
		t0 := time.Now()
		if _, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(data), size, minio.PutObjectOptions{PartSize: 8 << 20}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		id, err := w.op.uploadStream(caseID, bytes.NewReader(data), size)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		obj, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, obj); err != nil || n != size {
			b.Fatalf("raw get: %d %v", n, err)
		}
		obj.Close()
		t3 := time.Now()
		if n, err := w.op.downloadTo(id, io.Discard); err != nil || n != size {
			b.Fatalf("vault get: %d %v", n, err)
		}
		t4 := time.Now()
		rawPut += t1.Sub(t0)
		vaultPut += t2.Sub(t1)
		rawGet += t3.Sub(t2)
		vaultGet += t4.Sub(t3)
		mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(rawPut), "raw_put_MB/s")
	b.ReportMetric(mbps(vaultPut), "vault_put_MB/s")
	b.ReportMetric(mbps(rawGet), "raw_get_MB/s")
	b.ReportMetric(mbps(vaultGet), "vault_get_MB/s")
	b.ReportMetric(rawPut.Seconds()/vaultPut.Seconds(), "put_ratio")
	b.ReportMetric(rawGet.Seconds()/vaultGet.Seconds(), "get_ratio")
}

// peakRSS reads a process's high-water resident set from /proc.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}

// BenchmarkConcurrentTransfersRSS runs 8 concurrent uploads and then 8
// concurrent downloads of 256 MiB each and reports vaultd's peak RSS.
func BenchmarkConcurrentTransfersRSS(b *testing.B) {
	size := benchSize()
	s, w, caseID, _, _ := benchServer(b)
	data := benchData(size)
	b.SetBytes(size * 16)
	// The high-water mark before any transfer: start-up and the logins'
	// argon2id runs (19 MiB each) are in it already.
	before, err := peakRSS(s.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ids := make([]string, 8)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for j := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := w.op.uploadStream(caseID, bytes.NewReader(data), size)
				ids[j] = id
				errs <- err
			}()
		}
		wg.Wait()
		for j := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := w.op.downloadTo(ids[j], io.Discard)
				if err == nil && n != size {
					err = fmt.Errorf("short download %d", n)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	rss, err := peakRSS(s.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MiB")
	b.ReportMetric(float64(before)/(1<<20), "start_peak_rss_MiB")
}
