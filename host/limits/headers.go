package limits

import (
	"strconv"
	"sync"
	"time"
)

// Headers calls set with every header the result calls for: OpenAI's
// x-ratelimit-{limit,remaining,reset}-{requests,tokens} for the tightest scope,
// the same per scope (x-ratelimit-department-remaining-tokens), and
// retry-after when the request was denied. Unlimited windows are left out.
// Resets are Go durations rounded up to the millisecond ("1.5s", "6m0s"), as
// OpenAI writes them.
func (r *Result) Headers(set func(name, value string)) {
	var req, tok Window
	for _, st := range r.Scopes() {
		req = tighter(req, st.Requests)
		tok = tighter(tok, st.Tokens)
	}
	writeWindow(set, &topNames, 0, req)
	writeWindow(set, &topNames, 3, tok)
	for _, st := range r.Scopes() {
		if st.Scope == "" {
			continue
		}
		names := scopeNames(st.Scope)
		writeWindow(set, names, 0, st.Requests)
		writeWindow(set, names, 3, st.Tokens)
	}
	if r.Denial != nil {
		set("retry-after", r.Denial.RetryAfterSeconds())
	}
}

func tighter(a, b Window) Window {
	if b.Limit > 0 && (a.Limit == 0 || b.Remaining < a.Remaining) {
		return b
	}
	return a
}

func writeWindow(set func(string, string), names *[6]string, at int, w Window) {
	if w.Limit <= 0 {
		return
	}
	set(names[at], strconv.FormatInt(w.Limit, 10))
	set(names[at+1], strconv.FormatInt(w.Remaining, 10))
	set(names[at+2], resetString(w.Reset))
}

func resetString(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond).String()
}

var topNames = headerNames("")

// headerCache holds the header names of each scope name seen, so that the
// request path does not build six strings per scope per request.
var headerCache sync.Map // scope name → *[6]string

func scopeNames(scope string) *[6]string {
	if v, ok := headerCache.Load(scope); ok {
		return v.(*[6]string)
	}
	names := headerNames(scope + "-")
	v, _ := headerCache.LoadOrStore(scope, &names)
	return v.(*[6]string)
}

func headerNames(infix string) [6]string {
	return [6]string{
		"x-ratelimit-" + infix + "limit-requests",
		"x-ratelimit-" + infix + "remaining-requests",
		"x-ratelimit-" + infix + "reset-requests",
		"x-ratelimit-" + infix + "limit-tokens",
		"x-ratelimit-" + infix + "remaining-tokens",
		"x-ratelimit-" + infix + "reset-tokens",
	}
}
