package vault

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crvault/crvault/audit"
	"github.com/crvault/crvault/audit/sqldb/sqldbtest"
)

// TestCiphertextCacheBoundsAndExpiry: admission on the second miss, the
// byte budget with least-recently-used eviction, the time to live, and the
// bound on remembered misses.
func TestCiphertextCacheBoundsAndExpiry(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := newCiphertextCache(100, time.Minute, func() time.Time { return now })
	if c.admit("a", 10) {
		t.Fatal("admitted on the first miss")
	}
	if !c.admit("a", 10) {
		t.Fatal("not admitted on the second miss")
	}
	if c.admit("big", 13) || c.admit("big", 13) {
		t.Fatal("admitted an entry over an eighth of the budget")
	}
	blob := func(n int, b byte) []byte {
		p := make([]byte, n)
		p[0] = b
		return p
	}
	for i := range 10 {
		c.put(fmt.Sprint(i), blob(10, byte(i)))
	}
	if c.used != 100 || len(c.items) != 10 {
		t.Fatalf("%d bytes in %d entries, want 100 in 10", c.used, len(c.items))
	}
	// Touch 0: the least recently used is now 1, which the next put evicts.
	if p, ok := c.get("0", 10); !ok || p[0] != 0 {
		t.Fatal("entry 0 missing")
	}
	c.put("10", blob(10, 10))
	if _, ok := c.get("1", 10); ok {
		t.Error("the least recently used entry survived a put over the budget")
	}
	if _, ok := c.get("0", 10); !ok {
		t.Error("a recently used entry was evicted")
	}
	if c.used > c.max {
		t.Errorf("%d bytes over a budget of %d", c.used, c.max)
	}
	if _, ok := c.get("2", 11); ok {
		t.Error("an entry of another size was served")
	}
	if _, ok := c.items["2"]; ok {
		t.Error("an entry of the wrong size was kept")
	}
	c.drop("3")
	if _, ok := c.get("3", 10); ok {
		t.Error("a dropped entry was served")
	}
	now = now.Add(time.Minute)
	if _, ok := c.get("0", 10); ok {
		t.Error("an expired entry was served")
	}
	if _, ok := c.items["0"]; ok {
		t.Error("an expired entry was kept after a get")
	}
	// Misses of blobs read once are remembered only up to missedMax.
	for i := range 3 * missedMax {
		c.admit(fmt.Sprint("once-", i), 10)
	}
	if len(c.missed) > missedMax {
		t.Errorf("%d misses remembered, bound %d", len(c.missed), missedMax)
	}
	// A second miss after the time to live is a first miss again.
	c.admit("late", 10)
	now = now.Add(time.Minute)
	if c.admit("late", 10) {
		t.Error("admitted on a miss a time to live after the first")
	}

	var off *ciphertextCache = newCiphertextCache(0, time.Minute, time.Now)
	if off != nil {
		t.Fatal("a zero budget made a cache")
	}
	if off.admit("a", 1) || off.admit("a", 1) {
		t.Error("a disabled cache admitted a blob")
	}
	off.put("a", []byte{1})
	off.drop("a")
	if _, ok := off.get("a", 1); ok {
		t.Error("a disabled cache served a blob")
	}
}

// TestCachedReadsAreAuditedAndExpire: a material read twice is served from
// memory on later reads (its blob can be gone from the store), every one of
// those reads is still decided by access and in the audit log, and once the
// entry's time to live has passed, the store is read again, so a lost or
// damaged blob is reported within that time. A blob that fails to
// authenticate is never cached, and purging a case's blobs drops them.
func TestCachedReadsAreAuditedAndExpire(t *testing.T) {
	for _, d := range sqldbtest.Backends {
		t.Run(sqldbtest.Name(d), func(t *testing.T) {
			f := newWF(t, d, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
			id, path := f.letterOnDisk()
			blobID := filepath.Base(path)
			reads := func(outcome audit.Outcome) int {
				t.Helper()
				evs, _, err := f.log.Query(f.ctx, audit.Filter{Action: "material.read", Outcome: outcome, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				return len(evs)
			}
			for range 2 {
				if got := f.read(f.op, id); got != "letter document" {
					t.Fatalf("read %q", got)
				}
			}
			if _, ok := f.svc.ciphers.items[blobID]; !ok {
				t.Fatal("a material read twice is not cached")
			}
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if got := f.read(f.op, id); got != "letter document" {
				t.Fatalf("cached read %q", got)
			}
			if n := reads(audit.Allowed); n != 3 {
				t.Fatalf("%d successful reads in the audit log, want 3", n)
			}
			// The metrics an operator sizes the cache by: two misses, a hit,
			// and the letter's ciphertext held.
			reg := prometheus.NewRegistry()
			for _, c := range f.svc.Collectors() {
				reg.MustRegister(c)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					k := mf.GetName()
					for _, l := range m.GetLabel() {
						k += "/" + l.GetValue()
					}
					got[k] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
			want := map[string]float64{"crvault_ciphertext_cache_reads_total/hit": 1, "crvault_ciphertext_cache_reads_total/miss": 2,
				"crvault_ciphertext_cache_bytes": float64(len(orig))}
			if !maps.Equal(got, want) {
				t.Fatalf("cache metrics %v, want %v", got, want)
			}
			// Need to know is decided before the cache is asked: to someone
			// not assigned, the material does not exist.
			if _, err := f.svc.OpenContent(f.ctx, f.unassigned, id, nil); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unassigned member unit reading a cached material: %v", err)
			}
			if n := reads(audit.Denied); n != 1 {
				t.Fatalf("%d denied reads in the audit log, want 1", n)
			}
			f.mu.Lock()
			f.now = f.now.Add(ciphertextCacheTTL)
			f.mu.Unlock()
			if _, err := f.svc.OpenContent(f.ctx, f.op, id, nil); !errors.Is(err, ErrDamaged) {
				t.Fatalf("lost blob after the cache expired: %v, want ErrDamaged", err)
			}
			// Altered: read twice (admitted on the second miss), refused both
			// times, and not cached.
			flipped := append([]byte(nil), orig...)
			flipped[len(flipped)/2] ^= 1
			if err := os.WriteFile(path, flipped, 0o600); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := f.svc.OpenContent(f.ctx, f.op, id, nil); !errors.Is(err, ErrDamaged) {
					t.Fatalf("altered blob: %v, want ErrDamaged", err)
				}
			}
			if _, ok := f.svc.ciphers.items[blobID]; ok {
				t.Fatal("a blob that does not authenticate was cached")
			}
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := f.read(f.op, id); got != "letter document" {
				t.Fatalf("restored blob reads %q", got)
			}
			// Purging a shredded case's blobs drops them here too.
			f.read(f.op, id)
			if _, ok := f.svc.ciphers.items[blobID]; !ok {
				t.Fatal("the restored blob, read twice, is not cached")
			}
			var row materialRow
			if err := f.svc.db.Where("id = ?", id).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if n, err := f.svc.purgeBlobs(f.ctx, row.CaseID); err != nil || n < 1 {
				t.Fatalf("purge: %d blobs, %v", n, err)
			}
			if _, ok := f.svc.ciphers.items[blobID]; ok {
				t.Fatal("a purged blob is still cached")
			}
		})
	}
}
