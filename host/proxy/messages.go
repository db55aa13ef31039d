package proxy

import (
	"bufio"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/tokens"
	"github.com/sluicehq/sluice/host/translate"
	"github.com/sluicehq/sluice/host/upstream"
)

// Anthropic's Messages API is served like the Responses API: the request's
// texts are collected from the Messages body itself (every member, by
// exclusion) for the plugins and the policy, redacted in place, and only
// then translated into a chat completion for whichever upstream serves the
// model. The reply goes through the reply guardrails as a chat completion,
// whole or chunk by chunk, and only what they let through is translated
// into a Message or its events. Every error, a guardrail's or a budget's
// included, is written in Anthropic's shape.

const (
	pathMessages    = "/v1/messages"
	pathCountTokens = "/v1/messages/count_tokens"
)

// serveMessagesRoute serves POST /v1/messages and
// /v1/messages/count_tokens, and refuses other methods there.
func (g *Gateway) serveMessagesRoute(ctx *fasthttp.RequestCtx, x *exchange, method string) {
	// Anthropic's SDKs read the request id from request-id.
	ctx.Response.Header.Set("request-id", x.ev.RequestID)
	switch {
	case method != fasthttp.MethodPost:
		g.fail(ctx, x, &api.Error{Status: http.StatusMethodNotAllowed, Type: api.TypeInvalidRequest, Code: "method_not_allowed",
			Message: method + " " + x.ev.Endpoint + " is not supported."})
	case x.ev.Endpoint == pathCountTokens:
		g.serveCountTokens(ctx, x)
	default:
		g.serveMessages(ctx, x)
	}
}

// anthropicAPI reports whether x is a request of Anthropic's API, whose
// errors are written in its shape.
func (x *exchange) anthropicAPI() bool {
	return x.ev.Endpoint == pathMessages || x.ev.Endpoint == pathCountTokens
}

// writeError writes e as the body of the reply, in the shape of x's API,
// and returns the status the caller got.
func (x *exchange) writeError(ctx *fasthttp.RequestCtx, e *api.Error) int {
	status, body := e.Status, []byte(nil)
	if x.anthropicAPI() {
		status, body = translate.MessagesError(e)
		// Anthropic's error has no code: Sluice's (budget_exceeded or
		// rate_limit_exceeded, pii_detected…) is told in a header.
		ctx.Response.Header.Set("x-sluice-error-code", e.Code)
	} else {
		body = e.Body()
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	return status
}

// anthropicHeaders checks the headers of Anthropic's API. anthropic-version,
// when sent, must be a version date: every version keeps the wire format of
// 2023-06-01 that Sluice reads, and an upstream gets the version of the
// request it is sent (2023-06-01), not the caller's. anthropic-beta is
// refused, since no beta feature is carried through the gateway.
func anthropicHeaders(h *fasthttp.RequestHeader) *api.Error {
	if v := h.Peek("anthropic-version"); len(v) > 0 && !isDate(v) {
		return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "invalid_value", Param: "anthropic-version",
			Message: "anthropic-version must be a version date such as " + translate.AnthropicVersion + "."}
	}
	if len(h.Peek("anthropic-beta")) > 0 {
		return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: translate.Unsupported, Param: "anthropic-beta",
			Message: "anthropic-beta is not supported: Sluice carries no beta feature of the Messages API. Send the request without it."}
	}
	return nil
}

// serveMessages is the request path of a Messages API request, in the
// same order as serveChat's.
func (g *Gateway) serveMessages(ctx *fasthttp.RequestCtx, x *exchange) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	if aerr := anthropicHeaders(&ctx.Request.Header); aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	parsed := time.Now()
	req, aerr := api.ParseMessagesRequest(ctx.PostBody())
	if aerr != nil {
		x.stages[metrics.StageParse] = time.Since(parsed)
		g.fail(ctx, x, aerr)
		return
	}
	x.ev.Model, x.ev.Stream = req.Model, req.Stream
	target, aerr := g.route(req.Model)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	// What a chat completion cannot carry is refused before anything is
	// decided or scanned.
	call := &messagesCall{req: req, model: target.Model.UpstreamModel, maxTokens: req.MaxTokens}
	call.body, aerr = translate.MessagesToChat(req.Body(), call.model, call.maxTokens)
	x.stages[metrics.StageParse] = time.Since(parsed)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	prompt, pr := messagesRequest(req, pathMessages)
	a := ask{model: target.Model, prompt: prompt, choices: 1}
	up, res, ok := g.admitAndForward(ctx, x, id, &target, pr, call, req.Texts, req.TextInfo, a, upstream.EndpointChat, req.Stream)
	if !ok {
		return
	}
	meta := translate.NewMessagesMeta(req.Model, prompt)
	if up.Events != nil {
		x.shape = &messagesShape{meta: meta, events: translate.NewMessagesStream(meta)}
		// The usage chunk is the Message's usage: it is always read.
		g.stream(ctx, x, target, res, up.Events, prompt, true)
		return
	}
	x.shape = &messagesShape{meta: meta}
	g.finish(ctx, x, target, res, up, prompt)
}

// serveCountTokens answers /v1/messages/count_tokens with the gateway's
// own count of the prompt: the caller is authenticated, the policy is asked
// whether it may use the model, and the request counts against its
// requests per minute, but nothing is scanned (no text leaves the
// gateway), reserved or billed.
func (g *Gateway) serveCountTokens(ctx *fasthttp.RequestCtx, x *exchange) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	if aerr := anthropicHeaders(&ctx.Request.Header); aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	parsed := time.Now()
	req, aerr := api.ParseCountTokensRequest(ctx.PostBody())
	if aerr == nil {
		// The same refusals as a Messages request: a count of what could
		// not be sent would mislead.
		_, aerr = translate.MessagesToChat(req.Body(), req.Model, 0)
	}
	x.stages[metrics.StageParse] = time.Since(parsed)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	x.ev.Model = req.Model
	if _, aerr := g.route(req.Model); aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	prompt, pr := messagesRequest(req, pathCountTokens)
	prompt = g.upstreamTypes.estimate(req.Model, prompt) // as policyInput shows it
	in, aerr := g.policyInput(stepContext, x, &ctx.Request.Header, clientInput(id), pr)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	x.in = in
	dec, aerr := g.decide(stepContext, x, in)
	if aerr != nil {
		g.fail(ctx, x, g.countRefusal(stepContext, x, dec, aerr))
		return
	}
	if x.decisionID != "" {
		ctx.Response.Header.Set("x-sluice-decision-id", x.decisionID)
	}
	res, out, err := g.limiter.Reserve(stepContext, g.rpmScopes(x, dec), limits.Cost{})
	if err != nil {
		g.log.Error("limits could not be checked; request denied", "request_id", x.ev.RequestID, "error", err)
		g.fail(ctx, x, limitsUnavailable())
		return
	}
	out.SetHeaders(&ctx.Response.Header)
	if out.Denial != nil {
		g.fail(ctx, x, api.RateLimited(out.Denial.Error()))
		return
	}
	g.limiter.Commit(res, limits.Cost{})
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"input_tokens":` + strconv.FormatInt(prompt, 10) + `}`)
	x.ev.Status = http.StatusOK
	g.record(x)
}

// messagesRequest counts a Messages request's prompt tokens and says what
// the policy sees of it. As for a chat request, URLs and image data are not
// counted as text.
func messagesRequest(req *api.MessagesRequest, path string) (prompt int64, r policy.Request) {
	prompt = tokens.Chat(countedTexts(req.Texts, req.TextInfo), req.MessageCount)
	return prompt, policy.Request{Method: "POST", Path: path, Model: req.Model, Stream: req.Stream,
		MaxTokens: int(req.MaxTokens), PromptTokens: int(prompt), MessageCount: req.MessageCount}
}

// messagesCall is a Messages request on its way upstream: its texts are
// the Messages body's, and its upstream body is the chat completion that
// body translates to once redacted.
type messagesCall struct {
	req *api.MessagesRequest
	// body is the translation of req for model with maxTokens, nil once
	// the texts change.
	body      []byte
	model     string
	maxTokens int64
}

// LowerMaxTokens lowers max_tokens, which the next UpstreamBody translates.
func (c *messagesCall) LowerMaxTokens(n int64) bool { return c.req.LowerMaxTokens(n) }

// ReplyLimit is max_tokens.
func (c *messagesCall) ReplyLimit() int64 { return c.req.MaxTokens }

func (c *messagesCall) SetTexts(texts []string) error {
	c.body = nil
	return c.req.SetTexts(texts)
}

func (c *messagesCall) UpstreamBody(upstreamModel string) ([]byte, error) {
	if c.body != nil && c.model == upstreamModel && c.maxTokens == c.req.MaxTokens {
		return c.body, nil
	}
	body, aerr := translate.MessagesToChat(c.req.Body(), upstreamModel, c.req.MaxTokens)
	if aerr != nil {
		return nil, aerr
	}
	c.body, c.model, c.maxTokens = body, upstreamModel, c.req.MaxTokens
	return body, nil
}

// messagesShape writes Messages and their events.
type messagesShape struct {
	meta   translate.MessagesMeta
	events *translate.MessagesStream
}

func (s *messagesShape) body(chat []byte) ([]byte, error) {
	return translate.ChatToMessage(chat, s.meta)
}

// chunk writes a chunk's events. A chunk that is not a chat completion
// chunk is left out: what the translation cannot read, the caller does not
// get.
func (s *messagesShape) chunk(w *bufio.Writer, data []byte) {
	evs, err := s.events.Chunk(data)
	if err != nil {
		return
	}
	writeNamed(w, evs)
}

func (s *messagesShape) end(w *bufio.Writer) { writeNamed(w, s.events.End()) }

func (s *messagesShape) fail(w *bufio.Writer, e *api.Error) { writeNamed(w, s.events.Fail(e)) }

// isDate reports whether v has the form of a date, YYYY-MM-DD.
func isDate(v []byte) bool {
	_, err := time.Parse(time.DateOnly, string(v))
	return err == nil
}
