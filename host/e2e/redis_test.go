package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
)

// outageRPM is the RPM of the tier the outage tests count against.
const outageRPM = 5

// outage runs a load of unlimited requests through gateways, stops Redis in
// the middle of it, and returns the answers and the moment Redis died.
func outage(rds *redisServer, key string, gateways ...*gateway) ([]answer, time.Time) {
	var loads []*load
	for _, g := range gateways {
		loads = append(loads, startLoad(g.client(key), 2, 20, false))
	}
	time.Sleep(300 * time.Millisecond)
	rds.stop()
	stopped := time.Now()
	time.Sleep(700 * time.Millisecond)
	var answers []answer
	for _, l := range loads {
		answers = append(answers, l.stop()...)
	}
	return answers, stopped
}

// checkAlive fails the test if a gateway has exited or stopped answering.
func checkAlive(t *testing.T, gateways ...*gateway) {
	t.Helper()
	for _, g := range gateways {
		resp, err := http.Get("http://" + g.cfg.Server.Listen + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		if !g.alive() || err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the gateway on %s did not survive the outage (%v, %v)", g.cfg.Server.Listen, g.state, err)
		}
		if strings.Contains(g.logTail(1000), "panic") {
			t.Fatalf("the gateway on %s panicked:\n%s", g.cfg.Server.Listen, g.logTail(40))
		}
	}
}

// TestRedisOutageDenies stops Redis under load with fail_mode deny: requests
// get 503 limits_unavailable, OpenAI-shaped, and nothing crashes; once Redis
// is back, requests are served and a fresh RPM window admits exactly the limit.
func TestRedisOutageDenies(t *testing.T) {
	rds := startRedis(t)
	cfg := baseConfig(t)
	useRedis(cfg, rds, "deny")
	cfg.Upstreams[0].Latency = config.Duration(20 * time.Millisecond)
	cfg.Tiers["rpm"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: outageRPM}}
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "eng", "open")

	answers, stopped := outage(rds, key, g)
	counts := tally(answers)
	if len(counts) != 2 || counts["200"] == 0 || counts["503 limits_unavailable"] == 0 {
		t.Fatalf("outcomes %v; want 200s before Redis stopped and 503 limits_unavailable after", counts)
	}
	// A request admitted just before Redis died may finish after it; none
	// is admitted once a reservation has had time to fail.
	lastServed := time.Time{}
	for _, a := range answers {
		if a.status == http.StatusOK && a.at.After(lastServed) {
			lastServed = a.at
		}
	}
	if d := lastServed.Sub(stopped); d > cfg.Limits.Redis.Timeout.D()+200*time.Millisecond {
		t.Errorf("a request was served %v after Redis stopped", d)
	}
	checkAlive(t, g)

	a := ask(g.client(key), 20)
	var body map[string]any
	if err := json.Unmarshal([]byte(a.rawError), &body); err != nil {
		t.Fatalf("the 503 body %q is not JSON: %v", a.rawError, err)
	}
	if a.outcome() != "503 limits_unavailable" || a.typ != "service_unavailable_error" || a.message == "" ||
		a.requestID == "" || len(body) != 4 || body["param"] != nil {
		t.Fatalf("while Redis is down: %s, type %q, error object %s, request id %q", a.outcome(), a.typ, a.rawError, a.requestID)
	}

	rds.start()
	restarted := time.Now()
	for ask(g.client(key), 20).status != http.StatusOK {
		if time.Since(restarted) > 5*time.Second {
			t.Fatal("requests are still refused 5s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	back := time.Since(restarted)
	fresh, _ := g.createClient("fresh", "eng", "rpm")
	after := tally(askAll([]openai.Client{g.client(fresh)}, 2*outageRPM, 20))
	if after["200"] != outageRPM || after["429 rate_limit_exceeded"] != outageRPM {
		t.Fatalf("after Redis came back, %d requests against an RPM of %d: %v; want exactly %d admitted", 2*outageRPM, outageRPM, after, outageRPM)
	}
	t.Logf("fail_mode deny: %v during the load; served again %v after Redis restarted; then %v against an RPM of %d",
		counts, back.Round(time.Millisecond), after, outageRPM)
}

// TestRedisOutageFallsBackToLocalLimits stops Redis under load on two replicas
// with fail_mode local: requests keep being served, each replica enforces the
// limits alone; once Redis is back, both count there again (a fresh RPM window
// admits exactly the limit across both) and the tokens spent during the
// outage are charged to the budgets.
func TestRedisOutageFallsBackToLocalLimits(t *testing.T) {
	const daily = 100_000
	cfg, rds := replicaConfig(t)
	cfg.Limits.Redis.FailMode = "local"
	cfg.Tiers["rpm"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: outageRPM}}
	cfg.Tiers["daily"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: daily}}
	a := startGateway(t, cfg)
	b := startGateway(t, replicaOf(t, cfg))
	key, _ := a.createClient("app", "eng", "open")

	answers, _ := outage(rds, key, a, b)
	if counts := tally(answers); len(counts) != 1 || counts["200"] == 0 {
		t.Fatalf("outcomes %v; want every request served", counts)
	}
	checkAlive(t, a, b)

	// Each replica admits the RPM on its own while Redis is down.
	limited, _ := a.createClient("limited", "eng", "rpm")
	during := askAll([]openai.Client{a.client(limited), b.client(limited)}, 4*outageRPM, 20)
	perReplica := [2]int{}
	for i, an := range during {
		if an.status == http.StatusOK {
			perReplica[i%2]++
		}
	}
	if c := tally(during); c["200"] != 2*outageRPM || c["429 rate_limit_exceeded"] != 2*outageRPM || perReplica != [2]int{outageRPM, outageRPM} {
		t.Fatalf("during the outage, %d requests over two replicas against an RPM of %d: %v, %v per replica; want %d on each",
			4*outageRPM, outageRPM, c, perReplica, outageRPM)
	}
	// Tokens spent during the outage, to be charged to Redis when it returns.
	spender, _ := a.createClient("spender", "eng", "daily")
	var spent int64
	for _, an := range askAll([]openai.Client{a.client(spender), b.client(spender)}, 20, 20) {
		if an.status != http.StatusOK {
			t.Fatalf("spending during the outage: %s", an.outcome())
		}
		spent += an.tokens
	}

	rds.start()
	restarted := time.Now()
	// Each replica tries Redis again after a pause and counts there once a
	// call succeeds: wait until a probe request of each leaves its count in
	// Redis.
	for i, g := range []*gateway{a, b} {
		id := "probe-" + strconv.Itoa(i)
		probe, _ := a.createClient(id, "eng", "open")
		for {
			if an := ask(g.client(probe), 20); an.status != http.StatusOK {
				t.Fatalf("probe after Redis came back: %s", an.outcome())
			}
			if reply, err := rds.command("KEYS *client:" + id); err == nil && reply == "*1" {
				break
			}
			if time.Since(restarted) > 5*time.Second {
				t.Fatalf("replica %d does not count in Redis 5s after it came back", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	back := time.Since(restarted)

	fresh, _ := a.createClient("fresh", "eng", "rpm")
	after := tally(askAll([]openai.Client{a.client(fresh), b.client(fresh)}, 4*outageRPM, 20))
	if after["200"] != outageRPM || after["429 rate_limit_exceeded"] != 3*outageRPM {
		t.Fatalf("after Redis came back, %d requests over two replicas against an RPM of %d: %v; want exactly %d admitted",
			4*outageRPM, outageRPM, after, outageRPM)
	}

	// The outage's spending reaches the budget in Redis (Redis lost its
	// counts when it stopped; the replicas replay what they kept).
	var remaining int64 = daily
	for {
		an := ask(b.client(spender), 20)
		if an.status != http.StatusOK {
			t.Fatalf("spender after the outage: %s", an.outcome())
		}
		remaining, _ = strconv.ParseInt(an.header.Get("x-sluice-budget-remaining-tokens-day"), 10, 64)
		if remaining <= daily-spent {
			break
		}
		if time.Since(restarted) > 5*time.Second {
			t.Fatalf("5s after Redis came back, %d of %d daily tokens remain; %d were spent during the outage", remaining, daily, spent)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("fail_mode local: load served throughout; RPM %d gave %v per replica during the outage; both replicas counted in Redis %v after it restarted; then %v; %d tokens spent during the outage charged (%d of %d remain)",
		outageRPM, perReplica, back.Round(time.Millisecond), after, spent, remaining, daily)
}

// TestRedisCountersSurviveAGatewayRestart restarts the only gateway: the
// client's RPM and daily budget continue where they were, from Redis.
func TestRedisCountersSurviveAGatewayRestart(t *testing.T) {
	const (
		limit     = 4
		daily     = 1000
		maxTokens = 10
	)
	rds := startRedis(t)
	cfg := baseConfig(t)
	useRedis(cfg, rds, "deny")
	cfg.Tiers["limited"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: limit, DailyTokens: daily}}
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "eng", "limited")
	var used int64
	for range limit - 1 {
		an := ask(g.client(key), maxTokens)
		if an.status != http.StatusOK {
			t.Fatalf("before the restart: %s", an.outcome())
		}
		used += an.tokens
	}
	if code, _ := g.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("sluice exited with %d", code)
	}

	g = startGateway(t, cfg)
	an := ask(g.client(key), maxTokens)
	remaining, _ := strconv.ParseInt(an.header.Get("x-sluice-budget-remaining-tokens-day"), 10, 64)
	if an.status != http.StatusOK || an.header.Get("x-ratelimit-remaining-requests") != "0" || remaining > daily-used-maxTokens {
		t.Fatalf("after the restart: %s, %s requests and %d tokens remaining; %d requests and %d tokens had been used before",
			an.outcome(), an.header.Get("x-ratelimit-remaining-requests"), remaining, limit-1, used)
	}
	if an := ask(g.client(key), maxTokens); an.outcome() != "429 rate_limit_exceeded" {
		t.Fatalf("request %d within the minute, after the restart: %s; want 429 rate_limit_exceeded", limit+1, an.outcome())
	}
	t.Logf("after a restart, request %d of an RPM of %d was the last admitted (%d tokens remaining of %d)", limit, limit, remaining, daily)
}

// TestRedisRestartedEmptyKeepsBudgets restarts Redis without persistence
// after a client spent part of its daily budget: the gateway finds the
// epoch marker gone, re-seeds the counters from the ledger before admitting
// by them, and the client is served no more than the budget in all.
func TestRedisRestartedEmptyKeepsBudgets(t *testing.T) {
	const (
		daily     = 3000
		maxTokens = 50
	)
	rds := startRedis(t)
	cfg := baseConfig(t)
	useRedis(cfg, rds, "deny")
	cfg.Tiers["daily"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: daily}}
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "eng", "daily")
	var before int64
	for before < daily/2 {
		an := ask(g.client(key), maxTokens)
		if an.status != http.StatusOK {
			t.Fatalf("before the restart, %d tokens spent: %s", before, an.outcome())
		}
		before += an.tokens
	}
	time.Sleep(500 * time.Millisecond) // the ledger writes every 200 ms

	rds.stop()
	rds.start() // empty: no snapshot, no AOF
	if reply, err := rds.command("DBSIZE"); err != nil || reply != ":0" {
		t.Fatalf("redis after the restart: %q, %v; want empty", reply, err)
	}
	var after int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		answers := askAll([]openai.Client{g.client(key)}, 8, maxTokens)
		refused := false
		for _, an := range answers {
			switch an.outcome() {
			case "200":
				after += an.tokens
			case "429 budget_exceeded":
				refused = true
			case "503 limits_unavailable":
				// the first calls after the restart may find it still down
			default:
				t.Fatalf("after the restart: %s", an.outcome())
			}
		}
		if refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never refused after the restart: %d + %d tokens served of %d", before, after, daily)
		}
	}
	if before+after > daily {
		t.Fatalf("served %d tokens before Redis restarted empty and %d after: %d of a %d budget", before, after, before+after, daily)
	}
	if !strings.Contains(g.logTail(200), "re-seeded them from the ledger") {
		t.Errorf("no re-seed logged:\n%s", g.logTail(20))
	}
	t.Logf("%d tokens before Redis restarted empty, %d after, budget %d", before, after, daily)
}

// TestRedisRestartedEmptyUnderLoad restarts Redis without persistence while
// two replicas serve a client's daily budget from several callers: once the
// counters are re-seeded from the ledger, the client is served no more than
// the budget and the stated error (what the ledger had not written when it
// was read, about 200 ms of requests, and the requests in flight).
func TestRedisRestartedEmptyUnderLoad(t *testing.T) {
	const (
		daily     = 6000
		maxTokens = 40
		workers   = 3 // per replica
	)
	cfg, rds := replicaConfig(t)
	cfg.Tiers["daily"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: daily}}
	a := startGateway(t, cfg)
	b := startGateway(t, replicaOf(t, cfg))
	key, _ := a.createClient("app", "eng", "daily")

	la := startLoad(a.client(key), workers, maxTokens, false)
	lb := startLoad(b.client(key), workers, maxTokens, false)
	// Restart Redis once about a third of the budget is spent.
	deadline := time.Now().Add(20 * time.Second)
	for a.usage("client")["app"].TotalTokens < daily/3 {
		if time.Now().After(deadline) {
			t.Fatal("a third of the budget was not spent in 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rds.stop()
	restarted := time.Now()
	rds.start() // empty
	// Go on until every caller is refused for the budget.
	for {
		time.Sleep(200 * time.Millisecond)
		la.mu.Lock()
		lastA := la.answers[len(la.answers)-1]
		la.mu.Unlock()
		lb.mu.Lock()
		lastB := lb.answers[len(lb.answers)-1]
		lb.mu.Unlock()
		if lastA.outcome() == "429 budget_exceeded" && lastB.outcome() == "429 budget_exceeded" {
			break
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("not refused for the budget 40s in: last answers %s, %s", lastA.outcome(), lastB.outcome())
		}
	}
	answers := append(la.stop(), lb.stop()...)

	var served, nearRestart, perRequest int64
	for _, an := range answers {
		if an.status != http.StatusOK {
			continue
		}
		served += an.tokens
		perRequest = max(perRequest, an.tokens)
		// Answered in the last flush interval (with margin) before the
		// restart: the ledger may not hold them when it is read.
		if an.at.Before(restarted) && an.at.After(restarted.Add(-time.Second)) {
			nearRestart += an.tokens
		}
	}
	bound := int64(daily) + nearRestart + 2*workers*perRequest
	if served > bound {
		t.Errorf("served %d tokens of a %d budget across a Redis restart under load; the stated bound is %d", served, daily, bound)
	}
	if !strings.Contains(a.logTail(400)+b.logTail(400), "re-seeded them from the ledger") {
		t.Errorf("no re-seed logged")
	}
	t.Logf("Redis restarted empty under load from %d callers on 2 replicas: %d tokens served of a %d budget (bound %d: %d answered in the second before, %d in flight at most); outcomes %v",
		2*workers, served, daily, bound, nearRestart, 2*workers*perRequest, tally(answers))
}
