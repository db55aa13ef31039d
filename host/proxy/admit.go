package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/scanview"
	"github.com/sluicehq/sluice/host/tags"
	"github.com/sluicehq/sluice/host/telemetry"
	"github.com/sluicehq/sluice/host/upstream"
	"github.com/valyala/fasthttp"
)

func clientInput(id auth.Identity) policy.Client {
	return policy.Client{ID: id.Client.ID, Department: id.Client.Department, Tier: id.Client.Tier, Labels: id.Client.Labels}
}

// identityInput is input.identity: a token's issuer, subject and claims,
// or a key's id, name and tags.
func identityInput(id auth.Identity) *policy.Identity {
	if t := id.Token; t != nil {
		return t.View(func() any {
			return (&policy.Identity{Kind: policy.IdentityToken, Issuer: t.Issuer, Subject: t.Subject,
				Claims: t.Claims, DroppedClaims: t.DroppedClaims, LogClaims: t.LogClaims}).Shared()
		}).(*policy.Identity)
	}
	return &policy.Identity{Kind: policy.IdentityKey, KeyID: id.Key.ID, KeyName: id.Key.Name, KeyTags: id.Key.Scope.Tags}
}

func (g *Gateway) authenticate(ctx *fasthttp.RequestCtx, x *exchange) (auth.Identity, *api.Error) {
	defer x.end(x.begin(metrics.StageAuth, telemetry.StageAuth))
	key := auth.KeyFromHeaders(ctx.Request.Header.Peek("Authorization"), ctx.Request.Header.Peek("x-api-key"))
	var id auth.Identity
	var err error
	if g.tokens != nil && auth.LooksLikeToken(key) {
		id, err = g.tokens.Authenticate(stepContext, key)
		if errors.Is(err, auth.ErrInvalidToken) {
			err = auth.ErrInvalidKey // told apart in no way a caller can see
		}
	} else {
		id, err = g.auth.Authenticate(stepContext, key)
	}
	if err != nil {
		if errors.Is(err, auth.ErrKeyExpired) {
			return auth.Identity{}, api.KeyExpired()
		}
		if errors.Is(err, auth.ErrClientDisabled) {
			return auth.Identity{}, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "client_disabled",
				Message: "The client this API key belongs to is disabled."}
		}
		if !errors.Is(err, auth.ErrInvalidKey) {
			g.log.Error("key lookup failed", "request_id", x.ev.RequestID, "error", err)
			return auth.Identity{}, &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable,
				Code: "auth_unavailable", Message: "Keys cannot be checked right now; retry shortly."}
		}
		return auth.Identity{}, api.InvalidAPIKey()
	}
	x.ev.ClientID, x.ev.Department, x.ev.KeyID = id.Client.ID, id.Client.Department, id.KeyID
	x.key = id.Key.Scope
	x.identity = identityInput(id)
	requested, terr := tags.Parse(string(ctx.Request.Header.Peek(tags.Header)))
	if terr == nil {
		terr = g.allowedTags.Permit(requested)
	}
	if terr != nil {
		return id, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "invalid_tags", Param: tags.Header,
			Message: "The " + tags.Header + " header is not valid: " + terr.Error() + "."}
	}
	x.ev.Tags = tags.Canonical(tags.Merge(requested, x.key.Tags))
	return id, g.promptTooLarge(ctx, id)
}

func (g *Gateway) route(model string) (upstream.Target, *api.Error) {
	t, ok := g.router.Route(model)
	if !ok {
		return t, &api.Error{Status: http.StatusNotFound, Type: api.TypeInvalidRequest, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("The model %q does not exist on this gateway.", model)}
	}
	return t, nil
}

// admit asks the policy, runs the guards it names, and asks again if they
// found anything. A policy that cannot decide denies. The guards' findings are
// returned for redaction; they hold offsets, and the text stays where it is.
func (g *Gateway) admit(ctx context.Context, x *exchange, in *policy.Input, texts []string, info []api.Text) (policy.Decision, []Finding, *api.Error) {
	dec, aerr := g.decide(ctx, x, in)
	if aerr != nil {
		return dec, nil, g.countRefusal(ctx, x, dec, aerr)
	}
	if aerr := g.overRPM(ctx, x, in, dec); aerr != nil {
		return dec, nil, aerr
	}
	found, aggregated, aerr := g.scan(ctx, x, dec.Plugins, texts, info)
	if aerr != nil || len(aggregated) == 0 {
		return dec, nil, aerr
	}
	in.Findings = aggregated
	x.ev.Findings = findingSummary(aggregated)
	dec, aerr = g.decide(ctx, x, in)
	return dec, found, g.countRefusal(ctx, x, dec, aerr)
}

func (g *Gateway) decide(ctx context.Context, x *exchange, in *policy.Input) (policy.Decision, *api.Error) {
	res, err := g.evaluate(ctx, x, in)
	if err != nil {
		return res.Decision, api.PolicyError("The access policy could not be evaluated; the request was denied.")
	}
	dec := res.Decision
	if dec.Allowed && !keyAllows(x.key, in.Request.Model) {
		return dec, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "model_not_allowed", Param: "model",
			Message: fmt.Sprintf("The model %q is not allowed for this API key.", in.Request.Model)}
	}
	if !dec.Allowed {
		typ := dec.Type
		if typ == "" {
			typ = api.TypeForStatus(dec.HTTPStatus)
		}
		msg := dec.Message
		if dec.Reason != "" {
			msg = strings.TrimSuffix(msg, ".") + ". Reason: " + dec.Reason
		}
		return dec, &api.Error{Status: dec.HTTPStatus, Type: typ, Code: dec.Code, Message: msg}
	}
	return dec, nil
}

// evaluate asks the policy, and keeps the account of it every decision
// gets: its id for the caller, the decision log, a logged shadow
// disagreement, the policy stage's time, and an error logged with the
// decision id.
func (g *Gateway) evaluate(ctx context.Context, x *exchange, in *policy.Input) (policy.Result, error) {
	timer := x.begin(metrics.StagePolicy, telemetry.StagePolicy)
	res, err := g.decider.Decide(ctx, *in)
	x.end(timer)
	x.decisionID = res.ID
	// A decision queued for the shadow set is logged once the shadow has
	// decided it too (policy.SetConfig.ShadowDone).
	if g.decisions != nil && !res.ShadowQueued {
		g.decisions.Record(x.ev.RequestID, res, err)
	}
	if sh := res.Shadow; sh != nil && sh.Disagrees {
		g.log.Warn("shadow policy disagrees", "request_id", x.ev.RequestID, "decision_id", res.ID,
			"enforced", outcome(res.Decision, err), "shadow", outcome(sh.Decision, sh.Err),
			"enforced_revision", res.Revision, "shadow_revision", sh.Revision)
	}
	if err != nil {
		g.log.Error("policy evaluation failed; request denied", "request_id", x.ev.RequestID, "decision_id", res.ID,
			"kind", policy.ErrorKindOf(err), "at", policy.ErrorAt(err), "revision", res.Revision, "error", err)
		g.metrics.PolicyError()
	}
	return res, err
}

// outcome sums a decision up for a log line: allowed, or the denial's
// status and code, with the limits; never an input. Fields are named as
// in the policy contract (policies/README.md), limits written as the
// policy writes them.
func outcome(d policy.Decision, err error) string { return policy.Outcome(d, err) }

// policyInput is the policy's input for a request of client: the request's
// own fields, its API and its model's upstream types, the headers the policy is configured to see, and, when the
// policy reads them, the client's and department's usage counters. The
// input pins the policy revision in force, when the decider can, so that
// every pass of the request, the reply's included, is decided by it.
func (g *Gateway) policyInput(ctx context.Context, x *exchange, h *fasthttp.RequestHeader, client policy.Client, r policy.Request) (*policy.Input, *api.Error) {
	client.PluginFailures = g.failures.count(client.ID, x.start)
	in := &policy.Input{Client: client, Request: r, Time: x.start, RequestID: x.ev.RequestID, Identity: x.identity}
	g.upstreamTypes.complete(&in.Request)
	usesUsage := g.decider.UsesUsage()
	names := defaultInputHeaders
	if p, ok := g.decider.(revisionPinner); ok {
		usesUsage = p.Pin(in)
		names = p.Headers()
	}
	if h != nil {
		for _, name := range names {
			if v := h.Peek(name); len(v) > 0 {
				if in.Request.Headers == nil {
					in.Request.Headers = make(map[string]string, 2)
				}
				in.Request.Headers[name] = headerValue(v)
			}
		}
	}
	if usesUsage {
		keys := []string{ClientScope(client.ID)}
		if client.Department != "" {
			keys = append(keys, DepartmentScope(client.Department))
		}
		used, err := g.limiter.Peek(ctx, keys...)
		if err != nil {
			g.log.Error("usage counters could not be read for the policy; request denied", "request_id", x.ev.RequestID, "error", err)
			return nil, limitsUnavailable()
		}
		in.Usage = &policy.Usage{Client: counters(used[0])}
		if len(used) > 1 {
			in.Usage.Department = counters(used[1])
		}
	}
	return in, nil
}

// revisionPinner is a Decider that can pin one revision per request and
// says which request headers its policy sees; *policy.Set is one.
type revisionPinner interface {
	Pin(in *policy.Input) (usesUsage bool)
	Headers() []string
}

// defaultInputHeaders are the request headers a Decider that does not say
// otherwise sees.
var defaultInputHeaders = policy.DefaultHeaders()

func counters(u limits.Usage) policy.Counters {
	return policy.Counters{RequestsMinute: u.MinuteRequests, TokensMinute: u.MinuteTokens, TokensToday: u.DayTokens,
		TokensMonth: u.MonthTokens, SpendMonthMicros: u.MonthNanos / nanosPerMicro}
}

func limitsUnavailable() *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable, Code: limits.CodeUnavailable,
		Message: "Rate limits and budgets cannot be checked right now; retry shortly."}
}

// scan runs the named guards over the texts and aggregates their findings by
// (guard, type) for the policy. The guards see the texts' scan view
// (normalised, and with seams where adjacent texts meet); their findings come
// back mapped to the texts as sent. Matched text never leaves this function.
func (g *Gateway) scan(ctx context.Context, x *exchange, names []string, texts []string, info []api.Text) ([]Finding, []policy.Finding, *api.Error) {
	if len(texts) == 0 {
		return nil, nil, nil
	}
	var all []Finding
	agg := newAggregator(info)
	view := scanview.New(texts, adjacent(info))
	if view.Capped() {
		g.log.Warn("request refused: a text could not be normalised within bounds", "request_id", x.ev.RequestID)
		return nil, nil, api.InvalidRequest("unscannable_text",
			"A text of the request expands too far to be checked by the guardrails; send it in its ordinary form.")
	}
	if len(names) > 0 {
		var stop func()
		ctx, stop = g.callers.watch(x.conn, x.deadline)
		defer stop()
	}
	for _, name := range names {
		gd, ok := g.guards[name]
		if !ok {
			// The policy asked for a plugin that is not loaded: a guardrail
			// that cannot run must not be skipped silently.
			g.log.Error("policy names a plugin that is not loaded", "request_id", x.ev.RequestID, "plugin", name)
			g.metrics.PluginFailed(name, metrics.FailureUnavailable)
			return nil, nil, api.GuardrailUnavailable(fmt.Sprintf("The %s guardrail is not available.", name))
		}
		found, use, err := g.runGuard(ctx, x, gd, view.Texts())
		if err != nil {
			if use.Cancelled {
				// Denied whatever the fail mode: the scan did not happen.
				return nil, nil, g.cancelled(ctx, x, name)
			}
			if gd.FailOpen {
				g.log.Warn("plugin failed; request allowed (fail_mode open)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
				continue
			}
			g.log.Error("plugin failed; request denied (fail_mode closed)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
			return nil, nil, api.GuardrailUnavailable(fmt.Sprintf("The %s guardrail could not check this request; retry shortly.", name))
		}
		found = view.Findings(found)
		all = append(all, found...)
		agg.add(name, found)
	}
	return all, agg.findings(), nil
}

// adjacent says which texts of info are neighbours whose boundary a value may
// be split across: content parts of a message and the content of consecutive
// messages. Keys and values of JSON (metadata, schemas, arguments) are not
// joined: glued together they make values that no one wrote.
func adjacent(info []api.Text) func(i int) bool {
	if len(info) < 2 {
		return nil
	}
	return func(i int) bool { return info[i].Loc == api.LocContent && info[i+1].Loc == api.LocContent }
}

// runGuard runs one guard, timed and traced, and counts its guest time
// against the client, and its failures: against the plugin when they are
// its own, and against the client too, whose request it was. A cancelled
// scan is counted apart, as no one's failure.
func (g *Gateway) runGuard(ctx context.Context, x *exchange, gd Guard, texts []string) ([]Finding, ScanUse, error) {
	start := time.Now()
	sp := x.trace.Plugin(gd.Name)
	found, use, err := gd.Scan(ctx, texts)
	g.metrics.ObservePlugin(gd.Name, time.Since(start))
	g.metrics.PluginGuestTime(gd.Name, x.ev.ClientID, use.Guest)
	switch {
	case err != nil && use.Cancelled:
		g.metrics.PluginCancelled(gd.Name)
		sp.Fail("cancelled")
	case err != nil:
		reason := metrics.FailureError
		switch {
		case errors.Is(err, plugin.ErrBusy), errors.Is(err, plugin.ErrMemoryCeiling):
			reason = metrics.FailureBusy
		case use.Fault == "timeout" || errors.Is(err, plugin.ErrTimeout):
			reason = metrics.FailureTimeout
		}
		g.metrics.PluginFailed(gd.Name, reason)
		if use.Fault != "" {
			g.failures.add(x.ev.ClientID, time.Now())
		}
		sp.Fail(string(reason))
	}
	sp.End()
	return found, use, err
}

// cancelled is the answer to a request whose scan by plugin was cancelled:
// its caller disconnected (no one reads the answer; the ledger keeps
// client_disconnected) or its deadline passed.
func (g *Gateway) cancelled(ctx context.Context, x *exchange, plugin string) *api.Error {
	if errors.Is(context.Cause(ctx), errCallerDeadline) {
		g.log.Info("request's deadline passed before its scan; request denied", "request_id", x.ev.RequestID, "plugin", plugin)
		return &api.Error{Status: http.StatusGatewayTimeout, Type: api.TypeServer, Code: "request_timeout",
			Message: fmt.Sprintf("The request's timeout passed before the %s guardrail could check it.", plugin)}
	}
	g.log.Info("caller disconnected before its scan; request dropped", "request_id", x.ev.RequestID, "plugin", plugin)
	return &api.Error{Status: statusClientClosed, Type: api.TypeInvalidRequest, Code: "client_disconnected",
		Message: "The caller disconnected before the guardrails checked the request."}
}

// statusClientClosed is the status recorded for a request whose caller
// disconnected before it was answered (nginx's 499).
const statusClientClosed = 499

// aggregator sums findings up by (plugin, type) for the policy, in time
// linear in the findings whatever a plugin returns.
type aggregator struct {
	info  []api.Text
	out   []policy.Finding
	index map[[2]string]int
	// seen marks the (finding, message) and (finding, location) pairs
	// already listed.
	seenMsg map[[2]int]bool
	seenLoc map[[2]int]bool
}

func newAggregator(info []api.Text) *aggregator {
	return &aggregator{info: info}
}

func (a *aggregator) add(plugin string, found []Finding) {
	if len(found) == 0 {
		return
	}
	if a.index == nil {
		a.index, a.seenMsg, a.seenLoc = map[[2]string]int{}, map[[2]int]bool{}, map[[2]int]bool{}
	}
	for _, f := range found {
		k := [2]string{plugin, f.Type}
		i, ok := a.index[k]
		if !ok {
			i = len(a.out)
			a.index[k] = i
			a.out = append(a.out, policy.Finding{Plugin: plugin, Type: f.Type})
		}
		p := &a.out[i]
		p.Count++
		p.Score = max(p.Score, f.Score)
		msg, loc := f.Text, api.LocContent
		if f.Text >= 0 && f.Text < len(a.info) {
			msg, loc = a.info[f.Text].Message, a.info[f.Text].Loc
		}
		if msg >= 0 && !a.seenMsg[[2]int{i, msg}] {
			a.seenMsg[[2]int{i, msg}] = true
			p.Messages = append(p.Messages, msg)
		}
		if !a.seenLoc[[2]int{i, int(loc)}] {
			a.seenLoc[[2]int{i, int(loc)}] = true
			p.Locations = append(p.Locations, loc.String())
		}
	}
}

// findings are the sums, with each one's messages and locations sorted.
func (a *aggregator) findings() []policy.Finding {
	for i := range a.out {
		slices.Sort(a.out[i].Messages)
		slices.Sort(a.out[i].Locations)
	}
	return a.out
}

// findingSummary is what the ledger keeps of findings: types and counts.
func findingSummary(fs []policy.Finding) string {
	counts := map[string]int{}
	for _, f := range fs {
		counts[f.Type] += f.Count
	}
	return typeCounts(counts, "")
}

// typeCounts writes counts per finding type as prefixTYPE:n, comma
// separated, in type order.
func typeCounts(counts map[string]int, prefix string) string {
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	slices.Sort(types)
	var b strings.Builder
	for i, t := range types {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s%s:%d", prefix, t, counts[t])
	}
	return b.String()
}
