package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
)

// TestKeyBudgetHoldsAcrossReplicas: two gateway processes on one PostgreSQL
// and one Redis; a key with its own daily budget, of a client and a
// department that have budgets of their own, called 200 at a time through
// both. The key is served no more than its budget, refused with a 429 that
// names it, and the client's other key still works.
func TestKeyBudgetHoldsAcrossReplicas(t *testing.T) {
	const (
		keyBudget  = 500
		clientDay  = 100_000
		deptBudget = 200_000
		maxTokens  = 10
	)
	cfg, _ := replicaConfig(t)
	cfg.Tiers["budgeted"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: clientDay}}
	cfg.Departments = map[string]config.Budget{"research": {DailyTokens: deptBudget}}
	a := startGateway(t, cfg)
	b := startGateway(t, replicaOf(t, cfg))
	other, _ := a.createClient("app", "research", "budgeted")
	status, body := a.admin("POST", "/admin/keys", `{"client_id":"app","name":"batch job","limits":{"daily_tokens":500}}`)
	if status != http.StatusCreated {
		t.Fatalf("create the limited key: %d %s", status, body)
	}
	var k struct{ Key string }
	if err := json.Unmarshal(body, &k); err != nil || k.Key == "" {
		t.Fatalf("create the limited key: %v in %s", err, body)
	}

	answers := askAll([]openai.Client{a.client(k.Key), b.client(k.Key)}, 200, maxTokens)
	counts := tally(answers)
	var served int64
	for _, an := range answers {
		served += an.tokens
		if an.status == http.StatusTooManyRequests && an.code != "budget_exceeded" {
			t.Fatalf("a 429 with code %q: %s", an.code, an.message)
		}
	}
	if counts["200"]+counts["429 budget_exceeded"] != len(answers) || counts["429 budget_exceeded"] == 0 {
		t.Fatalf("outcomes %v; want 200s and 429 budget_exceeded only, some of each", counts)
	}
	if served > keyBudget {
		t.Errorf("the key was served %d tokens over two replicas; its own budget is %d", served, keyBudget)
	}
	if billed := b.usage("client", a)["app"].TotalTokens; billed != served {
		t.Errorf("the shared ledger bills %d tokens; the key was served %d", billed, served)
	}
	if an := ask(b.client(other), maxTokens); an.status != http.StatusOK {
		t.Errorf("the client's other key: %d %s; the limited key's budget must not hold it", an.status, an.message)
	}
	t.Logf("key budget %d: %d of 200 answered (%d tokens), %d refused", keyBudget, counts["200"], served, counts["429 budget_exceeded"])
}
