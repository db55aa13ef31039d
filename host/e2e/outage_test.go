package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// cutProxy forwards TCP connections to a server until cut, which closes
// them all and refuses new ones, as a database that went away does.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestPostgresDownLongerThanTheKeyCache cuts the gateway off PostgreSQL for
// longer than auth.cache_ttl: the keys it had confirmed keep working, every
// request answered is spooled, readiness says degraded, and when the
// database returns the ledger holds every answered request.
func TestPostgresDownLongerThanTheKeyCache(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	cfg := baseConfig(t)
	cfg.Store = config.Store{Driver: "postgres", DSN: u.String()}
	cfg.Auth.CacheTTL = config.Duration(300 * time.Millisecond)
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "eng", "open")
	if an := ask(g.client(key), 10); an.status != http.StatusOK {
		t.Fatalf("before the outage: %s", an.outcome())
	}

	proxy.setCut(true)
	time.Sleep(2 * cfg.Auth.CacheTTL.D()) // the key's cache entry lapses
	served := 1
	for range 10 {
		an := ask(g.client(key), 10)
		if an.status != http.StatusOK {
			t.Fatalf("during the outage, after the key cache lapsed: %s", an.outcome())
		}
		served++
	}
	resp, err := http.Get("http://" + cfg.Server.AdminListen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct{ Status, Reason string }
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ready.Status != "degraded" {
		t.Errorf("readiness during the outage: %d %+v, want 200 degraded", resp.StatusCode, ready)
	}

	proxy.setCut(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		rows := g.usage("client")
		if rows["app"].Requests == int64(served) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger holds %d of the %d answered requests after the outage", rows["app"].Requests, served)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d requests served with PostgreSQL cut off for longer than the key cache; all in the ledger after", served)
}
