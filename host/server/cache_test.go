package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// cachedTier is a tier whose replies the default policy caches.
func cachedTier(ttl, scope string) config.Tier {
	return config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true, CacheTTL: ttl, CacheScope: scope}
}

// cacheHarness starts Sluice with a "cached" model served by a counting
// provider, so that a test sees how often the upstream was called.
func cacheHarness(t *testing.T, tier config.Tier, shape func(*config.Config)) (*harness, *testenv.Provider) {
	t.Helper()
	p := testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), tier)
	cfg.Upstreams = append(cfg.Upstreams, p.Upstream("counted"))
	cfg.Models = append(cfg.Models, config.Model{Name: "cached", Upstream: "counted", UpstreamModel: "x",
		InputPerMillion: 1000, OutputPerMillion: 2000})
	if shape != nil {
		shape(cfg)
	}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	return h, p
}

// unique makes a prompt no earlier run has cached (a shared Redis outlives a run).
func unique(text string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return text + " " + hex.EncodeToString(b)
}

// ask sends a chat request and returns the raw body and the cache header.
func (h *harness) ask(key string, params openai.ChatCompletionNewParams, opts ...option.RequestOption) (string, string, error) {
	h.t.Helper()
	var resp *http.Response
	opts = append(opts, option.WithResponseInto(&resp))
	client := h.client(key)
	c, err := client.Chat.Completions.New(context.Background(), params, opts...)
	header := ""
	if resp != nil {
		header = resp.Header.Get("x-sluice-cache")
	}
	if err != nil {
		return "", header, err
	}
	return c.RawJSON(), header, nil
}

// cacheRow is what the ledger says of a request and the cache.
type cacheRow struct {
	Client, Cache           string
	Status                  int
	Total, Cost, SavedNanos int64
	Stream                  bool
}

func (h *harness) cacheRows() []cacheRow {
	h.t.Helper()
	if err := h.srv.Ledger().Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dataDir, "sluice.db")+"?mode=ro")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT client_id, cache, status, total_tokens, cost_nanos, saved_nanos, stream FROM usage_events
		WHERE endpoint = '/v1/chat/completions' ORDER BY occurred_at`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []cacheRow
	for rows.Next() {
		var r cacheRow
		if err := rows.Scan(&r.Client, &r.Cache, &r.Status, &r.Total, &r.Cost, &r.SavedNanos, &r.Stream); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestIdenticalRequestIsServedFromTheCache: the second identical request
// is answered with the first one's reply, byte for byte, without calling
// the provider; the ledger bills it nothing and says what it saved, and the
// tokens are still counted.
func TestIdenticalRequestIsServedFromTheCache(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("10m", ""), nil)
	params := chat("cached", "what is a sluice?")
	params.Temperature = openai.Float(0.2)
	first, state, err := h.ask(h.key, params)
	if err != nil || state != "miss" {
		t.Fatalf("first: %v, x-sluice-cache %q, want miss", err, state)
	}
	second, state, err := h.ask(h.key, params)
	if err != nil || state != "hit" {
		t.Fatalf("second: %v, x-sluice-cache %q, want hit", err, state)
	}
	if second != first {
		t.Errorf("the hit's body differs from the reply it was cached from:\n%s\n%s", first, second)
	}
	if n := p.Hits.Load(); n != 1 {
		t.Errorf("the provider was called %d times, want 1", n)
	}
	// Another parameter is another request.
	params.Temperature = openai.Float(0.3)
	if _, state, err := h.ask(h.key, params); err != nil || state != "miss" {
		t.Errorf("another temperature: %v, %q, want a miss", err, state)
	}
	rows := h.cacheRows()
	if len(rows) != 3 {
		t.Fatalf("%d ledger rows, want 3", len(rows))
	}
	miss, hit := rows[0], rows[1]
	if miss.Cache != "miss" || miss.Cost == 0 || miss.SavedNanos != 0 {
		t.Errorf("miss row %+v, want cache miss billed", miss)
	}
	if hit.Cache != "hit" || hit.Status != 200 || hit.Cost != 0 || hit.SavedNanos != miss.Cost || hit.Total != miss.Total {
		t.Errorf("hit row %+v, want cache hit at cost 0 saving %d with the same %d tokens", hit, miss.Cost, miss.Total)
	}
	metrics := h.metricsText()
	for _, want := range []string{`sluice_cache_requests_total{result="hit"} 1`, `sluice_cache_requests_total{result="miss"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestStreamIsReplayedFromTheCache: a stream completed once is replayed
// with the same chunks, usage included, and a whole reply to the same
// content is not taken for it.
func TestStreamIsReplayedFromTheCache(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("10m", ""), nil)
	params := chat("cached", "tell me about rivers and locks")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := func() ([]string, string) {
		t.Helper()
		var resp *http.Response
		client := h.client(h.key)
		s := client.Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&resp))
		var chunks []string
		usage := false
		for s.Next() {
			chunks = append(chunks, s.Current().RawJSON())
			usage = usage || s.Current().Usage.TotalTokens > 0
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if !usage {
			t.Error("the stream has no usage chunk")
		}
		return chunks, resp.Header.Get("x-sluice-cache")
	}
	first, state := stream()
	if state != "miss" || len(first) < 2 {
		t.Fatalf("first stream: %q with %d chunks", state, len(first))
	}
	second, state := stream()
	if state != "hit" {
		t.Fatalf("second stream: x-sluice-cache %q, want hit", state)
	}
	if strings.Join(second, "\n") != strings.Join(first, "\n") {
		t.Errorf("replayed chunks differ:\n%s\n---\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	if n := p.Hits.Load(); n != 1 {
		t.Errorf("the provider was called %d times, want 1", n)
	}
	// The same content, not streamed, is an entry of its own.
	if _, state, err := h.ask(h.key, chat("cached", "tell me about rivers and locks")); err != nil || state != "miss" {
		t.Errorf("whole reply after a stream: %v, %q, want a miss", err, state)
	}
	rows := h.cacheRows()
	if len(rows) != 3 || rows[1].Cache != "hit" || !rows[1].Stream || rows[1].Cost != 0 || rows[1].SavedNanos == 0 || rows[1].Total != rows[0].Total {
		t.Errorf("ledger %+v, want the streamed hit at cost 0 with the miss's tokens", rows)
	}
}

// TestCacheIsScopedToTheClient: by default another client, even of the
// same department, never gets a client's cached reply.
func TestCacheIsScopedToTheClient(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("10m", ""), nil)
	other := h.createClient("neighbour", "research")
	params := chat("cached", "private question")
	if _, _, err := h.ask(h.key, params); err != nil {
		t.Fatal(err)
	}
	if _, state, err := h.ask(other, params); err != nil || state != "miss" {
		t.Fatalf("another client: %v, x-sluice-cache %q, want miss", err, state)
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestDepartmentScopeSharesWithinTheDepartmentOnly.
func TestDepartmentScopeSharesWithinTheDepartmentOnly(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("10m", "department"), nil)
	colleague := h.createClient("colleague", "research")
	stranger := h.createClient("stranger", "finance")
	params := chat("cached", "department question")
	if _, _, err := h.ask(h.key, params); err != nil {
		t.Fatal(err)
	}
	if _, state, err := h.ask(colleague, params); err != nil || state != "hit" {
		t.Errorf("same department: %v, %q, want hit", err, state)
	}
	if _, state, err := h.ask(stranger, params); err != nil || state != "miss" {
		t.Errorf("other department: %v, %q, want miss", err, state)
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestCacheControlBypassesTheCache: no-cache asks for a fresh reply (and
// keeps it), no-store neither reads nor keeps.
func TestCacheControlBypassesTheCache(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("10m", ""), nil)
	params := chat("cached", "fresh please")
	noCache := option.WithHeader("Cache-Control", "no-cache")
	if _, _, err := h.ask(h.key, params); err != nil {
		t.Fatal(err)
	}
	if _, state, err := h.ask(h.key, params, noCache); err != nil || state != "bypass" {
		t.Fatalf("no-cache: %v, %q, want bypass", err, state)
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("no-cache: the provider was called %d times, want 2", n)
	}
	stored := chat("cached", "never keep this")
	if _, state, err := h.ask(h.key, stored, option.WithHeader("Cache-Control", "private, No-Store")); err != nil || state != "bypass" {
		t.Fatalf("no-store: %v, %q, want bypass", err, state)
	}
	if _, state, err := h.ask(h.key, stored); err != nil || state != "miss" {
		t.Errorf("after no-store: %v, %q, want miss: the reply was kept", err, state)
	}
	if n := p.Hits.Load(); n != 4 {
		t.Errorf("the provider was called %d times, want 4", n)
	}
}

// TestCachedReplyStillPassesTheReplyGuardrails: a reply kept for a tier
// without reply checks, served from the cache to a tier whose pii plugin
// scans replies, is blocked there as a fresh one would be.
func TestCachedReplyStillPassesTheReplyGuardrails(t *testing.T) {
	h, p := cacheHarness(t, config.Tier{Models: []string{"*"}, CacheTTL: "10m", CacheScope: "shared"}, func(cfg *config.Config) {
		cfg.Tiers["guarded"] = config.Tier{Models: []string{"*"}, ResponsePlugins: []string{"pii"}, CacheTTL: "10m", CacheScope: "shared"}
	})
	status, body := h.admin("POST", "/admin/clients", `{"id":"guarded","department":"research","tier":"guarded"}`)
	if status != http.StatusCreated {
		t.Fatalf("create client: %d %s", status, body)
	}
	status, body = h.admin("POST", "/admin/keys", `{"client_id":"guarded"}`)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %s", status, body)
	}
	guardedKey := strings.Split(strings.Split(string(body), `"key":"`)[1], `"`)[0]

	params := chat("cached", "write to jane.doe@example.com")
	reply, _, err := h.ask(h.key, params)
	if err != nil || !strings.Contains(reply, "jane.doe@example.com") {
		t.Fatalf("unguarded tier: %v %s", err, reply)
	}
	_, state, err := h.ask(guardedKey, params)
	if state != "hit" {
		t.Errorf("guarded tier: x-sluice-cache %q, want hit", state)
	}
	apiError(t, err, http.StatusBadRequest, "pii_detected")
	if n := p.Hits.Load(); n != 1 {
		t.Errorf("the provider was called %d times, want 1", n)
	}
}

// TestCachedReplyExpires: past the tier's cache_ttl the provider is asked again.
func TestCachedReplyExpires(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("1s", ""), nil)
	params := chat("cached", "short lived")
	if _, _, err := h.ask(h.key, params); err != nil {
		t.Fatal(err)
	}
	if _, state, _ := h.ask(h.key, params); state != "hit" {
		t.Fatalf("within the ttl: %q, want hit", state)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, state, err := h.ask(h.key, params); err != nil || state != "miss" {
		t.Errorf("past the ttl: %v, %q, want miss", err, state)
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestUncachedTierHasNoCacheHeader: a tier that does not opt in is not
// cached and says nothing of a cache.
func TestUncachedTierHasNoCacheHeader(t *testing.T) {
	h, p := cacheHarness(t, open, nil)
	params := chat("cached", "no cache here")
	for range 2 {
		if _, state, err := h.ask(h.key, params); err != nil || state != "" {
			t.Fatalf("%v, x-sluice-cache %q, want none", err, state)
		}
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestRedisSharesTheCacheBetweenReplicas: two gateways on one Redis: a
// reply one of them got is served by the other, without a provider call.
func TestRedisSharesTheCacheBetweenReplicas(t *testing.T) {
	url := testenv.Redis(t)
	p := testenv.NewProvider(t)
	shape := func(cfg *config.Config) {
		cfg.Upstreams = append(cfg.Upstreams, p.Upstream("counted"))
		cfg.Models = append(cfg.Models, config.Model{Name: "cached", Upstream: "counted", UpstreamModel: "x",
			InputPerMillion: 1000, OutputPerMillion: 2000})
		cfg.Cache.Redis = url
	}
	replica := func() *harness {
		cfg := testConfig(t, t.TempDir(), cachedTier("1m", ""))
		shape(cfg)
		h := start(t, cfg)
		h.key = h.createClient("app", "research")
		return h
	}
	a, b := replica(), replica()
	params := chat("cached", unique("shared across replicas"))
	first, state, err := a.ask(a.key, params)
	if err != nil || state != "miss" {
		t.Fatalf("replica a: %v, %q", err, state)
	}
	second, state, err := b.ask(b.key, params)
	if err != nil || state != "hit" {
		t.Fatalf("replica b: %v, %q, want hit from Redis", err, state)
	}
	if first != second {
		t.Error("replica b served another reply")
	}
	if n := p.Hits.Load(); n != 1 {
		t.Errorf("the provider was called %d times, want 1", n)
	}
}

// TestUnreachableCacheRedisIsAMiss: a cache Redis that does not answer
// makes requests misses, never errors.
func TestUnreachableCacheRedisIsAMiss(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("1m", ""), func(cfg *config.Config) {
		zero := int64(0)
		cfg.Cache.MaxBytes = &zero // Redis only
		cfg.Cache.Redis = "redis://127.0.0.1:1/0"
		cfg.Cache.Timeout = config.Duration(20 * time.Millisecond)
	})
	params := chat("cached", "redis is down")
	for range 2 {
		if _, state, err := h.ask(h.key, params); err != nil || state != "miss" {
			t.Fatalf("%v, %q, want a miss", err, state)
		}
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestRefusedReplyIsNotCached: only a 200 is kept; a provider's refusal
// is asked again.
func TestRefusedReplyIsNotCached(t *testing.T) {
	h, p := cacheHarness(t, cachedTier("10m", ""), nil)
	params := chat("cached", "mock status 400")
	for range 2 {
		_, state, err := h.ask(h.key, params)
		apiError(t, err, http.StatusBadRequest, "mock_status")
		if state != "miss" {
			t.Errorf("x-sluice-cache %q, want miss", state)
		}
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestResponsesAPIHitIsStillAResponse: a Responses request is cached
// apart from chat, and its hit is translated like a fresh reply, with
// the restoration of a redacted value included.
func TestResponsesAPIHitIsStillAResponse(t *testing.T) {
	tier := cachedTier("10m", "")
	tier.Redact, tier.Restore = []string{"EMAIL"}, true
	h, p := cacheHarness(t, tier, nil)
	c := h.client(h.key)
	ask := func(email string) (string, string) {
		t.Helper()
		var hr *http.Response
		resp, err := c.Responses.New(context.Background(), responses.ResponseNewParams{
			Model: "cached",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("mail " + email + " today")},
		}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		return resp.OutputText(), hr.Header.Get("x-sluice-cache")
	}
	first, state := ask("ann@example.com")
	if state != "miss" || !strings.Contains(first, "ann@example.com") {
		t.Fatalf("first: %q %q", state, first)
	}
	// The model saw a placeholder, not the address: another address is the
	// same upstream request, and its reply is restored with this caller's.
	second, state := ask("bob@example.org")
	if state != "hit" || !strings.Contains(second, "bob@example.org") || strings.Contains(second, "ann@") {
		t.Fatalf("second: %q %q, want a hit restored with bob's address", state, second)
	}
	if _, state, err := h.ask(h.key, chat("cached", "mail ann@example.com today")); err != nil || state != "miss" {
		t.Errorf("the same text on chat completions: %v, %q, want a miss", err, state)
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}

// TestHitsDoNotSpendTheMoneyBudget: a client whose monthly spend covers a
// few replies keeps being served hits well past what they would have cost,
// and still has its budget for a fresh request after.
func TestHitsDoNotSpendTheMoneyBudget(t *testing.T) {
	tier := cachedTier("10m", "")
	tier.MonthlySpendUSD = 1
	h, p := cacheHarness(t, tier, nil)
	params := chat("cached", "how deep is the lock?")
	params.MaxTokens = openai.Int(20)
	if _, state, err := h.ask(h.key, params); err != nil || state != "miss" {
		t.Fatalf("first: %v, %q", err, state)
	}
	rows := h.cacheRows()
	perReply := rows[0].Cost
	if perReply == 0 {
		t.Fatal("the miss cost nothing")
	}
	hits := int(1e9/perReply) + 5 // together, more than the whole budget
	for i := range hits {
		if _, state, err := h.ask(h.key, params); err != nil || state != "hit" {
			t.Fatalf("hit %d of %d: %v, %q", i, hits, err, state)
		}
	}
	fresh := chat("cached", "and how wide?")
	fresh.MaxTokens = openai.Int(20)
	if _, state, err := h.ask(h.key, fresh); err != nil || state != "miss" {
		t.Fatalf("a fresh request after %d hits: %v, %q: the hits spent the budget", hits, err, state)
	}
	if n := p.Hits.Load(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}
}
