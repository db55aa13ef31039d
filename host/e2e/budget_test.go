package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
)

// TestConcurrentRequestsStayWithinTheBudget sends 200 requests at once against
// a daily token budget with room for about 50 of them, on one gateway with
// the in-process limiter: the tokens the ledger bills never exceed the budget
// by more than one request's max_tokens, and every refusal is a budget 429.
func TestConcurrentRequestsStayWithinTheBudget(t *testing.T) {
	const (
		requests  = 200
		maxTokens = 20
		budget    = 1000 // a request bills about 18 tokens and reserves about 27
	)
	cfg := baseConfig(t)
	cfg.Upstreams[0].Latency = config.Duration(50 * time.Millisecond) // so that requests overlap
	cfg.Tiers["budget"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: budget}}
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "research", "budget")

	answers := askAll([]openai.Client{g.client(key)}, requests, maxTokens)
	counts := tally(answers)
	admitted, refused := counts["200"], counts["429 budget_exceeded"]
	if admitted+refused != requests || admitted == 0 || refused == 0 {
		t.Fatalf("outcomes %v; want only 200s and 429 budget_exceeded, some of each", counts)
	}
	var seen int64
	for _, a := range answers {
		if a.status == 429 && (a.typ != "insufficient_quota" || a.header.Get("x-sluice-budget-limit-tokens-day") == "") {
			t.Fatalf("a budget 429 has type %q and headers %v; want insufficient_quota with x-sluice-budget-*", a.typ, a.header)
		}
		seen += a.tokens
	}
	if seen > budget+maxTokens {
		t.Errorf("the callers were served %d tokens against a %d-token budget; at most %d may be billed", seen, budget, budget+maxTokens)
	}

	// The ledger bills what the callers saw, and records the refusals.
	row := g.usage("client")["app"]
	if row.Requests != requests || row.TotalTokens != seen {
		t.Errorf("the ledger holds %d requests and %d tokens; the callers sent %d and were served %d", row.Requests, row.TotalTokens, requests, seen)
	}
	// `sluice report` reads the same ledger (flushed by the report above).
	report := parseReport(t, sluiceCLI(t, "report", "--config", g.cfgPath, "--by", "client", "--format", "json"))
	if got := report["app"]; got.Requests != requests || got.TotalTokens != seen {
		t.Errorf("sluice report: %+v; want %d requests and %d tokens", got, requests, seen)
	}
	t.Logf("%d concurrent requests: %d admitted, %d refused with budget_exceeded; %d tokens billed of a %d-token budget",
		requests, admitted, refused, seen, budget)
}

// TestServesWithTheDecisionLogOff serves a request with policy.decision_log
// "off", the setting the example configuration documents for disabling it.
func TestServesWithTheDecisionLogOff(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Policy.DecisionLog = "off"
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "research", "open")
	if a := ask(g.client(key), 20); a.status != 200 {
		t.Fatalf("with the decision log off: %s, %v; the gateway is alive: %v", a.outcome(), a.err, g.alive())
	}
}

// TestConcurrentRequestsWithoutMaxTokensStayWithinTheBudget is the same
// burst from a caller that leaves out max_tokens and asks for replies five
// times the default reservation: the budget holds exactly.
// With Redis the shrinking of a reply to a budget's rest reads Redis's
// denials, so both limiters are held to it.
func TestConcurrentRequestsWithoutMaxTokensStayWithinTheBudget(t *testing.T) {
	t.Run("memory", func(t *testing.T) { burstWithoutMaxTokens(t, false) })
	t.Run("redis", func(t *testing.T) { burstWithoutMaxTokens(t, true) })
}

func burstWithoutMaxTokens(t *testing.T, redis bool) {
	const (
		requests     = 200
		defaultReply = 20
		budget       = 3000
	)
	cfg := baseConfig(t)
	if redis {
		useRedis(cfg, startRedis(t), "deny")
	}
	cfg.Upstreams[0].Latency = config.Duration(50 * time.Millisecond)
	cfg.Limits.DefaultMaxTokens = defaultReply
	cfg.Tiers["budget"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: budget}}
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "research", "budget")
	c := g.client(key)

	prompt := strings.TrimSpace(strings.Repeat("word ", 5*defaultReply)) // the mock echoes it
	out := make([]answer, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			var resp *http.Response
			params := openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
			got, err := c.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
			var e *openai.Error
			switch {
			case err == nil:
				out[i] = answer{status: resp.StatusCode, tokens: got.Usage.TotalTokens}
				if got.Usage.CompletionTokens > defaultReply {
					t.Errorf("a reply without max_tokens used %d completion tokens; %d were reserved", got.Usage.CompletionTokens, defaultReply)
				}
			case errors.As(err, &e):
				out[i] = answer{status: e.StatusCode, code: e.Code, typ: e.Type}
			default:
				out[i] = answer{err: err}
			}
		})
	}
	wg.Wait()
	counts := tally(out)
	admitted, refused := counts["200"], counts["429 budget_exceeded"]
	if admitted+refused != requests || admitted == 0 || refused == 0 {
		t.Fatalf("outcomes %v; want only 200s and 429 budget_exceeded, some of each", counts)
	}
	var seen int64
	for _, a := range out {
		seen += a.tokens
	}
	if seen > budget {
		t.Errorf("the callers were served %d tokens against a %d-token budget", seen, budget)
	}
	if row := g.usage("client")["app"]; row.TotalTokens != seen {
		t.Errorf("the ledger bills %d tokens; the callers were served %d", row.TotalTokens, seen)
	}
	t.Logf("%d concurrent requests without max_tokens: %d admitted, %d refused; %d tokens billed of a %d-token budget",
		requests, admitted, refused, seen, budget)
}
