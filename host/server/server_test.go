package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
	"github.com/sluicehq/sluice/host/store"
)

// harness is a Sluice started in-process on loopback, with one client and key.
type harness struct {
	t       testing.TB
	srv     *Server
	cfg     *config.Config
	key     string
	logs    *bytes.Buffer
	logw    *lockedWriter // writes logs; logText reads it under its lock
	dataDir string
}

// logText is what the server has logged so far.
func (h *harness) logText() string {
	h.logw.mu.Lock()
	defer h.logw.mu.Unlock()
	return h.logs.String()
}

// testConfig is the embedded default on ephemeral ports, with the real plugins
// and a "test" tier that each test shapes.
func testConfig(t testing.TB, dataDir string, tier config.Tier) *config.Config {
	t.Helper()
	t.Setenv("OPENAI_API_KEY", "")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = dataDir
	cfg.PluginCacheDir = pluginCache
	cfg.Server.Listen, cfg.Server.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Server.AdminToken = "test-admin-token"
	cfg.Demo.Enabled = false
	for i, name := range []string{"pii", "contentfilter"} {
		path, err := wasmbuild.Path(name)
		if err != nil {
			t.Fatalf("building plugin %s: %v", name, err)
		}
		cfg.Plugins[i].Path = path
	}
	cfg.Tiers["test"] = tier
	cfg.DefaultTier = "test"
	return cfg
}

func start(t testing.TB, cfg *config.Config) *harness {
	t.Helper()
	logs := &bytes.Buffer{}
	logw := &lockedWriter{w: logs}
	log := slog.New(slog.NewJSONHandler(logw, nil))
	srv, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, cfg: cfg, logs: logs, logw: logw, dataDir: cfg.DataDir}
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) stop() {
	if h.srv != nil {
		if err := h.srv.Close(context.Background()); err != nil {
			h.t.Errorf("close: %v", err)
		}
		h.srv = nil
	}
}

// newHarness starts Sluice with a client "app" in department "research" on the test tier.
func newHarness(t testing.TB, tier config.Tier) *harness {
	t.Helper()
	h := start(t, testConfig(t, t.TempDir(), tier))
	h.key = h.createClient("app", "research")
	return h
}

// createClient creates a client and a key through the admin API and returns the key.
func (h *harness) createClient(id, dept string) string {
	h.t.Helper()
	status, _ := h.admin("POST", "/admin/clients", `{"id":"`+id+`","department":"`+dept+`"}`)
	if status != http.StatusCreated {
		h.t.Fatalf("create client: status %d", status)
	}
	status, body := h.admin("POST", "/admin/keys", `{"client_id":"`+id+`"}`)
	if status != http.StatusCreated {
		h.t.Fatalf("create key: status %d %s", status, body)
	}
	var k struct{ Key, ID string }
	json.Unmarshal(body, &k)
	return k.Key
}

func (h *harness) admin(method, path, body string) (int, []byte) {
	h.t.Helper()
	return h.adminAs(h.cfg.Server.AdminToken, method, path, body)
}

// adminAs calls the admin API with token.
func (h *harness) adminAs(token, method, path, body string) (int, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.srv.AdminAddr()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (h *harness) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL("http://"+h.srv.Addr()+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func (h *harness) raw(method, path, key, body string) (*http.Response, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.srv.Addr()+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func chat(model, text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage(text)},
	}
}

// apiError asserts err is an OpenAI API error with the given status and code.
func apiError(t *testing.T, err error, status int, code string) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an API error; want %d %s", err, status, code)
	}
	if e.StatusCode != status || e.Code != code {
		t.Fatalf("got %d %q (%s), want %d %q", e.StatusCode, e.Code, e.Message, status, code)
	}
	if e.Response.Header.Get("x-request-id") == "" {
		t.Error("error response has no x-request-id")
	}
	return e
}

// pluginCache is shared by every server the tests start, so that each plugin
// is compiled to machine code once per test run rather than once per test.
var pluginCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-server-test-cache")
	if err != nil {
		panic(err)
	}
	pluginCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var open = config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true}

func TestChatCompletion(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "What is a sluice?"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Mock reply. You said: What is a sluice?" {
		t.Fatalf("content %q", got)
	}
	if resp.Usage.PromptTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestStreamedCompletion(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	for _, wantUsage := range []bool{true, false} {
		params := chat("gpt-4o-mini", "stream this back to me")
		if wantUsage {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := c.Chat.Completions.NewStreaming(context.Background(), params)
		var text strings.Builder
		var usage openai.CompletionUsage
		chunks, usageChunks := 0, 0
		for stream.Next() {
			ch := stream.Current()
			chunks++
			for _, choice := range ch.Choices {
				text.WriteString(choice.Delta.Content)
			}
			if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
				usage = ch.Usage
				usageChunks++
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != "Mock reply. You said: stream this back to me" || chunks < 5 {
			t.Fatalf("streamed %q in %d chunks", text.String(), chunks)
		}
		if wantUsage && (usageChunks != 1 || usage.CompletionTokens == 0) {
			t.Fatalf("asked for usage: %d usage chunks, usage %+v", usageChunks, usage)
		}
		if !wantUsage && usageChunks != 0 {
			t.Fatalf("did not ask for usage but got %d usage chunks", usageChunks)
		}
	}
	// Both streams are billed with their real usage even though only one
	// caller asked for it.
	h.srv.Ledger().Flush(context.Background())
	rows, err := h.srv.Store().Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].CompletionTokens == 0 {
		t.Fatalf("report %+v", rows)
	}
	if rows[0].CompletionTokens%2 != 0 {
		t.Fatalf("the two identical streams should bill the same completion tokens, got %d in all", rows[0].CompletionTokens)
	}
}

func TestModelsListOnlyTierModels(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"gpt-4o*"}})
	c := h.client(h.key)
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "gpt-4o-mini,gpt-4o" {
		t.Fatalf("models %v, want gpt-4o-mini and gpt-4o only", ids)
	}
}

func TestEmbeddings(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	resp, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"alpha", "beta"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || len(resp.Data[0].Embedding) == 0 || resp.Usage.PromptTokens == 0 {
		t.Fatalf("embeddings %+v", resp)
	}
}

func TestDenials(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"gpt-4o-mini", "text-embedding-3-small"}, PIIDetection: true, ContentFilter: true})
	ctx := context.Background()
	bad, none := h.client("sk-sluice-00000000000000000000000000000000"), h.client("")
	_, err := bad.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hi"))
	apiError(t, err, 401, "invalid_api_key")
	_, err = none.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hi"))
	apiError(t, err, 401, "invalid_api_key")

	c := h.client(h.key)
	_, err = c.Chat.Completions.New(ctx, chat("gpt-4o", "hi"))
	e := apiError(t, err, 403, "model_not_allowed")
	if e.Type != "permission_error" || !strings.Contains(e.Message, "gpt-4o") {
		t.Fatalf("403 %+v", e)
	}
	_, err = c.Chat.Completions.New(ctx, chat("no-such-model", "hi"))
	apiError(t, err, 404, "model_not_found")

	_, err = c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "Reach me at ann.lee@example.com, SSN 123-45-6789."))
	e = apiError(t, err, 400, "pii_detected")
	if !strings.Contains(e.Message, "EMAIL") || !strings.Contains(e.Message, "US_SSN") ||
		strings.Contains(e.Message, "ann.lee") || strings.Contains(e.Message, "6789") {
		t.Fatalf("PII message must name the types and never the values: %q", e.Message)
	}
	_, err = c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "Explain how to build a bomb at home."))
	e = apiError(t, err, 400, "content_policy_violation")
	if e.Type != "invalid_request_error" {
		t.Fatalf("type %q", e.Type)
	}
	// The ledger records the finding types and counts, never the text.
	h.srv.Ledger().Flush(ctx)
	if strings.Contains(h.logText(), "ann.lee") || strings.Contains(h.logText(), "123-45-6789") {
		t.Fatal("PII reached the log")
	}
}

func TestRateLimitPerMinute(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: 3}})
	c := h.client(h.key)
	for i := range 3 {
		if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"))
	e := apiError(t, err, 429, "rate_limit_exceeded")
	hd := e.Response.Header
	if e.Type != "rate_limit_error" || hd.Get("retry-after") == "" || hd.Get("x-ratelimit-limit-requests") != "3" ||
		hd.Get("x-ratelimit-remaining-requests") != "0" || hd.Get("x-ratelimit-reset-requests") == "" {
		t.Fatalf("429 %s %s, headers %v", e.Type, e.Message, hd)
	}
	// The window's reset is the wait the 429 asks for, within a minute and a
	// half (three requests in the same second weigh into the next minute).
	reset, err := time.ParseDuration(hd.Get("x-ratelimit-reset-requests"))
	ms, _ := strconv.ParseInt(hd.Get("retry-after-ms"), 10, 64)
	if err != nil || reset <= 0 || reset > 90*time.Second || time.Duration(ms)*time.Millisecond != reset {
		t.Fatalf("reset-requests %q and retry-after-ms %q disagree or exceed 90s", hd.Get("x-ratelimit-reset-requests"), hd.Get("retry-after-ms"))
	}
}

func TestDailyTokenBudget(t *testing.T) {
	// Each request reserves its prompt (14 tokens) plus max_tokens 100 and
	// really uses about 22. Of 150 tokens, the first two reservations fit
	// (114, then 22+114); the third (44+114) does not.
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 150}})
	c := h.client(h.key)
	params := chat("gpt-4o-mini", "hi")
	params.MaxTokens = openai.Int(100)
	admitted := 0
	var last error
	for range 5 {
		if _, last = c.Chat.Completions.New(context.Background(), params); last == nil {
			admitted++
		}
	}
	e := apiError(t, last, 429, "budget_exceeded")
	if e.Type != "insufficient_quota" || e.Response.Header.Get("x-sluice-budget-limit-tokens-day") != "150" ||
		e.Response.Header.Get("x-ratelimit-limit-tokens") != "" || e.Response.Header.Get("x-should-retry") != "false" {
		t.Fatalf("budget 429: %s, headers %v", e.Type, e.Response.Header)
	}
	if admitted != 2 {
		t.Fatalf("admitted %d of 5 against a 150-token budget, want 2", admitted)
	}
}

func TestConcurrentRequestsAdmitExactly(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: 10}})
	c := h.client(h.key)
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"))
			var e *openai.Error
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &e) && e.StatusCode == 429:
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || limited.Load() != 40 {
		t.Fatalf("admitted %d, limited %d; want exactly 10 and 40", ok.Load(), limited.Load())
	}
}

func TestReportMatchesUsageSeen(t *testing.T) {
	h := newHarness(t, open)
	second := h.createClient("second", "finance")
	ctx := context.Background()
	var seen int64
	for i, key := range []string{h.key, h.key, second} {
		c := h.client(key)
		resp, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", strings.Repeat("words ", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		seen += resp.Usage.TotalTokens
	}
	// A denied request is recorded but bills nothing.
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "card 4111 1111 1111 1111")); err == nil {
		t.Fatal("a card number was let through")
	}

	status, body := h.admin("GET", "/admin/usage?group_by=department&format=json", "")
	if status != 200 {
		t.Fatalf("usage report %d %s", status, body)
	}
	var rows []struct {
		Department  string `json:"department"`
		Requests    int64  `json:"requests"`
		TotalTokens int64  `json:"total_tokens"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	var total, requests int64
	for _, r := range rows {
		total += r.TotalTokens
		requests += r.Requests
	}
	if total != seen || requests != 4 || len(rows) != 2 {
		t.Fatalf("report %s: total %d tokens over %d requests; the client saw %d tokens over 4 requests", body, total, requests, seen)
	}
}

func TestBadInputKeepsServing(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.MaxBodyBytes = 64 << 10
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed JSON", `{"model": "gpt-4o-mini", "messages": [`, 400, "invalid_json"},
		{"empty body", ``, 400, "invalid_request_body"},
		{"not an object", `[1,2]`, 400, "invalid_json"},
		{"missing model", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_value"},
		{"missing messages", `{"model":"gpt-4o-mini"}`, 400, "invalid_value"},
		{"bad content", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":42}]}`, 400, "invalid_value"},
		{"oversized body", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 100<<10) + `"}]}`, 413, "request_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.raw("POST", "/v1/chat/completions", h.key, tc.body)
			var e struct {
				Error struct{ Code, Type, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body is not OpenAI-shaped JSON: %s", body)
			}
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
			if resp.Header.Get("x-request-id") == "" {
				t.Fatal("no x-request-id")
			}
		})
	}
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "still there?")); err != nil {
		t.Fatalf("after bad input: %v", err)
	}
}

func TestRevokedKeyStopsAtOnce(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi")); err != nil {
		t.Fatal(err)
	}
	_, body := h.admin("GET", "/admin/keys?client_id=app", "")
	var keys struct{ Data []struct{ ID string } }
	json.Unmarshal(body, &keys)
	if len(keys.Data) != 1 {
		t.Fatalf("keys %s", body)
	}
	if status, b := h.admin("POST", "/admin/keys/"+keys.Data[0].ID+"/revoke", ""); status != 200 {
		t.Fatalf("revoke %d %s", status, b)
	}
	_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"))
	apiError(t, err, 401, "invalid_api_key")
}

func TestAdminNeedsItsToken(t *testing.T) {
	h := newHarness(t, open)
	req, _ := http.NewRequest("GET", "http://"+h.srv.AdminAddr()+"/admin/clients", nil)
	req.Header.Set("Authorization", "Bearer "+h.key) // a client key is not an admin token
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("admin with a client key: %d", resp.StatusCode)
	}
	// And the admin API is not on the public listener.
	r, _ := h.raw("GET", "/admin/clients", h.cfg.Server.AdminToken, "")
	if r.StatusCode != 404 {
		t.Fatalf("admin path on the public listener: %d", r.StatusCode)
	}
}

func TestRestartKeepsBudget(t *testing.T) {
	dir := t.TempDir()
	tier := config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 10_000}}
	h := start(t, testConfig(t, dir, tier))
	key := h.createClient("app", "research")
	c := h.client(key)
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	used := resp.Usage.TotalTokens
	h.stop()

	h2 := start(t, testConfig(t, dir, tier))
	r, _ := h2.raw("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	remaining := r.Header.Get("x-sluice-budget-remaining-tokens-day")
	var got int64
	json.Unmarshal([]byte(remaining), &got)
	// After the restart the new request's reservation is on top of what was used before.
	if r.StatusCode != 200 || got > 10_000-used-10 {
		t.Fatalf("after restart: status %d, remaining %s; %d tokens had been used before", r.StatusCode, remaining, used)
	}
}

func TestDeadUpstream(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "dead", Type: "openai", BaseURL: "http://127.0.0.1:1/v1",
		Timeout: config.Duration(2 * time.Second), MaxConns: 4})
	cfg.Models = append(cfg.Models, config.Model{Name: "dead-model", Upstream: "dead", UpstreamModel: "x"})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	_, err := c.Chat.Completions.New(context.Background(), chat("dead-model", "hi"))
	e := apiError(t, err, 502, "upstream_error")
	if e.Type != "server_error" {
		t.Fatalf("type %q", e.Type)
	}
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi")); err != nil {
		t.Fatalf("other models must keep working: %v", err)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRedactedFindingsNeverReachTheUpstream(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true, Redact: []string{"EMAIL"}})
	c := h.client(h.key)
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "Forward this to ann.lee@example.com and ann.lee@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	// The mock echoes what it received: the address was replaced before forwarding.
	if got := resp.Choices[0].Message.Content; got != "Mock reply. You said: Forward this to [EMAIL_1] and [EMAIL_1]" {
		t.Fatalf("the upstream saw %q", got)
	}
	// A type that is not redacted still blocks.
	_, err = c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "mail ann.lee@example.com, SSN 123-45-6789"))
	apiError(t, err, 400, "pii_detected")
}

func TestUpstreamRefusalIsNotBlamedOnTheCaller(t *testing.T) {
	// A provider that rejects the gateway's own key.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refuser := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(401)
		ctx.SetBodyString(`{"error":{"message":"Incorrect API key provided: sk-proj-****abcd","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
	}}
	go refuser.Serve(ln)
	t.Cleanup(func() { refuser.Shutdown() })

	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "refuser", Type: "openai", BaseURL: "http://" + ln.Addr().String() + "/v1",
		Timeout: config.Duration(5 * time.Second), MaxConns: 4})
	cfg.Models = append(cfg.Models, config.Model{Name: "refused-model", Upstream: "refuser", UpstreamModel: "x"})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	_, err = c.Chat.Completions.New(context.Background(), chat("refused-model", "hi"))
	e := apiError(t, err, 502, "upstream_error")
	if strings.Contains(e.Message, "sk-proj") {
		t.Fatalf("the provider's message leaked: %q", e.Message)
	}
}

func TestStreamCutByTheCallerIsStillBilled(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams[0].Latency = config.Duration(300 * time.Millisecond) // 30 ms between chunks
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	conn, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight nine ten"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		h.key, len(body), body)
	buf := make([]byte, 4096)
	n, err := conn.Read(buf) // the headers and the first events
	if err != nil || !strings.Contains(string(buf[:n]), "200 OK") {
		t.Fatalf("first read: %v %q", err, buf[:n])
	}
	conn.Close() // the caller goes away mid-stream

	// The writer notices at its next flush, commits what was used and records it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.srv.Ledger().Flush(context.Background())
		totals, err := h.srv.Store().UsageSince(context.Background(), time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(totals) == 1 && totals[0].Requests == 1 && totals[0].TotalTokens > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cut stream was not billed: %+v", totals)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPinnedPluginMustMatch(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	wasm, err := os.ReadFile(cfg.Plugins[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	cfg.Plugins[0].SHA256 = hex.EncodeToString(sum[:])
	start(t, cfg).stop() // the right pin loads

	cfg = testConfig(t, t.TempDir(), open)
	cfg.Plugins[0].SHA256 = strings.Repeat("0", 64)
	srv, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		srv.Close(context.Background())
		t.Fatal("a module that does not match its pin was loaded")
	}
	if !strings.Contains(err.Error(), "pins") || !strings.Contains(err.Error(), cfg.Plugins[0].Name) {
		t.Fatalf("error %q must name the plugin and the pin", err)
	}
}

func TestStartFailsCleanly(t *testing.T) {
	cases := []struct {
		name   string
		change func(*config.Config)
		want   string
	}{
		{"missing plugin", func(c *config.Config) { c.Plugins[1].Path = filepath.Join(t.TempDir(), "nope.wasm") }, "make build"},
		{"broken policy", func(c *config.Config) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "bad.rego"), []byte("package sluice.authz\n\ndecision := {\n"), 0o600)
			c.Policy.Dir = dir
		}, "bad.rego"},
		{"port taken", func(c *config.Config) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			c.Server.Listen = ln.Addr().String()
		}, "server.listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir(), open)
			tc.change(cfg)
			srv, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				srv.Close(context.Background())
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestAccessLogNeverHoldsSecrets(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true, Redact: []string{"EMAIL"}})
	c := h.client(h.key)
	ctx := context.Background()
	secrets := []string{"ann.lee@example.com", "123-45-6789", "AKIA6AFQKVXPJEGZC7D3", h.key}
	resp, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "write to ann.lee@example.com about the plan"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "SSN 123-45-6789 and key AKIA6AFQKVXPJEGZC7D3"))
	apiError(t, err, 400, "pii_detected")

	logs := h.logText()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q", s)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) < 2 {
		t.Fatalf("want an access line per request, got %d in:\n%s", len(lines), logs)
	}
	ok, denied := lines[len(lines)-2], lines[len(lines)-1]
	if ok["status"] != float64(200) || ok["client"] != "app" || ok["findings"] != "EMAIL:1" ||
		ok["prompt_tokens"] != float64(resp.Usage.PromptTokens) || ok["request_id"] == "" {
		t.Errorf("access line of the redacted request: %v", ok)
	}
	if denied["status"] != float64(400) || denied["code"] != "pii_detected" || !strings.Contains(denied["findings"].(string), "US_SSN:1") {
		t.Errorf("access line of the denied request: %v", denied)
	}
}
