package telemetry

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkRequest is tracing's cost on the request path: a request span,
// five stage spans, the upstream injection and the summary.
func BenchmarkRequest(b *testing.B) {
	on, err := Setup(context.Background(), Options{Exporter: tracetest.NewNoopExporter()})
	if err != nil {
		b.Fatal(err)
	}
	defer on.Shutdown(context.Background())
	for _, c := range []struct {
		name        string
		p           *Provider
		traceparent string
	}{
		{"off", mustSetupB(b, Options{}), ""},
		{"on-new-trace", on, ""},
		{"on-caller-sampled", on, "00-" + callerTrace + "-" + callerSpan + "-01"},
		{"on-caller-unsampled", on, "00-" + callerTrace + "-" + callerSpan + "-00"},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := header(c.traceparent, "")
			var upstream fasthttp.RequestHeader
			b.ReportAllocs()
			for b.Loop() {
				r := c.p.Start(h, "POST", "/v1/chat/completions", "req_1")
				r.Stage(StageAuth).End()
				r.Stage(StagePolicy).End()
				r.Plugin("pii").End()
				r.Stage(StageLimits).End()
				up := r.Stage(StageUpstream)
				up.Inject(upstream.Set)
				up.End()
				r.End(Summary{Client: "ledger-app", Department: "finance", Model: "gpt-4o", Operation: "chat",
					DecisionID: "dec_1", InputTokens: 100, OutputTokens: 50, Status: 200})
			}
		})
	}
}

func mustSetupB(b *testing.B, o Options) *Provider {
	p, err := Setup(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
