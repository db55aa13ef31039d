// Package limits enforces rate limits and budgets exactly: requests and tokens
// per minute, tokens per day and per month, and money per month, for every
// scope a request belongs to (its client, its department), on one machine
// (Memory) or shared by replicas through Redis (Redis).
//
// # Reserve, then commit
//
// Before a request is forwarded, Reserve checks its estimate (prompt tokens
// plus max_tokens, and their price) against every limit of every scope and,
// only if it fits all of them, charges the estimate to all of them in the same
// atomic step. After the reply, Commit replaces the estimate with what was
// really used: a refund when the reply was short, the excess when it was
// longer, nothing kept when the request failed (commit Cost{}). Because the
// check and the charge are one step, 200 concurrent requests against a budget
// with room for 50 admit exactly 50, and after reconciliation the admitted use
// exceeds a budget by at most what one request used beyond its estimate.
//
// A commit applies the difference to the day and month the estimate was
// charged to while they are current; once they have ended, the whole use counts
// in the current ones, where the ledger records it too.
//
// # Algorithms
//
// Requests and tokens per minute use a sliding window counter: each scope
// keeps the counts of the current and the previous fixed minute, and the use
// of "the last minute" is the previous count weighted by how much of it the
// sliding minute still overlaps, rounded up, plus the current count. A burst
// at the end of one minute therefore still weighs fully at the start of the
// next: there is no double burst at a window edge, unlike fixed windows. The
// state is five integers per scope, and it does not depend on the limit, so a
// policy may change limits between requests and Peek can report the use of an
// unlimited scope. The estimate assumes the previous minute's use was spread
// evenly; in the worst case a sliding minute can see up to about twice the
// limit spread over it, as with GCRA or a token bucket whose burst is the
// limit, but never a burst of twice the limit.
//
// Daily budgets reset at 00:00 UTC and monthly ones on the first of the month,
// 00:00 UTC. Every request needs room for at least one unit, so a closed budget
// denies even a request whose estimate is zero.
//
// When a request breaks several limits, the denial names the one with the
// longest wait, since retrying sooner would fail on it anyway. Denial.IsBudget
// tells a budget (429 insufficient_quota / budget_exceeded) from a rate limit
// (429 rate_limit_exceeded). Result.Headers writes OpenAI's x-ratelimit-*
// headers for the per-minute limits (RPM, TPM) of the tightest scope,
// x-sluice-budget-* headers for the budgets, per-scope variants of both, and
// retry-after.
//
// # Memory
//
// Memory keeps each scope's counters in process behind a mutex; a reservation
// locks its scopes in key order, so requests sharing a department cannot
// deadlock. It is exact. A restart loses the counters, so the server seeds
// them from the ledger at start (Seed): the last minute's use is counted as if
// it had just happened, which errs toward the limit.
//
// # Redis
//
// Redis keeps each scope's counters in one hash (prefix + scope key). Every
// Reserve, Commit and Peek is one Lua script call (EVALSHA, falling back to
// EVAL after Redis has lost its script cache), so each is atomic across all
// scopes and all replicas, and reads Redis's own clock (TIME), so replicas
// agree on windows, days and months whatever their clocks say. Every write
// refreshes a 32-day expiry, so scopes that stop being used vanish. The client
// NewRedis builds times out dials, reads and writes at 100ms and never retries
// a command: a retried reservation whose reply was lost would be charged
// twice. Redis Cluster is not supported: a reservation's scopes are in one
// script call and would need one hash slot.
//
// A scope that no request can fit (RPM reached, a budget spent) is remembered
// in a ristretto cache until it reopens or for CacheTTL (1s), whichever is
// sooner, so a client flooding a closed budget costs no round trips. The cache
// is never a copy of a count: an entry only says "deny", it applies only while
// the scope's limit is no higher than when it was seen, and a local refund
// drops it. Another replica's refund reaches this one when the entry lapses.
//
// # When Redis is unreachable
//
// Three failed calls in a row open a circuit (one slow call on a busy machine
// is not an outage): for RetryEvery (500ms) requests do not try
// Redis, then a single request tries again. Meanwhile the fail mode applies:
// FailDeny refuses requests with ErrUnavailable (503 limits_unavailable), and
// FailLocal checks them against an in-process Memory limiter with the same
// limits, which each replica enforces alone, from zero. Outages are logged at
// most once per LogEvery and counted in Stats. When a call succeeds again,
// counting resumes in Redis.
//
// Commits are not lost in an outage: a commit that cannot reach Redis, and
// every commit of a request reserved locally, is kept in memory, summed per
// set of scopes and per day and month (so an outage costs one entry per active
// client, not one per request), and replayed when Redis answers. A replay
// changes budgets only: the minute windows it belonged to have moved on. At
// most MaxPending entries are kept; beyond that commits are dropped and
// counted. A commit whose reply was lost after Redis ran it (a timeout) is
// replayed too and counts twice: the error is toward the limit.
//
// # What a crash loses
//
// With Memory, everything since the start is rebuilt from the ledger, except
// the reservations of requests that were in flight and the exact timing of
// the last minute. With Redis, a replica that dies loses nothing already
// counted: its in-flight reservations stay charged at their estimate until
// their lease (RedisOptions.Lease) expires, when any replica's sweep refunds
// them (without leases, until the period ends); its deferred commits, if
// Redis was down at the time, are lost with it. A commit that comes after
// its lease was swept charges its use alone.
//
// # When Redis loses its counters
//
// A Redis restarted without persistence, or a failover to an empty replica,
// forgets every count. With RedisOptions.Seed, the first seed leaves an epoch
// marker; a reservation or a peek that finds it gone admits nothing by the
// counters until this replica (or another, first) has written the ledger's
// counts back and set a new epoch. Commits that cross the re-seed follow the
// epoch their reservation was made in: a live one charges its use alone (its
// estimate went with the old counters), a replay of one kept through an
// outage is dropped (the ledger the counters were rebuilt from holds it).
// What the ledger does not hold yet when it is read, the last flush interval
// (about 200 ms) and the requests then in flight, is not counted again: the
// error is toward the client, by at most that. Redis persistence (AOF with
// appendfsync everysec) avoids the re-seed; the ledger remains the record for
// billing either way.
package limits
