package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/limits"
)

func TestHeaderValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"},
		{"team=search,owner=ann.lee@example.com", "team=search,owner=[EMAIL]"},
		{"ssn 123-45-6789", "ssn [US_SSN]"},
		{"key AKIA6AFQKVXPJEGZC7D3", "key [AWS_ACCESS_KEY]"},
		{"sk-sluice-Xq3vT9mPz2LwR7nK4bYc8HdJ6fGs1aE5 x", "[OPENAI_KEY] x"},
		{"session Zm9vYmFyYmF6cXV4cXV1eHh4eHh4eA; v=2", "session [REDACTED]; v=2"},
		{"nul\x00byte", "nul?byte"},
		{"caf\xc3\xa9 \xff", "caf\u00e9 ?"},
		{strings.Repeat("a b ", 100), strings.Repeat("a b ", 64)},
	} {
		if got := headerValue([]byte(tc.in)); got != tc.want {
			t.Errorf("headerValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnreportedUsage(t *testing.T) {
	res := testReservation(t, 100+1024)
	// The caller read the whole stream: what was generated.
	if u, src := unreportedUsage(100, "four words of text", res, false); src != "estimated" || u.CompletionTokens != 4 || u.TotalTokens != 104 {
		t.Errorf("read to the end: %+v %s", u, src)
	}
	// The caller left and the usage could not be read: the reservation.
	if u, src := unreportedUsage(100, "four words of text", res, true); src != "reserved" || u.CompletionTokens != 1024 {
		t.Errorf("left early: %+v %s", u, src)
	}
	// Never less than what was relayed.
	long := strings.Repeat("word ", 2000)
	if u, _ := unreportedUsage(100, long, res, true); u.CompletionTokens < 2000 {
		t.Errorf("left after more than the reservation: %+v", u)
	}
}

func testReservation(t *testing.T, tokens int64) limits.Reservation {
	t.Helper()
	m := limits.NewMemory()
	t.Cleanup(func() { m.Close() })
	res, _, err := m.Reserve(context.Background(), []limits.Scope{{Name: "client", Key: "client:t"}}, limits.Cost{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func BenchmarkHeaderValue(b *testing.B) {
	ua := []byte("OpenAI/Python 1.54.3 (linux; x86_64) httpx/0.27.2")
	b.ReportAllocs()
	for b.Loop() {
		headerValue(ua)
	}
}
