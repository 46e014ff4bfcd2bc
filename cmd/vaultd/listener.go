package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clientCap is a listener that holds at most max connections per client
// address at once and closes the ones over it as soon as they are
// accepted, so one client (a slowloris, a broken script) cannot take every
// connection the server has. An IPv6 client is its /64, which one host
// usually has whole. Trusted proxies are exempt: behind one, every client
// arrives from the proxy's address, so the cap belongs in the proxy (and
// per-client request limits use X-Forwarded-For in the API).
type clientCap struct {
	net.Listener
	max     int
	trusted []netip.Prefix
	log     *slog.Logger
	refused prometheus.Counter

	mu   sync.Mutex
	open map[netip.Addr]int
	// lastLog rate-limits the refusal log line to one per second.
	lastLog atomic.Int64
}

func newClientCap(ln net.Listener, max int, trustedProxies []string, log *slog.Logger, reg prometheus.Registerer) (*clientCap, error) {
	c := &clientCap{Listener: ln, max: max, log: log, open: map[netip.Addr]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "crvault_http_connections_refused_total",
			Help: "Connections closed at once because their client already held the most allowed."})}
	for _, p := range trustedProxies {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", p, err)
			}
			p = netip.PrefixFrom(a, a.BitLen()).String()
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", p, err)
		}
		c.trusted = append(c.trusted, pfx.Masked())
	}
	if reg != nil {
		if err := reg.Register(c.refused); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// clientOf is the address a connection is counted under.
func clientOf(addr net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr(), true
	}
	return a, true
}

func (c *clientCap) Accept() (net.Conn, error) {
	for {
		conn, err := c.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client, ok := clientOf(conn.RemoteAddr())
		if !ok || c.isTrusted(client) {
			return conn, nil
		}
		c.mu.Lock()
		if c.open[client] >= c.max {
			c.mu.Unlock()
			conn.Close()
			c.refused.Inc()
			if now := time.Now().Unix(); c.lastLog.Swap(now) != now {
				c.log.Warn("connection refused: client holds the most connections allowed", "client", client.String(), "max", c.max)
			}
			continue
		}
		c.open[client]++
		c.mu.Unlock()
		return &countedConn{Conn: conn, release: func() { c.release(client) }}, nil
	}
}

func (c *clientCap) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *clientCap) release(client netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[client]--; c.open[client] <= 0 {
		delete(c.open, client)
	}
}

// countedConn gives its slot back once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps the server's graceful half-close working through the
// wrapper.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
