package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// TestPolicyFallbacksReplaceTheModels: the shipped policy hands a tier's
// fallbacks to the gateway, which tries them in place of the model's
// configured ones: a standard client whose model is down is served by the
// tier's cheap fallback, never the configured one; a model the gateway does
// not serve in the list (which loading the configuration refuses; here it
// stands for a policy that names one) is skipped with a log line that does
// not repeat it; a tier whose fallbacks are [] gets the model's own failure, and no
// fallback is called for it.
func TestPolicyFallbacksReplaceTheModels(t *testing.T) {
	backup, cheap := testenv.NewProvider(t), testenv.NewProvider(t)
	tier := open
	tier.Fallbacks = []string{"unserved-model-x7", "cheap"}
	cfg := testConfig(t, t.TempDir(), tier)
	cfg.Tiers["strict"] = config.Tier{Models: []string{"*"}, Fallbacks: []string{}}
	cfg.Upstreams = append(cfg.Upstreams,
		config.Upstream{Name: "dead", Type: "openai", BaseURL: "http://127.0.0.1:1/v1", Timeout: config.Duration(2 * time.Second), MaxConns: 4},
		backup.Upstream("backup"), cheap.Upstream("cheap"))
	cfg.Models = append(cfg.Models,
		config.Model{Name: "primary", Upstream: "dead", UpstreamModel: "x", Fallbacks: []string{"backup"}},
		config.Model{Name: "backup", Upstream: "backup", UpstreamModel: "x"},
		config.Model{Name: "cheap", Upstream: "cheap", UpstreamModel: "x"})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	strict := h.addClient(accounts.NewClient{ID: "strict-app", Department: "research", Tier: "strict"})
	body := `{"model":"primary","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`

	for i := range 3 {
		if resp, out := h.raw("POST", "/v1/chat/completions", h.key, body); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s, want the tier's fallback to answer", i, resp.StatusCode, out)
		}
	}
	if cheap.Hits.Load() != 3 || backup.Hits.Load() != 0 {
		t.Errorf("cheap served %d, the configured backup %d; want 3 and 0", cheap.Hits.Load(), backup.Hits.Load())
	}
	for _, r := range h.routeRows() {
		if r.Deployment != "cheap/x" {
			t.Errorf("row %+v, want served by cheap/x", r)
		}
	}
	skipped := h.logRecords("policy fallbacks name models the gateway does not serve; skipped")
	if len(skipped) != 3 || skipped[0]["unknown"] != float64(1) || skipped[0]["model"] != "primary" {
		t.Errorf("log lines %v, want one a request counting 1 unknown model of primary", skipped)
	}
	if strings.Contains(h.logText(), "unserved-model-x7") {
		t.Error("the policy's unknown model name reached the log")
	}

	resp, out := h.raw("POST", "/v1/chat/completions", strict, body)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("strict tier: %d %s, want 502: its fallbacks are none", resp.StatusCode, out)
	}
	if cheap.Hits.Load() != 3 || backup.Hits.Load() != 0 {
		t.Errorf("a fallback was called for the strict tier (cheap %d, backup %d)", cheap.Hits.Load(), backup.Hits.Load())
	}
}

// upstreamRow is a deployment as /admin/upstreams lists it.
type upstreamRow struct {
	Deployment string  `json:"deployment"`
	State      string  `json:"state"`
	Reason     string  `json:"reason"`
	LatencyMS  float64 `json:"latency_ms"`
}

func (h *harness) upstreamRow(name string) upstreamRow {
	h.t.Helper()
	status, body := h.admin("GET", "/admin/upstreams", "")
	if status != http.StatusOK {
		h.t.Fatalf("/admin/upstreams: %d %s", status, body)
	}
	var list struct{ Data []upstreamRow }
	if err := json.Unmarshal(body, &list); err != nil {
		h.t.Fatal(err)
	}
	for _, d := range list.Data {
		if d.Deployment == name {
			return d
		}
	}
	h.t.Fatalf("deployment %s not in /admin/upstreams: %s", name, body)
	return upstreamRow{}
}

// TestSlowDeploymentIsEjectedForLatencyAndRecovers: one of two deployments
// answers every call 400 ms late, failing none. Once each has five calls
// behind it, the slow one, at its next answer, is ejected for latency (the metric says 2,
// /admin/upstreams says why) and every request goes to the quick one; when
// it is quick again, the probe after the cool-down puts it back.
func TestSlowDeploymentIsEjectedForLatencyAndRecovers(t *testing.T) {
	slow, quick := testenv.NewProvider(t), testenv.NewProvider(t)
	slow.Delay.Store(int64(400 * time.Millisecond))
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, slow.Upstream("slow"), quick.Upstream("quick"))
	cfg.Models = append(cfg.Models, config.Model{Name: "even", Upstream: "slow",
		Deployments: []config.Deployment{
			{Name: "slow", Upstream: "slow", UpstreamModel: "x"},
			{Name: "quick", Upstream: "quick", UpstreamModel: "x"},
		},
		Circuit: config.Circuit{Cooldown: config.Duration(time.Second), LatencyFactor: 3, LatencySamples: 5, LatencyMin: config.Duration(100 * time.Millisecond)}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	ask := func(n int) {
		t.Helper()
		for i := range n {
			resp, out := h.raw("POST", "/v1/chat/completions", h.key, `{"model":"even","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, out)
			}
		}
	}
	// The slow deployment is judged at each of its answers, once it and
	// its peer have five behind them.
	for i := 0; h.upstreamRow("slow").State == "closed"; i++ {
		if i == 60 {
			t.Fatalf("60 requests and the slow deployment (%d calls, against %d) is still in rotation", slow.Hits.Load(), quick.Hits.Load())
		}
		ask(1)
	}
	if slow.Hits.Load() < 5 || quick.Hits.Load() < 5 {
		t.Errorf("ejected after %d slow calls against %d quick ones, want five of each at least", slow.Hits.Load(), quick.Hits.Load())
	}
	if row := h.upstreamRow("slow"); row.State != "open" || row.Reason != "latency" {
		t.Fatalf("slow deployment %+v, want open for latency", row)
	}
	m := h.metricsText()
	for _, want := range []string{
		`sluice_deployment_state{deployment="slow"} 2`,
		`sluice_deployment_ejected{deployment="slow",reason="latency"} 1`,
		`sluice_deployment_ejected{deployment="slow",reason="failures"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if q := h.upstreamRow("quick"); q.State != "closed" {
		t.Errorf("quick deployment %+v, want closed", q)
	}
	hits := slow.Hits.Load()
	ask(10)
	if slow.Hits.Load() != hits {
		t.Errorf("the ejected deployment was called %d times during its cool-down", slow.Hits.Load()-hits)
	}

	slow.Delay.Store(0)
	time.Sleep(1100 * time.Millisecond)
	ask(10)
	if row := h.upstreamRow("slow"); row.State != "closed" || row.Reason != "" {
		t.Errorf("after a quick probe the slow deployment is %+v, want closed", row)
	}
	m = h.metricsText()
	for _, want := range []string{`sluice_deployment_state{deployment="slow"} 0`, `sluice_deployment_ejected{deployment="slow",reason="latency"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s after the recovery", want)
		}
	}
	if slow.Hits.Load() == hits {
		t.Error("no probe reached the recovered deployment")
	}
}

// refusingProvider is a provider whose content filter refuses everything,
// the way mode says: "400" with Azure's error, "finish" with a whole reply
// cut by content_filter, "stream" with a stream that ends so before any text.
func refusingProvider(t *testing.T, mode string) (*httptest.Server, *atomic.Int64) {
	calls := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct{ Stream bool }
		json.NewDecoder(r.Body).Decode(&req)
		switch {
		case mode == "400":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"message":"The response was filtered due to the prompt triggering content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}`)
		case req.Stream:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"id\":\"r1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"r1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"r1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":0,\"total_tokens\":9}}\n\ndata: [DONE]\n\n")
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"r1","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

// TestContentRefusalFallsBackWhenTheModelOptsIn: a deployment whose content
// filter refuses (a 400 content_filter, a reply finished by content_filter,
// a stream that ends so before any text) is passed over for the next one
// by a model with fallback_on_refusal: the caller gets the other's answer,
// streamed or not, the ledger lists the refusal and bills the answer, and
// the refusing deployment stays in rotation. A model without it passes the
// refusal on and calls no one else.
func TestContentRefusalFallsBackWhenTheModelOptsIn(t *testing.T) {
	for _, mode := range []string{"400", "finish", "stream"} {
		t.Run(mode, func(t *testing.T) {
			strictSrv, strictCalls := refusingProvider(t, mode)
			spare := testenv.NewProvider(t)
			cfg := testConfig(t, t.TempDir(), open)
			cfg.Upstreams = append(cfg.Upstreams,
				config.Upstream{Name: "strict", Type: "openai", BaseURL: strictSrv.URL + "/v1", Timeout: config.Duration(5 * time.Second), MaxConns: 4},
				spare.Upstream("spare"))
			deployments := []config.Deployment{
				{Name: "strict", Upstream: "strict", UpstreamModel: "x", Weight: 1000000},
				{Name: "spare", Upstream: "spare", UpstreamModel: "x", Weight: 1},
			}
			cfg.Models = append(cfg.Models,
				config.Model{Name: "lenient", Upstream: "strict", Deployments: deployments, FallbackOnRefusal: true,
					InputPerMillion: 1, OutputPerMillion: 1, Circuit: config.Circuit{Failures: 1}},
				config.Model{Name: "plain", Upstream: "strict", Deployments: []config.Deployment{
					{Name: "plain-strict", Upstream: "strict", UpstreamModel: "x", Weight: 1000000},
					{Name: "plain-spare", Upstream: "spare", UpstreamModel: "x", Weight: 1},
				}})
			h := start(t, cfg)
			h.key = h.createClient("app", "research")
			c := h.client(h.key)
			stream := mode == "stream"

			for range 3 {
				text, err := h.complete(c, "lenient", stream)
				if err != nil || !strings.HasPrefix(text, "Mock reply") {
					t.Fatalf("lenient: %q, %v; want the spare deployment's answer; rows %+v", text, err, h.routeRows())
				}
			}
			if strictCalls.Load() != 3 || spare.Hits.Load() != 3 {
				t.Errorf("strict called %d, spare %d; want 3 and 3: each refusal passed over once, the refuser kept in rotation",
					strictCalls.Load(), spare.Hits.Load())
			}
			rows := h.routeRows()
			for _, r := range rows {
				if r.Deployment != "spare" || r.Status != 200 || r.CostNanos == 0 ||
					!strings.Contains(r.Attempts, `"deployment":"strict"`) || !strings.Contains(r.Attempts, `"error":"content_refused"`) {
					t.Errorf("row %+v, want served and billed by spare after strict's listed refusal", r)
				}
			}
			if st := h.deploymentState("strict"); st != "closed" {
				t.Errorf("strict is %s after refusing: a refusal is not a failure", st)
			}
			if !strings.Contains(h.metricsText(), `sluice_upstream_attempts_total{deployment="strict",outcome="content_refused"} 3`) {
				t.Error("the refusals are not counted as content_refused")
			}

			text, err := h.complete(c, "plain", stream)
			if mode == "400" {
				if err == nil || !strings.Contains(err.Error(), "400") {
					t.Errorf("plain: %q, %v; want the provider's 400 passed on", text, err)
				}
			} else if err != nil || text != "" {
				t.Errorf("plain: %q, %v; want the empty, filtered reply passed on", text, err)
			}
			if spare.Hits.Load() != 3 {
				t.Error("a model without fallback_on_refusal fell back")
			}
		})
	}
}

// complete asks model a short question through the OpenAI SDK, streamed or
// not, and returns the text of the reply.
func (h *harness) complete(c openai.Client, model string, stream bool) (string, error) {
	params := chat(model, "hello there")
	params.MaxTokens = openai.Int(10)
	if !stream {
		resp, err := c.Chat.Completions.New(context.Background(), params)
		if err != nil {
			return "", err
		}
		return resp.Choices[0].Message.Content, nil
	}
	s := c.Chat.Completions.NewStreaming(context.Background(), params)
	var text string
	for s.Next() {
		if ch := s.Current(); len(ch.Choices) > 0 {
			text += ch.Choices[0].Delta.Content
		}
	}
	return text, s.Err()
}
