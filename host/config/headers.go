package config

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultForwardHeaders are the caller's request headers an upstream gets
// when its forward_headers is not set: the ones the providers' SDKs send
// to choose an organisation, a project or a beta.
var DefaultForwardHeaders = []string{"OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta", "anthropic-version", "anthropic-beta"}

// gatewayHeaders are the request headers Sluice writes itself on a call
// to an upstream, or that frame the call: neither a caller nor the
// configuration may set them.
var gatewayHeaders = []string{
	// hop-by-hop (RFC 9110, 7.6.1) and framing
	"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
	"transfer-encoding", "upgrade", "host", "content-length", "content-type", "content-encoding", "accept", "accept-encoding", "expect",
	// Sluice's own: the upstream's key, the request id, the trace context
	"authorization", "x-request-id", "traceparent", "tracestate",
}

// callerCredentialHeaders carry a caller's credentials to Sluice, which are
// never an upstream's business.
var callerCredentialHeaders = []string{"x-api-key", "api-key", "x-goog-api-key", "cookie"}

// ForwardRefused says why the caller's header name may never be forwarded
// to an upstream, or "" when it may: a hop-by-hop or framing header, a
// header Sluice writes itself, a credential or cookie, or one of Sluice's
// own x-sluice-* headers.
func ForwardRefused(name string) string {
	n := strings.ToLower(name)
	switch {
	case !isToken(n):
		return "is not a header name"
	case strings.HasPrefix(n, "x-sluice-"):
		return "is one of Sluice's own headers"
	case slices.Contains(callerCredentialHeaders, n) || n == "authorization" || n == "proxy-authorization":
		return "carries the caller's credentials"
	case slices.Contains(gatewayHeaders, n):
		return "is written by Sluice itself"
	}
	return ""
}

// FixedRefused says why an upstream's fixed header may not be set, or ""
// when it may. Unlike a forwarded header, a fixed one may be a provider's
// credential (x-api-key), since the operator writes it; Authorization is
// api_key's.
func FixedRefused(name string) string {
	n := strings.ToLower(name)
	switch {
	case !isToken(n):
		return "is not a header name"
	case strings.HasPrefix(n, "x-sluice-"):
		return "is one of Sluice's own headers"
	case n == "authorization":
		return "is set from api_key"
	case slices.Contains(gatewayHeaders, n):
		return "is written by Sluice itself"
	}
	return ""
}

// validateHeaders checks an upstream's forward_headers and headers, and
// gives forward_headers its default when it is not set.
func (u *Upstream) validateHeaders(key string, bad func(key, format string, args ...any) error) error {
	if u.ForwardHeaders == nil {
		u.ForwardHeaders = DefaultForwardHeaders
	}
	for i, h := range u.ForwardHeaders {
		if why := ForwardRefused(h); why != "" {
			return bad(fmt.Sprintf("%s.forward_headers[%d]", key, i), "%q %s and is never forwarded to an upstream", h, why)
		}
	}
	for name, v := range u.Headers {
		if why := FixedRefused(name); why != "" {
			return bad(key+".headers", "%q %s and cannot be set here", name, why)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			// The value is not quoted: it may be a secret.
			return bad(key+".headers."+name, "the value holds a line break or a NUL byte")
		}
	}
	return nil
}

// isToken reports whether s is an HTTP header name (RFC 9110's token).
func isToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
