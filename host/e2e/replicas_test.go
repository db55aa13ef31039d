package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// replicaConfig is a gateway that keeps its state in a PostgreSQL schema and
// a Redis server of the test's own, as replicas behind one load balancer do.
func replicaConfig(t *testing.T) (*config.Config, *redisServer) {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	rds := startRedis(t)
	cfg := baseConfig(t)
	cfg.Store = config.Store{Driver: "postgres", DSN: dsn}
	useRedis(cfg, rds, "deny")
	cfg.Upstreams[0].Latency = config.Duration(20 * time.Millisecond)
	return cfg, rds
}

// TestReplicasShareLimits runs two gateway processes on one PostgreSQL
// database and one Redis server: a client's RPM and a department's budget
// hold across both, and a key revoked through one replica stops working on
// the other within auth.cache_ttl.
func TestReplicasShareLimits(t *testing.T) {
	const (
		rpm        = 20
		deptBudget = 600
		maxTokens  = 20
	)
	cfg, _ := replicaConfig(t)
	cfg.Auth.CacheTTL = config.Duration(time.Second)
	cfg.Tiers["rpm"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: rpm}}
	cfg.Departments = map[string]config.Budget{"research": {DailyTokens: deptBudget}}
	a := startGateway(t, cfg)
	b := startGateway(t, replicaOf(t, cfg))

	t.Run("rpm", func(t *testing.T) {
		key, _ := a.createClient("rpm-client", "ops", "rpm")
		answers := askAll([]openai.Client{a.client(key), b.client(key)}, 3*rpm, maxTokens)
		counts := tally(answers)
		if counts["200"] != rpm || counts["429 rate_limit_exceeded"] != 2*rpm {
			t.Fatalf("%d requests over two replicas against an RPM of %d: %v; want exactly %d admitted", 3*rpm, rpm, counts, rpm)
		}
		perReplica := [2]int{}
		for i, an := range answers {
			if an.status == http.StatusOK {
				perReplica[i%2]++
			}
		}
		t.Logf("RPM %d: %d of %d admitted (%d by one replica, %d by the other)", rpm, counts["200"], len(answers), perReplica[0], perReplica[1])
	})

	t.Run("department budget", func(t *testing.T) {
		// Two clients of one department, each calling its own replica.
		k1, _ := a.createClient("research-1", "research", "open")
		k2, _ := b.createClient("research-2", "research", "open")
		answers := askAll([]openai.Client{a.client(k1), b.client(k2)}, 160, maxTokens)
		counts := tally(answers)
		if counts["200"]+counts["429 budget_exceeded"] != len(answers) || counts["429 budget_exceeded"] == 0 {
			t.Fatalf("outcomes %v; want 200s and 429 budget_exceeded only, some of each", counts)
		}
		var seen int64
		served := [2]int{}
		for i, an := range answers {
			seen += an.tokens
			if an.status == http.StatusOK {
				served[i%2]++
			}
		}
		billed := b.usage("department", a)["research"].TotalTokens
		if billed != seen {
			t.Errorf("the shared ledger bills %d tokens to the department; its clients were served %d", billed, seen)
		}
		// Each replica got half the requests: with a budget per replica,
		// the department would be served about twice the budget.
		if seen > deptBudget+maxTokens {
			t.Fatalf("the department was served %d tokens (%d requests by one replica, %d by the other) against a budget of %d shared by both",
				seen, served[0], served[1], deptBudget)
		}
		t.Logf("department budget %d: %d tokens served over %d requests (%d by one replica, %d by the other), %d refused",
			deptBudget, seen, served[0]+served[1], served[0], served[1], counts["429 budget_exceeded"])
	})

	t.Run("key budget", func(t *testing.T) {
		// A key with a daily budget of its own, used through both replicas
		// at once, by a client whose own limits leave room.
		const keyBudget = 500
		a.createClient("keyed", "ops", "open")
		status, body := a.admin("POST", "/admin/keys", `{"client_id":"keyed","name":"ci","limits":{"daily_tokens":500}}`)
		if status != http.StatusCreated {
			t.Fatalf("create key: %d %s", status, body)
		}
		var k struct{ Key string }
		json.Unmarshal(body, &k)
		answers := askAll([]openai.Client{a.client(k.Key), b.client(k.Key)}, 200, maxTokens)
		counts := tally(answers)
		if counts["200"]+counts["429 budget_exceeded"] != len(answers) || counts["429 budget_exceeded"] == 0 {
			t.Fatalf("outcomes %v; want 200s and 429 budget_exceeded only, some of each", counts)
		}
		var seen int64
		for _, an := range answers {
			seen += an.tokens
		}
		if seen > keyBudget {
			t.Fatalf("the key was served %d tokens over two replicas against its own budget of %d", seen, keyBudget)
		}
		t.Logf("key budget %d: %d tokens served over two replicas, %d of %d requests refused", keyBudget, seen, counts["429 budget_exceeded"], len(answers))
	})

	t.Run("revoked key", func(t *testing.T) {
		key, keyID := a.createClient("leaver", "ops", "open")
		ca, cb := a.client(key), b.client(key)
		// Both replicas now hold the key's client context in their caches;
		// the other replica's entry lapses at most ttl after cached.
		cached := time.Now()
		for i, c := range []openai.Client{cb, ca} {
			if an := ask(c, maxTokens); an.status != http.StatusOK {
				t.Fatalf("replica %d before revocation: %s", i, an.outcome())
			}
		}
		if status, body := a.admin("POST", "/admin/keys/"+keyID+"/revoke", ""); status != http.StatusOK {
			t.Fatalf("revoke: %d %s", status, body)
		}
		revoked := time.Now()
		if an := ask(ca, maxTokens); an.outcome() != "401 invalid_api_key" {
			t.Fatalf("the replica that revoked the key answered %s", an.outcome())
		}
		ttl := cfg.Auth.CacheTTL.D()
		const slack = 200 * time.Millisecond // the polling interval and a request's time
		for {
			an := ask(cb, maxTokens)
			if an.outcome() == "401 invalid_api_key" {
				break
			}
			if an.status != http.StatusOK {
				t.Fatalf("the other replica answered %s", an.outcome())
			}
			if time.Since(cached) > ttl+slack {
				t.Fatalf("the other replica still serves the key %v after it cached it; auth.cache_ttl is %v", time.Since(cached), ttl)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("revoked key refused at once by its replica, and by the other %v after the revocation (%v after it cached the key; cache_ttl %v)",
			time.Since(revoked).Round(time.Millisecond), time.Since(cached).Round(time.Millisecond), ttl)
	})

	t.Run("report", func(t *testing.T) {
		// `sluice report` with the replicas' configuration reads their ledger.
		want := a.usage("department", b)
		got := parseReport(t, sluiceCLI(t, "report", "--config", a.cfgPath, "--by", "department", "--format", "json"))
		if got["research"] != want["research"] || got["ops"] != want["ops"] {
			t.Fatalf("sluice report: %+v; the admin API reports %+v", got, want)
		}
	})
}

// TestKeyChangesReachOtherReplicasThroughRedis: with Redis, a client
// deleted or a key rotated through one replica stops working on the other
// in about a round trip, far inside auth.cache_ttl (30s here), because the
// replica that made the change tells the others to forget cached keys.
func TestKeyChangesReachOtherReplicasThroughRedis(t *testing.T) {
	const maxTokens = 20
	cfg, _ := replicaConfig(t)
	cfg.Auth.CacheTTL = config.Duration(30 * time.Second)
	a := startGateway(t, cfg)
	b := startGateway(t, replicaOf(t, cfg))

	// refusedBy polls c until it answers want, and returns how long after
	// since that took.
	refusedBy := func(c openai.Client, want string, since time.Time) time.Duration {
		t.Helper()
		for time.Since(since) < 10*time.Second {
			an := ask(c, maxTokens)
			if an.outcome() == want {
				return time.Since(since)
			}
			if an.status != http.StatusOK {
				t.Fatalf("the other replica answered %s", an.outcome())
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("the other replica did not answer %s within 10s (auth.cache_ttl is 30s)", want)
		return 0
	}

	key, _ := a.createClient("leaver", "ops", "open")
	if an := ask(b.client(key), maxTokens); an.status != http.StatusOK { // b caches the key
		t.Fatalf("before: %s", an.outcome())
	}
	if status, body := a.admin("DELETE", "/admin/clients/leaver", ""); status != http.StatusOK {
		t.Fatalf("delete: %d %s", status, body)
	}
	deleted := refusedBy(b.client(key), "401 invalid_api_key", time.Now())

	key2, keyID2 := a.createClient("rotator", "ops", "open")
	if an := ask(b.client(key2), maxTokens); an.status != http.StatusOK {
		t.Fatalf("before: %s", an.outcome())
	}
	if status, body := a.admin("POST", "/admin/keys/"+keyID2+"/rotate", `{"grace":"0s"}`); status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", status, body)
	}
	rotated := refusedBy(b.client(key2), "401 key_expired", time.Now())
	t.Logf("on the other replica: a deleted client's key refused after %v, a rotated key after %v (auth.cache_ttl 30s)",
		deleted.Round(time.Millisecond), rotated.Round(time.Millisecond))
}
