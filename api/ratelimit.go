package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/crvault/crvault/access"
)

// DefaultAnonymousPerMinute is how many requests without a valid session one
// client may make per minute (as a burst, refilled evenly over the minute).
const DefaultAnonymousPerMinute = 120

// rateLimiter is a token bucket per client, in memory: each instance limits
// on its own (the login throttle, which guards passwords, is the one shared
// through the database).
type rateLimiter struct {
	perMinute float64
	now       func() time.Time
	mu        sync.Mutex
	buckets   map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(perMinute int) *rateLimiter {
	if perMinute <= 0 {
		perMinute = DefaultAnonymousPerMinute
	}
	return &rateLimiter{perMinute: float64(perMinute), now: time.Now, buckets: map[string]*bucket{}}
}

// allow takes a token for client, or says how long until one is there.
func (l *rateLimiter) allow(client string) (bool, time.Duration) {
	now := l.now()
	rate := l.perMinute / 60 // tokens per second
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) >= 100_000 {
			l.prune(now, rate)
		}
		b = &bucket{tokens: l.perMinute, last: now}
		l.buckets[client] = b
	}
	b.tokens = math.Min(l.perMinute, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// prune forgets clients whose bucket has refilled: they are as good as new.
func (l *rateLimiter) prune(now time.Time, rate float64) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*rate >= l.perMinute {
			delete(l.buckets, k)
		}
	}
}

// unlimited are the anonymous routes left alone: probes and the contract.
var unlimited = map[string]bool{"/api/v1/healthz": true, "/api/v1/openapi.yaml": true}

// limitAnonymous rate-limits requests that carry no credentials (sign-in,
// the public report desk, anything sent without a token). Requests with a
// token pass here; authenticate charges the bucket if the token is bad.
func (h *handler) limitAnonymous(c *gin.Context) {
	if c.GetHeader("Authorization") != "" || unlimited[c.FullPath()] {
		c.Next()
		return
	}
	if !h.takeAnonymous(c) {
		return
	}
	c.Next()
}

// limitIgnoringToken charges, on a route that takes no session, the
// requests limitAnonymous let through for their Authorization header: the
// route never checks the token, so a made-up one would otherwise lift the
// limit (on sign-in, say, for guessing one password across many names).
func (h *handler) limitIgnoringToken(c *gin.Context) {
	if c.GetHeader("Authorization") != "" && !unlimited[c.FullPath()] && !h.takeAnonymous(c) {
		return
	}
	c.Next()
}

// takeAnonymous charges the client's bucket; when empty it answers 429
// (audited, as a counted denial) and returns false.
func (h *handler) takeAnonymous(c *gin.Context) bool {
	ok, wait := h.anon.allow(access.ClientKey(c.ClientIP()))
	if ok {
		return true
	}
	if h.recordDenied(c, "http.rate_limited", c.Request.Method+" "+routeOf(c), "rate_limited") {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		c.Header("Retry-After", strconv.Itoa(secs))
		problem(c, http.StatusTooManyRequests, "rate_limited", "too many requests without a session from this address; try again later")
	}
	return false
}

func routeOf(c *gin.Context) string {
	if p := c.FullPath(); p != "" {
		return p
	}
	return "unmatched"
}
