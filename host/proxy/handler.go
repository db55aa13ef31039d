package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/redact"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/telemetry"
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
	// in and dec are the policy input and the decision the request was
	// admitted with; the reply phase asks the policy again with the reply's
	// findings.
	in  *policy.Input
	dec policy.Decision
	// replyMask lists the finding types of the reply the policy redacts;
	// any other finding in the reply blocks it.
	replyMask []string
	// replyInfo says where each text of a whole reply sits, for the
	// findings the policy sees of it.
	replyInfo []api.Text
	// decisionID is the last policy decision's id, returned to the caller
	// in x-sluice-decision-id.
	decisionID string
	scopes     [3]limits.Scope
	// key is the scope of the caller's key: its own limits and models.
	key store.KeyScope
	// identity is how the caller authenticated, as the policy sees it.
	identity *policy.Identity
	// vault holds what redaction replaced, to restore it in the reply. It
	// lives as long as the request and is never logged.
	vault redact.Vault
	// stages is the time spent in each step, for the metrics; trace is the
	// request's span.
	stages metrics.Stages
	// stageAttrs is where the access line's stages are written.
	stageAttrs [numStageAttrs]slog.Attr
	trace      telemetry.Request
	// upstreamSpan lasts from sending to the upstream (at sent) to the end
	// of its reply.
	upstreamSpan telemetry.Span
	sent         time.Time
	abuse        abuseState
	// shape writes the reply in the caller's API when that is not chat
	// completions (responses.go); nil writes it as it came.
	shape replyShape
	// conn is the caller's connection and deadline when it gives up (zero:
	// none), for cancelling the request's scans; conn is used only while
	// the handler runs.
	conn     net.Conn
	deadline time.Time
	// prompt is the request's prompt tokens as counted here.
	prompt int64
	// quota is the request's charge to the provider quota of the
	// deployment that answered it, committed with its tokens when the
	// request is recorded.
	quota limits.Reservation
}

// stageTimer times one step of the path as a stage, from begin to end.
type stageTimer struct {
	stage metrics.Stage
	start time.Time
	span  telemetry.Span
}

// begin starts a stage: end adds its time to the stage's total, and it gets
// a span of its own when tracing is on. A pair of calls rather than a
// returned closure, which would be allocated per stage per request.
func (x *exchange) begin(stage metrics.Stage, span string) stageTimer {
	return stageTimer{stage: stage, start: time.Now(), span: x.trace.Stage(span)}
}

func (x *exchange) end(t stageTimer) {
	x.stages[t.stage] += time.Since(t.start)
	t.span.End()
}

const (
	pathChat       = "/v1/chat/completions"
	pathEmbeddings = "/v1/embeddings"
	pathModels     = "/v1/models"
)

// route is a request path as a span may name it: one of Sluice's
// endpoints, or "" for anything a caller made up.
func route(path string) string {
	switch path {
	case pathChat, pathEmbeddings, pathModels, pathModel, pathResponses, pathResponseByID, pathCompletions, pathMessages, pathCountTokens:
		return path
	}
	return ""
}

// Handler serves the OpenAI-compatible API on the public listener.
func (g *Gateway) Handler(ctx *fasthttp.RequestCtx) {
	x := &exchange{start: g.now()}
	x.ev.RequestID = newRequestID()
	x.ev.Endpoint = string(ctx.Path())
	ctx.Response.Header.Set("x-request-id", x.ev.RequestID)
	method := string(ctx.Method())
	x.trace = g.tracer.Start(&ctx.Request.Header, method, route(x.ev.Endpoint), x.ev.RequestID)
	if g.ipRefused(ctx, x) {
		return
	}
	x.conn, x.deadline = ctx.Conn(), callerDeadline(&ctx.Request.Header, x.start)

	switch path := x.ev.Endpoint; {
	case path == "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	case path == pathChat && method == fasthttp.MethodPost:
		g.serveChat(ctx, x)
	case path == pathEmbeddings && method == fasthttp.MethodPost:
		g.serveEmbeddings(ctx, x)
	case path == pathModels && method == fasthttp.MethodGet:
		g.serveModels(ctx, x)
	case strings.HasPrefix(path, pathModels+"/") && method == fasthttp.MethodGet:
		id, _ := modelID(path)
		x.ev.Endpoint = pathModel
		g.serveModel(ctx, x, id)
	case path == pathResponses && method == fasthttp.MethodPost:
		g.serveResponses(ctx, x)
	case path == pathCompletions && method == fasthttp.MethodPost:
		g.serveCompletions(ctx, x)
	case path == pathMessages || path == pathCountTokens:
		g.serveMessagesRoute(ctx, x, method)
	case storedResponseRoute(method, path):
		x.ev.Endpoint = pathResponseByID
		g.serveStoredResponse(ctx, x)
	case path == pathChat || path == pathEmbeddings || path == pathModels || path == pathResponses || path == pathCompletions:
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
	if g.ipRefused(ctx, x) {
		return
	}
	var aerr *api.Error
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// The body was not read: the connection must drain it as it
		// closes, or the caller may see a reset instead of this answer.
		if c, ok := ctx.Conn().(interface{ LingerOnClose() }); ok {
			c.LingerOnClose()
		}
		aerr = &api.Error{Status: http.StatusRequestEntityTooLarge, Type: api.TypeInvalidRequest, Code: "request_too_large",
			Message: "The request body is larger than this gateway accepts."}
	} else {
		aerr = api.InvalidRequest("malformed_request", "The HTTP request could not be read.")
	}
	g.fail(ctx, x, aerr)
}

// serveChat is the request path of a chat completion, in order.
func (g *Gateway) serveChat(ctx *fasthttp.RequestCtx, x *exchange) {
	g.serveAsChat(ctx, x, api.ParseChatRequest, pathChat, nil)
}

// serveAsChat is the request path of a request that is, or parses into, a
// chat completion: parse reads the body, path is the API the policy sees,
// and shape, when not nil, writes the reply in the caller's API.
func (g *Gateway) serveAsChat(ctx *fasthttp.RequestCtx, x *exchange, parse func([]byte) (*api.ChatRequest, *api.Error),
	path string, shape func(model string, start time.Time) replyShape) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	parsed := time.Now()
	req, aerr := parse(ctx.PostBody())
	x.stages[metrics.StageParse] = time.Since(parsed)
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
	prompt, pr := chatRequest(req)
	pr.Path = path
	a := ask{model: target.Model, prompt: prompt, choices: req.Choices, open: req.MaxTokens == 0}
	up, res, ok := g.admitAndForward(ctx, x, id, &target, pr, req, req.Texts, req.TextInfo, a, upstream.EndpointChat, req.Stream)
	if !ok {
		return
	}
	if shape != nil {
		x.shape = shape(req.Model, x.start)
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
	parsed := time.Now()
	req, aerr := api.ParseEmbeddingsRequest(ctx.PostBody())
	x.stages[metrics.StageParse] = time.Since(parsed)
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
	if err := req.DecodeTokens(func(ids []int) (string, error) { return tokens.Decode(target.Model.UpstreamModel, ids) },
		func(text string) []int { return tokens.Encode(target.Model.UpstreamModel, text) }); err != nil {
		g.fail(ctx, x, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "invalid_value", Param: "input",
			Message: "input holds a token id that the model's encoding does not have."})
		return
	}
	prompt, textIndex, pr := embeddingsRequest(req)
	a := ask{model: target.Model, prompt: prompt}
	up, res, ok := g.admitAndForward(ctx, x, id, &target, pr, req, req.Texts, textIndex, a, upstream.EndpointEmbeddings, false)
	if !ok {
		return
	}
	g.finish(ctx, x, target, res, up, prompt)
}

// chatRequest counts a chat request's prompt tokens and says what the policy
// sees of it. URLs and file data are not counted as text: a model reads an
// image or a file by other rules, and a data URL counted as text would
// reserve a budget's worth for one picture.
func chatRequest(req *api.ChatRequest) (prompt int64, r policy.Request) {
	prompt = tokens.Chat(countedTexts(req.Texts, req.TextInfo), req.MessageCount)
	return prompt, policy.Request{Method: "POST", Path: pathChat, Model: req.Model, Stream: req.Stream,
		MaxTokens: int(req.MaxTokens), PromptTokens: int(prompt), MessageCount: req.MessageCount}
}

// countedTexts are the texts of a request that count as prompt tokens: all
// but URLs and file data, which a model reads by other rules. texts itself
// when it holds none of those.
func countedTexts(texts []string, info []api.Text) []string {
	notPrompt := func(l api.Location) bool { return l == api.LocURL || l == api.LocFile }
	for i, t := range info {
		if !notPrompt(t.Loc) {
			continue
		}
		out := slices.Clone(texts[:i])
		for j := i + 1; j < len(texts); j++ {
			if !notPrompt(info[j].Loc) {
				out = append(out, texts[j])
			}
		}
		return out
	}
	return texts
}

// embeddingsRequest counts an embeddings request's input tokens, says where
// each text sits (its own input), and says what the policy sees of it.
// Token-array inputs are counted as sent, not as decoded.
func embeddingsRequest(req *api.EmbeddingsRequest) (prompt int64, info []api.Text, r policy.Request) {
	prompt = req.InputTokens
	info = make([]api.Text, len(req.Texts))
	for i, t := range req.Texts {
		if req.TokenArrays == 0 {
			prompt += tokens.Count(t)
		}
		info[i] = api.Text{Loc: api.LocInput, Message: i}
	}
	return prompt, info, policy.Request{Method: "POST", Path: pathEmbeddings, Model: req.Model,
		PromptTokens: int(prompt), MessageCount: len(req.Texts), TokenArrays: req.TokenArrays}
}

// upstreamRequest is a parsed request that can be redacted and re-encoded.
type upstreamRequest interface {
	SetTexts(texts []string) error
	UpstreamBody(upstreamModel string) ([]byte, error)
}

// replyLimited is a request whose reply limit Sluice can set.
type replyLimited interface {
	LowerMaxTokens(n int64) bool
	// ReplyLimit is the reply limit per choice the upstream will be sent;
	// 0 when there is none.
	ReplyLimit() int64
}

// admitAndForward is the part of the path every model request shares once
// it is parsed and routed: the policy's input, the policy and the guards
// (admit), the policy's reply cap, then forward. texts and info are the
// request's texts and where each sits; a is what the request asks to
// reserve, its reply filled in here. When it returns false the request has
// been answered and recorded.
func (g *Gateway) admitAndForward(ctx *fasthttp.RequestCtx, x *exchange, id auth.Identity, target *upstream.Target, pr policy.Request,
	req upstreamRequest, texts []string, info []api.Text, a ask, endpoint string, stream bool) (*upstream.Reply, limits.Reservation, bool) {
	// Counted in o200k_base, the prompt is reserved in the tokenizer family
	// of the model's provider, as policyInput shows it to the policy.
	a.prompt = g.upstreamTypes.estimate(target.Model.Name, a.prompt)
	x.prompt = a.prompt
	in, aerr := g.policyInput(stepContext, x, &ctx.Request.Header, clientInput(id), pr)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return nil, limits.Reservation{}, false
	}
	x.in = in
	dec, found, aerr := g.admit(stepContext, x, in, texts, info)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return nil, limits.Reservation{}, false
	}
	if r, ok := req.(replyLimited); ok {
		r.LowerMaxTokens(dec.MaxTokens) // the policy's cap: the upstream gets it, and the reservation follows
		if a.reply = r.ReplyLimit(); a.reply == 0 {
			a.reply = g.defaultMaxTokens
		}
	}
	return g.forward(ctx, x, target, dec, found, req, texts, a, endpoint, stream)
}

// forward is the part of the path that every admitted model request shares:
// redact what the policy said to, reserve what a asks, send. When it returns
// false the request has been answered and recorded, and nothing is reserved.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, x *exchange, target *upstream.Target, dec policy.Decision, found []Finding,
	req upstreamRequest, texts []string, a ask, endpoint string, stream bool) (*upstream.Reply, limits.Reservation, bool) {
	x.dec = dec
	if x.decisionID != "" {
		ctx.Response.Header.Set("x-sluice-decision-id", x.decisionID)
	}
	if redacted := x.vault.Redact(texts, found, dec.Redact); redacted != nil {
		if err := req.SetTexts(redacted); err != nil {
			g.fail(ctx, x, api.Internal("The request could not be redacted."))
			return nil, limits.Reservation{}, false
		}
	}
	timer := x.begin(metrics.StageLimits, telemetry.StageLimits)
	res, a, aerr := g.reserve(ctx, x, dec, a)
	x.end(timer)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return nil, res, false
	}
	if r, ok := req.(replyLimited); ok && a.open && spendsTokens(g.scopes(x, dec)) {
		// The caller set no reply limit: the provider is told the one the
		// budget reserved, so it cannot generate (and bill) past it.
		r.LowerMaxTokens(a.reply)
	}
	x.sent = time.Now()
	x.upstreamSpan = x.trace.Stage(telemetry.StageUpstream)
	// A caller that closes its connection while the upstream is silent
	// ends the upstream call.
	hung := watchHangup(g.stopping, ctx.Conn())
	up, aerr := g.sendCached(hung.context(), &ctx.Response.Header, x, target, &upstream.Call{Endpoint: endpoint, Stream: stream, RequestID: x.ev.RequestID,
		Trace: x.upstreamSpan.Inject, CallerHeaders: &ctx.Request.Header}, req.UpstreamBody, res.Cost().Tokens)
	hung.stop()
	if up != nil {
		for _, h := range up.Headers {
			ctx.Response.Header.Set(h.Name, h.Value)
		}
	}
	x.stages[metrics.StageUpstream] = time.Since(x.sent) // a stream's first event comes later; see stream
	if aerr == errAbandoned || aerr == errShutdown {
		g.abandoned(ctx, x, *target, res, aerr)
		return nil, res, false
	}
	if aerr != nil {
		x.upstreamSpan.Fail(aerr.Code)
		g.limiter.Commit(res, limits.Cost{})
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
	// One input, so one policy revision and the same headers, for every model.
	in, aerr := g.policyInput(stepContext, x, &ctx.Request.Header, clientInput(id), policy.Request{Method: "GET", Path: x.ev.Endpoint})
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	var b strings.Builder
	b.WriteString(`{"object":"list","data":[`)
	n := 0
	for _, m := range g.router.Models() {
		in.Request.Model = m
		g.upstreamTypes.complete(&in.Request)
		res, err := g.evaluate(stepContext, x, in)
		if err != nil {
			g.fail(ctx, x, api.PolicyError("The access policy could not be evaluated; the request was denied."))
			return
		}
		if !res.Decision.Allowed || !keyAllows(x.key, m) {
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

// reserve reserves what a asks of every scope of the request, or says why
// not. An open ask that a budget cannot hold whole is retried with the reply
// that budget has left; the ask returned is the one reserved.
func (g *Gateway) reserve(ctx *fasthttp.RequestCtx, x *exchange, dec policy.Decision, a ask) (limits.Reservation, ask, *api.Error) {
	for k, v := range dec.Headers {
		ctx.Response.Header.Set(k, v)
	}
	scopes := g.scopes(x, dec)
	for shrinks := 0; ; shrinks++ {
		res, out, err := g.limiter.Reserve(stepContext, scopes, a.cost())
		if err != nil {
			g.log.Error("limits could not be checked; request denied", "request_id", x.ev.RequestID, "error", err)
			return res, a, limitsUnavailable()
		}
		d := out.Denial
		if d != nil && shrinks < maxShrinks {
			if smaller, ok := a.shrink(d); ok {
				a = smaller
				continue
			}
		}
		out.SetHeaders(&ctx.Response.Header)
		if d == nil {
			return res, a, nil
		}
		if d.IsBudget() {
			return res, a, api.BudgetExceeded(d.Error())
		}
		return res, a, api.RateLimited(d.Error())
	}
}

// spendsTokens reports whether any of scopes limits tokens or money, so that
// a reply without a limit could spend past what was reserved.
func spendsTokens(scopes []limits.Scope) bool {
	for _, s := range scopes {
		if l := s.Limits; l.TPM > 0 || l.DailyTokens > 0 || l.MonthlyTokens > 0 || l.MonthlyNanos > 0 {
			return true
		}
	}
	return false
}

// scopes are the levels a request must fit: its client, its department
// when it has one, and its key when the key has limits of its own.
func (g *Gateway) scopes(x *exchange, dec policy.Decision) []limits.Scope {
	scopes := append(x.scopes[:0], limits.Scope{Name: "client", Key: ClientScope(x.ev.ClientID), Limits: limitsOf(dec.Limits)})
	if x.ev.Department != "" {
		scopes = append(scopes, limits.Scope{Name: "department", Key: DepartmentScope(x.ev.Department), Limits: limitsOf(dec.DepartmentLimits)})
	}
	if l := x.key.Limits; l.Any() {
		scopes = append(scopes, limits.Scope{Name: "key", Key: KeyScope(x.ev.KeyID),
			Limits: limits.Limits{RPM: l.RPM, TPM: l.TPM, DailyTokens: l.DailyTokens, MonthlyTokens: l.MonthlyTokens, MonthlyNanos: l.MonthlyNanos}})
	}
	return scopes
}

// ClientScope and DepartmentScope are the limiter keys of a client and of a
// department; a server seeding an in-process limiter uses the same.
func ClientScope(id string) string       { return "client:" + id }
func DepartmentScope(dept string) string { return "dept:" + dept }

// KeyScope is the limiter key of an API key's own limits.
func KeyScope(keyID string) string { return "key:" + keyID }

func limitsOf(l policy.Limits) limits.Limits {
	return limits.Limits{RPM: l.RPM, TPM: l.TPM, DailyTokens: l.DailyTokens, MonthlyTokens: l.MonthlyTokens, MonthlyNanos: microsToNanos(l.MonthlySpendMicros)}
}
