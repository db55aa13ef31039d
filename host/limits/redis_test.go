package limits

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/host/internal/testenv"
)

// newTestRedis returns a Redis limiter on the test Redis (or opts.URL) with a
// key prefix of its own, removed at the end.
func newTestRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	if opts.URL == "" {
		opts.URL = testenv.Redis(t)
	}
	if opts.Prefix == "" {
		opts.Prefix = randomPrefix()
	}
	r, err := NewRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		iter := r.client.Scan(ctx, 0, opts.Prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			r.client.Del(ctx, iter.Val())
		}
		r.Close()
	})
	return r
}

func randomPrefix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "sluice-test:" + hex.EncodeToString(b) + ":"
}

// roundTrips counts the commands a client sends.
type roundTrips struct{ n atomic.Int64 }

func countRoundTrips(r *Redis) *roundTrips {
	h := &roundTrips{}
	r.client.AddHook(h)
	return h
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

func TestRedisCalendarMatchesGo(t *testing.T) {
	r := newTestRedis(t, RedisOptions{})
	months := redis.NewScript(luaCommon + `
local out = {}
for i = 1, #ARGV do out[i] = month_of(tonumber(ARGV[i])) end
return out`)
	// Every day from 1970 to 2200.
	const days = 84_000
	const chunk = 1000 // a script blocks Redis: keep each call short
	for from := 0; from < days; from += chunk {
		args := make([]any, 0, chunk)
		for d := from; d < min(from+chunk, days); d++ {
			args = append(args, d)
		}
		got, err := months.Run(t.Context(), r.client, nil, args...).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range got {
			day := int64(from + i)
			if want := periodAt(time.Unix(day*86400, 0), minute).month; m != want {
				t.Fatalf("day %d (%s): Lua month %d, Go %d", day, time.Unix(day*86400, 0).UTC().Format(time.DateOnly), m, want)
			}
		}
	}
}

func TestRedisOneRoundTripPerCall(t *testing.T) {
	r := newTestRedis(t, RedisOptions{})
	rt := countRoundTrips(r)
	c, dp := client(Limits{RPM: 100, TPM: 10_000, DailyTokens: 10_000}), dept(Limits{MonthlyNanos: 1 << 30})
	res, _ := mustAdmit(t, r, Cost{Tokens: 100, Nanos: 10}, c, dp)
	if n := rt.n.Load(); n != 1 {
		t.Fatalf("reserve cost %d round trips, want 1", n)
	}
	r.Commit(res, Cost{Tokens: 50, Nanos: 5})
	if n := rt.n.Load(); n != 2 {
		t.Fatalf("commit cost %d round trips, want 1", n-1)
	}
	u, err := r.Peek(t.Context(), c.Key, dp.Key)
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 3 {
		t.Fatalf("peek of two scopes cost %d round trips, want 1", n-2)
	}
	if u[0].DayTokens != 50 || u[1].MonthNanos != 5 {
		t.Fatalf("usage after commit = %+v", u)
	}
	ttl, err := r.client.TTL(t.Context(), r.key(c.Key)).Result()
	if err != nil || ttl < 31*24*time.Hour || ttl > 32*24*time.Hour {
		t.Fatalf("key TTL = %v (%v), want about 32 days", ttl, err)
	}
}

func TestRedisExhaustedScopesCostNoRoundTrips(t *testing.T) {
	r := newTestRedis(t, RedisOptions{CacheTTL: time.Minute})
	rt := countRoundTrips(r)
	s := client(Limits{DailyTokens: 100})

	// Room for a smaller request: not cached.
	mustAdmit(t, r, Cost{Tokens: 60}, s)
	mustDeny(t, r, Cost{Tokens: 50}, KindDailyTokens, "client", s)
	r.cache.Wait()
	mustAdmit(t, r, Cost{Tokens: 40}, s)

	// Spent: a flood is denied locally.
	mustDeny(t, r, Cost{Tokens: 1}, KindDailyTokens, "client", s)
	r.cache.Wait()
	before := rt.n.Load()
	for range 100 {
		d := mustDeny(t, r, Cost{Tokens: 10}, KindDailyTokens, "client", s)
		if !strings.Contains(d.Error(), "daily budget of 100 tokens is exhausted: 100 used") {
			t.Fatalf("cached denial message: %q", d.Error())
		}
	}
	if n := rt.n.Load() - before; n != 0 {
		t.Fatalf("100 requests against a spent budget cost %d round trips, want 0", n)
	}
	if st := r.Stats(); st.CacheDenials != 100 {
		t.Fatalf("cache denials = %d, want 100", st.CacheDenials)
	}

	// A raised limit is not answered from the cache.
	s.Limits.DailyTokens = 1000
	mustAdmit(t, r, Cost{Tokens: 10}, s)
	if n := rt.n.Load() - before; n != 1 {
		t.Fatalf("a raised limit cost %d round trips, want 1", n)
	}
}

func TestRedisReplicasShareLimits(t *testing.T) {
	prefix := randomPrefix()
	replicas := []*Redis{newTestRedis(t, RedisOptions{Prefix: prefix}), newTestRedis(t, RedisOptions{Prefix: prefix})}

	t.Run("rpm", func(t *testing.T) {
		s := client(Limits{RPM: 20})
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := range 80 {
			wg.Go(func() {
				if _, out, err := replicas[i%2].Reserve(context.Background(), []Scope{s}, Cost{Tokens: 1}); err == nil && out.Denial == nil {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 20 {
			t.Fatalf("two replicas admitted %d with RPM 20, want 20", ok.Load())
		}
	})

	t.Run("department budget", func(t *testing.T) {
		dp := dept(Limits{DailyTokens: 1000})
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := range 80 {
			wg.Go(func() {
				// Alice's requests reach one replica, Bob's the other.
				c := Scope{Name: "client", Key: "client:" + strconv.Itoa(i%2), Limits: Limits{DailyTokens: 1 << 30}}
				res, out, err := replicas[i%2].Reserve(context.Background(), []Scope{c, dp}, Cost{Tokens: 100})
				if err == nil && out.Denial == nil {
					ok.Add(1)
					replicas[i%2].Commit(res, Cost{Tokens: 100})
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 {
			t.Fatalf("two replicas admitted %d requests of 100 tokens against a department budget of 1000, want 10", ok.Load())
		}
	})
}

// redisTime returns Redis's clock.
func redisTime(t *testing.T, r *Redis) time.Time {
	t.Helper()
	now, err := r.client.Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func TestRedisNoDoubleBurstAtTheWindowEdge(t *testing.T) {
	r := newTestRedis(t, RedisOptions{})
	r.window = 1000 // one-second windows, by Redis's clock
	s := client(Limits{RPM: 10})
	// Burst late in a window.
	into := time.Duration(redisTime(t, r).UnixMilli()%1000) * time.Millisecond
	time.Sleep((1700*time.Millisecond - into + time.Second) % time.Second)
	if n := admitted(t, r, 30, s); n != 10 {
		t.Fatalf("burst admitted %d, want 10", n)
	}
	// Just after the edge.
	into = time.Duration(redisTime(t, r).UnixMilli()%1000) * time.Millisecond
	time.Sleep(time.Second - into + 20*time.Millisecond)
	_, out := reserve(t, r, Cost{Tokens: 1}, s)
	if out.Denial == nil {
		t.Fatal("a second burst was admitted right after the window edge")
	}
	if out.Denial.RetryAfter <= 0 || out.Denial.RetryAfter > 100*time.Millisecond {
		t.Fatalf("retry after %v, want within the first tenth of the window", out.Denial.RetryAfter)
	}
	time.Sleep(out.Denial.RetryAfter)
	if n := admitted(t, r, 1, s); n != 1 {
		t.Fatal("denied after retry-after")
	}
}

// server is a redis-server of a test's own, which it can stop and restart.
type server struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startServer(t *testing.T) *server {
	testenv.Redis(t) // the same gate as the shared server
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed: ", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, port: l.Addr().(*net.TCPAddr).Port, dir: t.TempDir()}
	l.Close()
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) url() string { return "redis://127.0.0.1:" + strconv.Itoa(s.port) + "/0" }

func (s *server) start() {
	// Every write reaches the append-only file before the reply, so a kill
	// loses nothing and a restart finds the counters again.
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), 100*time.Millisecond); err == nil {
			c.Write([]byte("PING\r\n"))
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatal("redis-server did not start")
}

func (s *server) stop() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dayTokens(t *testing.T, r *Redis, key string) int64 {
	t.Helper()
	n, err := r.client.HGet(t.Context(), r.key(key), "dt").Int64()
	if err != nil {
		t.Fatalf("reading %s from redis: %v", key, err)
	}
	return n
}

func TestRedisOutageFailDeny(t *testing.T) {
	srv := startServer(t)
	r := newTestRedis(t, RedisOptions{URL: srv.url(), RetryEvery: 20 * time.Millisecond})
	s := client(Limits{DailyTokens: 10_000})
	res, _ := mustAdmit(t, r, Cost{Tokens: 1000}, s)

	srv.stop()
	begin := time.Now()
	for range 50 {
		_, _, err := r.Reserve(t.Context(), []Scope{s}, Cost{Tokens: 10})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("reserve while redis is down: %v, want ErrUnavailable", err)
		}
	}
	if took := time.Since(begin); took > time.Second {
		t.Fatalf("50 denied reservations took %v: the outage is on the request path", took)
	}
	r.Commit(res, Cost{Tokens: 400}) // the reply came back during the outage
	st := r.Stats()
	if !st.Down || st.FailModeReserves != 50 || st.CommitsDeferred != 1 || st.Pending != 1 || st.Errors == 0 {
		t.Fatalf("stats during the outage = %+v", st)
	}

	srv.start()
	var admittedAfter int64
	eventually(t, "reservations work again", func() bool {
		_, out, err := r.Reserve(t.Context(), []Scope{s}, Cost{Tokens: 10})
		if err == nil && out.Denial == nil {
			admittedAfter++
		}
		return err == nil
	})
	eventually(t, "the deferred commit is replayed", func() bool { return r.Stats().Pending == 0 })
	// 1000 reserved, reconciled to 400 during the outage, plus what came after.
	if got, want := dayTokens(t, r, s.Key), 400+10*admittedAfter; got != want {
		t.Fatalf("day tokens in redis = %d, want %d", got, want)
	}
	if st := r.Stats(); st.CommitsReplayed != 1 || st.Down {
		t.Fatalf("stats after recovery = %+v", st)
	}
}

func TestRedisOutageFailLocal(t *testing.T) {
	srv := startServer(t)
	r := newTestRedis(t, RedisOptions{URL: srv.url(), FailMode: FailLocal, RetryEvery: 20 * time.Millisecond})
	s := client(Limits{DailyTokens: 10_000})
	res, _ := mustAdmit(t, r, Cost{Tokens: 100}, s)
	r.Commit(res, Cost{Tokens: 100})

	srv.stop()
	// The limits still hold, in process.
	bob := Scope{Name: "client", Key: "client:bob", Limits: Limits{RPM: 3}}
	if n := admitted(t, r, 10, bob); n != 3 {
		t.Fatalf("local mode admitted %d with RPM 3, want 3", n)
	}
	res, _ = mustAdmit(t, r, Cost{Tokens: 200}, s)
	r.Commit(res, Cost{Tokens: 150})
	if st := r.Stats(); st.FailModeReserves != 11 || st.Pending != 1 {
		t.Fatalf("stats during the outage = %+v", st)
	}

	srv.start()
	eventually(t, "the local use is replayed", func() bool { return r.Stats().Pending == 0 })
	if got := dayTokens(t, r, s.Key); got != 250 {
		t.Fatalf("day tokens in redis = %d, want 250 (100 before the outage, 150 during)", got)
	}
	// Reservations made locally until the circuit closes are replayed too.
	var loops int64
	eventually(t, "counting resumes in redis", func() bool {
		loops++
		res, out, err := r.Reserve(t.Context(), []Scope{s}, Cost{Tokens: 10})
		if err != nil || out.Denial != nil {
			t.Fatalf("reserve: %v, %v", err, out.Denial)
		}
		r.Commit(res, Cost{Tokens: 10})
		return !res.local
	})
	eventually(t, "the local use is replayed", func() bool { return r.Stats().Pending == 0 })
	if got, want := dayTokens(t, r, s.Key), 250+10*loops; got != want {
		t.Fatalf("day tokens in redis = %d, want %d", got, want)
	}
}

// With BackgroundCommit, a request's path holds one round trip, and Close
// lands every commit still queued.
func TestRedisBackgroundCommit(t *testing.T) {
	prefix := randomPrefix()
	r := newTestRedis(t, RedisOptions{Prefix: prefix, BackgroundCommit: true})
	onPath := &pathRoundTrips{}
	r.client.AddHook(onPath)
	ctx := context.WithValue(context.Background(), requestPath{}, true)
	scopes := []Scope{{Name: "client", Key: "client:bg", Limits: Limits{DailyTokens: 1000}}}
	const n = 20
	for range n {
		before := onPath.n.Load()
		res, out, err := r.Reserve(ctx, scopes, Cost{Tokens: 40})
		if err != nil || out.Denial != nil {
			t.Fatalf("reserve: %v %v", err, out.Denial)
		}
		r.Commit(res, Cost{Tokens: 10})
		if got := onPath.n.Load() - before; got != 1 {
			t.Fatalf("the request path made %d round trips, want 1", got)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	check := newTestRedis(t, RedisOptions{Prefix: prefix})
	u, err := check.Peek(context.Background(), "client:bg")
	if err != nil {
		t.Fatal(err)
	}
	if u[0].DayTokens != n*10 {
		t.Fatalf("after Close the day holds %d tokens, want %d: every queued commit must land", u[0].DayTokens, n*10)
	}
}

// requestPath marks the context of calls made on a request's path.
type requestPath struct{}

// pathRoundTrips counts the commands sent with a requestPath context.
type pathRoundTrips struct{ n atomic.Int64 }

func (h *pathRoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pathRoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(requestPath{}) != nil {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *pathRoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A single failed call is not an outage: the circuit opens after tripAfter
// failures in a row, so one slow dial on a busy machine does not turn away
// every request for RetryEvery.
func TestRedisCircuitOpensAfterFailuresInARow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	r, err := NewRedis(RedisOptions{URL: "redis://" + addr + "/0", RetryEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	scopes := []Scope{{Name: "client", Key: "client:c", Limits: Limits{RPM: 10}}}
	for i := 1; i <= tripAfter; i++ {
		if _, _, err := r.Reserve(context.Background(), scopes, Cost{Tokens: 1}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("reserve %d: %v, want ErrUnavailable (fail mode deny)", i, err)
		}
		if down := r.Stats().Down; down != (i == tripAfter) {
			t.Fatalf("after %d failures in a row Down = %v", i, down)
		}
	}
}

// A scope's hash written before money was counted in nano-dollars holds the
// month's spend in micro-dollars (mm): it is carried over, not reset.
func TestRedisCarriesMicroDollarSpendOver(t *testing.T) {
	r := newTestRedis(t, RedisOptions{})
	ctx := t.Context()
	s := Scope{Name: "client", Key: "client:upgraded", Limits: Limits{MonthlyNanos: 1_000_000}}
	mustAdmit(t, r, Cost{Tokens: 1}, s)
	key := r.key(s.Key)
	if err := r.client.HDel(ctx, key, "mn").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.client.HSet(ctx, key, "mm", 700).Err(); err != nil {
		t.Fatal(err)
	}
	if u := peek(t, r, s.Key); u.MonthNanos != 700_000 {
		t.Fatalf("month spend after the upgrade = %d nano-dollars, want 700000", u.MonthNanos)
	}
	// $0.0007 of $0.001 spent: $0.0004 more does not fit.
	if _, out, err := r.Reserve(ctx, []Scope{s}, Cost{Tokens: 1, Nanos: 400_000}); err != nil || out.Denial == nil {
		t.Fatalf("a request over the carried-over spend was admitted (err %v)", err)
	}
	mustAdmit(t, r, Cost{Tokens: 1, Nanos: 200_000}, s)
	h, err := r.client.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["mn"] != "900000" || h["mm"] != "" {
		t.Fatalf("hash after a charge = %v, want mn 900000 and no mm", h)
	}
}

// A Redis that comes back empty (restarted without persistence) forgets what
// every scope spent: with a Seed, the limiter notices the missing epoch
// marker and writes the ledger's counts back before admitting by them.
func TestRedisReseedsAnEmptiedRedisFromTheLedger(t *testing.T) {
	ledger := map[string]Usage{"client:spent": {DayTokens: 900, MonthTokens: 900, MonthNanos: 5_000}}
	seeds := 0
	r := newTestRedis(t, RedisOptions{Seed: func(context.Context) (map[string]Usage, error) {
		seeds++
		return ledger, nil
	}})
	s := Scope{Name: "client", Key: "client:spent", Limits: Limits{DailyTokens: 1000}}
	// A fresh Redis is seeded before the first reservation.
	if _, out, err := r.Reserve(t.Context(), []Scope{s}, Cost{Tokens: 200}); err != nil || out.Denial == nil {
		t.Fatalf("200 tokens on 900 of 1000 spent: admitted (err %v)", err)
	}
	mustAdmit(t, r, Cost{Tokens: 50}, s)
	ledger["client:spent"] = Usage{DayTokens: 950, MonthTokens: 950}

	// Redis loses everything under this limiter's prefix.
	keys, err := r.client.Keys(t.Context(), r.prefix+"*").Result()
	if err != nil || len(keys) < 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if err := r.client.Del(t.Context(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
	r.cache.Clear()
	if _, out, err := r.Reserve(t.Context(), []Scope{s}, Cost{Tokens: 100}); err != nil || out.Denial == nil {
		t.Fatalf("100 tokens on 950 of 1000 spent, after Redis came back empty: admitted (err %v)", err)
	}
	if u := peek(t, r, s.Key); u.DayTokens != 950 {
		t.Fatalf("day tokens after the re-seed = %d, want 950", u.DayTokens)
	}
	if seeds != 2 || r.Stats().Reseeds != 2 {
		t.Fatalf("%d seeds (%d counted), want 2", seeds, r.Stats().Reseeds)
	}
}

// Commits that cross a re-seed: a live one charges its use alone (its
// estimate went with the old counters); a replay of one kept through the
// outage is dropped (the ledger the counters came from holds it).
func TestRedisCommitsAcrossAReseed(t *testing.T) {
	ledger := map[string]Usage{}
	r := newTestRedis(t, RedisOptions{Seed: func(context.Context) (map[string]Usage, error) { return ledger, nil }})
	s := Scope{Name: "client", Key: "client:crossing", Limits: Limits{DailyTokens: 100_000}}
	live, _ := mustAdmit(t, r, Cost{Tokens: 1000}, s)
	kept, _ := mustAdmit(t, r, Cost{Tokens: 1000}, s)

	keys, _ := r.client.Keys(t.Context(), r.prefix+"*").Result()
	r.client.Del(t.Context(), keys...)
	ledger[s.Key] = Usage{DayTokens: 500} // what the ledger held when it was read
	if u := peek(t, r, s.Key); u.DayTokens != 500 {
		t.Fatalf("after the re-seed: %d day tokens, want 500", u.DayTokens)
	}
	r.commit(live, Cost{Tokens: 30})
	if u := peek(t, r, s.Key); u.DayTokens != 530 {
		t.Fatalf("a live commit across the re-seed left %d day tokens, want 500 + its 30", u.DayTokens)
	}
	if err := r.runCommit(t.Context(), &kept, Cost{Tokens: 40}, false); err != nil {
		t.Fatal(err)
	}
	if u := peek(t, r, s.Key); u.DayTokens != 530 {
		t.Fatalf("a replay from before the re-seed left %d day tokens, want 530", u.DayTokens)
	}
}

// A reservation whose commit never comes (its replica was killed) is
// refunded by any replica's sweep once its lease expires; a commit that
// comes after the sweep charges its use alone.
func TestRedisLeasesRefundReservationsOfADeadReplica(t *testing.T) {
	prefix := randomPrefix()
	dead := newTestRedis(t, RedisOptions{Prefix: prefix, Lease: 200 * time.Millisecond})
	alive := newTestRedis(t, RedisOptions{Prefix: prefix, Lease: 200 * time.Millisecond})
	s := Scope{Name: "client", Key: "client:leased", Limits: Limits{DailyTokens: 10_000}}
	mustAdmit(t, dead, Cost{Tokens: 1000, Nanos: 500}, s) // never committed
	late, _ := mustAdmit(t, dead, Cost{Tokens: 1000}, s)  // committed after the sweep
	done, _ := mustAdmit(t, alive, Cost{Tokens: 1000}, s)
	alive.commit(done, Cost{Tokens: 100})
	if u := peek(t, alive, s.Key); u.DayTokens != 2100 {
		t.Fatalf("before the leases expire: %d day tokens, want 2100", u.DayTokens)
	}
	time.Sleep(300 * time.Millisecond)
	alive.sweep(t.Context())
	if u := peek(t, alive, s.Key); u.DayTokens != 100 || u.MonthNanos != 0 {
		t.Fatalf("after the sweep: %d day tokens, %d nanos; want the committed 100 alone", u.DayTokens, u.MonthNanos)
	}
	if got := alive.Stats().LeasesExpired; got != 2 {
		t.Fatalf("%d leases refunded, want 2", got)
	}
	dead.commit(late, Cost{Tokens: 30})
	if u := peek(t, alive, s.Key); u.DayTokens != 130 {
		t.Fatalf("a commit after its lease was swept: %d day tokens, want 130", u.DayTokens)
	}
	if n, _ := alive.client.ZCard(t.Context(), alive.leases).Result(); n != 0 {
		t.Fatalf("%d leases left", n)
	}
}
