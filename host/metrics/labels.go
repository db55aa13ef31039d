package metrics

import (
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Other replaces a label value that is not allowed: an unconfigured model,
// an unknown code or endpoint, a client beyond the cap, or a value that looks
// like a secret or an id.
const Other = "other"

// Endpoints that get their own label value; any other path is Other, so a
// scanner probing random paths adds no series.
const (
	EndpointChat       = "/v1/chat/completions"
	EndpointEmbeddings = "/v1/embeddings"
	EndpointModels     = "/v1/models"
	EndpointResponses  = "/v1/responses"
	// EndpointCompletions is OpenAI's legacy completions API.
	EndpointCompletions = "/v1/completions"
	EndpointMessages    = "/v1/messages"
	// EndpointCountTokens is Anthropic's token count: no model call.
	EndpointCountTokens = "/v1/messages/count_tokens"
)

func endpointLabel(path string) string {
	switch path {
	case EndpointChat:
		return EndpointChat
	case EndpointEmbeddings:
		return EndpointEmbeddings
	case EndpointModels:
		return EndpointModels
	case EndpointResponses, EndpointCompletions, EndpointMessages, EndpointCountTokens:
		return path
	case "":
		return ""
	}
	return Other
}

// operation is the GenAI operation name of an endpoint, "" for endpoints
// that are not model calls.
func operation(endpoint string) string {
	switch endpoint {
	case EndpointChat, EndpointResponses, EndpointCompletions, EndpointMessages:
		return "chat"
	case EndpointEmbeddings:
		return "embeddings"
	}
	return ""
}

// statusLabels holds every status's label so that recording one allocates
// nothing; upstreamCodes does the same for the gateway's "upstream_NNN" codes.
var statusLabels, upstreamCodes = func() (s, u [600]string) {
	for i := 100; i < 600; i++ {
		s[i] = strconv.Itoa(i)
		u[i] = "upstream_" + s[i]
	}
	return
}()

func statusLabel(status int) string {
	if status >= 100 && status < 600 {
		return statusLabels[status]
	}
	return Other
}

// DefaultCodes are the decision and error codes Sluice itself produces, and
// those of the shipped policies. Options.Codes adds a policy's own.
var DefaultCodes = []string{
	// the gateway's
	"invalid_api_key", "auth_unavailable", "model_not_found", "method_not_allowed", "not_found",
	"request_too_large", "malformed_request", "invalid_json", "invalid_request_body", "invalid_value",
	"rate_limit_exceeded", "budget_exceeded", "guardrail_unavailable", "policy_error",
	"ip_rate_limited", "auth_rate_limited", "prompt_too_large",
	"unknown_parameter", "unsupported_parameter",
	"upstream_error", "upstream_timeout", "upstream_rate_limited", "upstream_quota_exhausted", "no_deployment_in_region", "upstream_stream_error", "client_disconnected", "request_timeout", "shutdown", "internal_error",
	// the shipped policies'
	"model_not_allowed", "content_policy_violation", "pii_detected", "tier_unknown", "policy_denied",
}

func codeLabel(codes map[string]string, code string) string {
	if code == "" {
		return ""
	}
	if c, ok := codes[code]; ok {
		return c
	}
	// The gateway passes an upstream's own 4xx on as "upstream_NNN".
	if n, ok := strings.CutPrefix(code, "upstream_"); ok && len(n) == 3 {
		if s, err := strconv.Atoi(n); err == nil && s >= 100 && s < 600 {
			return upstreamCodes[s]
		}
	}
	return Other
}

// secretPrefixes start Sluice's keys and ids and the common provider tokens.
// None of them is ever a label value, whatever a caller passes: a series
// named after a key would publish it to everyone who can read /metrics.
var secretPrefixes = []string{
	"sk-", "sk_", // Sluice's keys (sk-sluice-), OpenAI's, Stripe's
	"key_", "req_", "dec_", // Sluice's key, request and decision ids
	"ghp_", "gho_", "github_pat_", "xox", "AKIA", "eyJ", // GitHub, Slack, AWS, JWT
}

// unsafeValue reports whether v must not become a label value: it looks
// like a key or an id, is longer than any store id, or is not printable
// UTF-8 (which Prometheus would refuse).
func unsafeValue(v string) bool {
	if len(v) > 128 || !utf8.ValidString(v) {
		return true
	}
	for _, p := range secretPrefixes {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	if len(v) >= 7 && strings.EqualFold(v[:7], "bearer ") {
		return true
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// capped admits the first max distinct safe values as labels and maps the
// rest to Other. The values it hands out are its own copies, so a caller's
// string may be a view of a buffer that is reused later.
type capped struct {
	max  int
	mu   sync.RWMutex
	seen map[string]string // value → its own copy
}

func (c *capped) label(v string) string {
	if v == "" {
		return ""
	}
	c.mu.RLock()
	l, ok := c.seen[v]
	full := len(c.seen) >= c.max
	c.mu.RUnlock()
	switch {
	case ok:
		return l
	case full || unsafeValue(v):
		return Other
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.seen[v]; ok {
		return l
	}
	if c.seen == nil {
		c.seen = map[string]string{}
	}
	if len(c.seen) >= c.max {
		return Other
	}
	own := strings.Clone(v)
	c.seen[own] = own
	return own
}

// allowlist maps configured values to their own copies; anything else is
// Other. It is read-only after New, so lookups take no lock.
func allowlist(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for _, v := range values {
		if v == "" || unsafeValue(v) {
			continue
		}
		own := strings.Clone(v)
		m[own] = own
	}
	return m
}

func allowed(m map[string]string, v string) string {
	if v == "" {
		return ""
	}
	if l, ok := m[v]; ok {
		return l
	}
	return Other
}
