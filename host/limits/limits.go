// Package limits enforces requests-per-minute and daily token budgets exactly,
// in process: a request first reserves its estimated cost atomically, and is
// later reconciled with what it really used.
//
// The requests-per-minute limit is a sliding log (the time of every admitted
// request in the last minute), so there is no double burst at a window edge.
// Daily budgets reset at midnight UTC.
package limits

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Limits are the limits that apply to one request; 0 means unlimited.
type Limits struct {
	RPM         int64
	DailyTokens int64
}

// Kind names the limit that denied a request.
type Kind string

// The kinds of limit.
const (
	KindRPM         Kind = "requests_per_minute"
	KindDailyTokens Kind = "daily_tokens"
)

// Status is the state of a client's limits after a reservation attempt; it
// becomes OpenAI's x-ratelimit-* headers.
type Status struct {
	RequestsLimit, RequestsRemaining int64
	RequestsReset                    time.Duration
	TokensLimit, TokensRemaining     int64
	TokensReset                      time.Duration
}

// Denial says which limit a request hit and when to retry.
type Denial struct {
	Kind       Kind
	RetryAfter time.Duration
	Status     Status
}

func (d *Denial) Error() string {
	switch d.Kind {
	case KindRPM:
		return fmt.Sprintf("Rate limit reached: %d requests per minute. Retry after %s.", d.Status.RequestsLimit, roundUp(d.RetryAfter))
	default:
		return fmt.Sprintf("Daily token budget of %d tokens is exhausted (%d left, this request needs more). It resets at 00:00 UTC.",
			d.Status.TokensLimit, d.Status.TokensRemaining)
	}
}

// IsBudget reports whether the denial is a budget (insufficient_quota) rather
// than a rate limit: waiting seconds does not help.
func (d *Denial) IsBudget() bool { return d.Kind == KindDailyTokens }

// Reservation is what a request holds between Reserve and Commit.
type Reservation struct {
	key    string
	day    int64 // days since the epoch, UTC
	tokens int64
}

// Tokens is the number of tokens reserved.
func (r Reservation) Tokens() int64 { return r.tokens }

type account struct {
	mu        sync.Mutex
	requests  []time.Time // admitted in the last minute, oldest first
	day       int64
	dayTokens int64 // used and reserved today
}

// Limiter holds the counters of every client. It is safe for concurrent use.
type Limiter struct {
	accounts sync.Map // key → *account
	now      func() time.Time
}

// New returns an empty Limiter.
func New() *Limiter { return &Limiter{now: time.Now} }

func (l *Limiter) account(key string) *account {
	if a, ok := l.accounts.Load(key); ok {
		return a.(*account)
	}
	a, _ := l.accounts.LoadOrStore(key, &account{})
	return a.(*account)
}

func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

func untilMidnight(t time.Time) time.Duration {
	next := (dayOf(t) + 1) * 86400
	return time.Unix(next, 0).Sub(t)
}

// Reserve admits a request that will use about tokens, or returns the limit it
// hit. Both limits are checked before either is charged, so a denied request
// costs nothing.
func (l *Limiter) Reserve(key string, lim Limits, tokens int64) (Reservation, Status, *Denial) {
	// A negative estimate would push the count down and let other requests
	// through; callers bound their estimates, this keeps a bug from becoming
	// an overspend.
	tokens = max(tokens, 0)
	now := l.now()
	a := l.account(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollDay(now)
	a.expire(now)

	st := a.status(lim, now)
	if lim.RPM > 0 && int64(len(a.requests)) >= lim.RPM {
		retry := a.requests[int64(len(a.requests))-lim.RPM].Add(time.Minute).Sub(now)
		return Reservation{}, st, &Denial{Kind: KindRPM, RetryAfter: retry, Status: st}
	}
	if lim.DailyTokens > 0 && a.dayTokens+tokens > lim.DailyTokens {
		return Reservation{}, st, &Denial{Kind: KindDailyTokens, RetryAfter: untilMidnight(now), Status: st}
	}
	a.requests = append(a.requests, now)
	a.dayTokens += tokens
	return Reservation{key: key, day: a.day, tokens: tokens}, a.status(lim, now), nil
}

// Commit replaces a reservation with the tokens really used. A request that
// failed before using anything commits 0.
func (l *Limiter) Commit(r Reservation, used int64) {
	if r.key == "" {
		return
	}
	a := l.account(r.key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollDay(l.now())
	if a.day == r.day {
		a.dayTokens += used - r.tokens
	} else {
		// The reservation belonged to a day that has ended; the use counts
		// on the day it finished, as the ledger records it.
		a.dayTokens += used
	}
	if a.dayTokens < 0 {
		a.dayTokens = 0
	}
}

// Seed restores a client's counters from the ledger at start: requests admitted
// in the last minute and tokens used today, so that a restart resets nothing.
func (l *Limiter) Seed(key string, requestsLastMinute, tokensToday int64) {
	now := l.now()
	a := l.account(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollDay(now)
	a.dayTokens += tokensToday
	// Their exact times are not kept; counting them as just made errs toward the limit.
	for range requestsLastMinute {
		a.requests = append(a.requests, now)
	}
}

// Peek reports the status without reserving anything.
func (l *Limiter) Peek(key string, lim Limits) Status {
	now := l.now()
	a := l.account(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollDay(now)
	a.expire(now)
	return a.status(lim, now)
}

func (a *account) rollDay(now time.Time) {
	if d := dayOf(now); d != a.day {
		a.day, a.dayTokens = d, 0
	}
}

func (a *account) expire(now time.Time) {
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(a.requests) && !a.requests[i].After(cut) {
		i++
	}
	a.requests = a.requests[i:]
	// Reslicing leaks the front of the array until append reallocates; move
	// the live part down once the dead part dominates, so memory stays O(RPM).
	if i > 0 && cap(a.requests) > 2*len(a.requests)+16 {
		a.requests = append(make([]time.Time, 0, 2*len(a.requests)+16), a.requests...)
	}
}

func (a *account) status(lim Limits, now time.Time) Status {
	st := Status{RequestsLimit: lim.RPM, TokensLimit: lim.DailyTokens}
	if lim.RPM > 0 {
		st.RequestsRemaining = max(0, lim.RPM-int64(len(a.requests)))
		if len(a.requests) > 0 {
			st.RequestsReset = a.requests[0].Add(time.Minute).Sub(now)
		}
	}
	if lim.DailyTokens > 0 {
		st.TokensRemaining = max(0, lim.DailyTokens-a.dayTokens)
		st.TokensReset = untilMidnight(now)
	}
	return st
}

// Headers calls set with OpenAI's x-ratelimit-* headers for st. Limits that
// are unlimited are left out.
func (st Status) Headers(set func(name, value string)) {
	if st.RequestsLimit > 0 {
		set("x-ratelimit-limit-requests", strconv.FormatInt(st.RequestsLimit, 10))
		set("x-ratelimit-remaining-requests", strconv.FormatInt(st.RequestsRemaining, 10))
		set("x-ratelimit-reset-requests", roundUp(st.RequestsReset).String())
	}
	if st.TokensLimit > 0 {
		set("x-ratelimit-limit-tokens", strconv.FormatInt(st.TokensLimit, 10))
		set("x-ratelimit-remaining-tokens", strconv.FormatInt(st.TokensRemaining, 10))
		set("x-ratelimit-reset-tokens", roundUp(st.TokensReset).String())
	}
}

// RetryAfterSeconds is the retry-after header value: whole seconds, rounded up.
func (d *Denial) RetryAfterSeconds() string {
	s := int64((d.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

func roundUp(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}
