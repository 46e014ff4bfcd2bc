package main

import (
	"strings"
	"testing"
	"time"
)

// e2eParallel is how many end-to-end tests run at once when -parallel is not
// given (see TestMain). Run one after another they left the two cores of CI
// idle much of the time (load average ~1.5 on a quiet machine); 8 at once
// keep both busy. Timing-sensitive tests stay serial: Go runs every test
// without t.Parallel first, alone in this package, then the parallel ones.
const e2eParallel = 8

// waitLog waits until vaultd's log has a line containing every one of parts
// and returns that line. vaultd writes a request's access log line before the
// response leaves, but the line reaches s.log through a pipe that a goroutine
// of this process copies: a test that reads the log the moment its response
// arrives can be ahead of that copy, the more so under load.
func (s *server) waitLog(t testing.TB, parts ...string) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, l := range strings.Split(s.log.String(), "\n") {
			if containsAll(l, parts) {
				return l, true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
