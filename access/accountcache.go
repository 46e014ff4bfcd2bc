package access

import (
	"sync"
	"time"
)

// Authenticate runs on every request and used to cost three reads (the
// session, its user, the user's organisation) before any work. The session
// row is still read every time: a logout, a password change or a disabled
// account revokes it, and that must hold on every instance at once. The
// account and its organisation change rarely, so they are kept for
// accountCacheTTL and dropped at once when they change: this instance
// flushes a user's entry in the call that changes the account, and other
// instances sharing the database do so on the user notice (NOTIFY) that call
// publishes. The TTL only bounds how long a notice lost with a dropped
// listener connection can leave, say, a role change unseen on another
// instance; a reconnecting listener flushes everything.
const accountCacheTTL = 2 * time.Second

// accountCacheMax bounds the memory: past it, the cache starts over.
const accountCacheMax = 50_000

type cachedAccount struct {
	user userRow
	org  Org
	at   time.Time // when it was read
}

// accountCache maps user ids to the account rows Authenticate read.
type accountCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedAccount
	// gen changes with every flush, so that a read that raced with a
	// change is not stored over it.
	gen uint64
}

func newAccountCache(ttl time.Duration) *accountCache {
	return &accountCache{ttl: ttl, m: map[string]cachedAccount{}}
}

// get returns a copy of a fresh entry.
func (c *accountCache) get(key string, now time.Time) (cachedAccount, bool) {
	if c.ttl <= 0 {
		return cachedAccount{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || now.Sub(e.at) >= c.ttl || now.Before(e.at) {
		return cachedAccount{}, false
	}
	return e, true
}

// generation is read before the database, and passed to put after.
func (c *accountCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *accountCache) put(key string, e cachedAccount, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // flushed while it was being read: it may predate the change
	}
	if len(c.m) >= accountCacheMax {
		clear(c.m)
	}
	c.m[key] = e
}

// flushUser drops the user's entry ("" drops all).
func (c *accountCache) flushUser(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if userID == "" {
		clear(c.m)
		return
	}
	delete(c.m, userID)
}
