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
	r.SetHeaders(setterFunc(func(name string, value []byte) { set(name, string(value)) }))
}

// HeaderSetter takes a header; *fasthttp.ResponseHeader is one. The value
// is a scratch buffer, reused once SetBytesV returns.
type HeaderSetter interface {
	SetBytesV(name string, value []byte)
}

type setterFunc func(string, []byte)

func (f setterFunc) SetBytesV(name string, value []byte) { f(name, value) }

// SetHeaders is Headers without an allocation: the values are formatted in
// a pooled buffer, and h is an interface, not a method value, which would
// be allocated per call.
func (r *Result) SetHeaders(h HeaderSetter) {
	scratch := scratchPool.Get().(*[32]byte)
	defer scratchPool.Put(scratch)
	w := valueWriter{h: h, buf: scratch[:0]}
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
	w.status(&topNames, &top)
	for _, st := range r.Scopes() {
		if st.Scope != "" {
			w.status(scopeNames(st.Scope), &st)
		}
	}
	if d := r.Denial; d != nil {
		w.set("retry-after", strconv.AppendInt(w.buf[:0], d.retryAfterSeconds(), 10))
		if d.IsBudget() {
			w.set("x-should-retry", append(w.buf[:0], "false"...))
		} else {
			w.set("retry-after-ms", strconv.AppendInt(w.buf[:0], max(1, int64((d.RetryAfter+time.Millisecond-1)/time.Millisecond)), 10))
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

// scratchPool holds the buffers header values are formatted in: a value
// handed to an unknown function escapes, so a buffer on the stack would be
// an allocation per call.
var scratchPool = sync.Pool{New: func() any { return new([32]byte) }}

// valueWriter formats header values into one scratch buffer.
type valueWriter struct {
	h   HeaderSetter
	buf []byte
}

func (w *valueWriter) set(name string, value []byte) { w.h.SetBytesV(name, value) }

func (w *valueWriter) status(n *names, st *Status) {
	w.window(n, atRequests, st.Requests, appendCount)
	w.window(n, atTokens, st.Tokens, appendCount)
	w.window(n, atDayTokens, st.DayTokens, appendCount)
	w.window(n, atMonthTokens, st.MonthTokens, appendCount)
	w.window(n, atMonthMoney, st.MonthMoney, appendUSD)
}

func (w *valueWriter) window(n *names, at int, win Window, unit func([]byte, int64) []byte) {
	if win.Limit <= 0 {
		return
	}
	w.buf = unit(w.buf[:0], win.Limit)
	w.set(n[at], w.buf)
	w.buf = unit(w.buf[:0], win.Remaining)
	w.set(n[at+1], w.buf)
	w.buf = appendReset(w.buf[:0], win.Reset)
	w.set(n[at+2], w.buf)
}

func appendCount(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// appendUSD formats nano-dollars as dollars, exactly and with at least
// cents: "50.00", "49.998765".
func appendUSD(b []byte, nanos int64) []byte {
	b = append(strconv.AppendInt(b, nanos/1e9, 10), '.')
	return appendFraction(b, nanos%1e9, 9, 2)
}

// appendFraction appends frac, a fraction of digits decimal digits, with
// its trailing zeros dropped down to keep digits: (500, 3, 1) is "5",
// (5, 3, 1) is "005", (0, 9, 2) is "00".
func appendFraction(b []byte, frac int64, digits, keep int) []byte {
	for digits > keep && frac%10 == 0 {
		frac /= 10
		digits--
	}
	var d [20]byte
	for i := digits - 1; i >= 0; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(b, d[:digits]...)
}

// appendReset writes a duration as OpenAI does, rounded up to the
// millisecond: "0s", "120ms", "1.5s", "6m0s": time.Duration's String
// format for a whole number of milliseconds, without its allocation.
func appendReset(b []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(b, "0s"...)
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1000 {
		return append(strconv.AppendInt(b, ms, 10), "ms"...)
	}
	h, m, s, frac := ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000
	if h > 0 {
		b = append(strconv.AppendInt(b, h, 10), 'h')
	}
	if h > 0 || m > 0 {
		b = append(strconv.AppendInt(b, m, 10), 'm')
	}
	b = strconv.AppendInt(b, s, 10)
	if frac > 0 {
		b = appendFraction(append(b, '.'), frac, 3, 1)
	}
	return append(b, 's')
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
