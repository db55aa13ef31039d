package limits

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is the in-process Backend of a single gateway: exact, and rebuilt
// from the ledger at start through Seed.
type Memory struct {
	accounts sync.Map // scope key → *account
	now      func() time.Time
	window   int64 // ms; a minute, shorter in tests
}

var _ Backend = (*Memory)(nil)

type account struct {
	mu sync.Mutex
	c  counters
}

// NewMemory returns an empty in-process limiter.
func NewMemory() *Memory { return &Memory{now: time.Now, window: minute} }

func (m *Memory) account(key string) *account {
	if a, ok := m.accounts.Load(key); ok {
		return a.(*account)
	}
	a, _ := m.accounts.LoadOrStore(key, &account{})
	return a.(*account)
}

// Reserve implements Backend. It fails only for more than MaxScopes scopes.
func (m *Memory) Reserve(_ context.Context, scopes []Scope, cost Cost) (Reservation, Result, error) {
	if len(scopes) > MaxScopes {
		return Reservation{}, Result{}, fmt.Errorf("limits: %d scopes, at most %d", len(scopes), MaxScopes)
	}
	// A negative estimate would push the counts down and let other requests
	// through; callers bound their estimates, this keeps a bug from becoming
	// an overspend.
	cost = cost.clamp()
	var accts [MaxScopes]*account
	for i := range scopes {
		accts[i] = m.account(scopes[i].Key)
	}
	var buf [MaxScopes]*account
	locked := lockAll(scopes, accts[:len(scopes)], &buf)
	p := periodAt(m.now(), m.window)
	var snaps [MaxScopes]counters
	var masks [MaxScopes]uint8
	denied := false
	for i, a := range accts[:len(scopes)] {
		a.c.roll(&p)
		masks[i] = a.c.violations(scopes[i].Limits, cost, &p)
		denied = denied || masks[i] != 0
	}
	if !denied {
		for _, a := range locked {
			a.c.charge(cost)
		}
	}
	for i, a := range accts[:len(scopes)] {
		snaps[i] = a.c
	}
	for _, a := range locked {
		a.mu.Unlock()
	}
	res := result(scopes, snaps[:len(scopes)], masks[:len(scopes)], cost, &p)
	if denied {
		return Reservation{}, res, nil
	}
	return newReservation(scopes, cost, &p), res, nil
}

// lockAll locks each distinct account once, in the order of their keys, so
// that two requests sharing a department cannot deadlock. It returns the
// distinct accounts, locked.
func lockAll(scopes []Scope, accts []*account, buf *[MaxScopes]*account) []*account {
	var order [MaxScopes]int
	n := 0
	for i := range accts {
		j := n
		for j > 0 && scopes[order[j-1]].Key > scopes[i].Key {
			j--
		}
		if j > 0 && accts[order[j-1]] == accts[i] {
			continue
		}
		copy(order[j+1:n+1], order[j:n])
		order[j] = i
		n++
	}
	locked := buf[:n]
	for k, i := range order[:n] {
		locked[k] = accts[i]
		accts[i].mu.Lock()
	}
	return locked
}

func newReservation(scopes []Scope, cost Cost, p *period) Reservation {
	r := Reservation{n: uint8(len(scopes)), cost: cost, win: p.win, day: p.day, month: p.month}
	for i := range scopes {
		r.keys[i] = scopes[i].Key
	}
	return r
}

// Commit implements Backend.
func (m *Memory) Commit(r Reservation, used Cost) {
	m.reconcile(&r, used.clamp(), true)
}

func (m *Memory) reconcile(r *Reservation, used Cost, windows bool) {
	p := periodAt(m.now(), m.window)
	for i, key := range r.keys[:r.n] {
		if dup(r.keys[:i], key) {
			continue
		}
		a := m.account(key)
		a.mu.Lock()
		a.c.reconcile(r, used, &p, windows)
		a.mu.Unlock()
	}
}

func dup(keys []string, key string) bool {
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}

// Peek implements Backend; it never fails.
func (m *Memory) Peek(_ context.Context, keys ...string) ([]Usage, error) {
	p := periodAt(m.now(), m.window)
	out := make([]Usage, len(keys))
	for i, key := range keys {
		a := m.account(key)
		a.mu.Lock()
		a.c.roll(&p)
		out[i] = a.c.usage(&p)
		a.mu.Unlock()
	}
	return out, nil
}

// Seed adds what the ledger says a scope used to its counters, at start, so
// that a restart resets nothing: requests and tokens of the last minute,
// tokens of today (UTC), tokens and money of this month. The last minute's use
// is counted as if it had all just happened, which errs toward the limit.
func (m *Memory) Seed(key string, u Usage) {
	p := periodAt(m.now(), m.window)
	a := m.account(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.c.roll(&p)
	a.c.reqCur += max(u.MinuteRequests, 0)
	a.c.tokCur += max(u.MinuteTokens, 0)
	a.c.dayTokens += max(u.DayTokens, 0)
	a.c.monthTokens += max(u.MonthTokens, 0)
	a.c.monthNanos += max(u.MonthNanos, 0)
}

// Close implements Backend; there is nothing to release.
func (m *Memory) Close() error { return nil }
