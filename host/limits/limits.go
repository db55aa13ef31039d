package limits

import (
	"context"
	"errors"
	"time"
)

// MaxScopes is the most scopes one request may be checked against. A fixed
// bound lets a reservation and its result live in arrays, so the request path
// allocates nothing for them.
const MaxScopes = 4

// Limits are the limits of one scope; 0 means unlimited.
type Limits struct {
	RPM           int64 // requests per minute (sliding window)
	TPM           int64 // tokens per minute (sliding window)
	DailyTokens   int64 // tokens per UTC day
	MonthlyTokens int64 // tokens per UTC calendar month
	MonthlyNanos  int64 // money per UTC calendar month, in nano-dollars
}

// Scope is one level a request must fit, such as its client or its department.
type Scope struct {
	// Name is what the scope is, for headers and messages: "client",
	// "department". It becomes part of header names, so it should be a short
	// lower-case token.
	Name string
	// Key identifies the counters, unique across scopes: "client:alice",
	// "dept:research".
	Key    string
	Limits Limits
}

// Cost is what a request uses, or is expected to use.
type Cost struct {
	Tokens int64
	Nanos  int64 // money, in nano-dollars
}

func (c Cost) clamp() Cost { return Cost{Tokens: max(c.Tokens, 0), Nanos: max(c.Nanos, 0)} }

// Usage is what a scope has used, for the policy's input.usage.
type Usage struct {
	// MinuteRequests and MinuteTokens are the sliding-window estimates of the
	// last minute, the same figures RPM and TPM are checked against.
	MinuteRequests int64
	MinuteTokens   int64
	DayTokens      int64 // since 00:00 UTC
	MonthTokens    int64 // since the first of the month, 00:00 UTC
	MonthNanos     int64 // money since the first of the month, in nano-dollars
}

// Backend reserves and reconciles requests against the limits of their
// scopes, wherever the counters live: Memory (in process) or Redis (shared by
// replicas). Implementations are safe for concurrent use.
type Backend interface {
	// Reserve admits a request expected to cost cost if it fits every limit of
	// every scope, and charges the estimate to all of them at once; otherwise
	// it charges nothing and the Result's Denial says why. The error is
	// non-nil only when the limits could not be checked (ErrUnavailable) or
	// the call is invalid; the request must then not be forwarded.
	Reserve(ctx context.Context, scopes []Scope, cost Cost) (Reservation, Result, error)
	// Commit replaces a reservation's estimate with what the request really
	// used; a request that failed commits Cost{}. A zero Reservation is
	// ignored. Commit never fails from the caller's point of view: a backend
	// that cannot apply it now keeps it and retries.
	Commit(r Reservation, used Cost)
	// Peek returns the usage of each scope key, in order.
	Peek(ctx context.Context, keys ...string) ([]Usage, error)
	// Close releases the limiter's resources, flushing what it can.
	Close() error
}

// ErrUnavailable is wrapped by errors from Reserve and Peek when the shared
// counters cannot be reached and the fail mode is FailDeny. Callers answer 503
// with the code CodeUnavailable.
var ErrUnavailable = errors.New("limits unavailable")

// CodeUnavailable is the error code for a request refused because the limits
// could not be checked.
const CodeUnavailable = "limits_unavailable"

// Reservation is what a request holds between Reserve and Commit. It is a
// value with no pointers into the limiter, so it can be copied freely; the zero
// value reserves nothing.
type Reservation struct {
	keys  [MaxScopes]string
	n     uint8
	local bool // made by a Redis limiter's in-process fallback
	cost  Cost
	// The periods the estimate was charged to, by the clock that charged it,
	// so Commit can tell whether they have ended in between.
	win, day, month int64
	// epoch is the Redis epoch the estimate was charged in (see
	// RedisOptions.Seed); 0 when there is none. lease names the
	// reservation's lease in Redis (see RedisOptions.Lease), "" without.
	epoch int64
	lease string
}

// Cost is the estimate the reservation charged.
func (r Reservation) Cost() Cost { return r.cost }

// Window is one limit's state, as the rate-limit headers report it.
type Window struct {
	Limit     int64 // 0: unlimited, and the rest is meaningless
	Remaining int64
	// Reset is, for a per-minute window, how long until it has room again: 0
	// while Remaining is above 0, and on a denial by this window the wait
	// until the refused request fits (the Retry-After). For a budget it is
	// the end of its day or month.
	Reset time.Duration
}

// Status is one scope's state after a reservation attempt.
type Status struct {
	Scope    string // the scope's Name
	Requests Window // the RPM limit
	Tokens   Window // the TPM limit
	// The budgets: tokens per UTC day and month, and money per month in
	// nano-dollars.
	DayTokens, MonthTokens, MonthMoney Window
}

// Result is the outcome of a reservation attempt: the state of each scope, and
// the denial if the request was refused.
type Result struct {
	Denial *Denial
	scopes [MaxScopes]Status
	n      uint8
}

// Scopes returns the state of each scope, in the order they were given. A
// denial answered from the Redis limiter's exhausted cache knows only the
// exhausted scope.
func (r *Result) Scopes() []Status { return r.scopes[:r.n] }
