package e2e

import (
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
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

// TestSIGKILLedReplicaReleasesItsReservations kills a replica while its
// requests wait on the upstream: their reservations are not left charged
// in Redis for the rest of the day, but refunded by the surviving replica
// once their lease expires.
func TestSIGKILLedReplicaReleasesItsReservations(t *testing.T) {
	const (
		daily     = 100_000
		maxTokens = 100
		inFlight  = 10
	)
	cfg, _ := replicaConfig(t)
	cfg.Limits.Redis.Lease = config.Duration(time.Second)
	cfg.Upstreams = append([]config.Upstream(nil), cfg.Upstreams...)
	cfg.Upstreams[0].Latency = config.Duration(5 * time.Second)
	cfg.Tiers["daily"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: daily}}
	cfgB := replicaOf(t, cfg)
	cfgB.Upstreams = append([]config.Upstream(nil), cfg.Upstreams...)
	cfgB.Upstreams[0].Latency = 0
	a := startGateway(t, cfg)
	b := startGateway(t, cfgB)
	key, _ := a.createClient("app", "eng", "daily")

	for range inFlight {
		go ask(a.client(key), maxTokens)
	}
	time.Sleep(500 * time.Millisecond) // reserved, waiting on the upstream
	a.stop(syscall.SIGKILL)

	// What the surviving replica says is left, before its own request's
	// estimate; and what its requests used.
	var usedByB int64
	left := func() int64 {
		an := ask(b.client(key), maxTokens)
		if an.status != http.StatusOK {
			t.Fatalf("on the surviving replica: %s", an.outcome())
		}
		// The daily budget's headers (x-ratelimit-* are per minute).
		n, _ := strconv.ParseInt(an.header.Get("x-sluice-budget-remaining-tokens-day"), 10, 64)
		usedBefore := usedByB
		usedByB += an.tokens
		return n + maxTokens + 50 - (daily - usedBefore) // ≥ 0 once only b's use is charged
	}
	if l := left(); l >= 0 {
		t.Fatalf("right after the kill, nothing of the killed replica's %d reservations is charged", inFlight)
	}
	killed := time.Now()
	for left() < 0 {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("the killed replica's reservations are still charged 10s after the kill, with a 1s lease")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the killed replica's %d reservations were refunded %v after the kill (lease 1s)", inFlight, time.Since(killed).Round(time.Millisecond))
}

// readiness is what /readyz of g says.
func readiness(t *testing.T, g *gateway) (int, string, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.cfg.Server.AdminListen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Status, Reason string }
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r.Status, r.Reason
}

// TestSIGKILLDuringAPostgresOutageThenStartWithoutIt kills a replica while
// PostgreSQL is cut off, after it answered requests from its spool's
// point of view durably, and starts it again while the database is still
// away: it starts, says it is degraded, refuses keys it cannot check with
// 503 auth_unavailable (it has none cached), and once the database is
// back it serves again and the ledger holds every request answered before
// the kill: the spool survived the kill and was replayed.
func TestSIGKILLDuringAPostgresOutageThenStartWithoutIt(t *testing.T) {
	cfg, _ := replicaConfig(t)
	u, err := url.Parse(cfg.Store.DSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	cfg.Store.DSN = u.String()
	cfg.Auth.CacheTTL = config.Duration(300 * time.Millisecond)
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "eng", "open")
	if an := ask(g.client(key), 10); an.status != http.StatusOK {
		t.Fatalf("before the outage: %s", an.outcome())
	}

	proxy.setCut(true)
	answered := 1
	for range 20 {
		if an := ask(g.client(key), 10); an.status != http.StatusOK {
			t.Fatalf("during the outage: %s", an.outcome())
		}
		answered++
	}
	// The ledger's loss bound under SIGKILL is its flush interval (200ms).
	time.Sleep(600 * time.Millisecond)
	g.stop(syscall.SIGKILL)

	g = startGateway(t, cfg) // PostgreSQL is still cut off
	if status, state, reason := readiness(t, g); status != http.StatusOK || state != "degraded" {
		t.Errorf("readiness of a replica started without its database: %d %s (%s), want 200 degraded", status, state, reason)
	}
	if an := ask(g.client(key), 10); an.status != http.StatusServiceUnavailable || an.code != "auth_unavailable" {
		t.Errorf("a key the restarted replica cannot check: %s, want 503 auth_unavailable", an.outcome())
	}

	proxy.setCut(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		an := ask(g.client(key), 10)
		if an.status == http.StatusOK {
			answered++
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20s after the database came back the key still gets %s", an.outcome())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		rows := g.usage("client")
		if rows["app"].Requests == int64(answered) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger holds %d of the %d answered requests after the database came back", rows["app"].Requests, answered)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status, state, reason := readiness(t, g); status != http.StatusOK || state == "degraded" {
		t.Errorf("readiness after the database came back: %d %s (%s)", status, state, reason)
	}
	t.Logf("%d requests answered around a SIGKILL during a PostgreSQL outage and a start without it; all in the ledger", answered)
}

// TestSIGKILLMidBurstLosesAtMostTheFlushInterval kills a replica while
// eight callers keep it busy, and starts it again on the same data folder:
// every request it answered more than the ledger's flush interval (200 ms)
// before the kill is in the ledger, once, with the status the caller saw.
func TestSIGKILLMidBurstLosesAtMostTheFlushInterval(t *testing.T) {
	cfg, _ := replicaConfig(t)
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "eng", "open")
	l := startLoad(g.client(key), 8, 20, true)
	time.Sleep(1500 * time.Millisecond)
	g.stop(syscall.SIGKILL)
	killed := time.Now()
	answers := l.wait(10 * time.Second)
	g = startGateway(t, cfg) // writes what the spool holds
	time.Sleep(time.Second)

	db, err := sql.Open("pgx", cfg.Store.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ledger := map[string]int{}
	rows, err := db.Query(`SELECT request_id, status FROM usage_events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var status int
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		ledger[id] = status
	}
	rows.Close()
	answered, missing, missingLate := 0, 0, 0
	var oldestMissing time.Duration
	for _, a := range answers {
		if a.status == 0 {
			continue
		}
		answered++
		status, ok := ledger[a.requestID]
		switch {
		case !ok && a.at.After(killed.Add(-time.Second)):
			// Within the bound (the flush interval, with a margin for
			// the caller's clock reading the answer after it was sent).
			missingLate++
			oldestMissing = max(oldestMissing, killed.Sub(a.at))
		case !ok:
			missing++
			t.Errorf("request %s answered %v before the kill is not in the ledger", a.requestID, killed.Sub(a.at).Round(time.Millisecond))
		case status != a.status:
			t.Errorf("request %s was answered %d; the ledger says %d", a.requestID, a.status, status)
		}
	}
	if answered == 0 {
		t.Fatal("no request was answered")
	}
	t.Logf("SIGKILL under load from 8 callers: %d answered, %d in the ledger after the restart; %d missing, answered at most %v before the kill; %d missing earlier",
		answered, len(ledger), missingLate, oldestMissing.Round(time.Millisecond), missing)
}
