package limits

import (
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClockedMemory(start time.Time) (*Memory, *clock) {
	c := &clock{t: start}
	m := NewMemory()
	m.now = c.now
	return m, c
}

// admitted counts how many of n one-token requests are admitted now.
func admitted(t *testing.T, b Backend, n int, s Scope) int {
	t.Helper()
	k := 0
	for range n {
		if _, out := reserve(t, b, Cost{Tokens: 1}, s); out.Denial == nil {
			k++
		}
	}
	return k
}

func TestNoDoubleBurstAtTheWindowEdge(t *testing.T) {
	// 100 ms before a minute boundary.
	m, c := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 59, 900e6, time.UTC))
	s := client(Limits{RPM: 20})
	if n := admitted(t, m, 30, s); n != 20 {
		t.Fatalf("burst before the edge admitted %d, want 20", n)
	}
	c.add(200 * time.Millisecond) // 100 ms into the next minute
	_, out := reserve(t, m, Cost{Tokens: 1}, s)
	if out.Denial == nil {
		t.Fatal("a second burst was admitted right after the window edge")
	}
	// The previous minute weighs 20·(60-t)/60: one request fits at t = 3 s.
	if want := 2900 * time.Millisecond; out.Denial.RetryAfter != want {
		t.Fatalf("retry after %v, want %v", out.Denial.RetryAfter, want)
	}
	c.add(out.Denial.RetryAfter - time.Millisecond)
	if n := admitted(t, m, 1, s); n != 0 {
		t.Fatal("admitted before retry-after")
	}
	c.add(time.Millisecond)
	if n := admitted(t, m, 5, s); n != 1 {
		t.Fatalf("admitted %d at retry-after, want 1", n)
	}
	c.add(27 * time.Second) // half way: 10 of the old burst still weigh, plus 1
	if n := admitted(t, m, 20, s); n != 9 {
		t.Fatalf("admitted %d half a minute later, want 9", n)
	}
	c.add(2 * time.Minute)
	if n := admitted(t, m, 30, s); n != 20 {
		t.Fatalf("admitted %d after two quiet minutes, want 20", n)
	}
}

func TestStraddlingBurstAdmitsExactlyTheLimit(t *testing.T) {
	m, c := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 59, 999e6, time.UTC))
	s := client(Limits{RPM: 20})
	first := admitted(t, m, 10, s)
	c.add(2 * time.Millisecond)
	if n := first + admitted(t, m, 30, s); n != 20 {
		t.Fatalf("a burst across the edge admitted %d, want 20", n)
	}
}

func TestBudgetsResetAtUTCPeriods(t *testing.T) {
	m, c := newClockedMemory(time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC))
	s := client(Limits{DailyTokens: 1000, MonthlyTokens: 1500})
	r, _ := mustAdmit(t, m, Cost{Tokens: 900}, s)
	d := mustDeny(t, m, Cost{Tokens: 200}, KindDailyTokens, "client", s)
	if d.RetryAfter != time.Hour || d.RetryAfterSeconds() != "3600" {
		t.Fatalf("retry after %v, want until midnight", d.RetryAfter)
	}

	c.add(2 * time.Hour) // December 1st: a new day and a new month
	m.Commit(r, Cost{Tokens: 50})
	u := peek(t, m, s.Key)
	if u.DayTokens != 50 || u.MonthTokens != 50 {
		t.Fatalf("after the period ended, usage = %+v; want only the use that finished today (50)", u)
	}

	c.add(20 * time.Hour) // still December 1st
	mustAdmit(t, m, Cost{Tokens: 950}, s)
	c.add(4 * time.Hour) // December 2nd: the day resets, the month does not
	d = mustDeny(t, m, Cost{Tokens: 501}, KindMonthlyTokens, "client", s)
	if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Sub(c.now()); d.RetryAfter != want {
		t.Fatalf("retry after %v, want %v (until January 1st)", d.RetryAfter, want)
	}
	if want := "resets on 2027-01-01 at 00:00 UTC"; !strings.Contains(d.Error(), want) {
		t.Fatalf("message %q lacks %q", d.Error(), want)
	}
}

func TestReconcileAcrossTheMinute(t *testing.T) {
	m, c := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 50, 0, time.UTC))
	s := client(Limits{TPM: 1000})
	r, _ := mustAdmit(t, m, Cost{Tokens: 800}, s)
	c.add(20 * time.Second) // the reservation is now in the previous window
	m.Commit(r, Cost{Tokens: 200})
	// 200 weigh 50/60 of the way: ceil(166.7) = 167 in the last minute.
	if u := peek(t, m, s.Key); u.MinuteTokens != 167 {
		t.Fatalf("minute tokens = %d, want 167", u.MinuteTokens)
	}
	// A stream longer than two windows: its excess counts now.
	r, _ = mustAdmit(t, m, Cost{Tokens: 100}, s)
	c.add(3 * time.Minute)
	m.Commit(r, Cost{Tokens: 400})
	if u := peek(t, m, s.Key); u.MinuteTokens != 300 {
		t.Fatalf("minute tokens = %d, want the 300 excess", u.MinuteTokens)
	}
}

func TestSeedRestoresCounters(t *testing.T) {
	m, _ := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	m.Seed("client:alice", Usage{MinuteRequests: 2, MinuteTokens: 10, DayTokens: 900, MonthTokens: 5000, MonthNanos: 70})
	s := client(Limits{RPM: 3, DailyTokens: 1000, MonthlyNanos: 1000})
	mustDeny(t, m, Cost{Tokens: 200}, KindDailyTokens, "client", s)
	mustAdmit(t, m, Cost{Tokens: 50, Nanos: 30}, s)
	mustDeny(t, m, Cost{Tokens: 10}, KindRPM, "client", s)
	want := Usage{MinuteRequests: 3, MinuteTokens: 60, DayTokens: 950, MonthTokens: 5050, MonthNanos: 100}
	if u := peek(t, m, s.Key); u != want {
		t.Fatalf("usage = %+v, want %+v", u, want)
	}
}

// A status keeps the per-minute windows apart from the budgets: a daily
// budget must not pass for the tokens-per-minute limit.
func TestStatusKeepsMinuteWindowsApartFromBudgets(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	m, _ := newClockedMemory(at)
	c := client(Limits{RPM: 10, TPM: 10_000, DailyTokens: 1000})
	dp := dept(Limits{MonthlyTokens: 100_000, MonthlyNanos: 5_000_000_000})
	_, out := mustAdmit(t, m, Cost{Tokens: 400, Nanos: 1000}, c, dp)
	got := out.Scopes()
	want := []Status{
		{Scope: "client",
			// Room left in both minute windows: nothing to wait for.
			Requests:  Window{Limit: 10, Remaining: 9},
			Tokens:    Window{Limit: 10_000, Remaining: 9600},
			DayTokens: Window{Limit: 1000, Remaining: 600, Reset: 12*time.Hour - 30*time.Second}},
		{Scope: "department",
			MonthTokens: Window{Limit: 100_000, Remaining: 99_600, Reset: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Sub(at)},
			MonthMoney:  Window{Limit: 5_000_000_000, Remaining: 4_999_999_000, Reset: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Sub(at)}},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("statuses = %+v\nwant %+v", got, want)
	}
}

// A full minute window resets when it has room for one more request, within
// about a minute, not when its last count has aged out.
func TestFullWindowResetsWhenItHasRoom(t *testing.T) {
	m, clock := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	c := client(Limits{RPM: 60})
	for range 30 {
		mustAdmit(t, m, Cost{}, c)
	}
	clock.add(30 * time.Second)
	var out Result
	for range 30 {
		_, out = mustAdmit(t, m, Cost{}, c)
	}
	w := out.Scopes()[0].Requests
	if w.Remaining != 0 || w.Reset <= 0 || w.Reset > time.Minute {
		t.Fatalf("requests window = %+v, want 0 remaining and a reset within a minute", w)
	}
	clock.add(w.Reset - time.Millisecond)
	mustDeny(t, m, Cost{}, KindRPM, "client", c)
	clock.add(time.Millisecond)
	mustAdmit(t, m, Cost{}, c)
}

func TestReserveRefusesTooManyScopes(t *testing.T) {
	s := make([]Scope, MaxScopes+1)
	for i := range s {
		s[i] = Scope{Key: string(rune('a' + i))}
	}
	if _, _, err := NewMemory().Reserve(t.Context(), s, Cost{}); err == nil {
		t.Fatal("more than MaxScopes scopes accepted")
	}
}

func TestSharedScopesDoNotDeadlock(t *testing.T) {
	m, _ := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	a := Scope{Key: "client:a", Limits: Limits{RPM: 1 << 30}}
	b := Scope{Key: "client:b", Limits: Limits{RPM: 1 << 30}}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			scopes := []Scope{a, b}
			if i%2 == 1 {
				scopes = []Scope{b, a, b} // reversed, and a key twice
			}
			for range 100 {
				r, _, _ := m.Reserve(t.Context(), scopes, Cost{Tokens: 1})
				m.Commit(r, Cost{Tokens: 1})
			}
		})
	}
	wg.Wait()
	if u := peek(t, m, "client:b"); u.MinuteRequests != 100*100 {
		t.Fatalf("requests counted %d, want %d: a key given twice must count once", u.MinuteRequests, 100*100)
	}
}
