package limits

import (
	"time"
)

// This file holds the arithmetic both backends share. The Redis scripts
// (reserve.lua, commit.lua) repeat the checks and updates in Lua; the Go side
// turns a snapshot of counters, from either backend, into statuses, usage and
// denials, so the two cannot disagree on what a client is told.

// minute is the length of the RPM and TPM windows, in milliseconds.
const minute = 60_000

// period locates an instant in every window a limit counts in.
type period struct {
	now    time.Time // by the clock that counts: the process's, or Redis's
	window int64     // window length in ms (a minute, except in tests)
	win    int64     // index of the current window
	into   int64     // ms since the current window began
	day    int64     // UTC days since the epoch
	month  int64     // year*12 + month-1, UTC
}

func periodAt(t time.Time, window int64) period {
	ms := t.UnixMilli()
	win := floorDiv(ms, window)
	y, m, _ := t.UTC().Date()
	return period{now: t, window: window, win: win, into: ms - win*window,
		day: floorDiv(t.Unix(), 86400), month: int64(y)*12 + int64(m) - 1}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// nextDay and nextMonth are when the day and month budgets reset.
func (p *period) nextDay() time.Time { return time.Unix((p.day+1)*86400, 0).UTC() }

func (p *period) nextMonth() time.Time {
	return time.Date(int(p.month/12), time.Month(p.month%12)+2, 1, 0, 0, 0, 0, time.UTC)
}

// counters is one scope's state: two adjacent windows per minute limit, and
// the budgets of the current day and month.
type counters struct {
	win             int64
	reqPrev, reqCur int64
	tokPrev, tokCur int64
	day, dayTokens  int64
	month           int64
	monthTokens     int64
	monthNanos      int64
}

// roll moves the counters to p: windows and periods that have ended are
// dropped or shifted.
func (c *counters) roll(p *period) {
	switch c.win {
	case p.win:
	case p.win - 1:
		c.reqPrev, c.tokPrev, c.reqCur, c.tokCur = c.reqCur, c.tokCur, 0, 0
	default:
		c.reqPrev, c.tokPrev, c.reqCur, c.tokCur = 0, 0, 0, 0
	}
	c.win = p.win
	if c.day != p.day {
		c.day, c.dayTokens = p.day, 0
	}
	if c.month != p.month {
		c.month, c.monthTokens, c.monthNanos = p.month, 0, 0
	}
}

// weighted is the sliding-window estimate of the last window: the previous
// window's count weighted by how much of it still overlaps, plus the current
// one. Rounding the weighted part up makes "estimate + need ≤ limit" in
// integers the same test as with the real-valued estimate.
func weighted(prev, cur int64, p *period) int64 {
	return (prev*(p.window-p.into)+p.window-1)/p.window + cur
}

// over reports whether need more units break limit on top of used. Every
// request needs room for at least one unit, so a closed budget denies even a
// request estimated to cost nothing.
func over(used, need, limit int64) bool {
	return limit > 0 && used+max(need, 1) > limit
}

// The bits of a violation mask, one per Kind, in this order in kinds; the
// Lua scripts use the same values.
const (
	bitRPM = 1 << iota
	bitTPM
	bitDaily
	bitMonthlyTokens
	bitMonthlyMoney
)

var kinds = [...]Kind{KindRPM, KindTPM, KindDailyTokens, KindMonthlyTokens, KindMonthlyMoney}

// violations returns the mask of the limits the request breaks. c must be
// rolled to the current period.
func (c *counters) violations(l Limits, cost Cost, p *period) uint8 {
	var m uint8
	if over(weighted(c.reqPrev, c.reqCur, p), 1, l.RPM) {
		m |= bitRPM
	}
	if over(weighted(c.tokPrev, c.tokCur, p), cost.Tokens, l.TPM) {
		m |= bitTPM
	}
	if over(c.dayTokens, cost.Tokens, l.DailyTokens) {
		m |= bitDaily
	}
	if over(c.monthTokens, cost.Tokens, l.MonthlyTokens) {
		m |= bitMonthlyTokens
	}
	if over(c.monthNanos, cost.Nanos, l.MonthlyNanos) {
		m |= bitMonthlyMoney
	}
	return m
}

func (c *counters) charge(cost Cost) {
	c.reqCur++
	c.tokCur += cost.Tokens
	c.dayTokens += cost.Tokens
	c.monthTokens += cost.Tokens
	c.monthNanos += cost.Nanos
}

// reconcile replaces a reservation's estimate with the real use. A period the
// reservation was charged to that is still current gets the difference; once
// it has ended, the whole use counts in the current one, where the ledger
// records it too. With windows false only the budgets change: a replay long
// after the fact must not throttle the current minute.
func (c *counters) reconcile(r *Reservation, used Cost, p *period, windows bool) {
	c.roll(p)
	d := Cost{Tokens: used.Tokens - r.cost.Tokens, Nanos: used.Nanos - r.cost.Nanos}
	if windows {
		switch {
		case r.win == c.win:
			c.tokCur = max(0, c.tokCur+d.Tokens)
		case r.win == c.win-1:
			c.tokPrev = max(0, c.tokPrev+d.Tokens)
		case d.Tokens > 0:
			// A stream longer than its window: the excess was produced lately.
			c.tokCur += d.Tokens
		}
	}
	if r.day == c.day {
		c.dayTokens = max(0, c.dayTokens+d.Tokens)
	} else {
		c.dayTokens += used.Tokens
	}
	if r.month == c.month {
		c.monthTokens = max(0, c.monthTokens+d.Tokens)
		c.monthNanos = max(0, c.monthNanos+d.Nanos)
	} else {
		c.monthTokens += used.Tokens
		c.monthNanos += used.Nanos
	}
}

func (c *counters) usage(p *period) Usage {
	return Usage{
		MinuteRequests: weighted(c.reqPrev, c.reqCur, p),
		MinuteTokens:   weighted(c.tokPrev, c.tokCur, p),
		DayTokens:      c.dayTokens,
		MonthTokens:    c.monthTokens,
		MonthNanos:     c.monthNanos,
	}
}

// windowReset is how long until both windows have nothing left in them.
func windowReset(prev, cur int64, p *period) time.Duration {
	switch {
	case cur > 0:
		return ms(2*p.window - p.into)
	case prev > 0:
		return ms(p.window - p.into)
	}
	return 0
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func (c *counters) status(s *Scope, p *period) Status {
	st := Status{Scope: s.Name}
	l := s.Limits
	if l.RPM > 0 {
		st.Requests = minuteWindow(c.reqPrev, c.reqCur, l.RPM, p)
	}
	if l.TPM > 0 {
		st.Tokens = minuteWindow(c.tokPrev, c.tokCur, l.TPM, p)
	}
	if l.DailyTokens > 0 {
		st.DayTokens = Window{Limit: l.DailyTokens, Remaining: max(0, l.DailyTokens-c.dayTokens), Reset: p.nextDay().Sub(p.now)}
	}
	if l.MonthlyTokens > 0 {
		st.MonthTokens = Window{Limit: l.MonthlyTokens, Remaining: max(0, l.MonthlyTokens-c.monthTokens), Reset: p.nextMonth().Sub(p.now)}
	}
	if l.MonthlyNanos > 0 {
		st.MonthMoney = Window{Limit: l.MonthlyNanos, Remaining: max(0, l.MonthlyNanos-c.monthNanos), Reset: p.nextMonth().Sub(p.now)}
	}
	return st
}

// minuteWindow is a per-minute limit's state: its reset is when it has room
// for one more unit again, 0 while it has room now.
func minuteWindow(prev, cur, limit int64, p *period) Window {
	w := Window{Limit: limit, Remaining: max(0, limit-weighted(prev, cur, p))}
	if w.Remaining == 0 {
		w.Reset, _ = windowRetry(prev, cur, 1, limit, p)
	}
	return w
}

// windowRetry is how long until need more units fit a sliding window holding
// prev and cur, assuming nothing else arrives. never reports a request larger
// than the limit itself.
func windowRetry(prev, cur, need, limit int64, p *period) (wait time.Duration, never bool) {
	need = max(need, 1)
	w := p.window
	// until is the first ms t of a window at which ceil(prev*(w-t)/w) ≤ room.
	until := func(prev, room int64) int64 {
		if prev == 0 {
			return 0
		}
		return max(0, w-room*w/prev)
	}
	if room := limit - cur - need; room >= 0 {
		return ms(max(0, until(prev, room)-p.into)), false
	}
	if room := limit - need; room >= 0 {
		return ms(w - p.into + until(cur, room)), false
	}
	// No wait helps; a whole window is what a caller that retries anyway
	// should wait.
	return max(windowReset(prev, cur, p), ms(w)), true
}

// denial builds the denial of the scope and kind with the longest wait among
// those broken: retrying sooner would fail on that one anyway.
func denial(scopes []Scope, snaps []counters, masks []uint8, cost Cost, p *period) *Denial {
	var d *Denial
	for i := range scopes {
		for b, kind := range kinds {
			if masks[i]&(1<<b) == 0 {
				continue
			}
			c := candidate(&scopes[i], &snaps[i], kind, cost, p)
			if d == nil || c.RetryAfter > d.RetryAfter || (c.RetryAfter == d.RetryAfter && c.IsBudget() && !d.IsBudget()) {
				d = c
			}
		}
	}
	return d
}

func candidate(s *Scope, c *counters, kind Kind, cost Cost, p *period) *Denial {
	d := &Denial{Kind: kind, Scope: s.Name, Key: s.Key, Need: max(cost.Tokens, 1)}
	switch kind {
	case KindRPM:
		d.Limit, d.Used, d.Need = s.Limits.RPM, weighted(c.reqPrev, c.reqCur, p), 1
		d.RetryAfter, _ = windowRetry(c.reqPrev, c.reqCur, 1, d.Limit, p)
	case KindTPM:
		d.Limit, d.Used = s.Limits.TPM, weighted(c.tokPrev, c.tokCur, p)
		d.RetryAfter, d.tooLarge = windowRetry(c.tokPrev, c.tokCur, cost.Tokens, d.Limit, p)
	case KindDailyTokens:
		d.Limit, d.Used, d.resetAt = s.Limits.DailyTokens, c.dayTokens, p.nextDay()
	case KindMonthlyTokens:
		d.Limit, d.Used, d.resetAt = s.Limits.MonthlyTokens, c.monthTokens, p.nextMonth()
	case KindMonthlyMoney:
		d.Limit, d.Used, d.Need, d.resetAt = s.Limits.MonthlyNanos, c.monthNanos, cost.Nanos, p.nextMonth()
	}
	if !d.resetAt.IsZero() {
		d.RetryAfter = d.resetAt.Sub(p.now)
	}
	return d
}

// result builds the statuses of every scope and, when masks break any limit,
// the denial.
func result(scopes []Scope, snaps []counters, masks []uint8, cost Cost, p *period) Result {
	var r Result
	r.n = uint8(len(scopes))
	for i := range scopes {
		r.scopes[i] = snaps[i].status(&scopes[i], p)
	}
	for _, m := range masks {
		if m != 0 {
			r.Denial = denial(scopes, snaps, masks, cost, p)
			r.pinDenied()
			break
		}
	}
	return r
}
