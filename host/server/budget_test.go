package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
)

// longPrompt makes the mock, which echoes the last user message, reply with
// about words tokens unless a reply limit stops it.
func longPrompt(words int) string {
	return strings.TrimSpace(strings.Repeat("budget ", words))
}

// billed is what the ledger holds for the test's one client.
func (h *harness) billed() (requests, tokens int64) {
	h.t.Helper()
	ctx := context.Background()
	if err := h.srv.Ledger().Flush(ctx); err != nil {
		h.t.Fatal(err)
	}
	totals, err := h.srv.Store().UsageSince(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		h.t.Fatal(err)
	}
	for _, t := range totals {
		requests += t.Requests
		tokens += t.TotalTokens
	}
	return requests, tokens
}

// TestBudgetHoldsWithoutMaxTokens is the attack of a caller that leaves out
// max_tokens so that its reply is not reserved: many concurrent requests,
// plain and streamed, each asking the mock for a reply four times the
// default reservation. The ledger must stay within the daily budget, and
// every reply must stop at the limit the reservation held.
func TestBudgetHoldsWithoutMaxTokens(t *testing.T) {
	const (
		budget       = 3000
		defaultReply = 60
		requests     = 40
	)
	cfg := testConfig(t, t.TempDir(), config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: budget}})
	cfg.Limits.DefaultMaxTokens = defaultReply
	cfg.Upstreams[0].Latency = config.Duration(50 * time.Millisecond) // so that requests overlap
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	prompt := longPrompt(4 * defaultReply)

	var mu sync.Mutex
	var served, admitted, refused int64
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			params := chat("gpt-4o-mini", prompt)
			var usage openai.CompletionUsage
			var err error
			if i%2 == 0 {
				var resp *openai.ChatCompletion
				if resp, err = c.Chat.Completions.New(context.Background(), params); err == nil {
					usage = resp.Usage
				}
			} else {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				s := c.Chat.Completions.NewStreaming(context.Background(), params)
				for s.Next() {
					if u := s.Current().Usage; u.TotalTokens > 0 {
						usage = u
					}
				}
				err = s.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			var e *openai.Error
			switch {
			case err == nil:
				admitted++
				served += usage.TotalTokens
				if usage.CompletionTokens > defaultReply {
					t.Errorf("a reply without max_tokens used %d completion tokens; the reservation held %d", usage.CompletionTokens, defaultReply)
				}
			case errors.As(err, &e) && e.StatusCode == http.StatusTooManyRequests && e.Code == "budget_exceeded":
				refused++
			default:
				t.Errorf("request: %v", err)
			}
		}()
	}
	wg.Wait()
	if admitted == 0 || refused == 0 {
		t.Fatalf("%d admitted, %d refused; want some of each", admitted, refused)
	}
	_, tokens := h.billed()
	if tokens != served {
		t.Errorf("the ledger holds %d tokens; the callers were served %d", tokens, served)
	}
	if tokens > budget {
		t.Errorf("%d tokens billed against a daily budget of %d", tokens, budget)
	}
	t.Logf("%d requests without max_tokens: %d admitted, %d refused; %d of %d tokens billed", requests, admitted, refused, tokens, budget)
}

// TestReplyShrinksToTheBudgetLeft: a request without max_tokens whose
// default reservation does not fit what the budget has left is sent with
// the reply that fits, rather than refused; once nothing fits, it is
// refused.
func TestReplyShrinksToTheBudgetLeft(t *testing.T) {
	const budget = 700 // the default reservation (1,024 reply tokens) never fits
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: budget}})
	c := h.client(h.key)
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", longPrompt(400)))
	if err != nil {
		t.Fatalf("a request the budget can answer in part was refused: %v", err)
	}
	if resp.Choices[0].FinishReason != "length" || resp.Usage.TotalTokens > budget {
		t.Errorf("finish_reason %q, %d tokens; want the reply cut at the budget (length, at most %d)",
			resp.Choices[0].FinishReason, resp.Usage.TotalTokens, budget)
	}
	_, err = c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", longPrompt(400)))
	apiError(t, err, http.StatusTooManyRequests, "budget_exceeded")

	// With max_tokens set, the caller's limit is kept: a budget that cannot
	// hold it refuses rather than cutting the reply shorter than asked.
	h2 := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: budget}})
	params := chat("gpt-4o-mini", "hi")
	params.MaxTokens = openai.Int(budget)
	c2 := h2.client(h2.key)
	_, err = c2.Chat.Completions.New(context.Background(), params)
	apiError(t, err, http.StatusTooManyRequests, "budget_exceeded")
}

// TestUnlimitedClientsKeepTheProviderDefault: without a token or money
// limit there is nothing to overspend, and a request without max_tokens
// goes out without one.
func TestUnlimitedClientsKeepTheProviderDefault(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Limits.DefaultMaxTokens = 20
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", longPrompt(100)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage.CompletionTokens < 100 || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("an unlimited client's reply was cut: %d completion tokens, finish_reason %q",
			resp.Usage.CompletionTokens, resp.Choices[0].FinishReason)
	}
}

// TestStreamOutgrowingItsReservationIsStopped is an upstream that ignores the
// reply limit it is sent and streams on, with no usage: the stream is
// stopped with an error event a little past the reservation, and billed for
// what was read, not for the whole reply.
func TestStreamOutgrowingItsReservationIsStopped(t *testing.T) {
	const reserved = 50
	var events []string
	for range 2000 {
		events = append(events, chunk(`{"content":"word "}`, ""))
	}
	events = append(events, chunk(`{}`, "stop"))
	s := &scriptedUpstream{events: events}
	tier := config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 1_000_000}}
	h := startScripted(t, tier, s)
	resp, body := h.raw("POST", "/v1/chat/completions", h.key,
		`{"model":"scripted","stream":true,"max_tokens":`+strconv.Itoa(reserved)+`,"messages":[{"role":"user","content":"go on"}]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	text := string(body)
	if !strings.Contains(text, `"code":"reply_over_reservation"`) || strings.HasSuffix(strings.TrimSpace(text), "[DONE]") {
		t.Fatalf("the stream was not stopped with reply_over_reservation:\n...%s", text[max(0, len(text)-400):])
	}
	// The guardrails hold back the end of the text until it is scanned,
	// so fewer words reach the caller than were read.
	relayed := strings.Count(text, "word ")
	if relayed == 0 || relayed > reserved+reserved/4+16 {
		t.Errorf("%d words relayed; want some, and at most the reservation (%d) and its margin", relayed, reserved)
	}
	_, tokens := h.billed()
	if tokens > 2*reserved+20 || tokens < int64(relayed) {
		t.Errorf("%d tokens billed for a stream stopped after %d words", tokens, relayed)
	}
}

// TestPolicyDefaultReplyLimitPerTier is the rule policies/README.md gives
// for a default reply limit per tier: a request of the tier that sets no
// max_tokens is sent with the tier's default, one that sets its own keeps it.
func TestPolicyDefaultReplyLimitPerTier(t *testing.T) {
	rec := startRecordingUpstream(t)
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "default_reply.rego", `package sluice.authz

cap contains {"limit": "max_tokens", "value": 512} if {
	input.client.tier == "free"
	input.request.max_tokens == 0
}
`)
	cfg := policyConfig(t, open, dir, false)
	cfg.Tiers["free"] = cfg.Tiers["test"]
	cfg.DefaultTier = "free"
	rec.serve(cfg)
	h := start(t, cfg)
	c := h.client(h.addClient(accounts.NewClient{ID: "free-app", Department: "research"}))
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatal(err)
	}
	params := chat("gpt-4o-mini", "hello again")
	params.MaxTokens = openai.Int(2000)
	if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	seen := rec.seen()
	if !strings.Contains(seen, `"max_completion_tokens":512`) || !strings.Contains(seen, `"max_tokens":2000`) {
		t.Errorf("the upstream saw:\n%s\nwant the tier's default 512 on the first request and the caller's 2000 on the second", seen)
	}
}
