package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/upstream"
)

// providerMock is the mock upstream over HTTP with a provider's habits:
// it writes the headers a provider writes on every reply, and answers
// calls with refuse until it returns false. It keeps the request headers
// of every call.
type providerMock struct {
	mu      sync.Mutex
	headers []*fasthttp.RequestHeader
	addr    string
}

func startProviderMock(t *testing.T, refuse func(ctx *fasthttp.RequestCtx, call int) bool) *providerMock {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &providerMock{addr: ln.Addr().String()}
	mock := upstream.MockHandler(upstream.NewMock(0), []string{"gpt-4o-mini"})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := &fasthttp.RequestHeader{}
		ctx.Request.Header.CopyTo(h)
		p.mu.Lock()
		p.headers = append(p.headers, h)
		call := len(p.headers)
		p.mu.Unlock()
		ctx.Response.Header.Set("x-request-id", "req_provider_1")
		ctx.Response.Header.Set("openai-processing-ms", "42")
		ctx.Response.Header.Set("set-cookie", "__cf_bm=provider-cookie; path=/")
		ctx.Response.Header.Set("x-ratelimit-remaining-requests", "4999")
		if refuse != nil && refuse(ctx, call) {
			return
		}
		mock(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return p
}

func (p *providerMock) calls() []*fasthttp.RequestHeader {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*fasthttp.RequestHeader(nil), p.headers...)
}

// serve routes gpt-4o-mini to p through an upstream shaped by up.
func (p *providerMock) serve(cfg *config.Config, up func(u *config.Upstream)) {
	u := config.Upstream{Name: "provider", Type: "openai", BaseURL: "http://" + p.addr + "/v1", APIKey: "sk-provider-key",
		Timeout: config.Duration(10 * time.Second), MaxConns: 8}
	if up != nil {
		up(&u)
	}
	cfg.Upstreams = append(cfg.Upstreams, u)
	for i := range cfg.Models {
		if cfg.Models[i].Name == "gpt-4o-mini" {
			cfg.Models[i].Upstream = "provider"
		}
	}
}

// The attacker's test of forwarding: the caller's key, cookies and
// Sluice's own headers never reach the provider, the allowed headers and
// the upstream's fixed ones do; the caller gets the provider's request id
// and processing time, never its cookies or its rate-limit headers.
func TestHeadersBetweenCallerAndProvider(t *testing.T) {
	p := startProviderMock(t, nil)
	cfg := testConfig(t, t.TempDir(), open)
	p.serve(cfg, func(u *config.Upstream) { u.Headers = map[string]string{"OpenAI-Project": "proj_fixed"} })
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	var hr *http.Response
	_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"), option.WithResponseInto(&hr),
		option.WithHeader("OpenAI-Organization", "org-caller"), option.WithHeader("OpenAI-Beta", "assistants=v2"),
		option.WithHeader("OpenAI-Project", "proj_caller"), option.WithHeader("Cookie", "session=caller-cookie"),
		option.WithHeader("X-Sluice-Note", "from-caller"), option.WithHeader("x-api-key", h.key))
	if err != nil {
		t.Fatal(err)
	}
	calls := p.calls()
	if len(calls) != 1 {
		t.Fatalf("%d upstream calls", len(calls))
	}
	got := calls[0]
	for name, want := range map[string]string{"OpenAI-Organization": "org-caller", "OpenAI-Beta": "assistants=v2",
		"OpenAI-Project": "proj_fixed", "Authorization": "Bearer sk-provider-key", "Cookie": "", "X-Sluice-Note": "", "x-api-key": ""} {
		if v := string(got.Peek(name)); v != want {
			t.Errorf("the provider got %s: %q, want %q", name, v, want)
		}
	}
	if v := hr.Header.Get("x-upstream-request-id"); v != "req_provider_1" {
		t.Errorf("x-upstream-request-id %q", v)
	}
	if v := hr.Header.Get("openai-processing-ms"); v != "42" {
		t.Errorf("openai-processing-ms %q", v)
	}
	if v := hr.Header.Get("x-request-id"); v == "req_provider_1" || v == "" {
		t.Errorf("x-request-id %q: must be Sluice's own", v)
	}
	if hr.Header.Get("Set-Cookie") != "" || hr.Header.Get("x-ratelimit-remaining-requests") == "4999" {
		t.Errorf("the provider's cookie or rate limits reached the caller: %v", hr.Header)
	}
	if logs := h.logText(); strings.Contains(logs, "proj_fixed") || strings.Contains(logs, "caller-cookie") {
		t.Errorf("a header value was logged:\n%s", logs)
	}
}

// A provider that rate-limits Sluice's key: the caller gets a 503
// upstream_rate_limited with the provider's Retry-After, and the SDK's own
// retry waits that long and then succeeds, with nothing billed for the
// refused call.
func TestUpstreamRateLimitIsRetriedAfterItsRetryAfter(t *testing.T) {
	p := startProviderMock(t, func(ctx *fasthttp.RequestCtx, call int) bool {
		if call > 2 {
			return false
		}
		ctx.Response.Header.Set("retry-after", "1")
		ctx.SetStatusCode(429)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":{"message":"Rate limit reached for sk-provider-key","type":"requests","code":"rate_limit_exceeded"}}`)
		return true
	})
	cfg := testConfig(t, t.TempDir(), open)
	p.serve(cfg, nil)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	// Without retries, the caller sees the mapping.
	noRetry := h.client(h.key)
	_, err := noRetry.Completions.New(context.Background(), textCompletion("hi"))
	e := apiError(t, err, 503, "upstream_rate_limited")
	if e.Type != "service_unavailable_error" || e.Response.Header.Get("Retry-After") != "1" ||
		e.Response.Header.Get("x-upstream-request-id") != "req_provider_1" || strings.Contains(e.Message, "sk-provider-key") {
		t.Fatalf("503: %s %q, headers %v", e.Type, e.Message, e.Response.Header)
	}
	row := h.ledgerRow(e.Response.Header.Get("x-request-id"))
	if row.Status != 503 || row.Code != "upstream_rate_limited" || row.Total != 0 || row.Endpoint != "/v1/completions" {
		t.Fatalf("ledger %+v", row)
	}

	// The SDK's retry honours Retry-After: one refused call, a wait of
	// a second (its own backoff would be under one), one served.
	c := openai.NewClient(option.WithBaseURL("http://"+h.srv.Addr()+"/v1"), option.WithAPIKey(h.key), option.WithMaxRetries(2))
	before := len(p.calls())
	start := time.Now()
	resp, err := c.Completions.New(context.Background(), textCompletion("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("the retry came after %s, before the provider's Retry-After", waited)
	}
	if hits := len(p.calls()) - before; hits != 2 || resp.Choices[0].Text != "Mock reply. You said: hi" {
		t.Fatalf("%d upstream calls, reply %+v", hits, resp.Choices)
	}
	if requests, tokens := h.billed(); requests != 1 || tokens != resp.Usage.TotalTokens {
		t.Fatalf("billed %d requests, %d tokens; want the one served, %d", requests, tokens, resp.Usage.TotalTokens)
	}
}
