package main

import (
	"strings"
	"testing"
	"time"
)

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
