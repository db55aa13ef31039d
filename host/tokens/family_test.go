package tokens

import "testing"

// A model's family follows its provider, and on Bedrock its vendor: the
// estimate of a Claude model errs high, whichever cloud serves it.
func TestFamilyOf(t *testing.T) {
	for _, tt := range []struct {
		upstreamType, model string
		want                Family
	}{
		{"openai", "gpt-4o-mini", O200k},
		{"azure_openai", "gpt4o-prod", O200k},
		{"mock", "anything", O200k},
		{"anthropic", "claude-sonnet-4-5", Claude},
		{"bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", Claude},
		{"bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", Claude},
		{"bedrock", "amazon.nova-pro-v1:0", Approximate},
		{"bedrock", "meta.llama3-1-70b-instruct-v1:0", Approximate},
		{"gemini", "gemini-2.5-flash", Approximate},
	} {
		if got := FamilyOf(tt.upstreamType, tt.model); got != tt.want {
			t.Errorf("FamilyOf(%s, %s) = %s, want %s", tt.upstreamType, tt.model, got, tt.want)
		}
	}
}

// The estimate never undercounts o200k, rounds up, and leaves OpenAI's
// counts exact.
func TestFamilyEstimate(t *testing.T) {
	n := Chat([]string{"You are terse.", "What is a sluice gate for?"}, 2)
	for _, tt := range []struct {
		f    Family
		n    int64
		want int64
	}{
		{O200k, n, n},
		{Claude, 10, 13},
		{Claude, 11, 15},
		{Approximate, 10, 11},
		{Approximate, 1, 2},
		{Claude, 0, 0},
		{"unknown", 7, 7},
	} {
		if got := tt.f.Estimate(tt.n); got != tt.want {
			t.Errorf("%s.Estimate(%d) = %d, want %d", tt.f, tt.n, got, tt.want)
		}
	}
}
