package supervision

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// throttle counts attempts per client without remembering the client: the
// counter's key is an HMAC of the address under a random key that lives only
// in memory and is replaced every UTC day, so yesterday's counters cannot be
// linked to an address even by someone holding a memory dump of today.
type throttle struct {
	now    func() time.Time
	window time.Duration

	mu      sync.Mutex
	day     int64
	key     [32]byte
	started time.Time
	counts  map[string]map[[32]byte]int // kind -> client tag -> count in window
}

func newThrottle(now func() time.Time, window time.Duration) *throttle {
	return &throttle{now: now, window: window, day: -1}
}

// roll replaces the key at a new day and clears counters at a new window.
func (t *throttle) roll() {
	now := t.now()
	if day := now.UTC().Unix() / 86400; day != t.day {
		t.day = day
		_, _ = rand.Read(t.key[:])
		t.counts = nil
	}
	if t.counts == nil || now.Sub(t.started) >= t.window {
		t.started = now
		t.counts = map[string]map[[32]byte]int{}
	}
}

func (t *throttle) tag(client string) [32]byte {
	m := hmac.New(sha256.New, t.key[:])
	m.Write([]byte(client))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// take counts one attempt of kind by the client unless it reached limit,
// in one step: concurrent attempts cannot all pass a check made before
// any of them is counted. ok is false, with when the window ends, if the
// client is over the limit.
func (t *throttle) take(kind, client string, limit int) (ok bool, wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll()
	wait = t.window - t.now().Sub(t.started)
	if t.counts[kind] == nil {
		t.counts[kind] = map[[32]byte]int{}
	}
	tag := t.tag(client)
	if t.counts[kind][tag] >= limit {
		return false, wait
	}
	t.counts[kind][tag]++
	return true, wait
}

// refund gives back an attempt taken that turned out not to count (a
// receipt that was right). A window that rolled meanwhile lost it anyway.
func (t *throttle) refund(kind, client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll()
	tag := t.tag(client)
	if t.counts[kind][tag] > 0 {
		t.counts[kind][tag]--
	}
}
