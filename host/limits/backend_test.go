package limits

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The scenarios here hold for every backend: they run against Memory and,
// when the test Redis is configured, against Redis.

func client(l Limits) Scope { return Scope{Name: "client", Key: "client:alice", Limits: l} }
func dept(l Limits) Scope   { return Scope{Name: "department", Key: "dept:research", Limits: l} }

func forEachBackend(t *testing.T, run func(t *testing.T, b Backend)) {
	t.Run("memory", func(t *testing.T) { run(t, NewMemory()) })
	t.Run("redis", func(t *testing.T) { run(t, newTestRedis(t, RedisOptions{})) })
}

func reserve(t *testing.T, b Backend, cost Cost, scopes ...Scope) (Reservation, Result) {
	t.Helper()
	res, out, err := b.Reserve(context.Background(), scopes, cost)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return res, out
}

func mustAdmit(t *testing.T, b Backend, cost Cost, scopes ...Scope) (Reservation, Result) {
	t.Helper()
	res, out := reserve(t, b, cost, scopes...)
	if out.Denial != nil {
		t.Fatalf("denied: %v", out.Denial)
	}
	return res, out
}

func mustDeny(t *testing.T, b Backend, cost Cost, kind Kind, scope string, scopes ...Scope) *Denial {
	t.Helper()
	res, out := reserve(t, b, cost, scopes...)
	d := out.Denial
	if d == nil {
		t.Fatalf("admitted, want a %s denial of the %s", kind, scope)
	}
	if d.Kind != kind || d.Scope != scope {
		t.Fatalf("denied by %s of the %s, want %s of the %s: %v", d.Kind, d.Scope, kind, scope, d)
	}
	if res != (Reservation{}) {
		t.Fatal("a denial returned a reservation")
	}
	return d
}

func peek(t *testing.T, b Backend, key string) Usage {
	t.Helper()
	u, err := b.Peek(context.Background(), key)
	if err != nil {
		t.Fatalf("peek: %v", err)
	}
	return u[0]
}

func TestBudgetReserveAndReconcile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		c := client(Limits{DailyTokens: 1000})
		r1, _ := mustAdmit(t, b, Cost{Tokens: 600}, c)
		d := mustDeny(t, b, Cost{Tokens: 600}, KindDailyTokens, "client", c)
		if !d.IsBudget() || d.Used != 600 || d.Need != 600 || d.Limit != 1000 {
			t.Fatalf("denial = %+v", d)
		}
		b.Commit(r1, Cost{Tokens: 100}) // a short reply: 500 tokens return
		_, out := mustAdmit(t, b, Cost{Tokens: 600}, c)
		if got := out.Scopes()[0].DayTokens.Remaining; got != 300 {
			t.Fatalf("remaining = %d, want 300", got)
		}
	})
}

func TestEveryScopeMustFitAndADenialChargesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		c, dp := client(Limits{DailyTokens: 10_000, RPM: 100}), dept(Limits{DailyTokens: 500})
		d := mustDeny(t, b, Cost{Tokens: 600}, KindDailyTokens, "department", c, dp)
		if !strings.Contains(d.Error(), "department") || !strings.Contains(d.Error(), "500") {
			t.Fatalf("message does not name the scope and its limit: %q", d.Error())
		}
		if u := peek(t, b, c.Key); u != (Usage{}) {
			t.Fatalf("the client was charged for a request its department refused: %+v", u)
		}
		mustAdmit(t, b, Cost{Tokens: 400}, c, dp)
		if u := peek(t, b, dp.Key); u.DayTokens != 400 || u.MinuteRequests != 1 || u.MonthTokens != 400 {
			t.Fatalf("department usage = %+v", u)
		}
	})
}

func TestCommitReplacesTheEstimate(t *testing.T) {
	cases := []struct {
		name       string
		used       Cost
		wantTokens int64
	}{
		{"excess over the estimate counts", Cost{Tokens: 400, Nanos: 40}, 400},
		{"a failed request commits nothing", Cost{}, 0},
		{"a short reply refunds", Cost{Tokens: 30, Nanos: 3}, 30},
	}
	forEachBackend(t, func(t *testing.T, b Backend) {
		for i, tc := range cases {
			c := client(Limits{DailyTokens: 1000, TPM: 1000, MonthlyNanos: 1000})
			c.Key += string(rune('a' + i))
			r, _ := mustAdmit(t, b, Cost{Tokens: 100, Nanos: 10}, c)
			b.Commit(r, tc.used)
			u := peek(t, b, c.Key)
			want := Usage{MinuteRequests: 1, MinuteTokens: tc.wantTokens, DayTokens: tc.wantTokens,
				MonthTokens: tc.wantTokens, MonthNanos: tc.used.Nanos}
			if u != want {
				t.Errorf("%s: usage = %+v, want %+v", tc.name, u, want)
			}
		}
	})
}

func TestDenialKinds(t *testing.T) {
	cases := []struct {
		name    string
		limits  Limits
		first   Cost // admitted
		second  Cost // denied
		kind    Kind
		budget  bool
		message string
	}{
		{"requests per minute", Limits{RPM: 1}, Cost{Tokens: 1}, Cost{Tokens: 1}, KindRPM, false, "1 requests per minute"},
		{"tokens per minute", Limits{TPM: 100}, Cost{Tokens: 60}, Cost{Tokens: 60}, KindTPM, false, "60 in use"},
		{"request larger than TPM", Limits{TPM: 100}, Cost{}, Cost{Tokens: 500}, KindTPM, false, "more than the client's limit of 100 tokens per minute"},
		{"monthly tokens", Limits{MonthlyTokens: 100}, Cost{Tokens: 60}, Cost{Tokens: 60}, KindMonthlyTokens, true, "monthly budget of 100 tokens"},
		{"monthly money", Limits{MonthlyNanos: 1_000_000_000}, Cost{Nanos: 600_000_000}, Cost{Nanos: 600_000_000}, KindMonthlyMoney, true, "$1.00 is exhausted: $0.60 spent"},
		{"budget wins over a rate limit", Limits{RPM: 1, DailyTokens: 10}, Cost{Tokens: 10}, Cost{Tokens: 1}, KindDailyTokens, true, "daily budget"},
	}
	forEachBackend(t, func(t *testing.T, b Backend) {
		for i, tc := range cases {
			c := client(tc.limits)
			c.Key += string(rune('a' + i))
			mustAdmit(t, b, tc.first, c)
			d := mustDeny(t, b, tc.second, tc.kind, "client", c)
			if d.IsBudget() != tc.budget {
				t.Errorf("%s: IsBudget = %v", tc.name, d.IsBudget())
			}
			if !strings.Contains(d.Error(), tc.message) {
				t.Errorf("%s: message %q lacks %q", tc.name, d.Error(), tc.message)
			}
			if d.RetryAfter <= 0 {
				t.Errorf("%s: retry after %v", tc.name, d.RetryAfter)
			}
			if !tc.budget && d.RetryAfter > 2*time.Minute {
				t.Errorf("%s: a rate limit says retry after %v", tc.name, d.RetryAfter)
			}
		}
	})
}

// TestConcurrentReservesAdmitExactly is the overspend LLM gateways are known
// for: 200 requests at once against a budget with room for 50.
func TestConcurrentReservesAdmitExactly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		c, dp := client(Limits{DailyTokens: 1_000_000}), dept(Limits{DailyTokens: 50 * 100, MonthlyNanos: 1 << 40})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 200 {
			wg.Go(func() {
				<-start
				res, out, err := b.Reserve(context.Background(), []Scope{c, dp}, Cost{Tokens: 100, Nanos: 5})
				if err != nil {
					t.Error(err)
					return
				}
				if out.Denial == nil {
					admitted.Add(1)
					b.Commit(res, Cost{Tokens: 100, Nanos: 5})
				}
			})
		}
		close(start)
		wg.Wait()
		if admitted.Load() != 50 {
			t.Fatalf("admitted %d of 200, want exactly 50", admitted.Load())
		}
		if u := peek(t, b, dp.Key); u.DayTokens != 5000 || u.MonthNanos != 250 {
			t.Fatalf("department usage = %+v, want 5000 tokens and 250 micros", u)
		}
	})
}
