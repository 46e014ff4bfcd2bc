package access

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type slowHasher struct {
	running, peak atomic.Int32
}

func (s *slowHasher) work() {
	n := s.running.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	s.running.Add(-1)
}

func (s *slowHasher) Hash(string) (string, error)         { s.work(); return "h", nil }
func (s *slowHasher) Verify(string, string) (bool, error) { s.work(); return true, nil }

func TestBoundedHasherLimitsConcurrentHashing(t *testing.T) {
	inner := &slowHasher{}
	b := newBoundedHasher(inner, 2)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				b.Hash("pw")
			} else {
				b.Verify("pw", "h")
			}
		}()
	}
	wg.Wait()
	if p := inner.peak.Load(); p > 2 || p < 1 {
		t.Fatalf("%d hashes ran at once; the bound is 2", p)
	}
}
