package metrics

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func newTest(o Options) *Metrics {
	o.NoRuntime = true
	if o.Models == nil {
		o.Models = []string{"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"}
	}
	if o.Plugins == nil {
		o.Plugins = []string{"pii"}
	}
	return New(o)
}

// mix is a known mix of requests: two answered chats, one denial for PII, one
// bad key, one budget denial, one embeddings call, one model listing.
func mix() []Request {
	ms := time.Millisecond
	return []Request{
		{Endpoint: EndpointChat, Department: "finance", Client: "ledger-app", Model: "gpt-4o", Status: 200,
			PromptTokens: 100, CompletionTokens: 50, CostNanos: 1_500_000_000,
			Stages: Stages{StageAuth: ms, StageParse: ms, StagePolicy: ms, StageLimits: ms, StageUpstream: 200 * ms, StageTotal: 300 * ms}},
		{Endpoint: EndpointChat, Department: "finance", Client: "ledger-app", Model: "gpt-4o", Status: 200,
			PromptTokens: 20, CompletionTokens: 10, CostNanos: 250_000_000,
			Stages: Stages{StageTotal: 50 * ms}},
		{Endpoint: EndpointChat, Department: "support", Client: "helpdesk", Model: "gpt-4o-mini", Status: 400, Code: "pii_detected",
			Stages: Stages{StageAuth: ms, StagePolicy: 2 * ms, StageTotal: 5 * ms}},
		{Endpoint: EndpointChat, Status: 401, Code: "invalid_api_key", Stages: Stages{StageTotal: ms}},
		{Endpoint: EndpointChat, Department: "support", Client: "helpdesk", Model: "gpt-4o-mini", Status: 429, Code: "budget_exceeded",
			Stages: Stages{StageTotal: 2 * ms}},
		{Endpoint: EndpointEmbeddings, Department: "support", Client: "search", Model: "text-embedding-3-small", Status: 200,
			PromptTokens: 8, CostNanos: 1_000, Stages: Stages{StageTotal: 20 * ms}},
		{Endpoint: EndpointModels, Department: "support", Client: "search", Status: 200, Stages: Stages{StageTotal: ms}},
	}
}

func record(m *Metrics, rs []Request) {
	for i := range rs {
		m.Record(&rs[i])
	}
}

func TestRecordExposesExactCounts(t *testing.T) {
	m := newTest(Options{})
	record(m, mix())
	const want = `
# HELP sluice_requests_total Requests answered, by department, client, model, endpoint, HTTP status and decision or error code (empty when none).
# TYPE sluice_requests_total counter
sluice_requests_total{client="",code="invalid_api_key",department="",endpoint="/v1/chat/completions",model="",status="401"} 1
sluice_requests_total{client="helpdesk",code="budget_exceeded",department="support",endpoint="/v1/chat/completions",model="gpt-4o-mini",status="429"} 1
sluice_requests_total{client="helpdesk",code="pii_detected",department="support",endpoint="/v1/chat/completions",model="gpt-4o-mini",status="400"} 1
sluice_requests_total{client="ledger-app",code="",department="finance",endpoint="/v1/chat/completions",model="gpt-4o",status="200"} 2
sluice_requests_total{client="search",code="",department="support",endpoint="/v1/embeddings",model="text-embedding-3-small",status="200"} 1
sluice_requests_total{client="search",code="",department="support",endpoint="/v1/models",model="",status="200"} 1
# HELP sluice_cost_usd_total Spend in US dollars at the configured prices, by department, client and model.
# TYPE sluice_cost_usd_total counter
sluice_cost_usd_total{client="",department="",model=""} 0
sluice_cost_usd_total{client="helpdesk",department="support",model="gpt-4o-mini"} 0
sluice_cost_usd_total{client="ledger-app",department="finance",model="gpt-4o"} 1.75
sluice_cost_usd_total{client="search",department="support",model=""} 0
sluice_cost_usd_total{client="search",department="support",model="text-embedding-3-small"} 1e-06
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), NameRequests, NameCost); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		dept, client, model, typ string
		want                     float64
	}{
		{"finance", "ledger-app", "gpt-4o", "prompt", 120},
		{"finance", "ledger-app", "gpt-4o", "completion", 60},
		{"support", "search", "text-embedding-3-small", "prompt", 8},
		{"support", "search", "text-embedding-3-small", "completion", 0},
		{"support", "helpdesk", "gpt-4o-mini", "prompt", 0},
	} {
		if got := testutil.ToFloat64(m.tokens.WithLabelValues(c.dept, c.client, c.model, c.typ)); got != c.want {
			t.Errorf("%s tokens of %s/%s/%s = %v, want %v", c.typ, c.dept, c.client, c.model, got, c.want)
		}
	}
}

func TestGenAIMetricsFollowTheConventions(t *testing.T) {
	// The full exposition of the gpt-4o chats pins names, labels and the
	// conventions' buckets.
	one := newTest(Options{})
	record(one, mix()[:2])
	const want = `
# HELP gen_ai_client_token_usage Tokens used per request (OpenTelemetry gen_ai.client.token.usage), by token type input or output.
# TYPE gen_ai_client_token_usage histogram
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="1"} 0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="4"} 0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="16"} 0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="64"} 1
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="256"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="1024"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="4096"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="16384"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="65536"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="262144"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="1.048576e+06"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="4.194304e+06"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="1.6777216e+07"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="6.7108864e+07"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",le="+Inf"} 2
gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input"} 120
gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="input"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="1"} 0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="4"} 0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="16"} 1
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="64"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="256"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="1024"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="4096"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="16384"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="65536"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="262144"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="1.048576e+06"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="4.194304e+06"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="1.6777216e+07"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="6.7108864e+07"} 2
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",le="+Inf"} 2
gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output"} 60
gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o",gen_ai_token_type="output"} 2
`
	if err := testutil.GatherAndCompare(one.Registry(), strings.NewReader(want), NameGenAITokenUsage); err != nil {
		t.Error(err)
	}
	// The whole mix: only model calls are in the GenAI metrics, the listing
	// is not; token usage has one observation per request that used tokens.
	m := newTest(Options{})
	record(m, mix())
	for _, c := range []struct {
		op, model, typ string
		count          uint64
		sum            float64
	}{
		{"chat", "gpt-4o", "input", 2, 120},
		{"chat", "gpt-4o", "output", 2, 60},
		{"embeddings", "text-embedding-3-small", "input", 1, 8},
		{"embeddings", "text-embedding-3-small", "output", 0, 0},
		{"chat", "gpt-4o-mini", "input", 0, 0},
	} {
		count, sum := histogram(t, m, NameGenAITokenUsage, map[string]string{
			"gen_ai_operation_name": c.op, "gen_ai_request_model": c.model, "gen_ai_token_type": c.typ})
		if count != c.count || sum != c.sum {
			t.Errorf("%s %s %s tokens: count %d sum %v, want %d and %v", c.op, c.model, c.typ, count, sum, c.count, c.sum)
		}
	}
	for _, c := range []struct {
		op, model, errType string
		count              uint64
		sum                float64
	}{
		{"chat", "gpt-4o", "", 2, 0.35},
		{"chat", "gpt-4o-mini", "pii_detected", 1, 0.005},
		{"chat", "gpt-4o-mini", "budget_exceeded", 1, 0.002},
		{"chat", "", "invalid_api_key", 1, 0.001},
		{"embeddings", "text-embedding-3-small", "", 1, 0.02},
	} {
		count, sum := histogram(t, m, NameGenAIRequestDuration, map[string]string{
			"gen_ai_operation_name": c.op, "gen_ai_request_model": c.model, "error_type": c.errType})
		if count != c.count || fmt.Sprintf("%.6f", sum) != fmt.Sprintf("%.6f", c.sum) {
			t.Errorf("%s %s error_type=%q duration: count %d sum %v, want %d and %v", c.op, c.model, c.errType, count, sum, c.count, c.sum)
		}
	}
	if n := seriesCount(t, m, NameGenAIRequestDuration); n != 5 {
		t.Errorf("%s has %d series, want 5 (the model listing is not a GenAI operation)", NameGenAIRequestDuration, n)
	}
}

func TestStageLatencies(t *testing.T) {
	m := newTest(Options{Plugins: []string{"pii", "content_filter"}})
	record(m, mix())
	m.ObservePlugin("pii", 300*time.Microsecond)
	m.ObservePlugin("pii", 40*time.Microsecond)
	m.ObservePlugin("vendor_x", time.Millisecond)
	for _, c := range []struct {
		stage, plugin string
		count         uint64
		sum           time.Duration
	}{
		{"auth", "", 2, 2 * time.Millisecond},
		{"parse", "", 1, time.Millisecond},
		{"policy", "", 2, 3 * time.Millisecond},
		{"limits", "", 1, time.Millisecond},
		{"upstream_ttfb", "", 1, 200 * time.Millisecond},
		{"total", "", 7, 379 * time.Millisecond},
		{"plugin", "pii", 2, 340 * time.Microsecond},
		{"plugin", "content_filter", 0, 0},
		{"plugin", Other, 1, time.Millisecond},
	} {
		count, sum := histogram(t, m, NameStageDuration, map[string]string{"stage": c.stage, "plugin": c.plugin})
		if count != c.count || time.Duration(sum*1e9).Round(time.Microsecond) != c.sum {
			t.Errorf("stage %s plugin %q: count %d sum %v, want %d and %v", c.stage, c.plugin, count, sum, c.count, c.sum)
		}
	}
}

func TestPluginFailuresAndPolicyErrors(t *testing.T) {
	m := newTest(Options{})
	m.PluginFailed("pii", FailureTimeout)
	m.PluginFailed("pii", FailureTimeout)
	m.PluginFailed("pii", FailureError)
	m.PluginFailed("not-configured", FailureUnavailable)
	m.PluginFailed("pii", FailureReason("made up")) // counted as an error
	m.PluginFailed("pii", FailureBusy)
	m.PolicyError()
	const want = `
# HELP sluice_plugin_failures_total Plugin scans that failed, by plugin and reason (timeout, error, busy, unavailable); cancelled scans are not counted.
# TYPE sluice_plugin_failures_total counter
sluice_plugin_failures_total{plugin="other",reason="busy"} 0
sluice_plugin_failures_total{plugin="other",reason="error"} 0
sluice_plugin_failures_total{plugin="other",reason="timeout"} 0
sluice_plugin_failures_total{plugin="other",reason="unavailable"} 1
sluice_plugin_failures_total{plugin="pii",reason="busy"} 1
sluice_plugin_failures_total{plugin="pii",reason="error"} 2
sluice_plugin_failures_total{plugin="pii",reason="timeout"} 2
sluice_plugin_failures_total{plugin="pii",reason="unavailable"} 0
# HELP sluice_policy_errors_total Policy evaluations that failed; each denied its request with policy_error.
# TYPE sluice_policy_errors_total counter
sluice_policy_errors_total 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), NamePluginFailures, NamePolicyErrors); err != nil {
		t.Error(err)
	}
}

func TestSourcesAreReadAtScrape(t *testing.T) {
	var depth int
	ready := true
	m := newTest(Options{Sources: Sources{
		PolicyReloads:       func() (uint64, uint64) { return 3, 1 },
		ShadowDisagreements: func() uint64 { return 7 },
		ShadowErrors:        func() uint64 { return 2 },
		ShadowReloads:       func() (uint64, uint64) { return 5, 2 },
		DecisionLogDropped:  func() uint64 { return 9 },
		ShadowDropped:       func() uint64 { return 6 },
		DecisionCache:       func() (uint64, uint64) { return 80, 20 },
		AuthCache:           func() (uint64, uint64) { return 90, 10 },
		ExhaustedCache:      func() (uint64, uint64) { return 5, 45 },
		LimitsBackendErrors: func() uint64 { return 4 },
		LedgerQueueDepth:    func() int { return depth },
		Ready:               func() bool { return ready },
	}})
	depth, ready = 12, false
	const want = `
# HELP sluice_auth_cache_requests_total Key lookups, by result: hit (answered by the client-context cache) or miss (read from the store).
# TYPE sluice_auth_cache_requests_total counter
sluice_auth_cache_requests_total{result="hit"} 90
sluice_auth_cache_requests_total{result="miss"} 10
# HELP sluice_ledger_queue_depth Usage events recorded and not yet written to the ledger.
# TYPE sluice_ledger_queue_depth gauge
sluice_ledger_queue_depth 12
# HELP sluice_limits_backend_errors_total Calls to the limits backend that failed.
# TYPE sluice_limits_backend_errors_total counter
sluice_limits_backend_errors_total 4
# HELP sluice_limits_exhausted_cache_requests_total Reservations, by result: hit (denied from the cache of exhausted scopes) or miss (sent to the backend).
# TYPE sluice_limits_exhausted_cache_requests_total counter
sluice_limits_exhausted_cache_requests_total{result="hit"} 5
sluice_limits_exhausted_cache_requests_total{result="miss"} 45
# HELP sluice_policy_decision_cache_requests_total Enforced policy decisions, by result: hit (answered by the decision cache) or miss (evaluated).
# TYPE sluice_policy_decision_cache_requests_total counter
sluice_policy_decision_cache_requests_total{result="hit"} 80
sluice_policy_decision_cache_requests_total{result="miss"} 20
# HELP sluice_policy_decision_log_dropped_total Decisions the decision log dropped: its buffer was full, or a write failed.
# TYPE sluice_policy_decision_log_dropped_total counter
sluice_policy_decision_log_dropped_total 9
# HELP sluice_policy_reloads_total Policy reloads, by result (ok or failed); the first load is not one.
# TYPE sluice_policy_reloads_total counter
sluice_policy_reloads_total{result="failed"} 1
sluice_policy_reloads_total{result="ok"} 3
# HELP sluice_policy_shadow_disagreements_total Decisions where the shadow policy set decided otherwise than the enforced one.
# TYPE sluice_policy_shadow_disagreements_total counter
sluice_policy_shadow_disagreements_total 7
# HELP sluice_policy_shadow_dropped_total Decisions left unshadowed: the shadow policy set could not keep up and its queue was full.
# TYPE sluice_policy_shadow_dropped_total counter
sluice_policy_shadow_dropped_total 6
# HELP sluice_policy_shadow_errors_total Shadow policy evaluations that failed.
# TYPE sluice_policy_shadow_errors_total counter
sluice_policy_shadow_errors_total 2
# HELP sluice_policy_shadow_reloads_total Shadow policy reloads, by result (ok or failed); the first load is not one.
# TYPE sluice_policy_shadow_reloads_total counter
sluice_policy_shadow_reloads_total{result="failed"} 2
sluice_policy_shadow_reloads_total{result="ok"} 5
# HELP sluice_ready 1 while Sluice takes traffic, 0 while it drains or a backend it needs is down.
# TYPE sluice_ready gauge
sluice_ready 0
`
	names := []string{NameAuthCache, NameLedgerQueueDepth, NameLimitsBackendErrors, NameExhaustedCache,
		NamePolicyReloads, NameShadowDisagreements, NameShadowErrors, NameShadowReloads, NameDecisionLogDropped, NameShadowDropped, NameDecisionCache, NameReady}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// A source left out is not exposed as a zero that was never measured.
	if n, err := testutil.GatherAndCount(newTest(Options{}).Registry(), names...); err != nil || n != 0 {
		t.Errorf("metrics without sources: %d series (%v), want none", n, err)
	}
}

func TestClientAndDepartmentCaps(t *testing.T) {
	m := newTest(Options{MaxClients: 2, MaxDepartments: 1})
	for i := range 5 {
		for range i + 1 {
			m.Record(&Request{Endpoint: EndpointChat, Department: fmt.Sprintf("dept-%d", i), Client: fmt.Sprintf("client-%d", i),
				Model: "gpt-4o", Status: 200})
		}
	}
	got := map[string]float64{}
	for _, c := range []string{"client-0", "client-1", Other} {
		got[c] = sumWhere(t, m, NameRequests, "client", c)
	}
	// The first two clients keep their ids; the three after share "other".
	if got["client-0"] != 1 || got["client-1"] != 2 || got[Other] != 3+4+5 {
		t.Errorf("requests by client = %v, want client-0 1, client-1 2, other 12", got)
	}
	if n := labelValues(t, m, NameRequests, "client"); len(n) != 3 {
		t.Errorf("client label values = %v, want 3", n)
	}
	if n := labelValues(t, m, NameRequests, "department"); len(n) != 2 || !n["dept-0"] || !n[Other] {
		t.Errorf("department label values = %v, want dept-0 and other", n)
	}
	// A client seen before the cap keeps its id afterwards.
	m.Record(&Request{Endpoint: EndpointChat, Department: "dept-0", Client: "client-0", Model: "gpt-4o", Status: 200})
	if v := sumWhere(t, m, NameRequests, "client", "client-0"); v != 2 {
		t.Errorf("client-0 after the cap: %v requests, want 2", v)
	}
}

func TestUnboundedValuesNeverBecomeLabels(t *testing.T) {
	hostile := []string{
		"sk-sluice-Q2x8h2LrY6m0eWq8XK3v9dAaPzTn1RbC", // a Sluice key
		"sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
		"key_3f9a1c2b4d5e",            // a key id
		"req_a1b2c3d4e5f6z9",          // a request id
		"dec_a1b2c3d4e5f61",           // a decision id
		"Bearer sk-sluice-abc",        // a header value
		"eyJhbGciOiJIUzI1NiJ9.e30.xx", // a JWT
		"AKIAIOSFODNN7EXAMPLE",
		strings.Repeat("a", 129),
		"line\nbreak",
		"\xff\xfe not utf-8",
	}
	m := newTest(Options{})
	for _, v := range hostile {
		m.Record(&Request{Endpoint: v, Department: v, Client: v, Model: v, Code: v, Status: 200})
		m.Record(&Request{Endpoint: EndpointChat + "?key=" + v, Department: "safe-dept", Client: "safe-app", Model: "gpt-4o", Status: 999})
		m.ObservePlugin(v, time.Millisecond)
		m.PluginFailed(v, FailureReason(v))
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				for _, v := range hostile {
					if lp.GetValue() != "" && strings.Contains(v, lp.GetValue()) {
						t.Errorf("%s{%s=%q}: a hostile value became a label", mf.GetName(), lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}
	if got := sumWhere(t, m, NameRequests, "client", Other); got != float64(len(hostile)) {
		t.Errorf("hostile clients counted as other: %v, want %d", got, len(hostile))
	}
}

// FuzzLabelValues holds every label value to the allowed sets, whatever the
// request carries.
func FuzzLabelValues(f *testing.F) {
	f.Add("/v1/chat/completions", "finance", "app", "gpt-4o", "pii_detected", 400)
	f.Add("/x", "sk-sluice-abc", "req_1", "sk-1", "upstream_404", 200)
	m := newTest(Options{MaxClients: 3, MaxDepartments: 3})
	okValues := map[string]bool{"": true, Other: true}
	for _, s := range append(append([]string{EndpointChat, EndpointEmbeddings, EndpointModels, "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"},
		DefaultCodes...), statusLabels[100:]...) {
		okValues[s] = true
	}
	for _, s := range upstreamCodes[100:] {
		okValues[s] = true
	}
	f.Fuzz(func(t *testing.T, endpoint, dept, client, model, code string, status int) {
		m.Record(&Request{Endpoint: endpoint, Department: dept, Client: client, Model: model, Code: code, Status: status})
		k := seriesKey{m.departments.label(dept), m.clients.label(client), allowed(m.models, model), endpointLabel(endpoint),
			statusLabel(status), codeLabel(m.codes, code)}
		for _, v := range []string{k.model, k.endpoint, k.status, k.code} {
			if !okValues[v] {
				t.Errorf("label value %q is outside the allowed set", v)
			}
		}
		for _, v := range []string{k.department, k.client} {
			if v != "" && v != Other && unsafeValue(v) {
				t.Errorf("label value %q looks like a secret or id", v)
			}
		}
	})
}

func TestHandlerServesTheExposition(t *testing.T) {
	m := New(Options{Models: []string{"gpt-4o"}})
	record(m, mix())
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: m.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://sluice/metrics")
	req.Header.Set("Accept-Encoding", "gzip")
	if err := client.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	if ct := string(resp.Header.ContentType()); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q, want the Prometheus text format", ct)
	}
	if ce := string(resp.Header.ContentEncoding()); ce != "gzip" {
		t.Errorf("content encoding %q, want gzip when the scraper accepts it", ce)
	}
	b, err := resp.BodyGunzip()
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, want := range []string{
		`sluice_requests_total{client="ledger-app",code="",department="finance",endpoint="/v1/chat/completions",model="gpt-4o",status="200"} 2`,
		`go_goroutines `, // the runtime collectors are on by default
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// TestExpositionFollowsPrometheusNaming runs Prometheus's own linter over
// every metric, so that names, units and suffixes stay conventional.
func TestExpositionFollowsPrometheusNaming(t *testing.T) {
	m := newTest(Options{Sources: Sources{
		PolicyReloads: func() (uint64, uint64) { return 1, 0 }, ShadowDisagreements: func() uint64 { return 0 },
		ShadowErrors: func() uint64 { return 0 }, AuthCache: func() (uint64, uint64) { return 1, 1 },
		ExhaustedCache: func() (uint64, uint64) { return 0, 1 }, LimitsBackendErrors: func() uint64 { return 0 },
		LedgerQueueDepth: func() int { return 0 }, Ready: func() bool { return true },
	}})
	record(m, mix())
	m.PluginFailed("pii", FailureTimeout)
	m.PolicyError()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	// A gateway built without metrics calls these unconditionally.
	m.Record(&Request{Endpoint: EndpointChat, Status: 200})
	m.ObservePlugin("pii", time.Millisecond)
	m.PluginFailed("pii", FailureTimeout)
	m.PolicyError()
}

// Plugin guest time is counted per plugin and client, with the clients past
// the cap as other, so that a flood of clients adds no series; cancelled
// scans are counted apart from failures.
func TestPluginGuestTimeAndCancelled(t *testing.T) {
	m := newTest(Options{MaxClients: 2})
	m.PluginGuestTime("pii", "alice", 30*time.Millisecond)
	m.PluginGuestTime("pii", "alice", 20*time.Millisecond)
	m.PluginGuestTime("pii", "bob", 10*time.Millisecond)
	m.PluginGuestTime("pii", "carol", 5*time.Millisecond) // past the cap
	m.PluginGuestTime("made-up", "sk-sluice-123", 5*time.Millisecond)
	m.PluginGuestTime("pii", "alice", 0) // no instance ran: no series
	m.PluginCancelled("pii")
	m.PluginCancelled("made-up")
	const want = `
# HELP sluice_plugin_guest_seconds_total Time plugin instances spent scanning, by plugin and by the client whose request it was.
# TYPE sluice_plugin_guest_seconds_total counter
sluice_plugin_guest_seconds_total{client="alice",plugin="pii"} 0.05
sluice_plugin_guest_seconds_total{client="bob",plugin="pii"} 0.01
sluice_plugin_guest_seconds_total{client="other",plugin="other"} 0.005
sluice_plugin_guest_seconds_total{client="other",plugin="pii"} 0.005
# HELP sluice_plugin_scans_cancelled_total Plugin scans cancelled because their caller disconnected or their request's deadline passed, by plugin; each denied its request, and none is the plugin's failure.
# TYPE sluice_plugin_scans_cancelled_total counter
sluice_plugin_scans_cancelled_total{plugin="other"} 1
sluice_plugin_scans_cancelled_total{plugin="pii"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), NamePluginGuestSeconds, NamePluginCancelled); err != nil {
		t.Error(err)
	}
}
