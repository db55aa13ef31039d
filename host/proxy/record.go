package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"github.com/sluicehq/sluice/host/limits"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/telemetry"
	"github.com/sluicehq/sluice/host/upstream"
	"github.com/valyala/fasthttp"
)

func (g *Gateway) charge(x *exchange, t upstream.Target, u api.Usage) {
	x.ev.PromptTokens, x.ev.CompletionTokens, x.ev.TotalTokens = u.PromptTokens, u.CompletionTokens, u.TotalTokens
	x.ev.CostNanos = t.Model.CostNanos(u.PromptTokens, u.CompletionTokens)
	if x.ev.Cache == store.CacheHit {
		// No provider was paid: the ledger keeps what it would have cost.
		x.ev.SavedNanos, x.ev.CostNanos = x.ev.CostNanos, 0
	}
}

// fail answers with an error in the shape of the caller's API (OpenAI's
// unless it spoke Anthropic's) and records the request.
func (g *Gateway) fail(ctx *fasthttp.RequestCtx, x *exchange, e *api.Error) {
	if x.decisionID != "" {
		ctx.Response.Header.Set("x-sluice-decision-id", x.decisionID)
	}
	if x.abuse.denial != nil {
		x.abuse.denial.SetHeaders(&ctx.Response.Header)
	}
	x.ev.Status, x.ev.Code = x.writeError(ctx, e), e.Code
	g.record(x)
}

// record accounts for a request once it is answered: a ledger row when a
// client was known (see recordUnauthenticated otherwise), the metrics, the
// trace and the access line. Model and path are sanitised first: nothing
// below sees a caller's own name for them.
func (g *Gateway) record(x *exchange) {
	g.limiter.Commit(x.quota, limits.Cost{Tokens: x.ev.TotalTokens})
	x.ev.Time = g.now()
	x.ev.LatencyMS = x.ev.Time.Sub(x.start).Milliseconds()
	if x.ev.UsageSource == "" {
		x.ev.UsageSource = store.UsageNone
	}
	x.ev.UpstreamType = g.upstreamTypes.ofDeployment(x.ev.Model, x.ev.Deployment)
	modelHash := g.sanitise(&x.ev)
	authenticated := x.ev.ClientID != ""
	malformed := authenticated && isMalformed(&x.ev)
	switch {
	case malformed:
		// Counted in the metrics below, by code, and logged sampled: a
		// flood of them must not grow the ledger.
	case authenticated:
		g.recorder.Record(x.ev)
	default:
		g.recordUnauthenticated(x)
	}
	x.stages[metrics.StageTotal] = x.ev.Time.Sub(x.start)
	g.metrics.Record(&metrics.Request{
		Endpoint: x.ev.Endpoint, Department: x.ev.Department, Client: x.ev.ClientID, Model: x.ev.Model,
		Status: x.ev.Status, Code: x.ev.Code,
		PromptTokens: x.ev.PromptTokens, CompletionTokens: x.ev.CompletionTokens, CostNanos: x.ev.CostNanos,
		Stages: x.stages,
	})
	if x.ev.Cache != "" {
		g.metrics.CacheResult(x.ev.Cache, x.ev.SavedNanos)
	}
	x.upstreamSpan.End()
	operation := "chat"
	if x.ev.Endpoint == pathEmbeddings {
		operation = "embeddings"
	}
	x.trace.End(telemetry.Summary{Client: x.ev.ClientID, Department: x.ev.Department, Model: x.ev.Model, Operation: operation,
		DecisionID: x.decisionID, InputTokens: x.ev.PromptTokens, OutputTokens: x.ev.CompletionTokens,
		Status: x.ev.Status, Code: x.ev.Code})
	switch {
	case !g.accessLog:
	case malformed:
		g.logMalformed(&x.ev)
	case authenticated:
		g.logAccess(&x.ev, x.decisionID, &x.stages, &x.stageAttrs)
	default:
		g.logUnauthenticated(&x.ev, modelHash)
	}
}

// isMalformed reports a request refused because its body is not a JSON
// request at all (before any model, policy or token was involved): it is
// no ledger row, authenticated or not.
func isMalformed(ev *store.UsageEvent) bool {
	return ev.Status == 400 && (ev.Code == "invalid_json" || ev.Code == "invalid_request_body")
}

// logMalformed writes, sampled with the unauthenticated refusals, the line
// of an authenticated request whose body was malformed: ids and codes
// only, never the body.
func (g *Gateway) logMalformed(ev *store.UsageEvent) {
	ok, suppressed := g.unauthLog.allow(ev.Time)
	if !ok {
		return
	}
	g.log.LogAttrs(stepContext, slog.LevelInfo, "malformed request refused",
		slog.String("request_id", ev.RequestID),
		slog.String("endpoint", ev.Endpoint),
		slog.String("client", ev.ClientID),
		slog.String("key_id", ev.KeyID),
		slog.Int("status", ev.Status),
		slog.String("code", ev.Code),
		slog.Int64("suppressed", suppressed),
	)
}

// logAccess writes the request's access line: what the ledger holds, which
// by construction has no prompt text, no matched value and no key.
func (g *Gateway) logAccess(ev *store.UsageEvent, decisionID string, st *metrics.Stages, scratch *[numStageAttrs]slog.Attr) {
	g.log.LogAttrs(stepContext, slog.LevelInfo, "request",
		slog.String("request_id", ev.RequestID),
		slog.String("decision_id", decisionID),
		slog.String("endpoint", ev.Endpoint),
		slog.String("client", ev.ClientID),
		slog.String("department", ev.Department),
		slog.String("key_id", ev.KeyID),
		slog.String("model", ev.Model),
		slog.Bool("stream", ev.Stream),
		slog.Int("status", ev.Status),
		slog.String("code", ev.Code),
		slog.String("findings", ev.Findings),
		slog.Int64("prompt_tokens", ev.PromptTokens),
		slog.Int64("completion_tokens", ev.CompletionTokens),
		slog.Int64("cost_nanos", ev.CostNanos),
		slog.String("usage_source", ev.UsageSource),
		slog.Int64("latency_ms", ev.LatencyMS),
		// Time in each step, in microseconds; a step that did not run is 0.
		slog.Attr{Key: "stages_us", Value: slog.GroupValue(stageAttrs(st, scratch)...)},
	)
}

const numStageAttrs = 6

// stageAttrs fills scratch, which lives in the request's exchange, with the
// stages' times: slog.Group's variadic arguments would be allocated per line.
func stageAttrs(st *metrics.Stages, scratch *[numStageAttrs]slog.Attr) []slog.Attr {
	*scratch = [numStageAttrs]slog.Attr{
		slog.Int64("auth", st[metrics.StageAuth].Microseconds()),
		slog.Int64("parse", st[metrics.StageParse].Microseconds()),
		slog.Int64("policy", st[metrics.StagePolicy].Microseconds()),
		slog.Int64("limits", st[metrics.StageLimits].Microseconds()),
		slog.Int64("upstream_ttfb", st[metrics.StageUpstream].Microseconds()),
		slog.Int64("total", st[metrics.StageTotal].Microseconds()),
	}
	return scratch[:]
}

// Request ids are a per-process random prefix and a counter: unique across
// replicas without a random read per request.
var (
	idPrefix  = func() string { b := make([]byte, 6); rand.Read(b); return hex.EncodeToString(b) }()
	idCounter atomic.Uint64
)

func newRequestID() string {
	return "req_" + idPrefix + strconv.FormatUint(idCounter.Add(1), 36)
}
