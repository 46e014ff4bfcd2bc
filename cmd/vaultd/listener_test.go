package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestClientCap: each client address holds at most max connections, those
// over it are closed at once, a closed one frees its slot, and trusted
// proxies (through which every client arrives) are not capped.
func TestClientCap(t *testing.T) {
	// Not parallel: it tells open from closed connections by a 1 s read
	// deadline, which the load of parallel tests would blur.
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := newClientCap(inner, 3, []string{"127.0.0.3", "10.0.0.0/8"}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// state reports whether the server closed the client's connection.
	state := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return "open"
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return "closed"
		}
		return err.Error()
	}
	// states is state of each connection, all waited on at once: each
	// "open" costs its full second, and one after another they made this
	// serial test 11 s long.
	states := func(cs ...net.Conn) []string {
		out := make([]string, len(cs))
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = state(c) }()
		}
		wg.Wait()
		return out
	}
	dial := func(from string) net.Conn {
		t.Helper()
		c, err := dialFrom(from, inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var a []net.Conn
	for range 5 {
		a = append(a, dial("127.0.0.2"))
	}
	// Another client is not affected; a trusted proxy is not capped.
	other := dial("127.0.0.4")
	var proxied []net.Conn
	for range 6 {
		proxied = append(proxied, dial("127.0.0.3"))
	}
	got := states(append(append(append([]net.Conn{}, a...), other), proxied...)...)
	for i := range a {
		want := "open"
		if i >= 3 {
			want = "closed"
		}
		if got[i] != want {
			t.Fatalf("connection %d from 127.0.0.2: %s, want %s", i, got[i], want)
		}
	}
	if got[len(a)] != "open" {
		t.Fatalf("another client: %s", got[len(a)])
	}
	for i, st := range got[len(a)+1:] {
		if st != "open" {
			t.Fatalf("trusted proxy connection %d: %s", i, st)
		}
	}
	// The server closing one of the three frees a slot.
	first := <-accepted
	first.Close()
	if got := state(dial("127.0.0.2")); got != "open" {
		t.Fatalf("after a connection ended: %s", got)
	}
	if got := state(dial("127.0.0.2")); got != "closed" {
		t.Fatalf("over the cap again: %s", got)
	}
	if _, err := newClientCap(inner, 1, []string{"not-an-ip"}, slog.New(slog.DiscardHandler), nil); err == nil {
		t.Fatal("a malformed trusted proxy was taken")
	}
}

func TestClientOfGroupsIPv6By64(t *testing.T) {
	a, _ := clientOf(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1})
	b, _ := clientOf(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 2})
	c, _ := clientOf(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 3})
	d, _ := clientOf(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 4})
	if a != b || a == c || d.String() != "192.0.2.7" {
		t.Fatalf("clients %v %v %v %v", a, b, c, d)
	}
}
