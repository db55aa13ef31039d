// Package proxy is Sluice's request path. It orchestrates the other packages in
// one visible order: authenticate, parse, decide, scan, decide again, reserve,
// forward, reconcile, record. The steps live in their own packages; this one
// only calls them and turns their answers into HTTP.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/redact"
	"github.com/sluicehq/sluice/host/respcache"
	"github.com/sluicehq/sluice/host/routing"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tags"
	"github.com/sluicehq/sluice/host/telemetry"
	"github.com/sluicehq/sluice/host/upstream"
)

// Finding is one match a guard reported: a type at byte offsets [Start, End)
// of the Text-th text scanned. The gateway never logs or records the matched bytes.
type Finding = redact.Finding

// Guard is a scanner of requests and replies, typically a WASM plugin. The gateway does
// not know what is inside; the policy decides which guards run and what their
// findings mean.
type Guard struct {
	Name string
	// FailOpen lets a request through when Scan fails; otherwise the request
	// gets 503 guardrail_unavailable.
	FailOpen bool
	Scan     func(ctx context.Context, texts []string) ([]Finding, ScanUse, error)
}

// ScanUse is what one scan of a guard used and how it ended.
type ScanUse struct {
	// Guest is the time the guard's own code ran (a plugin's guest time),
	// which the metrics count against the client.
	Guest time.Duration
	// Fault names the guard's own failure (timeout, trap, invalid_output,
	// error), "" when it scanned or failed for a reason not its own.
	Fault string
	// Cancelled says the scan's context ended first: the caller left.
	Cancelled bool
}

// Decider makes admission decisions; *policy.Set is one.
type Decider interface {
	// Decide evaluates the policy; an error denies with policy_error.
	Decide(ctx context.Context, in policy.Input) (policy.Result, error)
	// Explain decides and says which rules produced the decision.
	Explain(ctx context.Context, in policy.Input) (policy.Explanation, error)
	// UsesUsage reports whether the policy reads input.usage, so that the
	// gateway looks the counters up only then.
	UsesUsage() bool
}

// DecisionLog keeps a record of decisions; *policy.DecisionLog is one.
type DecisionLog interface {
	Record(requestID string, r policy.Result, err error)
}

// Recorder receives one usage event per request; *usage.Ledger is one.
type Recorder interface {
	Record(ev store.UsageEvent)
}

// Gateway serves the OpenAI-compatible API.
type Gateway struct {
	auth   *auth.Authenticator
	tokens *auth.Tokens
	// allowedTags are the tags a request may carry (attribution.tags).
	allowedTags tags.Allowed
	decider     Decider
	decisions   DecisionLog
	metrics     *metrics.Metrics
	tracer      *telemetry.Provider
	guards      map[string]Guard
	limiter     limits.Backend
	router      *upstream.Router
	// routes orders each request's deployments and keeps their health;
	// nil sends every request to its model's one upstream.
	routes *routing.Table
	// upstreamTypes says which kinds of upstream serve each model.
	upstreamTypes upstreamTypes
	// cache keeps upstream replies for the tiers the policy caches; nil
	// caches none.
	cache    *respcache.Cache
	recorder Recorder
	log      *slog.Logger

	defaultMaxTokens int64
	accessLog        bool
	now              func() time.Time

	// ips holds back addresses that keep being refused (nil: off);
	// unauthLog samples the access lines of requests refused before a
	// client was known; promptLimits is each tier's max_prompt_bytes.
	ips          *ipLimiter
	keys         *keyLimiter
	unauthLog    logSampler
	promptLimits map[string]int64

	// streams counts the stream writers still running: they outlive their
	// handlers, so a server's shutdown waits for them apart. stopping is
	// cancelled by AbortStreams.
	streams      sync.WaitGroup
	stopping     context.Context
	abortStreams context.CancelCauseFunc

	// callers cancels the scans of requests whose caller has gone;
	// failures counts each client's recent plugin failures for the policy.
	callers  callerWatch
	failures clientFailures
}

// Options are the parts a Gateway is made of.
type Options struct {
	Config        *config.Config
	Authenticator *auth.Authenticator
	// Tokens accepts identity providers' signed tokens in place of keys;
	// nil when none is configured.
	Tokens      *auth.Tokens
	Decider     Decider
	DecisionLog DecisionLog         // optional
	Metrics     *metrics.Metrics    // optional
	Tracer      *telemetry.Provider // optional
	Guards      []Guard
	Limiter     limits.Backend
	Router      *upstream.Router
	Routes      *routing.Table   // optional
	Cache       *respcache.Cache // optional
	Recorder    Recorder
	Log         *slog.Logger
}

// New assembles a Gateway.
func New(o Options) *Gateway {
	g := &Gateway{
		auth:             o.Authenticator,
		tokens:           o.Tokens,
		allowedTags:      o.Config.Attribution.Tags,
		decider:          o.Decider,
		decisions:        o.DecisionLog,
		metrics:          o.Metrics,
		tracer:           o.Tracer,
		guards:           map[string]Guard{},
		limiter:          o.Limiter,
		router:           o.Router,
		routes:           o.Routes,
		upstreamTypes:    newUpstreamTypes(o.Config),
		cache:            o.Cache,
		recorder:         o.Recorder,
		log:              o.Log,
		defaultMaxTokens: o.Config.Limits.DefaultMaxTokens,
		accessLog:        o.Config.Server.AccessLog,
		now:              time.Now,
		ips:              newIPLimiter(o.Config.Server.IPLimit),
		keys:             newKeyLimiter(o.Config.Server.KeyLimit),
		unauthLog:        logSampler{perSecond: unauthenticatedLogPerSecond},
		promptLimits:     map[string]int64{},
	}
	g.stopping, g.abortStreams = context.WithCancelCause(context.Background())
	for name, t := range o.Config.Tiers {
		g.promptLimits[name] = t.PromptLimit()
	}
	for _, gd := range o.Guards {
		g.guards[gd.Name] = gd
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	return g
}

// AbortStreams ends every upstream call still open, as at the shutdown
// deadline. Each stream's caller gets a "shutdown" error event, and the
// stream is recorded with what was relayed (usage_source "shutdown")
// unless the provider's usage had come; a request still waiting for its
// upstream's first byte is answered 503 shutdown and billed its
// reservation. WaitStreams then returns once the streams are recorded.
func (g *Gateway) AbortStreams() { g.abortStreams(errShuttingDown) }

// errShuttingDown is the cause of the context of the upstream calls that
// AbortStreams ends.
var errShuttingDown = errors.New("the gateway is shutting down")

// WaitStreams waits until every stream in flight has ended and been recorded,
// or until ctx is done.
func (g *Gateway) WaitStreams(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.streams.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
