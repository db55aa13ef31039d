package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// Response headers Sluice gives its caller from an upstream's reply. Only
// these pass, and only in their expected shape: a provider's cookies, its
// rate-limit headers (which describe Sluice's key, not the caller's) and
// anything else stay with Sluice.
const (
	// HeaderUpstreamRequestID is the provider's id of the call, from its
	// x-request-id (OpenAI) or request-id (Anthropic): the one its support
	// asks for. The caller's x-request-id stays Sluice's own.
	HeaderUpstreamRequestID = "x-upstream-request-id"
	HeaderProcessingMS      = "openai-processing-ms"
	// HeaderRetryAfter and HeaderRetryAfterMS are kept from a 429 or a 503
	// only: the wait the provider asks for before a retry.
	HeaderRetryAfter   = "retry-after"
	HeaderRetryAfterMS = "retry-after-ms"
)

// forwardList is the caller headers an upstream u forwards: its
// forward_headers (the default when not set), without any name that may
// never be forwarded, whatever the configuration says.
func forwardList(u config.Upstream) []string {
	names := u.ForwardHeaders
	if names == nil {
		names = config.DefaultForwardHeaders
	}
	var out []string
	for _, n := range names {
		if config.ForwardRefused(n) == "" {
			out = append(out, n)
		}
	}
	return out
}

// fixedHeaders are the headers u sets on every call, without the ones
// Sluice writes itself.
func fixedHeaders(u config.Upstream) [][2]string {
	var out [][2]string
	for name, v := range u.Headers {
		if config.FixedRefused(name) == "" {
			out = append(out, [2]string{name, v})
		}
	}
	return out
}

// setCallHeaders writes onto req the caller's headers that forward names,
// then the upstream's fixed headers.
func setCallHeaders(req *fasthttp.Request, caller HeaderSource, forward []string, fixed [][2]string) {
	if caller != nil {
		for _, name := range forward {
			if v := caller.Peek(name); len(v) > 0 {
				req.Header.SetBytesV(name, v)
			}
		}
	}
	for _, h := range fixed {
		req.Header.Set(h[0], h[1])
	}
}

// replyHeaders are the headers of resp the caller gets, copied out of it.
func replyHeaders(resp *fasthttp.Response) []Header {
	var out []Header
	id := resp.Header.Peek("x-request-id")
	if len(id) == 0 {
		id = resp.Header.Peek("request-id")
	}
	if isRequestID(id) {
		out = append(out, Header{HeaderUpstreamRequestID, string(id)})
	}
	if ms := resp.Header.Peek(HeaderProcessingMS); isNumber(ms, 12) {
		out = append(out, Header{HeaderProcessingMS, string(ms)})
	}
	if s := resp.StatusCode(); s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable {
		if v, ok := retryAfter(resp.Header.Peek(HeaderRetryAfter)); ok {
			out = append(out, Header{HeaderRetryAfter, v})
		}
		if ms := resp.Header.Peek(HeaderRetryAfterMS); isNumber(ms, 12) {
			out = append(out, Header{HeaderRetryAfterMS, string(ms)})
		}
	}
	return out
}

// isRequestID reports whether b looks like a provider's request id (req_…,
// a UUID): at most 128 letters, digits and ._:- only, so that it cannot
// carry anything else to the caller.
func isRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > 128 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// isNumber reports whether b is a non-negative decimal number (digits, and
// at most one point between them) of at most max bytes.
func isNumber(b []byte, max int) bool {
	if len(b) == 0 || len(b) > max || b[0] == '.' || b[len(b)-1] == '.' {
		return false
	}
	points := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && points == 0:
			points++
		default:
			return false
		}
	}
	return true
}

// retryAfter is a Retry-After value fit to pass on: whole seconds, or an
// HTTP date written again in the standard form.
func retryAfter(b []byte) (string, bool) {
	if len(b) == 0 || len(b) > 64 {
		return "", false
	}
	if n, err := strconv.ParseUint(string(b), 10, 32); err == nil {
		return strconv.FormatUint(n, 10), true
	}
	t, err := http.ParseTime(string(b))
	if err != nil {
		return "", false
	}
	return t.UTC().Format(http.TimeFormat), true
}

// RetryAfter is the wait a reply asks for in its retry-after-ms or
// Retry-After header (seconds or an HTTP date, counted from now); 0 when it
// asks for none.
func (r *Reply) RetryAfter(now time.Time) time.Duration {
	var wait time.Duration
	for _, h := range r.Headers {
		switch {
		case strings.EqualFold(h.Name, "retry-after-ms"):
			if ms, err := strconv.ParseFloat(h.Value, 64); err == nil && ms > 0 && ms < 1e9 {
				return time.Duration(ms * float64(time.Millisecond))
			}
		case strings.EqualFold(h.Name, "Retry-After"):
			if s, err := strconv.ParseUint(h.Value, 10, 32); err == nil {
				wait = time.Duration(s) * time.Second
			} else if t, err := http.ParseTime(h.Value); err == nil && t.After(now) {
				wait = t.Sub(now)
			}
		}
	}
	return wait
}
