package supervision

import (
	"sync"
	"testing"
	"time"
)

// TestThrottleTakeHoldsUnderConcurrency: of many parallel attempts by one
// client, exactly the limit pass, and a refunded attempt frees its slot.
func TestThrottleTakeHoldsUnderConcurrency(t *testing.T) {
	th := newThrottle(time.Now, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := th.take("receipt", "192.0.2.1", 10); ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != 10 {
		t.Fatalf("%d of 200 parallel attempts passed a limit of 10", passed)
	}
	if ok, wait := th.take("receipt", "192.0.2.1", 10); ok || wait <= 0 {
		t.Fatalf("over the limit: ok %v, wait %v", ok, wait)
	}
	if ok, _ := th.take("receipt", "192.0.2.2", 10); !ok {
		t.Fatal("another client is refused")
	}
	th.refund("receipt", "192.0.2.1")
	if ok, _ := th.take("receipt", "192.0.2.1", 10); !ok {
		t.Fatal("a refunded slot is not free again")
	}
}
