package limits

import (
	"fmt"
	"strconv"
	"time"
)

// Kind names the limit that denied a request.
type Kind string

// The kinds of limit. The first two are rate limits (429 rate_limit_exceeded,
// waiting helps); the others are budgets (429 insufficient_quota /
// budget_exceeded, waiting until the period ends).
const (
	KindRPM           Kind = "requests_per_minute"
	KindTPM           Kind = "tokens_per_minute"
	KindDailyTokens   Kind = "daily_tokens"
	KindMonthlyTokens Kind = "monthly_tokens"
	KindMonthlyMoney  Kind = "monthly_money"
)

// Denial says which limit of which scope refused a request, and when to retry.
type Denial struct {
	Kind  Kind
	Scope string // the scope's Name, such as "department"
	Key   string // the scope's Key, for logs
	// Limit, Used and Need are in the limit's unit: requests, tokens or
	// nano-dollars. Used includes the reservations of requests in flight.
	Limit, Used, Need int64
	RetryAfter        time.Duration
	resetAt           time.Time // when a budget resets
	tooLarge          bool      // the request alone exceeds the per-minute limit
}

// IsBudget reports whether the denial is a budget (insufficient_quota,
// budget_exceeded) rather than a rate limit (rate_limit_exceeded): waiting
// seconds does not help.
func (d *Denial) IsBudget() bool { return d.Kind != KindRPM && d.Kind != KindTPM }

// Error is the message for the caller: the numbers, the scope, and when it
// resets.
func (d *Denial) Error() string {
	who := d.Scope
	if who == "" {
		who = "scope"
	}
	switch d.Kind {
	case KindRPM:
		return fmt.Sprintf("Rate limit reached for the %s: %d requests per minute. Retry after %s.",
			who, d.Limit, wait(d.RetryAfter))
	case KindTPM:
		if d.tooLarge {
			return fmt.Sprintf("This request needs up to %d tokens, more than the %s's limit of %d tokens per minute; lower max_tokens or shorten the prompt.",
				d.Need, who, d.Limit)
		}
		return fmt.Sprintf("Rate limit reached for the %s: %d tokens per minute, %d in use, this request needs up to %d. Retry after %s.",
			who, d.Limit, d.Used, d.Need, wait(d.RetryAfter))
	case KindDailyTokens:
		return fmt.Sprintf("The %s's daily budget of %d tokens is exhausted: %d used, this request needs up to %d. It resets at 00:00 UTC, in %s.",
			who, d.Limit, d.Used, d.Need, wait(d.RetryAfter))
	case KindMonthlyTokens:
		return fmt.Sprintf("The %s's monthly budget of %d tokens is exhausted: %d used, this request needs up to %d. It resets on %s at 00:00 UTC.",
			who, d.Limit, d.Used, d.Need, d.resetAt.Format(time.DateOnly))
	default:
		return fmt.Sprintf("The %s's monthly budget of %s is exhausted: %s spent, this request may cost up to %s. It resets on %s at 00:00 UTC.",
			who, dollars(d.Limit), dollars(d.Used), dollars(d.Need), d.resetAt.Format(time.DateOnly))
	}
}

// RetryAfterSeconds is the retry-after header value: whole seconds, rounded
// up, at least 1.
func (d *Denial) RetryAfterSeconds() string {
	return strconv.FormatInt(d.retryAfterSeconds(), 10)
}

func (d *Denial) retryAfterSeconds() int64 {
	return max(int64((d.RetryAfter+time.Second-1)/time.Second), 1)
}

// wait formats a delay for a message, rounded up to the second.
func wait(d time.Duration) string {
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second)).String()
}

// dollars formats nano-dollars as cents, or finer when under a cent.
func dollars(nanos int64) string {
	if nanos != 0 && nanos < 10_000_000 {
		return "$" + strconv.FormatFloat(float64(nanos)/1e9, 'f', -1, 64)
	}
	return "$" + strconv.FormatFloat(float64(nanos)/1e9, 'f', 2, 64)
}
