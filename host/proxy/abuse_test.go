package proxy

import (
	"strings"
	"testing"
)

func TestHeaderValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"},
		{"team=search,owner=ann.lee@example.com", "team=search,owner=[EMAIL]"},
		{"ssn 123-45-6789", "ssn [US_SSN]"},
		{"key AKIAIOSFODNN7EXAMPLE", "key [AWS_ACCESS_KEY]"},
		{"sk-sluice-abcdefghijklmnopqrstuvwxyz012345 x", "[OPENAI_KEY] x"},
		{"session Zm9vYmFyYmF6cXV4cXV1eHh4eHh4eA; v=2", "session [REDACTED]; v=2"},
		{"nul\x00byte", "nul?byte"},
		{strings.Repeat("a b ", 100), strings.Repeat("a b ", 64)},
	} {
		if got := headerValue([]byte(tc.in)); got != tc.want {
			t.Errorf("headerValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
