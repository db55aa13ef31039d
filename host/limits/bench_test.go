package limits

import (
	"context"
	"testing"
)

var benchScopes = []Scope{
	client(Limits{RPM: 1 << 40, TPM: 1 << 50, DailyTokens: 1 << 60, MonthlyTokens: 1 << 60}),
	dept(Limits{DailyTokens: 1 << 60, MonthlyNanos: 1 << 60}),
}

// BenchmarkMemoryReserveCommit is the limiter's cost per request on one
// gateway: a reservation against a client and its department, then its
// reconciliation.
func BenchmarkMemoryReserveCommit(b *testing.B) {
	m := NewMemory()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, _, _ := m.Reserve(ctx, benchScopes, Cost{Tokens: 100, Nanos: 10})
		m.Commit(r, Cost{Tokens: 90, Nanos: 9})
	}
}

// BenchmarkMemoryReserveCommitParallel is the same with every core on one
// department: the contention of a busy team.
func BenchmarkMemoryReserveCommitParallel(b *testing.B) {
	m := NewMemory()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, _, _ := m.Reserve(ctx, benchScopes, Cost{Tokens: 100, Nanos: 10})
			m.Commit(r, Cost{Tokens: 90, Nanos: 9})
		}
	})
}

// BenchmarkRedisReserveCommit is the cost per request with the counters in
// Redis, reported with the round trips each request costs.
func BenchmarkRedisReserveCommit(b *testing.B) {
	r := newTestRedis(b, RedisOptions{})
	rt := countRoundTrips(r)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		res, _, err := r.Reserve(ctx, benchScopes, Cost{Tokens: 100, Nanos: 10})
		if err != nil {
			b.Fatal(err)
		}
		r.Commit(res, Cost{Tokens: 90, Nanos: 9})
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkRedisReserveExhausted is a client flooding a spent budget: answered
// from the exhausted cache.
func BenchmarkRedisReserveExhausted(b *testing.B) {
	r := newTestRedis(b, RedisOptions{})
	ctx := context.Background()
	scopes := []Scope{client(Limits{DailyTokens: 1})}
	r.Reserve(ctx, scopes, Cost{Tokens: 1})
	r.Reserve(ctx, scopes, Cost{Tokens: 1})
	r.cache.Wait()
	rt := countRoundTrips(r)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, out, _ := r.Reserve(ctx, scopes, Cost{Tokens: 1}); out.Denial == nil {
			b.Fatal("admitted against a spent budget")
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}
