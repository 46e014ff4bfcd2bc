package vault

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/crvault/crvault/audit/sqldb"
)

// BenchmarkOpenContent reads one material through the whole service path
// (authorisation, the audited material.read event, case key, blob, age) and
// drains it, as the content handler does. With -benchmem, B/op is the heap
// one read allocates: issue 10 bounds it at 64 KiB for a 4 KiB document.
// The rawblob sub-benchmarks read the same ciphertext straight from the blob
// store, the baseline of the ratio. Run with
// scripts/bench.sh -bench OpenContent ./vault/.
func BenchmarkOpenContent(b *testing.B) {
	for _, dialect := range []string{sqldb.SQLite, sqldb.Postgres} {
		for _, size := range []int{4 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", dialect, size>>10), func(b *testing.B) {
				f := newWF(b, dialect, time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC), false)
				id := benchMaterial(b, f, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					c, err := f.svc.OpenContent(f.ctx, f.op, id, nil)
					if err != nil {
						b.Fatal(err)
					}
					if n, err := io.Copy(io.Discard, c.Body); err != nil || n != int64(size) {
						b.Fatalf("read %d bytes: %v", n, err)
					}
					c.Close()
				}
			})
		}
	}
}

func benchMaterial(b testing.TB, f *wfFixture, size int) string {
	b.Helper()
	c, err := f.svc.CreateCase(f.ctx, f.op, NewCase{Title: "Routers", Product: "AR-9000"})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(data)
	m, err := f.svc.Upload(f.ctx, f.op, c.ID, Upload{Kind: "other", Filename: "bench.bin", ContentType: "application/octet-stream",
		Body: bytes.NewReader(data), Size: int64(size)})
	if err != nil {
		b.Fatal(err)
	}
	return m.ID
}
