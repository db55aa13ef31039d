package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// routeRow is what the ledger says of where a request went.
type routeRow struct {
	Deployment, Attempts string
	Status               int
	Total, CostNanos     int64
}

func (h *harness) routeRows() []routeRow {
	h.t.Helper()
	if err := h.srv.Ledger().Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dataDir, "sluice.db")+"?mode=ro")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT deployment, attempts, status, total_tokens, cost_nanos FROM usage_events
		WHERE endpoint = '/v1/chat/completions' ORDER BY occurred_at`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []routeRow
	for rows.Next() {
		var r routeRow
		if err := rows.Scan(&r.Deployment, &r.Attempts, &r.Status, &r.Total, &r.CostNanos); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

type upstreamState struct {
	Deployment string `json:"deployment"`
	State      string `json:"state"`
}

func (h *harness) deploymentState(name string) string {
	h.t.Helper()
	status, body := h.admin("GET", "/admin/upstreams", "")
	if status != http.StatusOK {
		h.t.Fatalf("/admin/upstreams: %d %s", status, body)
	}
	var list struct{ Data []upstreamState }
	if err := json.Unmarshal(body, &list); err != nil {
		h.t.Fatal(err)
	}
	for _, d := range list.Data {
		if d.Deployment == name {
			return d.State
		}
	}
	h.t.Fatalf("deployment %s not in /admin/upstreams: %s", name, body)
	return ""
}

// TestFailingDeploymentFallsBackEjectsAndRecovers: a model on two
// deployments, one of which fails with 500, then 429. Every caller gets a
// 200 from the other; the ledger lists the attempts and bills each request
// once; after five failures the failing deployment is ejected and no longer
// called; once it answers again, a probe after the cool-down puts it back.
func TestFailingDeploymentFallsBackEjectsAndRecovers(t *testing.T) {
	flaky, good := testenv.NewProvider(t), testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, flaky.Upstream("flaky"), good.Upstream("good"))
	cfg.Models = append(cfg.Models, config.Model{Name: "routed", InputPerMillion: 1, OutputPerMillion: 2,
		Deployments: []config.Deployment{
			{Name: "flaky", Upstream: "flaky", UpstreamModel: "x", Weight: 1},
			{Name: "good", Upstream: "good", UpstreamModel: "x", Weight: 1},
		},
		Circuit: config.Circuit{Failures: 5, Window: config.Duration(time.Minute), Cooldown: config.Duration(time.Second)}})
	cfg.Models[len(cfg.Models)-1].Upstream = "flaky"
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)

	flaky.FailWith.Store(http.StatusInternalServerError)
	ask := func(n int) {
		t.Helper()
		for i := range n {
			params := chat("routed", "hello there")
			params.MaxTokens = openai.Int(20)
			if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
				t.Fatalf("request %d: %v: the caller must not see the failing deployment", i, err)
			}
		}
	}
	ask(40)
	if got := flaky.Hits.Load(); got != 5 {
		t.Errorf("the failing deployment was called %d times, want 5: ejected after its fifth failure", got)
	}
	if st := h.deploymentState("flaky"); st != "open" {
		t.Errorf("flaky state %q, want open", st)
	}
	rows := h.routeRows()
	if len(rows) != 40 {
		t.Fatalf("%d ledger rows, want 40", len(rows))
	}
	fellBack := 0
	for _, r := range rows {
		if r.Status != 200 || r.Deployment != "good" || r.Total == 0 || r.CostNanos == 0 {
			t.Fatalf("ledger row %+v, want a 200 served and billed by good", r)
		}
		if r.Attempts == "" {
			continue
		}
		fellBack++
		var attempts []struct {
			Deployment string
			Status     int
		}
		if err := json.Unmarshal([]byte(r.Attempts), &attempts); err != nil {
			t.Fatal(err)
		}
		if len(attempts) != 2 || attempts[0].Deployment != "flaky" || attempts[0].Status != 500 ||
			attempts[1].Deployment != "good" || attempts[1].Status != 200 {
			t.Fatalf("attempts %s, want flaky 500 then good 200", r.Attempts)
		}
	}
	if fellBack != 5 {
		t.Errorf("%d requests fell back, want 5", fellBack)
	}
	metrics := h.metricsText()
	for _, want := range []string{
		`sluice_upstream_attempts_total{deployment="flaky",outcome="server_error"} 5`,
		`sluice_deployment_state{deployment="flaky"} 2`,
		`sluice_deployment_ejected{deployment="flaky",reason="failures"} 1`,
		`sluice_deployment_state{deployment="good"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Recovered: after the cool-down one probe goes, and it is back.
	flaky.FailWith.Store(0)
	time.Sleep(1100 * time.Millisecond)
	ask(20)
	if st := h.deploymentState("flaky"); st != "closed" {
		t.Errorf("after a good probe flaky is %q, want closed", st)
	}
	if !strings.Contains(h.metricsText(), `sluice_deployment_state{deployment="flaky"} 0`) {
		t.Error("the metric does not show flaky back in rotation")
	}
	if got := flaky.Hits.Load(); got < 6 {
		t.Errorf("flaky called %d times in all, want the probe and a share after it", got)
	}

	// Rate limited now: still every request answered.
	flaky.FailWith.Store(http.StatusTooManyRequests)
	ask(10)
	if !strings.Contains(h.metricsText(), `sluice_upstream_attempts_total{deployment="flaky",outcome="rate_limited"}`) {
		t.Error("no rate_limited attempt counted")
	}
}

// TestFallbackModelBillsAtItsOwnPrices: a model whose only upstream is
// down falls back to another model, streamed and not; the caller sees one
// request, and the ledger bills the fallback's prices.
func TestFallbackModelBillsAtItsOwnPrices(t *testing.T) {
	spare := testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams,
		config.Upstream{Name: "dead", Type: "openai", BaseURL: "http://127.0.0.1:1/v1", Timeout: config.Duration(2 * time.Second), MaxConns: 4},
		spare.Upstream("spare"))
	cfg.Models = append(cfg.Models,
		config.Model{Name: "primary", Upstream: "dead", UpstreamModel: "x", InputPerMillion: 1000, OutputPerMillion: 1000, Fallbacks: []string{"backup"}},
		config.Model{Name: "backup", Upstream: "spare", UpstreamModel: "x", InputPerMillion: 1, OutputPerMillion: 1})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	params := chat("primary", "hello there")
	params.MaxTokens = openai.Int(20)
	if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatalf("plain: %v", err)
	}
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	chunks := 0
	for stream.Next() {
		chunks++
	}
	if err := stream.Err(); err != nil || chunks == 0 {
		t.Fatalf("streamed: %d chunks, %v", chunks, err)
	}
	for _, r := range h.routeRows() {
		if r.Status != 200 || r.Deployment != "spare/x" {
			t.Fatalf("row %+v, want served by spare/x", r)
		}
		if want := r.Total * 1000; r.CostNanos != want {
			t.Errorf("cost %d nano-dollars for %d tokens, want %d: the fallback's price of $1 a million", r.CostNanos, r.Total, want)
		}
		if !strings.Contains(r.Attempts, `"error":"unavailable"`) {
			t.Errorf("attempts %q, want the dead upstream's connection failure listed", r.Attempts)
		}
	}
	if spare.Hits.Load() != 2 {
		t.Errorf("the fallback was called %d times, want 2", spare.Hits.Load())
	}
}

// TestWeightsHoldOverManyRequests sends 1,000 requests to a model on two
// healthy deployments weighted 3:1 and counts where the ledger says each
// went: within five standard deviations of 750.
func TestWeightsHoldOverManyRequests(t *testing.T) {
	heavy, light := testenv.NewProvider(t), testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, heavy.Upstream("heavy"), light.Upstream("light"))
	cfg.Models = append(cfg.Models, config.Model{Name: "weighted", Upstream: "heavy", Deployments: []config.Deployment{
		{Name: "heavy", Upstream: "heavy", UpstreamModel: "x", Weight: 3},
		{Name: "light", Upstream: "light", UpstreamModel: "x", Weight: 1},
	}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	const n = 1000
	for i := range n {
		resp, body := h.raw("POST", "/v1/chat/completions", h.key, `{"model":"weighted","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if got := heavy.Hits.Load(); got < 750-5*14 || got > 750+5*14 {
		t.Errorf("heavy served %d of %d, want 750 ± 70 (weights 3:1)", got, n)
	}
	if heavy.Hits.Load()+light.Hits.Load() != n {
		t.Errorf("%d + %d upstream calls for %d requests", heavy.Hits.Load(), light.Hits.Load(), n)
	}
}

// metricsText reads /metrics from the admin listener as text.
func (h *harness) metricsText() string {
	h.t.Helper()
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRetryAfterIsHonouredWithinTheDeadline: a provider that answers 429
// with Retry-After: 1 once is called again after a second, and the caller
// gets its 200; one whose Retry-After does not fit the model's deadline is
// not waited for, and the caller gets the 503 with the provider's
// Retry-After.
func TestRetryAfterIsHonouredWithinTheDeadline(t *testing.T) {
	busy := testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, busy.Upstream("busy"))
	cfg.Models = append(cfg.Models, config.Model{Name: "patient", Upstream: "busy", UpstreamModel: "x",
		Retry: config.Retry{Attempts: 2, Backoff: config.Duration(time.Millisecond), Deadline: config.Duration(5 * time.Second)}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	body := `{"model":"patient","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`

	busy.FailWith.Store(http.StatusTooManyRequests)
	busy.Counted.Store(true)
	busy.Failures.Store(1)
	busy.RetryAfter.Store("1")
	began := time.Now()
	resp, out := h.raw("POST", "/v1/chat/completions", h.key, body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s, want 200 after the provider's wait", resp.StatusCode, out)
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("answered after %v: the provider's Retry-After of 1 s was not waited for", took)
	}
	if busy.Hits.Load() != 2 {
		t.Errorf("%d provider calls, want 2", busy.Hits.Load())
	}

	busy.Failures.Store(1)
	busy.RetryAfter.Store("30")
	began = time.Now()
	resp, out = h.raw("POST", "/v1/chat/completions", h.key, body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(out), "upstream_rate_limited") {
		t.Fatalf("status %d %s, want 503 upstream_rate_limited", resp.StatusCode, out)
	}
	if got := resp.Header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q, want the provider's 30", got)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("answered after %v: a wait past the deadline should not be started", took)
	}
	if busy.Hits.Load() != 3 {
		t.Errorf("%d provider calls in all, want 3", busy.Hits.Load())
	}
}

// TestPolicyKeepsRequestsInTheirRegion: a tier whose data says eu is served
// by the eu deployment only, whatever the weights; a model with no eu
// deployment is refused before any provider is called.
func TestPolicyKeepsRequestsInTheirRegion(t *testing.T) {
	us, eu := testenv.NewProvider(t), testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), config.Tier{Models: []string{"*"}, Regions: []string{"eu"}})
	cfg.Upstreams = append(cfg.Upstreams, us.Upstream("us"), eu.Upstream("eu"))
	cfg.Models = append(cfg.Models,
		config.Model{Name: "global", Upstream: "us", Deployments: []config.Deployment{
			{Name: "us", Upstream: "us", UpstreamModel: "x", Weight: 100, Region: "us"},
			{Name: "eu", Upstream: "eu", UpstreamModel: "x", Weight: 1, Region: "eu"},
		}},
		config.Model{Name: "us-only", Upstream: "us", Deployments: []config.Deployment{
			{Name: "us-only", Upstream: "us", UpstreamModel: "x", Region: "us"},
		}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	for i := range 20 {
		resp, body := h.raw("POST", "/v1/chat/completions", h.key, `{"model":"global","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if us.Hits.Load() != 0 || eu.Hits.Load() != 20 {
		t.Errorf("us served %d, eu %d; want every request in eu", us.Hits.Load(), eu.Hits.Load())
	}
	resp, body := h.raw("POST", "/v1/chat/completions", h.key, `{"model":"us-only","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "no_deployment_in_region") {
		t.Fatalf("us-only: %d %s, want 403 no_deployment_in_region", resp.StatusCode, body)
	}
	if us.Hits.Load() != 0 {
		t.Error("the us provider was called for a request the policy keeps in eu")
	}
}

// TestSlowFirstByteFallsBack: a deployment whose provider holds back its
// answer past the upstream's first_byte_timeout counts as timed out, and the
// request goes on to the next deployment, streamed or not.
func TestSlowFirstByteFallsBack(t *testing.T) {
	slow, quick := testenv.NewProvider(t), testenv.NewProvider(t)
	slow.Delay.Store(int64(3 * time.Second))
	cfg := testConfig(t, t.TempDir(), open)
	slowUp := slow.Upstream("slow")
	slowUp.FirstByteTimeout = config.Duration(200 * time.Millisecond)
	cfg.Upstreams = append(cfg.Upstreams, slowUp, quick.Upstream("quick"))
	cfg.Models = append(cfg.Models, config.Model{Name: "hasty", Upstream: "slow",
		Deployments: []config.Deployment{
			{Name: "slow", Upstream: "slow", UpstreamModel: "x", Weight: 1000},
			{Name: "quick", Upstream: "quick", UpstreamModel: "x", Weight: 1},
		}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	for i := range 6 {
		params := chat("hasty", "hello there")
		params.MaxTokens = openai.Int(10)
		began := time.Now()
		if i%2 == 0 {
			if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		} else {
			stream := c.Chat.Completions.NewStreaming(context.Background(), params)
			for stream.Next() {
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Fatalf("request %d took %v: the slow deployment's first byte was waited for", i, took)
		}
	}
	timedOut := 0
	for _, r := range h.routeRows() {
		if r.Deployment != "quick" {
			t.Fatalf("row %+v, want every request answered by quick", r)
		}
		if strings.Contains(r.Attempts, `"deployment":"slow","status":0,"error":"timeout"`) {
			timedOut++
		}
	}
	if timedOut == 0 {
		t.Error("no attempt of the slow deployment recorded as a timeout")
	}
}

// TestStreamCutAfterItsFirstByteIsNotRetried: once a stream's first event
// has reached the caller, a provider that drops the connection is not
// retried elsewhere (the caller would get two replies in one): the caller
// gets the events so far and an error event, the other deployment is never
// called, and the request is billed for what was relayed.
func TestStreamCutAfterItsFirstByteIsNotRetried(t *testing.T) {
	cutter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for _, word := range []string{"Hello", " there", " friend"} {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
		}
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond) // the events reach the caller first
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // mid-stream, without the end of the chunked body
		}
	}))
	t.Cleanup(cutter.Close)
	spare := testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams,
		config.Upstream{Name: "cutter", Type: "openai", BaseURL: cutter.URL + "/v1", Timeout: config.Duration(5 * time.Second), MaxConns: 4},
		spare.Upstream("spare"))
	cfg.Models = append(cfg.Models, config.Model{Name: "fragile", Upstream: "cutter", InputPerMillion: 1, OutputPerMillion: 1,
		Deployments: []config.Deployment{
			{Name: "cutter", Upstream: "cutter", UpstreamModel: "x", Weight: 1000},
			{Name: "spare", Upstream: "spare", UpstreamModel: "x", Weight: 1},
		}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	for range 3 {
		stream := c.Chat.Completions.NewStreaming(context.Background(), chat("fragile", "hello there"))
		var text string
		for stream.Next() {
			if ch := stream.Current(); len(ch.Choices) > 0 {
				text += ch.Choices[0].Delta.Content
			}
		}
		if stream.Err() == nil {
			t.Fatalf("the stream ended without an error after %q", text)
		}
		if !strings.HasPrefix(text, "Hello there") {
			t.Errorf("relayed %q before the error, want the provider's events", text)
		}
	}
	if spare.Hits.Load() != 0 {
		t.Errorf("the other deployment was called %d times after streams had begun", spare.Hits.Load())
	}
	for _, r := range h.routeRows() {
		if r.Deployment != "cutter" || r.Attempts != "" || r.Total == 0 {
			t.Errorf("row %+v, want one attempt on cutter, billed for what was relayed", r)
		}
	}
}
