package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/upstream"
)

// scrape reads /metrics from the admin listener, without the admin token.
func (h *harness) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	resp, err := http.Get("http://" + h.srv.AdminAddr() + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return fams
}

// sum adds the values of a family's series whose labels include want.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var total float64
	f := fams[name]
	if f == nil {
		return -1
	}
series:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func TestMetricsCountAKnownMixExactly(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"gpt-4o-mini"}, PIIDetection: true, ContentFilter: true})
	c := h.client(h.key)
	var prompt, completion int64
	for range 3 {
		resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "count me"))
		if err != nil {
			t.Fatal(err)
		}
		prompt += resp.Usage.PromptTokens
		completion += resp.Usage.CompletionTokens
	}
	_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "mail ann.lee@example.com"))
	apiError(t, err, 400, "pii_detected")
	_, err = c.Chat.Completions.New(context.Background(), chat("gpt-4o", "a model this tier lacks"))
	apiError(t, err, 403, "model_not_allowed")
	bad := h.client("sk-sluice-" + strings.Repeat("x", 32))
	_, err = bad.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "who am I"))
	apiError(t, err, 401, "invalid_api_key")

	fams := h.scrape()
	chatOK := map[string]string{"client": "app", "department": "research", "model": "gpt-4o-mini", "endpoint": "/v1/chat/completions", "status": "200", "code": ""}
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{chatOK, 3},
		{map[string]string{"client": "app", "status": "400", "code": "pii_detected"}, 1},
		{map[string]string{"client": "app", "model": "gpt-4o", "status": "403", "code": "model_not_allowed"}, 1},
		{map[string]string{"client": "", "status": "401", "code": "invalid_api_key"}, 1},
		{map[string]string{}, 6},
	} {
		if got := sum(fams, "sluice_requests_total", tc.labels); got != tc.want {
			t.Errorf("sluice_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := sum(fams, "sluice_tokens_total", map[string]string{"type": "prompt", "client": "app"}); got != float64(prompt) {
		t.Errorf("prompt tokens = %v, want %d as the client saw", got, prompt)
	}
	if got := sum(fams, "sluice_tokens_total", map[string]string{"type": "completion", "client": "app"}); got != float64(completion) {
		t.Errorf("completion tokens = %v, want %d", got, completion)
	}
	// Every request has a total; the plugins ran for the four the policy
	// let as far as scanning (not the wrong model, not the bad key).
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"stage": "total"}, 6},
		{map[string]string{"stage": "plugin", "plugin": "pii"}, 4},
		{map[string]string{"stage": "plugin", "plugin": "content_filter"}, 4},
		{map[string]string{"stage": "upstream_ttfb"}, 3},
	} {
		if got := sum(fams, "sluice_stage_duration_seconds", tc.labels); got != tc.want {
			t.Errorf("sluice_stage_duration_seconds%v count = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := sum(fams, "gen_ai_client_token_usage", map[string]string{"gen_ai_token_type": "input"}); got != 3 {
		t.Errorf("gen_ai_client_token_usage input observations = %v, want 3", got)
	}
	if got := sum(fams, "sluice_ready", nil); got != 1 {
		t.Errorf("sluice_ready = %v", got)
	}
	// Each request's access line names its decision and its stage timings.
	logs := h.logText()
	for _, want := range []string{`"decision_id":"dec_`, `"stages_us":{"auth":`, `"code":"pii_detected"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s", want)
		}
	}
	if strings.Contains(logs, "ann.lee@example.com") || strings.Contains(logs, h.key) {
		t.Error("the access log holds the prompt's address or the key")
	}
	// No key and no request id ever becomes a label value.
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.HasPrefix(l.GetValue(), "sk-") || strings.HasPrefix(l.GetValue(), "req_") || strings.HasPrefix(l.GetValue(), "key_") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it receives.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string][]string // trace id (hex) → span names
	addr  string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{spans: map[string][]string{}, addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var export coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &export); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					id := hex.EncodeToString(sp.TraceId)
					r.spans[id] = append(r.spans[id], sp.Name)
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(b)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func TestTracesHonourTraceparentAndReachTheUpstream(t *testing.T) {
	receiver := startOTLPReceiver(t)
	// An upstream that notes the traceparent it is sent.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var upstreamParent string
	var mu sync.Mutex
	mock := upstream.MockHandler(upstream.NewMock(0), []string{"gpt-4o-mini"})
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		upstreamParent = string(ctx.Request.Header.Peek("traceparent"))
		mu.Unlock()
		mock(ctx)
	}}
	go up.Serve(ln)
	t.Cleanup(func() { up.Shutdown() })

	cfg := testConfig(t, t.TempDir(), open)
	cfg.Telemetry.OTLPEndpoint, cfg.Telemetry.TraceSampleRatio = "http://"+receiver.addr, 1
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "traced", Type: "openai", BaseURL: "http://" + ln.Addr().String() + "/v1",
		Timeout: config.Duration(10 * time.Second), MaxConns: 4})
	for i := range cfg.Models {
		if cfg.Models[i].Name == "gpt-4o-mini" {
			cfg.Models[i].Upstream = "traced"
		}
	}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", "http://"+h.srv.Addr()+"/v1/chat/completions",
		bytes.NewReader([]byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"trace me"}]}`)))
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h.stop() // flushes the spans

	mu.Lock()
	parent := upstreamParent
	mu.Unlock()
	if !strings.HasPrefix(parent, "00-"+traceID+"-") || strings.Contains(parent, "00f067aa0ba902b7") {
		t.Errorf("upstream traceparent %q: want the caller's trace id with a span of Sluice's", parent)
	}
	receiver.mu.Lock()
	names := receiver.spans[traceID]
	receiver.mu.Unlock()
	for _, want := range []string{"auth", "policy", "plugin:pii", "plugin:content_filter", "limits", "upstream"} {
		found := false
		for _, n := range names {
			if n == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no %q span in the caller's trace; spans: %v", want, names)
		}
	}
}

func TestReadinessTurnsFalseWhileDraining(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams[0].Latency = config.Duration(2 * time.Second) // the mock
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	adminAddr := h.srv.AdminAddr()
	ready := func() (int, string) {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready(); code != 200 {
		t.Fatalf("/readyz = %d %s before shutdown", code, body)
	}
	c := h.client(h.key)
	inFlight := make(chan error, 1)
	go func() {
		_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "slow"))
		inFlight <- err
	}()
	time.Sleep(300 * time.Millisecond) // the request is at the upstream
	closed := make(chan error, 1)
	srv := h.srv
	go func() { closed <- srv.Close(context.Background()) }()
	h.srv = nil
	deadline := time.Now().Add(1500 * time.Millisecond)
	var code int
	var body string
	for time.Now().Before(deadline) {
		if code, body = ready(); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining = %d %s, want 503 draining", code, body)
	}
	if err := <-inFlight; err != nil {
		t.Fatalf("the request in flight must be answered: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestDecisionLogOff(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Policy.DecisionLog = "off"
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "no decision log")); err != nil {
		t.Fatalf("a gateway without a decision log must serve: %v", err)
	}
}
