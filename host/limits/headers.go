package limits

import (
	"strconv"
	"sync"
	"time"
)

// Headers calls set with every header the result calls for.
//
// The per-minute limits use OpenAI's names and meaning:
// x-ratelimit-{limit,remaining,reset}-{requests,tokens} are the RPM and TPM
// windows of the tightest scope, and the same per scope
// (x-ratelimit-department-remaining-tokens). A reset is how long until the
// window has room again, in OpenAI's duration format ("1s", "6m0s",
// "120ms"): 0s while it has room.
//
// The budgets have names of their own, since OpenAI has none:
// x-sluice-budget-{limit,remaining,reset}-{tokens-day,tokens-month,usd-month}
// for the tightest scope and x-sluice-budget-{scope}-… per scope; money is in
// dollars, and a reset is the end of the UTC day or month.
//
// A denial adds retry-after (whole seconds, rounded up). A rate limit adds
// retry-after-ms too, the exact wait the SDKs prefer; a budget adds
// x-should-retry: false instead, which the SDKs obey rather than retry a
// request that cannot succeed before the period ends. Unlimited windows are
// left out.
func (r *Result) Headers(set func(name, value string)) {
	var top Status
	for _, st := range r.Scopes() {
		top.Requests = tighter(top.Requests, st.Requests)
		top.Tokens = tighter(top.Tokens, st.Tokens)
		top.DayTokens = tighter(top.DayTokens, st.DayTokens)
		top.MonthTokens = tighter(top.MonthTokens, st.MonthTokens)
		top.MonthMoney = tighter(top.MonthMoney, st.MonthMoney)
	}
	if d := r.Denial; d != nil {
		// The window that refused is the one to report, so that its reset
		// and retry-after agree.
		for _, st := range r.Scopes() {
			if st.Scope == d.Scope {
				*top.window(d.Kind) = *st.window(d.Kind)
			}
		}
	}
	writeStatus(set, &topNames, &top)
	for _, st := range r.Scopes() {
		if st.Scope != "" {
			writeStatus(set, scopeNames(st.Scope), &st)
		}
	}
	if d := r.Denial; d != nil {
		set("retry-after", d.RetryAfterSeconds())
		if d.IsBudget() {
			set("x-should-retry", "false")
		} else {
			set("retry-after-ms", strconv.FormatInt(max(1, int64((d.RetryAfter+time.Millisecond-1)/time.Millisecond)), 10))
		}
	}
}

// window is the window of st that a limit of kind k counts in.
func (st *Status) window(k Kind) *Window {
	switch k {
	case KindRPM:
		return &st.Requests
	case KindTPM:
		return &st.Tokens
	case KindDailyTokens:
		return &st.DayTokens
	case KindMonthlyTokens:
		return &st.MonthTokens
	default:
		return &st.MonthMoney
	}
}

// pinDenied sets the reset of the window that denied a request to the wait
// until the request fits, the same as its retry-after.
func (r *Result) pinDenied() {
	d := r.Denial
	if d == nil || d.IsBudget() {
		return
	}
	for i := range r.Scopes() {
		if st := &r.scopes[i]; st.Scope == d.Scope {
			if w := st.window(d.Kind); w.Limit > 0 {
				w.Reset = d.RetryAfter
			}
		}
	}
}

func tighter(a, b Window) Window {
	if b.Limit > 0 && (a.Limit == 0 || b.Remaining < a.Remaining) {
		return b
	}
	return a
}

// The order of a set of header names: three (limit, remaining, reset) per
// window.
const (
	atRequests = 3 * iota
	atTokens
	atDayTokens
	atMonthTokens
	atMonthMoney
	nNames
)

type names = [nNames]string

func writeStatus(set func(string, string), n *names, st *Status) {
	writeWindow(set, n, atRequests, st.Requests, count)
	writeWindow(set, n, atTokens, st.Tokens, count)
	writeWindow(set, n, atDayTokens, st.DayTokens, count)
	writeWindow(set, n, atMonthTokens, st.MonthTokens, count)
	writeWindow(set, n, atMonthMoney, st.MonthMoney, usd)
}

func writeWindow(set func(string, string), n *names, at int, w Window, unit func(int64) string) {
	if w.Limit <= 0 {
		return
	}
	set(n[at], unit(w.Limit))
	set(n[at+1], unit(w.Remaining))
	set(n[at+2], resetString(w.Reset))
}

func count(n int64) string { return strconv.FormatInt(n, 10) }

// usd formats nano-dollars as dollars, exactly and with at least cents:
// "50.00", "49.998765".
func usd(nanos int64) string {
	b := strconv.AppendInt(nil, nanos/1e9, 10)
	frac := strconv.AppendInt(nil, 1e9+nanos%1e9, 10)[1:] // nine digits
	end := len(frac)
	for end > 2 && frac[end-1] == '0' {
		end--
	}
	return string(append(append(b, '.'), frac[:end]...))
}

// resetString writes a duration as OpenAI does, rounded up to the
// millisecond: "0s", "120ms", "1.5s", "6m0s".
func resetString(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond).String()
}

var topNames = headerNames("x-ratelimit-", "x-sluice-budget-")

// headerCache holds the header names of each scope name seen, so that the
// request path does not build the names per scope per request.
var headerCache sync.Map // scope name → *names

func scopeNames(scope string) *names {
	if v, ok := headerCache.Load(scope); ok {
		return v.(*names)
	}
	n := headerNames("x-ratelimit-"+scope+"-", "x-sluice-budget-"+scope+"-")
	v, _ := headerCache.LoadOrStore(scope, &n)
	return v.(*names)
}

func headerNames(rate, budget string) names {
	var n names
	for i, w := range []struct{ prefix, unit string }{
		atRequests / 3:    {rate, "requests"},
		atTokens / 3:      {rate, "tokens"},
		atDayTokens / 3:   {budget, "tokens-day"},
		atMonthTokens / 3: {budget, "tokens-month"},
		atMonthMoney / 3:  {budget, "usd-month"},
	} {
		n[3*i] = w.prefix + "limit-" + w.unit
		n[3*i+1] = w.prefix + "remaining-" + w.unit
		n[3*i+2] = w.prefix + "reset-" + w.unit
	}
	return n
}
