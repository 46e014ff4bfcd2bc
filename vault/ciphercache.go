package vault

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultCiphertextCache is the default memory budget of the ciphertext
// cache, in bytes.
const DefaultCiphertextCache = 64 << 20

// ciphertextCacheTTL bounds how long a cached ciphertext is served without
// going back to the store: the keyring's default time to live, so a cached
// blob outlives neither what the key cache already allows nor a minute of
// damage to the stored copy (see below).
const ciphertextCacheTTL = time.Minute

// ciphertextCache keeps the ciphertext of small materials read more than
// once in memory, so that a document many reviewers open is not fetched
// from the store (a GET to S3, an open and a read on disk) on every read.
//
// What it holds and why that is safe:
//   - only ciphertext, exactly as stored; each read still opens the file
//     key and authenticates every chunk, and access and the audit log are
//     decided before the cache is asked. Plaintext is never cached.
//   - only blobs that authenticated: an entry is put after a read decrypted
//     it, so a damaged blob is never served from here and a blob restored
//     from a backup is read afresh.
//   - blobs are immutable (a new version is a new blob), so an entry cannot
//     go stale; it can only go away. Purging a shredded case's blobs drops
//     them on this instance. Another instance keeps its entries until they
//     expire or are evicted, but they cannot be opened: the case's key is
//     gone.
//
// The trade-off, stated in the threat model of vault/crypt: someone who
// damages or replaces a stored blob is noticed by the instances that cached
// it only when the entry expires (ciphertextCacheTTL), and memory holds up
// to the budget of ciphertext that the keys cached beside it can open.
//
// A blob is admitted on its second miss within the time to live: a
// document read once (most are) costs no copy and no allocation beyond the
// pooled buffer of an uncached read.
type ciphertextCache struct {
	max int64
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	used  int64
	items map[string]*list.Element // of *cipherEntry
	lru   list.List                // front: most recently used
	// missed remembers blobs missed once, for admission; bounded by
	// missedMax.
	missed map[string]time.Time

	hits, misses atomic.Int64
}

type cipherEntry struct {
	id    string
	data  []byte // never written after put: readers use it unlocked
	until time.Time
}

const missedMax = 4096

// newCiphertextCache returns a cache of at most max bytes, or nil (no
// cache) when max <= 0. A nil cache misses every read and admits nothing.
func newCiphertextCache(max int64, ttl time.Duration, now func() time.Time) *ciphertextCache {
	if max <= 0 {
		return nil
	}
	return &ciphertextCache{max: max, ttl: ttl, now: now, items: map[string]*list.Element{}, missed: map[string]time.Time{}}
}

// get returns the cached ciphertext of blob id if it is size bytes and
// fresh. The slice is shared and must not be written.
func (c *ciphertextCache) get(id string, size int64) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	e := el.Value.(*cipherEntry)
	if !now.Before(e.until) || int64(len(e.data)) != size {
		c.removeLocked(el)
		c.misses.Add(1)
		return nil, false
	}
	c.lru.MoveToFront(el)
	c.hits.Add(1)
	return e.data, true
}

// admit reports whether a missed read of a blob of size bytes should be
// read into a buffer of its own and offered to put: the blob was missed
// once before within the time to live, and fits the budget's share for one
// entry (an eighth, so one document cannot flush the rest).
func (c *ciphertextCache) admit(id string, size int64) bool {
	if c == nil || size > c.max/8 {
		return false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, ok := c.missed[id]; ok && now.Sub(at) < c.ttl {
		delete(c.missed, id)
		return true
	}
	if len(c.missed) >= missedMax {
		for k, at := range c.missed {
			if now.Sub(at) >= c.ttl {
				delete(c.missed, k)
			}
		}
		if len(c.missed) >= missedMax {
			clear(c.missed)
		}
	}
	c.missed[id] = now
	return false
}

// put caches data, the authenticated ciphertext of blob id, evicting the
// least recently used entries to stay within the budget. The cache owns
// data from then on.
func (c *ciphertextCache) put(id string, data []byte) {
	if c == nil || int64(len(data)) > c.max/8 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.removeLocked(el)
	}
	for c.used+int64(len(data)) > c.max {
		c.removeLocked(c.lru.Back())
	}
	c.items[id] = c.lru.PushFront(&cipherEntry{id: id, data: data, until: now.Add(c.ttl)})
	c.used += int64(len(data))
}

// drop forgets blob id, for a blob that was deleted or failed to
// authenticate.
func (c *ciphertextCache) drop(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.removeLocked(el)
	}
	delete(c.missed, id)
}

func (c *ciphertextCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cipherEntry)
	delete(c.items, e.id)
	c.used -= int64(len(e.data))
}

// collectors are the cache's Prometheus metrics: reads served from it and
// not, and the bytes it holds, so an operator can size the budget.
func (c *ciphertextCache) collectors() []prometheus.Collector {
	if c == nil {
		return nil
	}
	reads := func(result string, n *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crvault_ciphertext_cache_reads_total",
			Help: "Small material reads by whether the ciphertext cache held the blob.", ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(n.Load()) })
	}
	return []prometheus.Collector{reads("hit", &c.hits), reads("miss", &c.misses),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crvault_ciphertext_cache_bytes", Help: "Ciphertext held by the cache."},
			func() float64 {
				c.mu.Lock()
				defer c.mu.Unlock()
				return float64(c.used)
			})}
}
