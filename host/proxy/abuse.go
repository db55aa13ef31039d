package proxy

// This file holds what keeps abuse from costing Sluice, its ledger or its
// logs anything: requests refused before a client is known are counted and
// sampled, not recorded; an address that keeps being refused is held back
// before authentication; a client's refusals count toward its rpm, which is
// checked before the guardrails spend time on its prompt; and whatever a
// caller chose (model, path, header values) is bounded and sanitised before
// it is stored or logged.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/plugins/pii"
)

// Stored in place of what a caller made up.
const (
	// UnknownModel is the model of a request for a model the gateway does
	// not serve; the name itself is only logged as a hash.
	UnknownModel = "unknown"
	// UnknownPath is the endpoint of a request for a path the gateway does
	// not serve.
	UnknownPath = "unknown"
)

// Codes of the refusals this file adds.
const (
	codeIPRateLimited  = "ip_rate_limited"
	codeKeyRateLimited = "auth_rate_limited"
	codeInvalidKey     = "invalid_api_key"
	codePromptTooLarge = "prompt_too_large"
)

// abuseState is what an exchange carries for this file.
type abuseState struct {
	ip netip.Addr
	// keyPrefix is what the key limiter counts the request's key by.
	keyPrefix string
	// counted is set once the request has been charged to its rpm, so
	// that it is not charged twice.
	counted bool
	// denial holds the limits' answer to a request refused by overRPM, for
	// its OpenAI headers.
	denial *limits.Result
}

// ipRefused answers, before authentication, a request from an address that
// has used up its refusals, unless it carries a key already known to be
// good. It reports whether the request was answered. It is also where the
// exchange learns the caller's address.
func (g *Gateway) ipRefused(ctx *fasthttp.RequestCtx, x *exchange) bool {
	x.abuse.ip = clientAddr(ctx)
	if (g.ips == nil && g.keys == nil) || string(ctx.Path()) == "/healthz" {
		return false
	}
	now := g.now()
	key := auth.KeyFromHeaders(ctx.Request.Header.Peek("Authorization"), ctx.Request.Header.Peek("x-api-key"))
	x.abuse.keyPrefix = keyPrefix(key)
	var wait time.Duration
	var over bool
	code, msg := codeIPRateLimited, "Too many refused requests from this address; retry later with a valid key."
	if g.ips != nil {
		wait, over = g.ips.over(x.abuse.ip, now)
	}
	if !over && g.keys != nil && x.abuse.keyPrefix != "" {
		if wait, over = g.keys.over(x.abuse.keyPrefix, now); over {
			code, msg = codeKeyRateLimited, "Too many failed attempts with keys like this one; check the key, and retry later."
		}
	}
	if !over || g.auth.Known(key) {
		return false
	}
	ctx.Response.Header.Set("retry-after", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	g.fail(ctx, x, &api.Error{Status: http.StatusTooManyRequests, Type: api.TypeRateLimit, Code: code, Message: msg})
	return true
}

func clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		return a.Unmap()
	}
	return netip.Addr{}
}

// recordUnauthenticated is record for a request refused before a client was
// known: a metric by reason and a sampled log line, never a ledger row, so a
// flood fills no disk. Its refusal draws on its address's bucket.
func (g *Gateway) recordUnauthenticated(x *exchange) {
	g.metrics.Unauthenticated(x.ev.Code)
	limited := x.ev.Code == codeIPRateLimited || x.ev.Code == codeKeyRateLimited
	if g.ips != nil && !limited && x.ev.Status >= 400 && x.ev.Status < 500 {
		g.ips.charge(x.abuse.ip, x.ev.Time)
	}
	if g.keys != nil && x.ev.Code == codeInvalidKey && x.abuse.keyPrefix != "" {
		g.keys.charge(x.abuse.keyPrefix, x.ev.Time)
	}
}

// sanitise replaces what a caller chose freely in the event with what the
// gateway knows: a model it serves or UnknownModel, one of its routes or
// UnknownPath. It returns a short hash of an unknown model's name, for logs.
func (g *Gateway) sanitise(ev *store.UsageEvent) (modelHash string) {
	if ev.Model != "" {
		if _, ok := g.router.Route(ev.Model); !ok {
			sum := sha256.Sum256([]byte(ev.Model))
			modelHash = hex.EncodeToString(sum[:8])
			ev.Model = UnknownModel
		}
	}
	if ev.Endpoint != "" && route(ev.Endpoint) == "" {
		ev.Endpoint = UnknownPath
	}
	return modelHash
}

// logSampler lets through at most perSecond lines a second and counts the
// lines it held back, so that a flood writes a bounded log.
type logSampler struct {
	perSecond  int64
	second     atomic.Int64
	lines      atomic.Int64
	suppressed atomic.Int64
}

// allow reports whether a line may be written at now, and how many lines
// were held back since the last one written.
func (s *logSampler) allow(now time.Time) (ok bool, suppressed int64) {
	sec := now.Unix()
	if old := s.second.Load(); old != sec && s.second.CompareAndSwap(old, sec) {
		s.lines.Store(0)
	}
	if s.lines.Add(1) > s.perSecond {
		s.suppressed.Add(1)
		return false, 0
	}
	return true, s.suppressed.Swap(0)
}

// unauthenticatedLogPerSecond bounds the access lines of requests refused
// before a client was known.
const unauthenticatedLogPerSecond = 20

// logUnauthenticated writes the sampled access line of a request refused
// before a client was known.
func (g *Gateway) logUnauthenticated(ev *store.UsageEvent, modelHash string) {
	ok, suppressed := g.unauthLog.allow(ev.Time)
	if !ok {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", ev.RequestID),
		slog.String("endpoint", ev.Endpoint),
		slog.Int("status", ev.Status),
		slog.String("code", ev.Code),
		slog.Int64("latency_ms", ev.LatencyMS),
		slog.Int64("suppressed", suppressed),
	}
	if modelHash != "" {
		attrs = append(attrs, slog.String("model_sha256", modelHash))
	}
	g.log.LogAttrs(stepContext, slog.LevelInfo, "request refused before authentication", attrs...)
}

// promptTooLarge refuses a body over the client's tier's max_prompt_bytes,
// before it is parsed or scanned.
func (g *Gateway) promptTooLarge(ctx *fasthttp.RequestCtx, id auth.Identity) *api.Error {
	limit, ok := g.promptLimits[id.Client.Tier]
	if !ok {
		limit = config.DefaultMaxPromptBytes
	}
	if n := int64(len(ctx.PostBody())); n > limit {
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Type: api.TypeInvalidRequest, Code: codePromptTooLarge,
			Message: fmt.Sprintf("The request body is %d bytes; this client's tier accepts at most %d.", n, limit)}
	}
	return nil
}

// rpmScopes are the request's scopes with their rpm limits only.
func (g *Gateway) rpmScopes(x *exchange, dec policy.Decision) []limits.Scope {
	scopes := g.scopes(x, dec)
	for i := range scopes {
		scopes[i].Limits = limits.Limits{RPM: scopes[i].Limits.RPM}
	}
	return scopes
}

// overRPM is checked after the policy admitted a request and before its
// guardrails run: a client already at its rpm gets its 429 before any plugin
// spends time on its prompt. It reads the counters (the policy's own copy
// when it read them), which costs nothing in process and one round trip to
// Redis, and only when there is a limit and something to scan.
func (g *Gateway) overRPM(ctx context.Context, x *exchange, in *policy.Input, dec policy.Decision) *api.Error {
	if len(dec.Plugins) == 0 || dec.Limits.RPM <= 0 && (x.ev.Department == "" || dec.DepartmentLimits.RPM <= 0) {
		return nil
	}
	var used []limits.Usage
	if in.Usage != nil {
		used = []limits.Usage{{MinuteRequests: in.Usage.Client.RequestsMinute}, {MinuteRequests: in.Usage.Department.RequestsMinute}}
	} else {
		keys := []string{ClientScope(x.ev.ClientID)}
		if x.ev.Department != "" {
			keys = append(keys, DepartmentScope(x.ev.Department))
		}
		var err error
		if used, err = g.limiter.Peek(ctx, keys...); err != nil {
			g.log.Error("usage counters could not be read; request denied", "request_id", x.ev.RequestID, "error", err)
			return limitsUnavailable()
		}
	}
	over := dec.Limits.RPM > 0 && used[0].MinuteRequests+1 > dec.Limits.RPM
	if x.ev.Department != "" && len(used) > 1 && dec.DepartmentLimits.RPM > 0 && used[1].MinuteRequests+1 > dec.DepartmentLimits.RPM {
		over = true
	}
	if !over {
		return nil
	}
	// The reservation is refused, and says why in OpenAI's headers.
	res, out, err := g.limiter.Reserve(ctx, g.rpmScopes(x, dec), limits.Cost{})
	if err != nil {
		g.log.Error("limits could not be checked; request denied", "request_id", x.ev.RequestID, "error", err)
		return limitsUnavailable()
	}
	if out.Denial == nil {
		// The window slid in between: the request now counts, and goes on.
		g.limiter.Commit(res, limits.Cost{})
		x.abuse.counted = true
		return nil
	}
	x.abuse.denial = &out
	return api.RateLimited(out.Denial.Error())
}

// countRefusal charges a request the policy or the guardrails refused to
// its client's (and department's) rpm, so that refusals are not free: a
// client cannot spend plugin time faster than its rpm by sending prompts it
// knows are refused. Refusals the gateway is to blame for (5xx) and the
// limits' own 429s are not charged.
func (g *Gateway) countRefusal(ctx context.Context, x *exchange, dec policy.Decision, aerr *api.Error) *api.Error {
	if aerr == nil || x.abuse.counted || aerr.Status < 400 || aerr.Status >= 500 || aerr.Status == http.StatusTooManyRequests {
		return aerr
	}
	if dec.Limits.RPM <= 0 && dec.DepartmentLimits.RPM <= 0 {
		return aerr
	}
	res, out, err := g.limiter.Reserve(ctx, g.rpmScopes(x, dec), limits.Cost{})
	if err == nil && out.Denial == nil {
		g.limiter.Commit(res, limits.Cost{})
	}
	x.abuse.counted = true
	return aerr
}

// maxHeaderValue bounds a header value the policy sees, and so the
// decision log.
const maxHeaderValue = 256

// headerScanner finds personal data and keys in header values before the
// policy, and the decision log after it, sees them.
var headerScanner = func() *pii.Scanner {
	s, err := pii.New(nil)
	if err != nil {
		panic(err)
	}
	return s
}()

// headerValue is a request header's value as the policy sees it: at most
// maxHeaderValue bytes of valid UTF-8 without control characters, with
// personal data and keys replaced by their type, e.g. "[EMAIL]", and any
// word long enough to be a key replaced by "[REDACTED]".
func headerValue(v []byte) string {
	if len(v) > maxHeaderValue {
		v = v[:maxHeaderValue]
	}
	clean := v
	if !printable(v) {
		clean = make([]byte, 0, len(v))
		for len(v) > 0 {
			r, n := utf8.DecodeRune(v)
			if r == utf8.RuneError && n <= 1 || r < 0x20 || r == 0x7f {
				clean = append(clean, '?')
			} else {
				clean = append(clean, v[:n]...)
			}
			v = v[n:]
		}
	}
	found := headerScanner.Scan(nil, clean)
	if len(found) == 0 && !hasLongWord(clean) {
		// The common case (a user agent, a content type): one copy.
		return string(clean)
	}
	out := make([]byte, 0, len(clean))
	last := 0
	for _, f := range found {
		out = appendWords(out, clean[last:f.Start])
		out = append(out, '[')
		out = append(out, f.Type...)
		out = append(out, ']')
		last = f.End
	}
	return string(appendWords(out, clean[last:]))
}

// longWord is the length from which an unbroken run of letters, digits, '-'
// and '_' is taken for a credential.
const longWord = 24

// appendWords appends text with every run of longWord key characters or
// more replaced by "[REDACTED]".
func appendWords(out, text []byte) []byte {
	for i := 0; i < len(text); {
		j := i
		for j < len(text) && keyByte(text[j]) {
			j++
		}
		if j-i >= longWord {
			out = append(out, "[REDACTED]"...)
		} else {
			out = append(out, text[i:j]...)
		}
		if j < len(text) {
			out = append(out, text[j])
			j++
		}
		i = j
	}
	return out
}

// printable reports whether v is valid UTF-8 without control characters.
func printable(v []byte) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			if c < utf8.RuneSelf || !utf8.Valid(v[i:]) {
				return false
			}
			for _, r := range string(v[i:]) {
				if r < 0x20 || r == 0x7f {
					return false
				}
			}
			return true
		}
	}
	return true
}

// hasLongWord reports whether text holds a run of longWord key characters.
func hasLongWord(text []byte) bool {
	run := 0
	for _, c := range text {
		if !keyByte(c) {
			run = 0
			continue
		}
		if run++; run >= longWord {
			return true
		}
	}
	return false
}

func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// refusalLimiter is a token bucket of refusals per key (a client address,
// a key prefix), kept for a bounded number of keys: when a shard is full,
// the keys whose bucket has refilled are forgotten (they are as good as
// new), and if none has, the shard starts over.
type refusalLimiter[K comparable] struct {
	rate, burst float64
	shardOf     func(K) uint8
	shards      [64]refusalShard[K]
}

type refusalShard[K comparable] struct {
	mu      sync.Mutex
	buckets map[K]refusalBucket
}

type refusalBucket struct {
	tokens float64
	at     time.Time
}

// maxKeysPerShard bounds a limiter's memory: 64 shards of 4,096 keys, a
// few MB at most.
const maxKeysPerShard = 4096

type ipLimiter = refusalLimiter[netip.Addr]

func newIPLimiter(l config.IPLimit) *ipLimiter {
	return newRefusalLimiter(l, func(a netip.Addr) uint8 {
		b := a.As16()
		return b[15] ^ b[14] ^ b[11]
	})
}

func newRefusalLimiter[K comparable](l config.IPLimit, shardOf func(K) uint8) *refusalLimiter[K] {
	if l.Rate <= 0 {
		return nil
	}
	return &refusalLimiter[K]{rate: l.Rate, burst: float64(max(l.Burst, 1)), shardOf: shardOf}
}

func (l *refusalLimiter[K]) shard(k K) *refusalShard[K] {
	return &l.shards[l.shardOf(k)%64]
}

// refill is the bucket's level at now.
func (l *refusalLimiter[K]) refill(b refusalBucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
}

// over reports whether k has no refusal left, and how long until it has one.
func (l *refusalLimiter[K]) over(k K, now time.Time) (time.Duration, bool) {
	s := l.shard(k)
	s.mu.Lock()
	b, ok := s.buckets[k]
	s.mu.Unlock()
	if !ok {
		return 0, false
	}
	level := l.refill(b, now)
	if level >= 1 {
		return 0, false
	}
	return time.Duration((1 - level) / l.rate * float64(time.Second)), true
}

// charge takes one refusal from k's bucket.
func (l *refusalLimiter[K]) charge(k K, now time.Time) {
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[k]
	if !ok {
		if s.buckets == nil {
			s.buckets = map[K]refusalBucket{}
		}
		if len(s.buckets) >= maxKeysPerShard {
			for k, v := range s.buckets {
				if l.refill(v, now) >= l.burst {
					delete(s.buckets, k)
				}
			}
			if len(s.buckets) >= maxKeysPerShard {
				clear(s.buckets)
			}
		}
		b = refusalBucket{tokens: l.burst, at: now}
	}
	s.buckets[k] = refusalBucket{tokens: max(l.refill(b, now)-1, 0), at: now}
}

// keyLimiter holds back the keys that keep failing authentication, by
// their prefix (auth.KeyPrefix and four characters, what listings show):
// a revoked or leaked key replayed from many addresses, which the per-IP
// limit does not see, or from behind a balancer whose one address the
// per-IP limit must not punish. Only well-formed keys cost a store lookup,
// so only those are counted.
type keyLimiter = refusalLimiter[string]

func newKeyLimiter(l config.IPLimit) *keyLimiter {
	return newRefusalLimiter(l, func(prefix string) uint8 {
		var h uint8
		for i := 0; i < len(prefix); i++ {
			h = h*31 + prefix[i]
		}
		return h
	})
}

// keyPrefix is the part of a presented key the key limiter counts by, or
// "" for a key that costs no lookup (absent, or not shaped like a key).
func keyPrefix(key string) string {
	if !auth.WellFormed(key) {
		return ""
	}
	return key[:auth.DisplayPrefixLen]
}
