package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/sluicehq/sluice/host/limits"
)

// The limiter's aims with Redis: one round trip per reservation and per
// commit, and none for a client flooding a spent budget.
const (
	MaxRoundTripsPerCall = 1.0
	MaxFloodRoundTrips   = 0.01
)

// LimitSettings say what MeasureLimits measures, and for how long.
type LimitSettings struct {
	// RedisURL is the Redis server for the shared counters, as
	// redis.ParseURL reads it. Empty: the Redis figures are skipped, and
	// LimitReport.RedisSkipped says why.
	RedisURL string
	// Rounds is how many times each figure is measured; figures are medians.
	Rounds int
	// Duration is how long one round of one figure runs. Default 300 ms.
	Duration time.Duration
	// Progress, if set, is called with a line per figure.
	Progress func(format string, args ...any)
}

// LimitReport is what MeasureLimits measured: the limiter's cost per request,
// a reservation against a client and its department and its commit.
type LimitReport struct {
	Memory LimitFigure `json:"memory"`
	// Redis, Flood and Ping are nil when no Redis server was given.
	Redis *LimitFigure `json:"redis,omitempty"`
	// Flood is one reservation against a spent daily budget, answered from
	// the limiter's cache of exhausted scopes.
	Flood *LimitFigure `json:"flood,omitempty"`
	// Ping is a bare PING on the same client and connection pool: the
	// round trip the Redis figures are compared with.
	Ping *LimitFigure `json:"ping,omitempty"`
	// RedisSkipped says why there are no Redis figures.
	RedisSkipped string `json:"redis_skipped,omitempty"`
}

// LimitFigure is one operation's cost, medians of rounds.
type LimitFigure struct {
	What        string        `json:"what"`
	PerOp       time.Duration `json:"per_op_ns"`
	AllocsPerOp float64       `json:"allocs_per_op"`
	// Reserve and Commit are each call's share of PerOp.
	Reserve time.Duration `json:"reserve_ns,omitempty"`
	Commit  time.Duration `json:"commit_ns,omitempty"`
	// ReserveRoundTrips and CommitRoundTrips are the Redis commands each
	// call sent, per call, counted by a hook on the client.
	ReserveRoundTrips float64 `json:"reserve_round_trips"`
	CommitRoundTrips  float64 `json:"commit_round_trips"`
	// PingRatio is PerOp over a bare PING's, measured in the same rounds:
	// what the operation costs in round trips' worth of time.
	PingRatio float64 `json:"ping_ratio,omitempty"`
	// AimMet is nil for a figure without an aim (memory, the PING).
	AimMet *bool `json:"aim_met,omitempty"`
}

// MeasureLimits measures the limiter in this process: the Memory backend,
// and with s.RedisURL the Redis backend against that server under a key
// prefix of its own, removed at the end.
func MeasureLimits(ctx context.Context, s LimitSettings) (*LimitReport, error) {
	if s.Rounds < 1 {
		s.Rounds = 1
	}
	if s.Duration <= 0 {
		s.Duration = 300 * time.Millisecond
	}
	if s.Progress == nil {
		s.Progress = func(string, ...any) {}
	}
	mem := limits.NewMemory()
	defer mem.Close()
	ops := []*limitOp{newReserveCommit(ctx, mem, nil)}

	r := &LimitReport{}
	var rb *redisBench
	if s.RedisURL == "" {
		r.RedisSkipped = "no Redis server given (SLUICE_TEST_REDIS or -redis)"
	} else {
		var err error
		if rb, err = newRedisBench(ctx, s.RedisURL); err != nil {
			return nil, err
		}
		defer rb.close()
		ops = append(ops, rb.ping(ctx), newReserveCommit(ctx, rb.limiter, &rb.trips))
		flood, err := rb.flood(ctx)
		if err != nil {
			return nil, err
		}
		ops = append(ops, flood)
	}

	s.Progress("measuring the limiter: %d rounds of %s per figure", s.Rounds, s.Duration)
	figs, err := measureOps(ctx, s, ops)
	if err != nil {
		return nil, err
	}
	r.Memory = figs[0]
	r.Memory.What = "Memory: reserve and commit, client and department"
	s.Progress("limits, memory: %s and %.1f allocs per request", r.Memory.PerOp, r.Memory.AllocsPerOp)
	if rb == nil {
		return r, nil
	}
	ping, rc, flood := figs[1], figs[2], figs[3]
	ping.Reserve, flood.Commit = 0, 0 // a single call each: PerOp says it
	ping.What = "bare PING on the same client: one round trip"
	ping.PingRatio = 1
	rc.What = "Redis: reserve and commit, client and department"
	rc.AimMet = aim(rc.ReserveRoundTrips <= MaxRoundTripsPerCall && rc.CommitRoundTrips <= MaxRoundTripsPerCall)
	flood.What = "Redis: reserve against a spent budget (denied)"
	flood.AimMet = aim(flood.ReserveRoundTrips <= MaxFloodRoundTrips)
	if ping.PerOp > 0 {
		rc.PingRatio = float64(rc.PerOp) / float64(ping.PerOp)
		flood.PingRatio = float64(flood.PerOp) / float64(ping.PerOp)
	}
	r.Ping, r.Redis, r.Flood = &ping, &rc, &flood
	s.Progress("limits, redis: %s per request (%.2f× a PING of %s), round trips %.2f + %.2f; flood %s, %.4f round trips",
		rc.PerOp, rc.PingRatio, ping.PerOp, rc.ReserveRoundTrips, rc.CommitRoundTrips, flood.PerOp, flood.ReserveRoundTrips)
	return r, nil
}

func aim(met bool) *bool { return &met }

// limitOp is one operation measured by measureOps. run does one operation
// and adds its time and round trips to the op's counters.
type limitOp struct {
	run func() error
	// Accumulated by run since the last reset.
	reserve, commit           time.Duration
	reserveTrips, commitTrips int64
}

func (o *limitOp) reset() { *o = limitOp{run: o.run} }

// newReserveCommit reserves an estimate against a client and its department
// with limits far above the load, so that every reservation is admitted,
// then commits a smaller use, as the request path does. trips, if set,
// counts the Redis commands sent.
func newReserveCommit(ctx context.Context, b limits.Backend, trips *atomic.Int64) *limitOp {
	scopes := []limits.Scope{
		{Name: "client", Key: "client:bench", Limits: limits.Limits{RPM: 1 << 40, TPM: 1 << 50, DailyTokens: 1 << 60, MonthlyTokens: 1 << 60}},
		{Name: "department", Key: "dept:bench", Limits: limits.Limits{DailyTokens: 1 << 60, MonthlyNanos: 1 << 60}},
	}
	estimate, used := limits.Cost{Tokens: 1064, Nanos: 200}, limits.Cost{Tokens: 1010, Nanos: 190}
	o := &limitOp{}
	count := func() int64 {
		if trips == nil {
			return 0
		}
		return trips.Load()
	}
	o.run = func() error {
		t0, n0 := time.Now(), count()
		res, out, err := b.Reserve(ctx, scopes, estimate)
		t1, n1 := time.Now(), count()
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		if out.Denial != nil {
			return fmt.Errorf("reserve denied: %s", out.Denial.Kind)
		}
		b.Commit(res, used)
		t2, n2 := time.Now(), count()
		o.reserve += t1.Sub(t0)
		o.commit += t2.Sub(t1)
		o.reserveTrips += n1 - n0
		o.commitTrips += n2 - n1
		return nil
	}
	return o
}

// slicesPerRound is how many turns each op gets in a round: the ops take
// turns in short slices, so that a neighbour's burst on the shared machine
// falls on all of them alike rather than on whichever ran at the time.
const slicesPerRound = 10

// measureOps runs the ops in turn, a slice of the round's duration each,
// for every round, and returns the median figures of each.
func measureOps(ctx context.Context, s LimitSettings, ops []*limitOp) ([]LimitFigure, error) {
	type sample struct {
		perOp, reserve, commit      []time.Duration
		allocs, rtReserve, rtCommit []float64
	}
	samples := make([]sample, len(ops))
	slice := s.Duration / slicesPerRound
	var ms runtime.MemStats
	for range s.Rounds {
		for _, o := range ops {
			for range 64 { // warm: connections, caches, buffers
				if err := o.run(); err != nil {
					return nil, fmt.Errorf("limits benchmark: %w", err)
				}
			}
			o.reset()
		}
		elapsed, mallocs, calls := make([]time.Duration, len(ops)), make([]uint64, len(ops)), make([]uint64, len(ops))
		runtime.GC()
		for range slicesPerRound {
			for i, o := range ops {
				runtime.ReadMemStats(&ms)
				before := ms.Mallocs
				start := time.Now()
				for time.Since(start) < slice {
					for range 16 {
						if err := o.run(); err != nil {
							return nil, fmt.Errorf("limits benchmark: %w", err)
						}
					}
					calls[i] += 16
				}
				elapsed[i] += time.Since(start)
				runtime.ReadMemStats(&ms)
				mallocs[i] += ms.Mallocs - before
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for i, o := range ops {
			n := calls[i]
			sm := &samples[i]
			sm.perOp = append(sm.perOp, elapsed[i]/time.Duration(n))
			sm.reserve = append(sm.reserve, o.reserve/time.Duration(n))
			sm.commit = append(sm.commit, o.commit/time.Duration(n))
			sm.allocs = append(sm.allocs, float64(mallocs[i])/float64(n))
			sm.rtReserve = append(sm.rtReserve, float64(o.reserveTrips)/float64(n))
			sm.rtCommit = append(sm.rtCommit, float64(o.commitTrips)/float64(n))
		}
	}
	out := make([]LimitFigure, len(ops))
	for i, sm := range samples {
		out[i] = LimitFigure{PerOp: Median(sm.perOp), AllocsPerOp: Median(sm.allocs),
			Reserve: Median(sm.reserve), Commit: Median(sm.commit),
			ReserveRoundTrips: Median(sm.rtReserve), CommitRoundTrips: Median(sm.rtCommit)}
	}
	return out, nil
}

// redisBench is a Redis limiter on a client of its own, whose commands a
// hook counts, under a random key prefix.
type redisBench struct {
	client  *redis.Client
	limiter *limits.Redis
	prefix  string
	trips   atomic.Int64
}

func newRedisBench(ctx context.Context, url string) (*redisBench, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("limits benchmark: redis url: %w", err)
	}
	if o.Network != "unix" {
		if err := CheckLoopback(o.Addr); err != nil {
			return nil, fmt.Errorf("limits benchmark: redis: %w", err)
		}
	}
	// As limits.NewRedis sets up its own client, with a timeout generous
	// enough for a loaded machine: a slow round trip is a figure, not an
	// error.
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, time.Second, time.Second
	o.PoolTimeout = 10 * time.Second
	o.MaxRetries, o.DialerRetries = -1, 1
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rb := &redisBench{client: redis.NewClient(o), prefix: randomPrefix()}
	if err := rb.client.Ping(ctx).Err(); err != nil {
		rb.client.Close()
		return nil, fmt.Errorf("limits benchmark: redis at %s: %w", o.Addr, err)
	}
	rb.client.AddHook(countingHook{&rb.trips})
	if rb.limiter, err = limits.NewRedis(limits.RedisOptions{Client: rb.client, Prefix: rb.prefix}); err != nil {
		rb.client.Close()
		return nil, err
	}
	return rb, nil
}

func randomPrefix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "sluice-bench:" + hex.EncodeToString(b) + ":"
}

// close removes the benchmark's keys and closes the limiter and the client.
func (rb *redisBench) close() {
	rb.limiter.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := rb.client.Scan(ctx, 0, rb.prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		rb.client.Del(ctx, iter.Val())
	}
	rb.client.Close()
}

func (rb *redisBench) ping(ctx context.Context) *limitOp {
	o := &limitOp{}
	o.run = func() error {
		t0 := time.Now()
		if err := rb.client.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		o.reserve += time.Since(t0)
		o.reserveTrips++
		return nil
	}
	return o
}

// flood spends a client's daily budget of one token and returns the op of
// its next reservations, all denied.
func (rb *redisBench) flood(ctx context.Context) (*limitOp, error) {
	scopes := []limits.Scope{{Name: "client", Key: "client:flood", Limits: limits.Limits{RPM: 1 << 40, DailyTokens: 1}}}
	cost := limits.Cost{Tokens: 1064}
	res, _, err := rb.limiter.Reserve(ctx, scopes, limits.Cost{Tokens: 1})
	if err != nil {
		return nil, fmt.Errorf("limits benchmark: spending the flood budget: %w", err)
	}
	rb.limiter.Commit(res, limits.Cost{Tokens: 1})
	// The denial fills the exhausted cache, which takes the entry in
	// asynchronously: wait until a denial costs no round trip.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := rb.trips.Load()
		_, out, err := rb.limiter.Reserve(ctx, scopes, cost)
		if err != nil {
			return nil, fmt.Errorf("limits benchmark: flood: %w", err)
		}
		if out.Denial == nil {
			return nil, errors.New("limits benchmark: flood: a spent budget admitted a request")
		}
		if rb.trips.Load() == n {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("limits benchmark: flood: denials of a spent budget still reach Redis after 5s")
		}
		time.Sleep(time.Millisecond)
	}
	o := &limitOp{}
	o.run = func() error {
		t0, n0 := time.Now(), rb.trips.Load()
		_, out, err := rb.limiter.Reserve(ctx, scopes, cost)
		if err != nil {
			return fmt.Errorf("flood: %w", err)
		}
		if out.Denial == nil {
			return errors.New("flood: a spent budget admitted a request")
		}
		o.reserve += time.Since(t0)
		o.reserveTrips += rb.trips.Load() - n0
		return nil
	}
	return o, nil
}

// countingHook counts the commands and pipelines a client sends: each is one
// round trip.
type countingHook struct{ n *atomic.Int64 }

func (h countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}
