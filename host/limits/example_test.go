package limits_test

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/host/limits"
)

// The request path: reserve the estimate against the client and its
// department, answer a denial with its headers, and reconcile after the reply.
func Example() {
	var l limits.Backend = limits.NewMemory()
	scopes := []limits.Scope{
		{Name: "client", Key: "client:alice", Limits: limits.Limits{RPM: 60, DailyTokens: 100_000}},
		{Name: "department", Key: "dept:research", Limits: limits.Limits{DailyTokens: 1500}},
	}
	ctx := context.Background()

	res, out, err := l.Reserve(ctx, scopes, limits.Cost{Tokens: 1000, Nanos: 2000})
	if err != nil {
		panic(err) // ErrUnavailable: answer 503 limits_unavailable
	}
	fmt.Println("first admitted:", out.Denial == nil)
	l.Commit(res, limits.Cost{Tokens: 700, Nanos: 1400}) // the real usage

	_, out, _ = l.Reserve(ctx, scopes, limits.Cost{Tokens: 1000})
	if d := out.Denial; d != nil {
		fmt.Println("second denied by the", d.Scope, d.Kind, "budget:", d.IsBudget())
		out.Headers(func(k, v string) {
			if k == "x-sluice-budget-department-remaining-tokens-day" || k == "x-ratelimit-remaining-requests" || k == "x-should-retry" {
				fmt.Println(k, v)
			}
		})
	}
	// Output:
	// first admitted: true
	// second denied by the department daily_tokens budget: true
	// x-ratelimit-remaining-requests 59
	// x-sluice-budget-department-remaining-tokens-day 800
	// x-should-retry false
}
