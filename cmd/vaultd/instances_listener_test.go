package main

import (
	"bytes"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sniffProxy forwards TCP to PostgreSQL and, once armed, silently drops
// (stops forwarding, keeps open) every connection whose client sent
// "LISTEN ": what a NAT, firewall or load balancer does to a TCP
// connection that stays idle for long, as a LISTEN connection does. The
// pool's connections pass untouched. (From review h28d.)
type sniffProxy struct {
	ln    net.Listener
	armed atomic.Bool
}

func newSniffProxy(t *testing.T, target string) *sniffProxy {
	p := &sniffProxy{}
	p.ln = relay(t, target, func(c, u net.Conn) {
		dead := &atomic.Bool{}
		isListen := &atomic.Bool{}
		hole := func() bool { return p.armed.Load() && isListen.Load() }
		go func() { // client -> server
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if bytes.Contains(buf[:n], []byte("LISTEN ")) {
						isListen.Store(true)
					}
					if hole() {
						dead.Store(true)
					}
					if !dead.Load() {
						if _, err := u.Write(buf[:n]); err != nil {
							return
						}
					}
				}
				if err != nil {
					u.Close()
					return
				}
			}
		}()
		go func() { // server -> client
			buf := make([]byte, 32<<10)
			for {
				n, err := u.Read(buf)
				if n > 0 {
					if hole() {
						dead.Store(true)
					}
					if !dead.Load() {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
				}
				if err != nil {
					c.Close()
					return
				}
			}
		}()
	}, nil)
	return p
}

// TestRevocationReachesInstanceWithDeadListener (review h28d, finding 1):
// two vaultd share one PostgreSQL; the network silently stops carrying B's
// LISTEN connection (and every LISTEN connection B opens after), B's pool
// keeps working. A grant made on A must still reach B, and a revocation
// made on A must end the reviewer's reads on B within B's notice trust
// (3 s) plus a request; B must say its listener is down.
func TestRevocationReachesInstanceWithDeadListener(t *testing.T) {
	be := backends[1]
	if be.name != "postgres+s3" {
		t.Fatalf("backends[1] is %s", be.name)
	}
	a := newServer(t, be)
	w := bootstrap(t, a)
	a.start()
	b := a.twin(t)
	var dbURL string
	for _, e := range b.env {
		if v, ok := strings.CutPrefix(e, "VAULT_DATABASE_URL="); ok {
			dbURL = v
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newSniffProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	for i, e := range b.env {
		if strings.HasPrefix(e, "VAULT_DATABASE_URL=") {
			b.env[i] = "VAULT_DATABASE_URL=" + u.String()
		}
	}
	b.start()
	w.loginAll(t)
	caseID, docs := w.newCase(t, "MARKER-SILENT")
	w.op.expect(200, "POST", "/cases/"+caseID+"/submit", nil)
	var matID string
	for id := range docs {
		matID = id
		break
	}
	revB := &client{t: t, s: b, token: w.rev1.token, id: w.rev1.id}
	const bound = 4 * time.Second // the notice trust (3 s) and a request
	for round := range 2 {
		var asg struct {
			ID string `json:"id"`
		}
		w.office.expect(201, "POST", "/cases/"+caseID+"/assignments",
			map[string]any{"user": w.rev1.id, "role": "reviewer", "purpose": "preliminary review"}).json(t, &asg)
		gstart := time.Now()
		within(t, bound, "assignment", func() bool { return revB.do("GET", "/cases/"+caseID, nil).Status == 200 })
		t.Logf("round %d: the grant made on A reached B after %v", round, time.Since(gstart).Round(10*time.Millisecond))
		revB.expect(201, "POST", "/cases/"+caseID+"/declarations", map[string]any{"conflict": false, "statement": "no ties"})
		within(t, bound, "declaration", func() bool { return revB.do("GET", "/materials/"+matID+"/content", nil).Status == 200 })
		if round == 0 {
			// From now on B hears no notice; the revocation comes at
			// once, before any ping of B's can have failed.
			proxy.armed.Store(true)
		}
		start := time.Now()
		w.office.expect(204, "DELETE", "/cases/"+caseID+"/assignments/"+asg.ID, nil)
		if st := w.rev1.do("GET", "/materials/"+matID+"/content", nil).Status; st != 404 {
			t.Fatalf("on A after revocation: %d", st)
		}
		reads := 0
		for revB.do("GET", "/materials/"+matID+"/content", nil).Status == 200 {
			reads++
			if time.Since(start) > 40*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("round %d: the revoked reviewer read on B %d more times, for %v after the revocation on A",
			round, reads, took.Round(10*time.Millisecond))
		if took > bound {
			t.Errorf("round %d: revoked reviewer still read on B for %v", round, took.Round(10*time.Millisecond))
		}
	}
	lines := grepLines(b.log.String(), "notice listener")
	t.Logf("B log (listener lines):\n%s", lines)
	if !strings.Contains(lines, "lost its connection") {
		t.Error("B logged nothing about its listener")
	}
	if m, ok := scrapeOK(b); !ok || !strings.Contains(m, "crvault_access_notices_live 0") {
		t.Errorf("B's metrics do not say the notices are down (ok %v):\n%s", ok, grepLines(m, "notices_live"))
	}
}
