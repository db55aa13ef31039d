package policy

import (
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// BenchmarkEngineParts measures what the engine adds around OPA's
// evaluation on every decision: building the input document of a first pass
// and reading a decision object.
func BenchmarkEngineParts(b *testing.B) {
	e := &Engine{clock: newClock(time.UTC)}
	in := Input{
		Client: Client{ID: "billing-bot", Department: "finance", Tier: "standard", Labels: map[string]string{"env": "prod"}},
		Request: Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", MaxTokens: 256, PromptTokens: 42, MessageCount: 2,
			API: "chat", UpstreamType: "openai", UpstreamTypes: []string{"openai"}},
		Time: time.Unix(1796000000, 0),
	}
	b.Run("input", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.input(&in)
		}
	})
	v := ast.MustParseTerm(`{"allowed": true, "http_status": 200, "code": "", "type": "", "message": "", "headers": {},
	"limits": {"rpm": 60, "tpm": 0, "daily_tokens": 1000000, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 50000, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 500.25},
	"redact": [], "plugins": ["content_filter", "pii"], "response_plugins": [], "restore": false}`).Value
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeDecision(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
