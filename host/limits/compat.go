package limits

import "context"

// Limiter is the first release's API: one scope per request, RPM and daily
// tokens, in process. It is a thin layer over Memory that keeps the gateway
// building until it calls a Backend directly.
//
// Deprecated: use NewMemory or NewRedis, and Backend's methods.
type Limiter struct{ m *Memory }

// New returns an empty in-process Limiter.
//
// Deprecated: use NewMemory.
func New() *Limiter { return &Limiter{m: NewMemory()} }

// Reserve checks one scope. The Result's Headers writes the x-ratelimit-*
// headers, and retry-after when denied.
//
// Deprecated: use Backend.Reserve.
func (l *Limiter) Reserve(key string, lim Limits, tokens int64) (Reservation, Result, *Denial) {
	res, out, _ := l.m.Reserve(context.Background(), []Scope{{Key: key, Limits: lim}}, Cost{Tokens: tokens})
	return res, out, out.Denial
}

// Commit reconciles a reservation with the tokens really used.
//
// Deprecated: use Backend.Commit.
func (l *Limiter) Commit(r Reservation, used int64) { l.m.Commit(r, Cost{Tokens: used}) }

// Seed restores a scope's requests of the last minute and tokens of today.
//
// Deprecated: use Memory.Seed.
func (l *Limiter) Seed(key string, requestsLastMinute, tokensToday int64) {
	l.m.Seed(key, Usage{MinuteRequests: requestsLastMinute, DayTokens: tokensToday})
}
