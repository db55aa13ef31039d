package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
	secretKey   = "sk-sluice-Q2x8h2LrY6m0eWq8XK3v9dAaPzTn1RbC"
)

func setup(t *testing.T) (*Provider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, err := Setup(context.Background(), Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p, exp
}

func header(traceparent, tracestate string) *fasthttp.RequestHeader {
	var h fasthttp.RequestHeader
	h.SetMethod("POST")
	h.SetRequestURI("/v1/chat/completions")
	h.Set("Authorization", "Bearer "+secretKey)
	if traceparent != "" {
		h.Set("traceparent", traceparent)
	}
	if tracestate != "" {
		h.Set("tracestate", tracestate)
	}
	return &h
}

// serve walks a request through the stages as the gateway does and returns
// the headers it would send upstream.
func serve(p *Provider, h *fasthttp.RequestHeader) map[string]string {
	r := p.Start(h, "POST", "/v1/chat/completions", "req_1")
	r.Stage(StageAuth).End()
	r.Stage(StagePolicy).End()
	r.Plugin("pii").End()
	r.Stage(StageLimits).End()
	up := r.Stage(StageUpstream)
	sent := map[string]string{}
	up.Inject(func(k, v string) { sent[k] = v })
	up.End()
	r.End(Summary{Client: "ledger-app", Department: "finance", Model: "gpt-4o", Operation: "chat",
		DecisionID: "dec_1", InputTokens: 100, OutputTokens: 50, Status: 200})
	return sent
}

func spans(t *testing.T, p *Provider, exp *tracetest.InMemoryExporter) map[string]tracetest.SpanStub {
	t.Helper()
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		out[s.Name] = s
	}
	return out
}

func TestOneSpanPerStageUnderTheRequestSpan(t *testing.T) {
	p, exp := setup(t)
	serve(p, header("", ""))
	got := spans(t, p, exp)
	root, ok := got["POST /v1/chat/completions"]
	if !ok || len(got) != 6 {
		t.Fatalf("spans %v, want the request span and five stages", keys(got))
	}
	if root.SpanKind != trace.SpanKindServer || root.Parent.IsValid() {
		t.Errorf("request span: kind %v, parent %v; want a server span starting a trace", root.SpanKind, root.Parent)
	}
	for _, name := range []string{"auth", "policy", "plugin:pii", "limits", "upstream"} {
		s, ok := got[name]
		if !ok {
			t.Errorf("no %s span", name)
			continue
		}
		if s.Parent.SpanID() != root.SpanContext.SpanID() || s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("%s span is not a child of the request span", name)
		}
	}
	if got["upstream"].SpanKind != trace.SpanKindClient {
		t.Errorf("upstream span kind %v, want client", got["upstream"].SpanKind)
	}
	want := map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
		"gen_ai.usage.input_tokens": "100", "gen_ai.usage.output_tokens": "50",
		"sluice.client": "ledger-app", "sluice.department": "finance", "sluice.decision_id": "dec_1",
		"sluice.request_id": "req_1", "http.response.status_code": "200", "http.request.method": "POST",
		"http.route": "/v1/chat/completions",
	}
	attrs := map[string]string{}
	for _, a := range root.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("request span %s = %q, want %q", k, attrs[k], v)
		}
	}
	if len(attrs) != len(want) {
		t.Errorf("request span attributes %v, want exactly %v", attrs, want)
	}
}

func TestCallersTraceIsContinuedAndPassedUpstream(t *testing.T) {
	p, exp := setup(t)
	sent := serve(p, header("00-"+callerTrace+"-"+callerSpan+"-01", "vendor=abc"))
	got := spans(t, p, exp)
	root := got["POST /v1/chat/completions"]
	if root.SpanContext.TraceID().String() != callerTrace || root.Parent.SpanID().String() != callerSpan || !root.Parent.IsRemote() {
		t.Fatalf("request span trace %s parent %s; want the caller's trace %s and span %s",
			root.SpanContext.TraceID(), root.Parent.SpanID(), callerTrace, callerSpan)
	}
	upstream := got["upstream"]
	want := "00-" + callerTrace + "-" + upstream.SpanContext.SpanID().String() + "-01"
	if sent["traceparent"] != want {
		t.Errorf("traceparent sent upstream %q, want %q (the caller's trace, the upstream span as parent)", sent["traceparent"], want)
	}
	if sent["tracestate"] != "vendor=abc" {
		t.Errorf("tracestate sent upstream %q, want the caller's", sent["tracestate"])
	}
}

func TestCallerThatDoesNotSampleIsFollowed(t *testing.T) {
	p, exp := setup(t)
	sent := serve(p, header("00-"+callerTrace+"-"+callerSpan+"-00", ""))
	if got := spans(t, p, exp); len(got) != 0 {
		t.Errorf("recorded %v for a caller that does not sample", keys(got))
	}
	// The trace still reaches the upstream, unsampled, so that it too
	// follows the caller's decision.
	if tp := sent["traceparent"]; !strings.HasPrefix(tp, "00-"+callerTrace+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("traceparent sent upstream %q, want the caller's trace, not sampled", tp)
	}
}

func TestFailuresMarkTheirSpans(t *testing.T) {
	p, exp := setup(t)
	r := p.Start(header("", ""), "POST", "/v1/chat/completions", "req_2")
	up := r.Stage(StageUpstream)
	up.Fail("upstream_timeout")
	up.End()
	r.End(Summary{Status: 504, Code: "upstream_timeout"})
	denied := p.Start(header("", ""), "POST", "/v1/embeddings", "req_3")
	denied.End(Summary{Status: 400, Code: "pii_detected"})
	got := spans(t, p, exp)
	for _, c := range []struct {
		span string
		code codes.Code
	}{
		{"upstream", codes.Error},
		{"POST /v1/chat/completions", codes.Error},
		{"POST /v1/embeddings", codes.Unset}, // a 4xx is the caller's, not the server's
	} {
		if s := got[c.span].Status.Code; s != c.code {
			t.Errorf("%s status %v, want %v", c.span, s, c.code)
		}
	}
	if v := attr(got["POST /v1/embeddings"], "error.type"); v != "pii_detected" {
		t.Errorf("denied request error.type %q, want pii_detected", v)
	}
}

func TestNoKeyOrHeaderReachesASpan(t *testing.T) {
	p, exp := setup(t)
	serve(p, header("", ""))
	for _, s := range spans(t, p, exp) {
		for _, a := range s.Attributes {
			if v := a.Value.Emit(); strings.Contains(v, "sk-sluice") || strings.Contains(v, "Bearer") {
				t.Errorf("span %s attribute %s = %q carries the key", s.Name, a.Key, v)
			}
		}
	}
}

func TestTracingOffDoesNothing(t *testing.T) {
	for name, p := range map[string]*Provider{"no endpoint": mustSetup(t, Options{}), "nil": nil} {
		if p.Enabled() {
			t.Errorf("%s: enabled", name)
		}
		called := false
		r := p.Start(header("00-"+callerTrace+"-"+callerSpan+"-01", ""), "POST", "/v1/chat/completions", "req_1")
		up := r.Stage(StageUpstream)
		up.Inject(func(string, string) { called = true })
		up.Fail("upstream_error")
		up.End()
		r.Plugin("pii").End()
		r.End(Summary{Status: 200})
		if called || r.TraceID() != "" || r.Context() == nil {
			t.Errorf("%s: injected %v, trace id %q", name, called, r.TraceID())
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
	}
}

func mustSetup(t *testing.T, o Options) *Provider {
	t.Helper()
	p, err := Setup(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSetupRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{OTLPEndpoint: "otel-collector:4318"}, // no scheme
		{OTLPEndpoint: "grpc://otel-collector:4317"},
		{OTLPEndpoint: "http://"},
		{OTLPEndpoint: "http://otel-collector:4318", SampleRatio: 1.5},
		{OTLPEndpoint: "http://otel-collector:4318", SampleRatio: -0.1},
	} {
		if _, err := Setup(context.Background(), o); err == nil {
			t.Errorf("Setup(%+v) accepted", o)
		}
	}
}

// TestExportsOverOTLP sends a trace to a stand-in collector over the real
// OTLP/HTTP exporter.
func TestExportsOverOTLP(t *testing.T) {
	var posts atomic.Int32
	var path, contentType atomic.Value
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 {
			posts.Add(1)
		}
		path.Store(r.URL.Path)
		contentType.Store(r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	p := mustSetup(t, Options{OTLPEndpoint: collector.URL, ServiceName: "sluice-test"})
	serve(p, header("", ""))
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 || path.Load() != "/v1/traces" || contentType.Load() != "application/x-protobuf" {
		t.Errorf("collector got %d posts, last to %v as %v; want spans posted to /v1/traces as protobuf",
			posts.Load(), path.Load(), contentType.Load())
	}
}

func keys(m map[string]tracetest.SpanStub) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}
