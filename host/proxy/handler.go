package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tokens"
	"github.com/sluicehq/sluice/host/upstream"
)

// stepContext is the context of the steps a request runs through. It is not the
// fasthttp.RequestCtx: that one is cancelled as soon as a shutdown starts, and
// a request already admitted to the path should be answered, not failed,
// while the server drains.
var stepContext = context.Background()

// exchange is one request's state on its way through the path, and becomes
// its usage event at the end.
type exchange struct {
	start time.Time
	ev    store.UsageEvent
}

// Handler serves the OpenAI-compatible API on the public listener.
func (g *Gateway) Handler(ctx *fasthttp.RequestCtx) {
	x := &exchange{start: g.now()}
	x.ev.RequestID = newRequestID()
	x.ev.Endpoint = string(ctx.Path())
	ctx.Response.Header.Set("x-request-id", x.ev.RequestID)

	switch method, path := string(ctx.Method()), x.ev.Endpoint; {
	case path == "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	case path == "/v1/chat/completions" && method == fasthttp.MethodPost:
		g.serveChat(ctx, x)
	case path == "/v1/embeddings" && method == fasthttp.MethodPost:
		g.serveEmbeddings(ctx, x)
	case path == "/v1/models" && method == fasthttp.MethodGet:
		g.serveModels(ctx, x)
	case path == "/v1/chat/completions" || path == "/v1/embeddings" || path == "/v1/models":
		g.fail(ctx, x, &api.Error{Status: http.StatusMethodNotAllowed, Type: api.TypeInvalidRequest, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s %s is not supported.", method, path)})
	default:
		g.fail(ctx, x, api.NotFound(fmt.Sprintf("Sluice does not serve %s %s.", method, path)))
	}
}

// ErrorHandler answers requests that fasthttp could not read (too large,
// malformed) with an OpenAI-shaped error; set it as fasthttp.Server.ErrorHandler.
func (g *Gateway) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	x := &exchange{start: g.now()}
	x.ev.RequestID = newRequestID()
	x.ev.Endpoint = string(ctx.Path())
	ctx.Response.Header.Set("x-request-id", x.ev.RequestID)
	var aerr *api.Error
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		aerr = &api.Error{Status: http.StatusRequestEntityTooLarge, Type: api.TypeInvalidRequest, Code: "request_too_large",
			Message: "The request body is larger than this gateway accepts."}
	} else {
		aerr = api.InvalidRequest("malformed_request", "The HTTP request could not be read.")
	}
	g.fail(ctx, x, aerr)
}

// serveChat is the request path of a chat completion, in order.
func (g *Gateway) serveChat(ctx *fasthttp.RequestCtx, x *exchange) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	req, aerr := api.ParseChatRequest(ctx.PostBody())
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	x.ev.Model, x.ev.Stream = req.Model, req.Stream
	target, aerr := g.route(req.Model)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	prompt := tokens.Chat(req.Texts, req.MessageCount)
	reply := req.MaxTokens
	if reply == 0 {
		reply = g.defaultMaxTokens
	}
	reply *= req.Choices // each of n replies may use max_tokens
	in := policy.Input{
		Client: clientInput(id),
		Request: policy.Request{Method: "POST", Path: x.ev.Endpoint, Model: req.Model, Stream: req.Stream,
			MaxTokens: int(req.MaxTokens), PromptTokens: int(prompt), MessageCount: req.MessageCount},
		Time: x.start,
	}
	dec, found, aerr := g.admit(stepContext, x, &in, req.Texts, req.TextMessage)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	up, res, ok := g.forward(ctx, x, target, dec, found, req, req.Texts, prompt+reply, upstream.EndpointChat, req.Stream)
	if !ok {
		return
	}
	if up.Events != nil {
		g.stream(ctx, x, target, res, up.Events, prompt, req.IncludeUsage)
		return
	}
	g.finish(ctx, x, target, res, up, prompt)
}

// serveEmbeddings is the request path of an embeddings request.
func (g *Gateway) serveEmbeddings(ctx *fasthttp.RequestCtx, x *exchange) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	req, aerr := api.ParseEmbeddingsRequest(ctx.PostBody())
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	x.ev.Model = req.Model
	target, aerr := g.route(req.Model)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	prompt := req.InputTokens
	textIndex := make([]int, len(req.Texts))
	for i, t := range req.Texts {
		prompt += tokens.Count(t)
		textIndex[i] = i
	}
	in := policy.Input{
		Client: clientInput(id),
		Request: policy.Request{Method: "POST", Path: x.ev.Endpoint, Model: req.Model,
			PromptTokens: int(prompt), MessageCount: len(req.Texts)},
		Time: x.start,
	}
	dec, found, aerr := g.admit(stepContext, x, &in, req.Texts, textIndex)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	up, res, ok := g.forward(ctx, x, target, dec, found, req, req.Texts, prompt, upstream.EndpointEmbeddings, false)
	if !ok {
		return
	}
	g.finish(ctx, x, target, res, up, prompt)
}

// upstreamRequest is a parsed request that can be redacted and re-encoded.
type upstreamRequest interface {
	SetTexts(texts []string) error
	UpstreamBody(upstreamModel string) ([]byte, error)
}

// forward is the part of the path that every admitted model request shares:
// redact what the policy said to, reserve the estimate, send. When it returns
// false the request has been answered and recorded, and nothing is reserved.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, x *exchange, target upstream.Target, dec policy.Decision, found []Finding,
	req upstreamRequest, texts []string, estimate int64, endpoint string, stream bool) (*upstream.Reply, limits.Reservation, bool) {
	if redacted := redact(texts, found, dec.Redact); redacted != nil {
		if err := req.SetTexts(redacted); err != nil {
			g.fail(ctx, x, api.Internal("The request could not be redacted."))
			return nil, limits.Reservation{}, false
		}
	}
	res, aerr := g.reserve(ctx, x, dec, estimate)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return nil, res, false
	}
	body, err := req.UpstreamBody(target.Model.UpstreamModel)
	if err != nil {
		g.limiter.Commit(res, 0)
		g.fail(ctx, x, api.Internal("The request could not be re-encoded for the upstream."))
		return nil, res, false
	}
	up, aerr := g.send(target, &upstream.Call{Endpoint: endpoint, Body: body, Stream: stream, RequestID: x.ev.RequestID})
	if aerr != nil {
		g.limiter.Commit(res, 0)
		g.fail(ctx, x, aerr)
		return nil, res, false
	}
	return up, res, true
}

// serveModels lists the models the caller's policy allows.
func (g *Gateway) serveModels(ctx *fasthttp.RequestCtx, x *exchange) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	var b strings.Builder
	b.WriteString(`{"object":"list","data":[`)
	n := 0
	for _, m := range g.router.Models() {
		dec, err := g.decider.Decide(stepContext, policy.Input{
			Client:  clientInput(id),
			Request: policy.Request{Method: "GET", Path: x.ev.Endpoint, Model: m},
			Time:    x.start,
		})
		if err != nil {
			g.log.Error("policy evaluation failed", "request_id", x.ev.RequestID, "error", err)
			g.fail(ctx, x, api.PolicyError("The access policy could not be evaluated; the request was denied."))
			return
		}
		if !dec.Allowed {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		fmt.Fprintf(&b, `{"id":%s,"object":"model","created":0,"owned_by":"sluice"}`, strconv.Quote(m))
	}
	b.WriteString("]}")
	ctx.SetContentType("application/json")
	ctx.SetBodyString(b.String())
	x.ev.Status = http.StatusOK
	g.record(x)
}

func clientInput(id auth.Identity) policy.Client {
	return policy.Client{ID: id.Client.ID, Department: id.Client.Department, Tier: id.Client.Tier, Labels: id.Client.Labels}
}

func (g *Gateway) authenticate(ctx *fasthttp.RequestCtx, x *exchange) (auth.Identity, *api.Error) {
	key := auth.KeyFromHeaders(ctx.Request.Header.Peek("Authorization"), ctx.Request.Header.Peek("x-api-key"))
	id, err := g.auth.Authenticate(stepContext, key)
	if err != nil {
		if !errors.Is(err, auth.ErrInvalidKey) {
			g.log.Error("key lookup failed", "request_id", x.ev.RequestID, "error", err)
			return auth.Identity{}, &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable,
				Code: "auth_unavailable", Message: "Keys cannot be checked right now; retry shortly."}
		}
		return auth.Identity{}, api.InvalidAPIKey()
	}
	x.ev.ClientID, x.ev.Department, x.ev.KeyID = id.Client.ID, id.Client.Department, id.KeyID
	return id, nil
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
func (g *Gateway) admit(ctx context.Context, x *exchange, in *policy.Input, texts []string, textMessage []int) (policy.Decision, []Finding, *api.Error) {
	dec, aerr := g.decide(ctx, x, in)
	if aerr != nil {
		return dec, nil, aerr
	}
	found, aggregated, aerr := g.scan(ctx, x, dec.Plugins, texts, textMessage)
	if aerr != nil || len(aggregated) == 0 {
		return dec, nil, aerr
	}
	in.Findings = aggregated
	x.ev.Findings = findingSummary(aggregated)
	dec, aerr = g.decide(ctx, x, in)
	return dec, found, aerr
}

func (g *Gateway) decide(ctx context.Context, x *exchange, in *policy.Input) (policy.Decision, *api.Error) {
	dec, err := g.decider.Decide(ctx, *in)
	if err != nil {
		g.log.Error("policy evaluation failed", "request_id", x.ev.RequestID, "error", err)
		return dec, api.PolicyError("The access policy could not be evaluated; the request was denied.")
	}
	if !dec.Allowed {
		typ := dec.Type
		if typ == "" {
			typ = api.TypeForStatus(dec.HTTPStatus)
		}
		return dec, &api.Error{Status: dec.HTTPStatus, Type: typ, Code: dec.Code, Message: dec.Message}
	}
	return dec, nil
}

// scan runs the named guards over the texts and aggregates their findings by
// (guard, type) for the policy. Matched text never leaves this function.
func (g *Gateway) scan(ctx context.Context, x *exchange, names []string, texts []string, textMessage []int) ([]Finding, []policy.Finding, *api.Error) {
	if len(texts) == 0 {
		return nil, nil, nil
	}
	var all []Finding
	var out []policy.Finding
	for _, name := range names {
		gd, ok := g.guards[name]
		if !ok {
			// The policy asked for a plugin that is not loaded: a guardrail
			// that cannot run must not be skipped silently.
			g.log.Error("policy names a plugin that is not loaded", "request_id", x.ev.RequestID, "plugin", name)
			return nil, nil, api.GuardrailUnavailable(fmt.Sprintf("The %s guardrail is not available.", name))
		}
		found, err := gd.Scan(ctx, texts)
		if err != nil {
			if gd.FailOpen {
				g.log.Warn("plugin failed; request allowed (fail_mode open)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
				continue
			}
			g.log.Error("plugin failed; request denied (fail_mode closed)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
			return nil, nil, api.GuardrailUnavailable(fmt.Sprintf("The %s guardrail could not check this request; retry shortly.", name))
		}
		all = append(all, found...)
		out = aggregate(out, name, found, textMessage)
	}
	return all, out, nil
}

func aggregate(out []policy.Finding, guard string, found []Finding, textMessage []int) []policy.Finding {
	for _, f := range found {
		msg := f.Text
		if f.Text >= 0 && f.Text < len(textMessage) {
			msg = textMessage[f.Text]
		}
		i := slices.IndexFunc(out, func(p policy.Finding) bool { return p.Plugin == guard && p.Type == f.Type })
		if i < 0 {
			out = append(out, policy.Finding{Plugin: guard, Type: f.Type})
			i = len(out) - 1
		}
		p := &out[i]
		p.Count++
		p.Score = max(p.Score, f.Score)
		if !slices.Contains(p.Messages, msg) {
			p.Messages = append(p.Messages, msg)
		}
	}
	return out
}

// findingSummary is what the ledger keeps of findings: types and counts.
func findingSummary(fs []policy.Finding) string {
	counts := map[string]int{}
	for _, f := range fs {
		counts[f.Type] += f.Count
	}
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
		fmt.Fprintf(&b, "%s:%d", t, counts[t])
	}
	return b.String()
}

func (g *Gateway) reserve(ctx *fasthttp.RequestCtx, x *exchange, dec policy.Decision, estimate int64) (limits.Reservation, *api.Error) {
	for k, v := range dec.Headers {
		ctx.Response.Header.Set(k, v)
	}
	lim := limits.Limits{RPM: dec.Limits.RPM, DailyTokens: dec.Limits.DailyTokens}
	res, st, denial := g.limiter.Reserve("client:"+x.ev.ClientID, lim, estimate)
	st.Headers(func(k, v string) { ctx.Response.Header.Set(k, v) })
	if denial != nil {
		ctx.Response.Header.Set("retry-after", denial.RetryAfterSeconds())
		if denial.IsBudget() {
			return res, api.BudgetExceeded(denial.Error())
		}
		return res, api.RateLimited(denial.Error())
	}
	return res, nil
}

// send calls the upstream. The call does not use the request's context: a
// stream outlives the handler, and nothing of a fasthttp.RequestCtx may be used
// after it returns. The upstream's own timeout bounds the call.
func (g *Gateway) send(t upstream.Target, call *upstream.Call) (*upstream.Reply, *api.Error) {
	up, err := t.Upstream.Send(context.Background(), call)
	switch {
	case errors.Is(err, upstream.ErrTimeout):
		return nil, api.UpstreamTimeout(fmt.Sprintf("The upstream for %s did not answer in time.", t.Model.Name))
	case err != nil:
		g.log.Warn("upstream failed", "request_id", call.RequestID, "model", t.Model.Name, "error", err)
		return nil, api.UpstreamError(fmt.Sprintf("The upstream for %s could not be reached.", t.Model.Name))
	case up.Status >= 500:
		if up.Events != nil {
			up.Events.Close()
		}
		return nil, api.UpstreamError(fmt.Sprintf("The upstream for %s failed with status %d.", t.Model.Name, up.Status))
	case up.Status == http.StatusUnauthorized || up.Status == http.StatusForbidden || up.Status == http.StatusTooManyRequests:
		// The provider refused Sluice's own credentials or quota. Passed on
		// as they are, its invalid_api_key or insufficient_quota would make the
		// caller's SDK blame the caller's key or budget.
		g.log.Warn("upstream refused the gateway", "request_id", call.RequestID, "model", t.Model.Name, "status", up.Status)
		return nil, api.UpstreamError(fmt.Sprintf("The upstream for %s refused the gateway's request (status %d); this is not a problem with your key.", t.Model.Name, up.Status))
	}
	return up, nil
}

// finish answers a non-streamed reply and reconciles its usage.
func (g *Gateway) finish(ctx *fasthttp.RequestCtx, x *exchange, t upstream.Target, res limits.Reservation, up *upstream.Reply, prompt int64) {
	ctx.SetStatusCode(up.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(up.Body)
	x.ev.Status = up.Status
	if up.Status != http.StatusOK {
		// An upstream 4xx (context too long, its own rate limit…) is passed
		// back as it came; it used no tokens.
		g.limiter.Commit(res, 0)
		x.ev.Code = "upstream_" + strconv.Itoa(up.Status)
		g.record(x)
		return
	}
	u, ok := api.ParseUsage(up.Body)
	if ok {
		x.ev.UsageSource = store.UsageUpstream
	} else {
		u = api.Usage{PromptTokens: prompt, TotalTokens: prompt}
		x.ev.UsageSource = store.UsageEstimated
	}
	g.limiter.Commit(res, u.TotalTokens)
	g.charge(x, t, u)
	g.record(x)
}

// stream passes an upstream stream to the caller event by event. The usage
// chunk Sluice asked for is passed on only if the caller asked for it too.
func (g *Gateway) stream(ctx *fasthttp.RequestCtx, x *exchange, t upstream.Target, res limits.Reservation,
	events upstream.Events, prompt int64, callerWantsUsage bool) {
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	x.ev.Status = http.StatusOK
	// Nothing of ctx may be used inside the writer: it runs after this
	// handler has returned.
	g.streams.Add(1)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer g.streams.Done()
		defer events.Close()
		var usage api.Usage
		var haveUsage bool
		var text strings.Builder
		ended := false
		for {
			data, err := events.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					ended = true
				} else {
					g.log.Warn("upstream stream broke", "request_id", x.ev.RequestID, "model", t.Model.Name, "error", err)
					x.ev.Code = "upstream_stream_error"
					writeEvent(w, api.UpstreamError("The upstream stream ended early.").Body())
					w.Flush()
				}
				break
			}
			chunk, ok := api.ParseStreamChunk(data)
			if ok {
				text.WriteString(chunk.Content)
				if chunk.HasUsage {
					usage, haveUsage = chunk.Usage, true
					if chunk.NoChoices && !callerWantsUsage {
						continue
					}
				}
			}
			writeEvent(w, data)
			if w.Flush() != nil {
				x.ev.Code = "client_disconnected"
				break
			}
		}
		if ended {
			w.WriteString("data: [DONE]\n\n")
			if w.Flush() != nil {
				x.ev.Code = "client_disconnected"
			}
		}
		if haveUsage {
			x.ev.UsageSource = store.UsageUpstream
		} else {
			// An upstream that ignores stream_options: count what it sent.
			c := tokens.Count(text.String())
			usage = api.Usage{PromptTokens: prompt, CompletionTokens: c, TotalTokens: prompt + c}
			x.ev.UsageSource = store.UsageEstimated
		}
		g.limiter.Commit(res, usage.TotalTokens)
		g.charge(x, t, usage)
		g.record(x)
	})
}

func writeEvent(w *bufio.Writer, data []byte) {
	w.WriteString("data: ")
	w.Write(data)
	w.WriteString("\n\n")
}

func (g *Gateway) charge(x *exchange, t upstream.Target, u api.Usage) {
	x.ev.PromptTokens, x.ev.CompletionTokens, x.ev.TotalTokens = u.PromptTokens, u.CompletionTokens, u.TotalTokens
	x.ev.CostMicros = t.Model.CostMicros(u.PromptTokens, u.CompletionTokens)
}

// fail answers with an OpenAI-shaped error and records the request.
func (g *Gateway) fail(ctx *fasthttp.RequestCtx, x *exchange, e *api.Error) {
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(e.Body())
	x.ev.Status, x.ev.Code = e.Status, e.Code
	g.record(x)
}

func (g *Gateway) record(x *exchange) {
	x.ev.Time = g.now()
	x.ev.LatencyMS = x.ev.Time.Sub(x.start).Milliseconds()
	if x.ev.UsageSource == "" {
		x.ev.UsageSource = store.UsageNone
	}
	g.recorder.Record(x.ev)
	if g.accessLog {
		g.logAccess(&x.ev)
	}
}

// logAccess writes the request's access line: what the ledger holds, which
// by construction has no prompt text, no matched value and no key.
func (g *Gateway) logAccess(ev *store.UsageEvent) {
	g.log.LogAttrs(stepContext, slog.LevelInfo, "request",
		slog.String("request_id", ev.RequestID),
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
		slog.Int64("cost_micros", ev.CostMicros),
		slog.String("usage_source", ev.UsageSource),
		slog.Int64("latency_ms", ev.LatencyMS),
	)
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
