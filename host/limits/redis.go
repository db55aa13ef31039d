package limits

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// FailMode is what a Redis limiter does while Redis cannot be reached.
type FailMode string

// The fail modes.
const (
	// FailDeny refuses requests with ErrUnavailable (503 limits_unavailable):
	// no budget can be overspent, at the price of availability.
	FailDeny FailMode = "deny"
	// FailLocal checks requests against an in-process limiter with the same
	// limits. Each replica then enforces them alone, from zero, so together
	// they may admit up to one limit's worth each until Redis returns.
	FailLocal FailMode = "local"
)

// RedisOptions configure a Redis limiter. The zero value of each field is its
// default.
type RedisOptions struct {
	// URL is the Redis server, as redis.ParseURL reads it:
	// "redis://host:6379/0". Ignored when Client is set.
	URL string
	// Client is used instead of dialing URL, for example to share a client or
	// add hooks; its timeouts and retries are then the caller's to choose.
	// Notes: a client that retries commands may run a reservation twice when
	// a reply is lost; the client NewRedis builds does not retry.
	Client redis.UniversalClient
	// Prefix starts every key the limiter writes. Default "sluice:limits:".
	Prefix string
	// FailMode applies while Redis is unreachable. Default FailDeny.
	FailMode FailMode
	// Timeout bounds the dial and each read and write, since every call sits
	// on the request path. Default 100ms. The wait for a free connection of
	// the pool is bounded by ten times as much, at least a second.
	Timeout time.Duration
	// CacheTTL is the longest a scope known to be exhausted is denied from
	// the local cache without asking Redis. Another replica's refund (a
	// request that used less than it reserved) may reopen a scope early, and
	// this replica learns of it only when the entry lapses. Default 1s.
	CacheTTL time.Duration
	// MaxPending bounds the commits kept while Redis is unreachable,
	// aggregated per set of scopes and period; past it new ones are dropped
	// and counted. Default 100000.
	MaxPending int
	// RetryEvery is how often an unreachable Redis is tried again: one request
	// (and the background replay) tries, the others go straight to the fail
	// mode. Default 500ms.
	RetryEvery time.Duration
	// Log receives the warnings of outages, at most one per LogEvery
	// (default 10s) with the count of those suppressed. Default: discarded.
	Log      *slog.Logger
	LogEvery time.Duration
	// BackgroundCommit runs commits on a goroutine of the limiter's instead
	// of the caller's, so that a request's path holds one round trip (the
	// reserve) rather than two. Until a commit lands, its scopes carry the
	// reservation's estimate: budgets are held a little longer, never
	// overspent. Close runs the commits still queued.
	BackgroundCommit bool
	// Seed rebuilds every scope's counters from the ledger, by scope key.
	// With it, the limiter keeps an epoch marker in Redis and, when the
	// marker is gone (Redis restarted without persistence, or failed over to
	// an empty replica: its counters are gone with it), admits nothing by
	// the counters until it has written the ledger's back. Without it, an
	// empty Redis starts every budget from zero.
	//
	// Notes: what the ledger does not hold yet (the last ledger flush
	// interval, about 200 ms, and the requests in flight) is not re-seeded.
	Seed func(ctx context.Context) (map[string]Usage, error)
	// Lease, when set, records every reservation in Redis until its commit,
	// for that long at most: a reservation whose commit has not come when
	// its lease expires (its replica was killed) is refunded by a sweep that
	// every replica runs, instead of holding the budget until the period
	// ends. It must outlast the longest request, streams included. Default
	// 0: no leases.
	Lease time.Duration
}

// commitQueue is the depth of BackgroundCommit's queue; a caller that finds
// it full commits on its own goroutine instead of waiting.
const commitQueue = 4096

type commitJob struct {
	res  Reservation
	used Cost
}

// RedisStats are a Redis limiter's counters, for metrics. Each is cumulative
// except Pending and Down.
type RedisStats struct {
	Errors           uint64 // Redis calls that failed
	FailModeReserves uint64 // reservations answered by the fail mode
	CacheDenials     uint64 // reservations denied from the exhausted cache, with no round trip
	CommitsDeferred  uint64 // commits kept for later: Redis was unreachable, or made locally
	CommitsReplayed  uint64 // deferred commits applied to Redis since
	CommitsDropped   uint64 // deferred commits discarded because MaxPending was reached
	Reseeds          uint64 // times this process re-seeded an emptied Redis from the ledger
	LeasesExpired    uint64 // reservations this process's sweeps refunded: their commit never came
	Pending          int    // aggregated commits waiting for Redis
	Down             bool   // Redis was unreachable at the last attempt
}

var (
	//go:embed scripts/common.lua
	luaCommon string
	//go:embed scripts/reserve.lua
	luaReserve string
	//go:embed scripts/commit.lua
	luaCommit string
	//go:embed scripts/peek.lua
	luaPeek string
	//go:embed scripts/seed.lua
	luaSeed string
	//go:embed scripts/sweep.lua
	luaSweep string

	reserveScript = redis.NewScript(luaCommon + luaReserve)
	commitScript  = redis.NewScript(luaCommon + luaCommit)
	peekScript    = redis.NewScript(luaCommon + luaPeek)
	seedScript    = redis.NewScript(luaCommon + luaSeed)
	sweepScript   = redis.NewScript(luaCommon + luaSweep)
)

// keyTTL outlives the longest period a key counts (a month) plus a day, and is
// refreshed on every write, so that keys of scopes no longer used vanish.
const keyTTL = 32 * 24 * 3600

// Redis is the Backend shared by gateway replicas: the counters live in Redis
// and every reservation and commit is one atomic script call.
type Redis struct {
	client    redis.UniversalClient
	ownClient bool
	prefix    string
	failMode  FailMode
	cacheTTL  time.Duration
	retry     time.Duration
	window    int64 // ms; a minute, shorter in tests
	log       *slog.Logger
	logGate   gate

	cache *ristretto.Cache[string, exhausted]
	local *Memory // the fallback, in FailLocal mode

	// downUntil is 0 while Redis answers; after a failure, the UnixNano
	// before which no request tries Redis again.
	downUntil atomic.Int64
	// streak counts the calls that failed in a row.
	streak   atomic.Int32
	keyCache sync.Map // scope key → prefixed Redis key

	pendingMu  sync.Mutex
	pending    map[pendingKey]*pendingCommit
	inFlight   int // entries taken by flush, not yet applied
	maxPending int
	wake       chan struct{}
	stop       chan struct{}
	stopped    chan struct{}
	closeOnce  sync.Once

	// commits feeds the BackgroundCommit goroutine; nil without it.
	// commitMu orders sends on commits against its close.
	commits   chan commitJob
	commitMu  sync.RWMutex
	committer sync.WaitGroup
	closing   bool

	errors, failModeReserves, cacheDenials           atomic.Uint64
	commitsDeferred, commitsReplayed, commitsDropped atomic.Uint64

	// seed, epoch and seedMu re-seed an emptied Redis from the ledger; epoch
	// is "" without a Seed. reseeds counts the seeds this process wrote.
	seed    func(ctx context.Context) (map[string]Usage, error)
	epoch   string
	seedMu  sync.Mutex
	reseeds atomic.Uint64
	// epochSeen is the epoch of the last reservation Redis answered.
	epochSeen atomic.Int64

	// leases is the key of the leases (sorted by expiry; their data in
	// leases+":data"), "" without; leaseIDs numbers this process's.
	leases        string
	lease         time.Duration
	leasePrefix   string
	leaseIDs      atomic.Uint64
	leasesExpired atomic.Uint64
}

var _ Backend = (*Redis)(nil)

// exhausted is what the cache knows of a scope: a limit no request can fit
// until a moment by this process's clock.
type exhausted struct {
	kind    Kind
	limit   int64
	used    int64
	until   time.Time
	resetAt time.Time
}

// pendingKey groups deferred commits that one script call can apply at once:
// the same scopes, charged in the same day and month.
type pendingKey struct {
	keys       [MaxScopes]string
	n          uint8
	day, month int64
	epoch      int64
}

type pendingCommit struct {
	reserved, used Cost
	count          uint64
}

// NewRedis returns a Redis limiter. It does not wait for Redis: an
// unreachable server at start is an outage like any other.
func NewRedis(opts RedisOptions) (*Redis, error) {
	r := &Redis{
		client:     opts.Client,
		prefix:     opts.Prefix,
		failMode:   opts.FailMode,
		cacheTTL:   opts.CacheTTL,
		retry:      opts.RetryEvery,
		window:     minute,
		log:        opts.Log,
		maxPending: opts.MaxPending,
		pending:    map[pendingKey]*pendingCommit{},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
		seed:       opts.Seed,
	}
	if r.prefix == "" {
		r.prefix = "sluice:limits:"
	}
	if r.seed != nil {
		r.epoch = r.prefix + "epoch"
	}
	if opts.Lease > 0 {
		r.leases, r.lease = r.prefix+"leases", opts.Lease
		b := make([]byte, 6)
		rand.Read(b)
		r.leasePrefix = hex.EncodeToString(b) + ":"
	}
	switch r.failMode {
	case "":
		r.failMode = FailDeny
	case FailDeny:
	case FailLocal:
		r.local = NewMemory()
	default:
		return nil, fmt.Errorf("limits: fail mode %q: expected %q or %q", r.failMode, FailDeny, FailLocal)
	}
	if r.cacheTTL <= 0 {
		r.cacheTTL = time.Second
	}
	if r.retry <= 0 {
		r.retry = 500 * time.Millisecond
	}
	if r.maxPending <= 0 {
		r.maxPending = 100_000
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.logGate.every = opts.LogEvery
	if r.logGate.every <= 0 {
		r.logGate.every = 10 * time.Second
	}
	if r.client == nil {
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("limits: redis url: %w", err)
		}
		timeout := opts.Timeout
		if timeout <= 0 {
			timeout = 100 * time.Millisecond
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = timeout, timeout, timeout
		// Waiting for a pooled connection means this gateway is busy, not
		// that Redis is gone: it may wait longer than a round trip.
		o.PoolTimeout = max(10*timeout, time.Second)
		// A retried reservation whose reply was lost would be charged twice,
		// and every retry or redial costs the request path another timeout.
		o.MaxRetries, o.DialerRetries = -1, 1
		// No MinIdleConns: during an outage the pool would redial in the
		// background without pause. Idle connections stay for 30 minutes.
		o.DisableIdentity = true
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		r.client, r.ownClient = redis.NewClient(o), true
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, exhausted]{
		NumCounters: 100_000,
		MaxCost:     10_000, // entries
		BufferItems: 64,
		// Costs are entries; without this almost nothing fits.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("limits: exhausted cache: %w", err)
	}
	r.cache = cache
	if opts.BackgroundCommit {
		r.commits = make(chan commitJob, commitQueue)
		r.committer.Add(1)
		go func() {
			defer r.committer.Done()
			for job := range r.commits {
				r.commit(job.res, job.used)
			}
		}()
	}
	// Loading the scripts now saves the first requests an EVALSHA that fails
	// with NOSCRIPT; if Redis is down, Run falls back to EVAL later.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	for _, s := range []*redis.Script{reserveScript, commitScript, peekScript, seedScript, sweepScript} {
		s.Load(ctx, r.client)
	}
	cancel()
	go r.replay()
	return r, nil
}

func (r *Redis) key(scopeKey string) string {
	if k, ok := r.keyCache.Load(scopeKey); ok {
		return k.(string)
	}
	k := r.prefix + scopeKey
	// Bounded by the number of scopes, like the counters themselves.
	r.keyCache.Store(scopeKey, k)
	return k
}

// Reserve implements Backend. It costs one script call, or none when a scope
// is known to be exhausted.
func (r *Redis) Reserve(ctx context.Context, scopes []Scope, cost Cost) (Reservation, Result, error) {
	if len(scopes) > MaxScopes {
		return Reservation{}, Result{}, fmt.Errorf("limits: %d scopes, at most %d", len(scopes), MaxScopes)
	}
	if len(scopes) == 0 {
		return Reservation{}, Result{}, nil
	}
	cost = cost.clamp()
	if res, ok := r.cached(scopes, cost); ok {
		r.cacheDenials.Add(1)
		return Reservation{}, res, nil
	}
	if !r.try() {
		return r.fallback(ctx, scopes, cost, errors.New("redis unreachable at the last attempt"))
	}
	var keys [MaxScopes]string
	args := make([]any, 4, 5+5*len(scopes))
	args[0], args[1], args[2], args[3] = r.window, keyTTL, cost.Tokens, cost.Nanos
	for i := range scopes {
		keys[i] = r.key(scopes[i].Key)
		l := &scopes[i].Limits
		args = append(args, l.RPM, l.TPM, l.DailyTokens, l.MonthlyTokens, l.MonthlyNanos)
	}
	args = append(args, r.epoch)
	var lease string
	if r.leases != "" {
		lease = r.leasePrefix + strconv.FormatUint(r.leaseIDs.Add(1), 36)
		args = append(args, r.leases, lease, r.lease.Milliseconds())
	} else {
		args = append(args, "", "", 0)
	}
	vals, err := reserveScript.Run(ctx, r.client, keys[:len(scopes)], args...).Int64Slice()
	if err == nil && unseeded(vals) {
		if err = r.reseed(ctx); err == nil {
			vals, err = reserveScript.Run(ctx, r.client, keys[:len(scopes)], args...).Int64Slice()
		}
		if err == nil && unseeded(vals) {
			err = errors.New("redis lost its counters again while they were re-seeded")
		}
	}
	if err == nil && len(vals) != 4+8*len(scopes) {
		err = fmt.Errorf("reserve script returned %d values", len(vals))
	}
	if err != nil {
		r.failed(ctx, err)
		return r.fallback(ctx, scopes, cost, err)
	}
	r.succeeded()
	p := periodAt(time.Unix(vals[1], vals[2]*1000), r.window)
	var snaps [MaxScopes]counters
	var masks [MaxScopes]uint8
	for i := range scopes {
		v := vals[3+8*i:]
		masks[i] = uint8(v[0])
		snaps[i] = counters{win: p.win, reqPrev: v[1], reqCur: v[2], tokPrev: v[3], tokCur: v[4],
			day: p.day, dayTokens: v[5], month: p.month, monthTokens: v[6], monthNanos: v[7]}
	}
	n := len(scopes)
	res := result(scopes, snaps[:n], masks[:n], cost, &p)
	epoch := vals[len(vals)-1]
	r.epochSeen.Store(epoch)
	if vals[0] != 1 {
		r.remember(scopes, snaps[:n], masks[:n], &p)
		return Reservation{}, res, nil
	}
	reservation := newReservation(scopes, cost, &p)
	reservation.epoch, reservation.lease = epoch, lease
	return reservation, res, nil
}

// fallback answers a reservation by the fail mode.
func (r *Redis) fallback(ctx context.Context, scopes []Scope, cost Cost, cause error) (Reservation, Result, error) {
	r.failModeReserves.Add(1)
	if r.local == nil {
		return Reservation{}, Result{}, fmt.Errorf("%w: %v", ErrUnavailable, cause)
	}
	res, out, err := r.local.Reserve(ctx, scopes, cost)
	res.local = res.n > 0
	// Made while Redis was away: in the epoch it was last seen in, so that
	// its use is not replayed into counters re-seeded from the ledger.
	res.epoch = r.epochSeen.Load()
	return res, out, err
}

// Commit implements Backend. It costs one script call; while Redis is
// unreachable the commit is kept and replayed later (see the package doc).
func (r *Redis) Commit(res Reservation, used Cost) {
	if res.n == 0 {
		return
	}
	if r.commits != nil {
		r.commitMu.RLock()
		queued := false
		if !r.closing {
			select {
			case r.commits <- commitJob{res, used}:
				queued = true
			default: // the queue is full: commit here rather than wait
			}
		}
		r.commitMu.RUnlock()
		if queued {
			return
		}
	}
	r.commit(res, used)
}

// commit reconciles a reservation in Redis now.
func (r *Redis) commit(res Reservation, used Cost) {
	used = used.clamp()
	if res.local {
		r.local.Commit(res, used)
		// Redis never saw the estimate: only the use is owed to it.
		res.cost = Cost{}
		r.deferCommit(&res, used)
		return
	}
	if used.Tokens < res.cost.Tokens || used.Nanos < res.cost.Nanos {
		// Room came back: a cached denial of these scopes may be stale.
		for _, k := range res.keys[:res.n] {
			r.cache.Del(k)
		}
	}
	if !r.try() {
		r.deferCommit(&res, used)
		return
	}
	if err := r.runCommit(context.Background(), &res, used, true); err != nil {
		r.failed(context.Background(), err)
		r.deferCommit(&res, used)
		return
	}
	r.succeeded()
}

func (r *Redis) runCommit(ctx context.Context, res *Reservation, used Cost, windows bool) error {
	var keys [MaxScopes]string
	for i, k := range res.keys[:res.n] {
		keys[i] = r.key(k)
	}
	w := 0
	if windows {
		w = 1
	}
	return commitScript.Run(ctx, r.client, keys[:res.n], r.window, keyTTL,
		res.cost.Tokens, res.cost.Nanos, used.Tokens, used.Nanos, res.win, res.day, res.month, w, r.epoch, res.epoch,
		r.leases, res.lease).Err()
}

// Peek implements Backend, in one script call.
func (r *Redis) Peek(ctx context.Context, keys ...string) ([]Usage, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if !r.try() {
		return r.peekFallback(ctx, keys, errors.New("redis unreachable at the last attempt"))
	}
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = r.key(k)
	}
	vals, err := peekScript.Run(ctx, r.client, rkeys, r.window, r.epoch).Int64Slice()
	if err == nil && unseeded(vals) {
		if err = r.reseed(ctx); err == nil {
			vals, err = peekScript.Run(ctx, r.client, rkeys, r.window, r.epoch).Int64Slice()
		}
		if err == nil && unseeded(vals) {
			err = errors.New("redis lost its counters again while they were re-seeded")
		}
	}
	if err == nil && len(vals) != 2+7*len(keys) {
		err = fmt.Errorf("peek script returned %d values", len(vals))
	}
	if err != nil {
		r.failed(ctx, err)
		return r.peekFallback(ctx, keys, err)
	}
	r.succeeded()
	p := periodAt(time.Unix(vals[0], vals[1]*1000), r.window)
	out := make([]Usage, len(keys))
	for i := range keys {
		v := vals[2+7*i:]
		c := counters{win: p.win, reqPrev: v[0], reqCur: v[1], tokPrev: v[2], tokCur: v[3],
			day: p.day, dayTokens: v[4], month: p.month, monthTokens: v[5], monthNanos: v[6]}
		out[i] = c.usage(&p)
	}
	return out, nil
}

func (r *Redis) peekFallback(ctx context.Context, keys []string, cause error) ([]Usage, error) {
	if r.local == nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, cause)
	}
	return r.local.Peek(ctx, keys...)
}

// Stats returns the limiter's counters.
func (r *Redis) Stats() RedisStats {
	r.pendingMu.Lock()
	pending := len(r.pending) + r.inFlight
	r.pendingMu.Unlock()
	return RedisStats{
		Errors:           r.errors.Load(),
		FailModeReserves: r.failModeReserves.Load(),
		CacheDenials:     r.cacheDenials.Load(),
		LeasesExpired:    r.leasesExpired.Load(),
		Reseeds:          r.reseeds.Load(),
		CommitsDeferred:  r.commitsDeferred.Load(),
		CommitsReplayed:  r.commitsReplayed.Load(),
		CommitsDropped:   r.commitsDropped.Load(),
		Pending:          pending,
		Down:             r.downUntil.Load() != 0,
	}
}

// Close stops the replay of deferred commits after one last attempt (at most
// a second), logs what could not be applied, and closes the client if the
// limiter made it.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		if r.commits != nil {
			// Commits still queued land before the replay loop stops, so
			// that one Redis cannot reach goes to the pending set it flushes.
			r.commitMu.Lock()
			r.closing = true
			close(r.commits)
			r.commitMu.Unlock()
			r.committer.Wait()
		}
		close(r.stop)
		<-r.stopped
		r.cache.Close()
		if r.ownClient {
			err = r.client.Close()
		}
	})
	return err
}

// try reports whether to call Redis now: always while it answers; after a
// failure, once per RetryEvery, for a single caller, so that an outage costs
// the request path at most one timeout per interval.
func (r *Redis) try() bool {
	d := r.downUntil.Load()
	if d == 0 {
		return true
	}
	now := time.Now().UnixNano()
	return now >= d && r.downUntil.CompareAndSwap(d, now+int64(r.retry))
}

// failed records a failed call. A caller's own cancellation and a full pool
// say nothing of Redis; a reply from Redis (a script error) means it is
// reachable. Only the other failures open the circuit.
func (r *Redis) failed(ctx context.Context, err error) {
	r.errors.Add(1)
	var rerr redis.Error
	if ctx.Err() != nil || errors.Is(err, redis.ErrPoolTimeout) || errors.As(err, &rerr) {
		r.warn("redis call failed", err)
		return
	}
	// One timed-out call on a busy machine is not an outage: the circuit
	// opens (and every request takes the fail mode for RetryEvery) only
	// after tripAfter failures in a row.
	if r.streak.Add(1) < tripAfter && r.downUntil.Load() == 0 {
		r.warn("redis call failed", err)
		return
	}
	r.downUntil.Store(time.Now().Add(r.retry).UnixNano())
	r.warn("redis unreachable; limits follow the fail mode", err)
}

// tripAfter is how many Redis calls in a row must fail before Redis counts
// as unreachable.
const tripAfter = 3

func (r *Redis) succeeded() {
	r.streak.Store(0)
	if r.downUntil.Load() != 0 && r.downUntil.Swap(0) != 0 {
		r.log.Info("redis reachable again; limits counted in redis", "pending_commits", r.Stats().Pending)
		r.kick()
	}
}

func (r *Redis) warn(msg string, err error) {
	if suppressed, ok := r.logGate.allow(); ok {
		r.log.Warn(msg, "error", err, "fail_mode", string(r.failMode), "suppressed", suppressed)
	}
}

// gate lets one log line through per interval and counts the others.
type gate struct {
	every      time.Duration
	next       atomic.Int64
	suppressed atomic.Int64
}

func (g *gate) allow() (suppressed int64, ok bool) {
	now := time.Now().UnixNano()
	next := g.next.Load()
	if now < next || !g.next.CompareAndSwap(next, now+int64(g.every)) {
		g.suppressed.Add(1)
		return 0, false
	}
	return g.suppressed.Swap(0), true
}

// cached answers a reservation from the exhausted cache when one of its scopes
// can fit no request at all, with the same or a lower limit than when it was
// seen exhausted.
func (r *Redis) cached(scopes []Scope, cost Cost) (Result, bool) {
	for i := range scopes {
		s := &scopes[i]
		e, ok := r.cache.Get(s.Key)
		if !ok {
			continue
		}
		now := time.Now()
		limit := limitOf(&s.Limits, e.kind)
		if limit <= 0 || limit > e.limit || !now.Before(e.until) {
			continue
		}
		d := &Denial{Kind: e.kind, Scope: s.Name, Key: s.Key, Limit: limit, Used: e.used,
			Need: max(cost.Tokens, 1), RetryAfter: e.until.Sub(now), resetAt: e.resetAt}
		switch e.kind {
		case KindRPM:
			d.Need = 1
		case KindMonthlyMoney:
			d.Need = cost.Nanos
		}
		if !e.resetAt.IsZero() {
			// A budget is closed until its period ends, however briefly
			// the cache holds it.
			d.RetryAfter = e.resetAt.Sub(now)
		}
		st := Status{Scope: s.Name}
		*st.window(e.kind) = Window{Limit: limit, Remaining: 0, Reset: d.RetryAfter}
		res := Result{Denial: d, n: 1}
		res.scopes[0] = st
		return res, true
	}
	return Result{}, false
}

// remember caches the scopes of a denial that no request can fit, until they
// reopen or CacheTTL, whichever comes first.
func (r *Redis) remember(scopes []Scope, snaps []counters, masks []uint8, p *period) {
	for i := range scopes {
		if masks[i] == 0 {
			continue
		}
		var best *Denial
		for b, kind := range kinds {
			if masks[i]&(1<<b) == 0 {
				continue
			}
			// Exhausted for the smallest request, not just for this one.
			d := candidate(&scopes[i], &snaps[i], kind, Cost{Tokens: 1, Nanos: 1}, p)
			if !over(d.Used, 1, d.Limit) || d.tooLarge {
				continue
			}
			if best == nil || d.RetryAfter > best.RetryAfter {
				best = d
			}
		}
		if best == nil || best.RetryAfter <= 0 {
			continue
		}
		ttl := min(best.RetryAfter, r.cacheTTL)
		r.cache.SetWithTTL(scopes[i].Key, exhausted{kind: best.Kind, limit: best.Limit, used: best.Used,
			until: time.Now().Add(ttl), resetAt: best.resetAt}, 1, ttl)
	}
}

func limitOf(l *Limits, k Kind) int64 {
	switch k {
	case KindRPM:
		return l.RPM
	case KindTPM:
		return l.TPM
	case KindDailyTokens:
		return l.DailyTokens
	case KindMonthlyTokens:
		return l.MonthlyTokens
	default:
		return l.MonthlyNanos
	}
}

// deferCommit keeps a commit for the replay loop, added to those of the same
// scopes and periods. Only budgets are replayed: by the time Redis is back the
// minute windows the commit belonged to have moved on.
func (r *Redis) deferCommit(res *Reservation, used Cost) {
	if res.lease != "" {
		// The estimate is in Redis under a lease this commit cannot
		// release while it waits: the sweep refunds it when the lease
		// expires, so only the use is owed.
		res.cost, res.lease = Cost{}, ""
	}
	k := pendingKey{keys: res.keys, n: res.n, day: res.day, month: res.month, epoch: res.epoch}
	r.pendingMu.Lock()
	e, ok := r.pending[k]
	if !ok {
		if len(r.pending) >= r.maxPending {
			r.pendingMu.Unlock()
			r.commitsDropped.Add(1)
			r.warn("deferred commits are full; a commit was dropped", errors.New("max pending reached"))
			return
		}
		e = &pendingCommit{}
		r.pending[k] = e
	}
	e.reserved.Tokens += res.cost.Tokens
	e.reserved.Nanos += res.cost.Nanos
	e.used.Tokens += used.Tokens
	e.used.Nanos += used.Nanos
	e.count++
	r.pendingMu.Unlock()
	r.commitsDeferred.Add(1)
	r.kick()
}

func (r *Redis) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// replay applies deferred commits whenever Redis answers, checking every
// RetryEvery while some are waiting.
func (r *Redis) replay() {
	defer close(r.stopped)
	t := time.NewTicker(r.retry)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r.flush(ctx)
			cancel()
			if n := r.Stats().Pending; n > 0 {
				r.log.Error("limits: commits not applied to redis at close", "pending", n)
			}
			return
		case <-r.wake:
		case <-t.C:
			r.sweep(context.Background())
		}
		r.flush(context.Background())
	}
}

// flush applies what is pending until a call fails; what is left waits.
func (r *Redis) flush(ctx context.Context) {
	r.pendingMu.Lock()
	if len(r.pending) == 0 {
		r.pendingMu.Unlock()
		return
	}
	batch := r.pending
	r.pending = map[pendingKey]*pendingCommit{}
	r.inFlight = len(batch)
	r.pendingMu.Unlock()

	for k, e := range batch {
		res := Reservation{keys: k.keys, n: k.n, cost: e.reserved, day: k.day, month: k.month, epoch: k.epoch}
		if err := r.runCommit(ctx, &res, e.used, false); err != nil {
			r.failed(ctx, err)
			r.putBack(batch)
			return
		}
		r.commitsReplayed.Add(e.count)
		delete(batch, k)
		r.pendingMu.Lock()
		r.inFlight--
		r.pendingMu.Unlock()
	}
	r.succeeded()
}

// putBack returns what flush could not apply, merged with what came meanwhile.
func (r *Redis) putBack(batch map[pendingKey]*pendingCommit) {
	r.pendingMu.Lock()
	defer r.pendingMu.Unlock()
	r.inFlight = 0
	for k, e := range batch {
		cur, ok := r.pending[k]
		if !ok {
			r.pending[k] = e
			continue
		}
		cur.reserved.Tokens += e.reserved.Tokens
		cur.reserved.Nanos += e.reserved.Nanos
		cur.used.Tokens += e.used.Tokens
		cur.used.Nanos += e.used.Nanos
		cur.count += e.count
	}
}
