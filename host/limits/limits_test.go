package limits

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newTestLimiter(start time.Time) (*Limiter, *clock) {
	c := &clock{t: start}
	l := New()
	l.now = c.now
	return l, c
}

func TestRPMIsASlidingWindow(t *testing.T) {
	l, c := newTestLimiter(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	lim := Limits{RPM: 3}
	for i := range 3 {
		if _, _, d := l.Reserve("a", lim, 1); d != nil {
			t.Fatalf("request %d denied: %v", i, d)
		}
		c.add(20 * time.Second)
	}
	// t=60s: the first request (t=0) is exactly one minute old and leaves the window.
	if _, _, d := l.Reserve("a", lim, 1); d != nil {
		t.Fatalf("request at the window edge denied: %v", d)
	}
	// No double burst: the window now holds t=20,40,60.
	_, _, d := l.Reserve("a", lim, 1)
	if d == nil || d.Kind != KindRPM {
		t.Fatalf("fourth request within a minute admitted, denial = %v", d)
	}
	if d.RetryAfter != 20*time.Second || d.RetryAfterSeconds() != "20" {
		t.Fatalf("retry after %v (%s), want 20s", d.RetryAfter, d.RetryAfterSeconds())
	}
	if d.IsBudget() {
		t.Fatal("an RPM denial is not a budget denial")
	}
}

func TestDailyBudgetReserveAndCommit(t *testing.T) {
	l, c := newTestLimiter(time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC))
	lim := Limits{DailyTokens: 1000}
	r1, _, d := l.Reserve("a", lim, 600)
	if d != nil {
		t.Fatal(d)
	}
	if _, _, d := l.Reserve("a", lim, 600); d == nil || !d.IsBudget() {
		t.Fatalf("second 600-token reservation against 400 left: denial = %v", d)
	}
	l.Commit(r1, 100) // the reply was short: 500 tokens return to the budget
	r2, st, d := l.Reserve("a", lim, 600)
	if d != nil {
		t.Fatalf("after reconcile, 900 tokens left but denied: %v", d)
	}
	if st.TokensRemaining != 300 {
		t.Fatalf("remaining = %d, want 300", st.TokensRemaining)
	}
	c.add(2 * time.Hour) // a new UTC day
	l.Commit(r2, 50)
	if st := l.Peek("a", lim); st.TokensRemaining != 950 {
		t.Fatalf("remaining on the new day = %d, want 950 (only the use that finished today)", st.TokensRemaining)
	}
}

func TestConcurrentReservationsAdmitExactly(t *testing.T) {
	l := New()
	lim := Limits{RPM: 1000, DailyTokens: 10 * 100}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, d := l.Reserve("a", lim, 100); d == nil {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 10 {
		t.Fatalf("admitted %d of 50, want exactly 10", admitted.Load())
	}
}

func TestSeedRestoresCounters(t *testing.T) {
	l, _ := newTestLimiter(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	l.Seed("a", 2, 900)
	lim := Limits{RPM: 3, DailyTokens: 1000}
	if _, _, d := l.Reserve("a", lim, 200); d == nil || d.Kind != KindDailyTokens {
		t.Fatalf("seeded budget not enforced: %v", d)
	}
	if _, _, d := l.Reserve("a", lim, 50); d != nil {
		t.Fatal(d)
	}
	if _, _, d := l.Reserve("a", lim, 10); d == nil || d.Kind != KindRPM {
		t.Fatalf("seeded requests not counted: %v", d)
	}
}

func TestHeaders(t *testing.T) {
	st := Status{RequestsLimit: 60, RequestsRemaining: 59, RequestsReset: 1500 * time.Microsecond,
		TokensLimit: 1000, TokensRemaining: 10, TokensReset: time.Hour}
	got := map[string]string{}
	st.Headers(func(k, v string) { got[k] = v })
	want := map[string]string{
		"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "2ms",
		"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "1h0m0s",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	none := map[string]string{}
	Status{}.Headers(func(k, v string) { none[k] = v })
	if len(none) != 0 {
		t.Errorf("unlimited status wrote headers: %v", none)
	}
}

func BenchmarkReserveCommit(b *testing.B) {
	l := New()
	lim := Limits{RPM: 1 << 40, DailyTokens: 1 << 60}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, _, _ := l.Reserve("client", lim, 100)
			l.Commit(r, 90)
		}
	})
}
