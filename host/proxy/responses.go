package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/tokens"
	"github.com/sluicehq/sluice/host/translate"
	"github.com/sluicehq/sluice/host/upstream"
)

// OpenAI's Responses API is served on the chat completion's path: the
// request's texts are collected from the Responses body itself (every
// member, by exclusion) for the plugins and the policy, redacted in place,
// and only then translated into a chat completion for the upstream. The
// upstream's reply goes through the reply guardrails as a chat completion,
// whole or chunk by chunk, and only what they let through is translated
// into a Response or its events. Sluice does not store responses.

const (
	pathResponses = "/v1/responses"
	// pathResponseByID stands for /v1/responses/{id} and what lies under
	// it, in the ledger and the metrics: the id is the caller's string.
	pathResponseByID = "/v1/responses/{id}"
)

// serveResponses is the request path of a Responses API request, in the
// same order as serveChat's.
func (g *Gateway) serveResponses(ctx *fasthttp.RequestCtx, x *exchange) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	parsed := time.Now()
	req, aerr := api.ParseResponsesRequest(ctx.PostBody())
	if aerr != nil {
		if aerr.Param == "input" {
			if r := translate.Refusal(ctx.PostBody()); r != nil {
				aerr = r
			}
		}
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
	// decided or scanned. The translation is kept for the upstream unless
	// redaction or the policy's max_tokens changes the request.
	call := &responsesCall{req: req, model: target.Model.UpstreamModel, maxTokens: req.MaxOutputTokens}
	call.body, call.echo, aerr = translate.ResponsesToChat(req.Body(), call.model, call.maxTokens)
	x.stages[metrics.StageParse] = time.Since(parsed)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	prompt, pr := responsesRequest(req)
	a := ask{model: target.Model, prompt: prompt, choices: 1, open: req.MaxOutputTokens == 0}
	up, res, ok := g.admitAndForward(ctx, x, id, &target, pr, call, req.Texts, req.TextInfo, a, upstream.EndpointChat, req.Stream)
	if !ok {
		return
	}
	meta := translate.NewMeta(req.Model, x.start.Unix(), call.echo)
	if up.Events != nil {
		x.shape = &responsesShape{meta: meta, events: translate.NewStream(meta)}
		// The usage chunk is the Response's usage: it is always read.
		g.stream(ctx, x, target, res, up.Events, prompt, true)
		return
	}
	x.shape = &responsesShape{meta: meta}
	g.finish(ctx, x, target, res, up, prompt)
}

// responsesRequest counts a Responses request's prompt tokens and says what
// the policy sees of it. As for a chat request, URLs and file data are not
// counted as text.
func responsesRequest(req *api.ResponsesRequest) (prompt int64, r policy.Request) {
	prompt = tokens.Chat(countedTexts(req.Texts, req.TextInfo), req.ItemCount)
	return prompt, policy.Request{Method: "POST", Path: pathResponses, Model: req.Model, Stream: req.Stream,
		MaxTokens: int(req.MaxOutputTokens), PromptTokens: int(prompt), MessageCount: req.ItemCount}
}

// responsesCall is a Responses request on its way upstream: its texts are
// the Responses body's, and its upstream body is the chat completion that
// body translates to once redacted.
type responsesCall struct {
	req *api.ResponsesRequest
	// body is the translation of req for model with maxTokens, nil once
	// the texts change.
	body      []byte
	model     string
	maxTokens int64
	echo      translate.Echo
}

// LowerMaxTokens lowers max_output_tokens, which the next UpstreamBody
// translates.
func (c *responsesCall) LowerMaxTokens(n int64) bool { return c.req.LowerMaxTokens(n) }

// ReplyLimit is max_output_tokens.
func (c *responsesCall) ReplyLimit() int64 { return c.req.MaxOutputTokens }

func (c *responsesCall) SetTexts(texts []string) error {
	c.body = nil
	return c.req.SetTexts(texts)
}

func (c *responsesCall) UpstreamBody(upstreamModel string) ([]byte, error) {
	if c.body != nil && c.model == upstreamModel && c.maxTokens == c.req.MaxOutputTokens {
		return c.body, nil
	}
	body, echo, aerr := translate.ResponsesToChat(c.req.Body(), upstreamModel, c.req.MaxOutputTokens)
	if aerr != nil {
		return nil, aerr
	}
	c.body, c.model, c.maxTokens, c.echo = body, upstreamModel, c.req.MaxOutputTokens, echo
	return body, nil
}

// replyShape writes a reply in the form of the API the caller spoke,
// from the chat completion that passed the reply guardrails. An exchange
// without one answers with the chat completion itself.
type replyShape interface {
	// body is a whole reply.
	body(chat []byte) ([]byte, error)
	// chunk writes the events of one chunk of a stream.
	chunk(w *bufio.Writer, data []byte)
	// end writes what ends a stream that ended well.
	end(w *bufio.Writer)
	// fail writes the error that ends a stream early.
	fail(w *bufio.Writer, e *api.Error)
}

// writeChunk, writeStreamEnd and writeStreamError write a stream's parts in
// the shape of x's API.
func (x *exchange) writeChunk(w *bufio.Writer, data []byte) {
	if x.shape == nil {
		writeEvent(w, data)
		return
	}
	x.shape.chunk(w, data)
}

func (x *exchange) writeStreamEnd(w *bufio.Writer) {
	if x.shape == nil {
		w.WriteString("data: [DONE]\n\n")
		return
	}
	x.shape.end(w)
}

func (x *exchange) writeStreamError(w *bufio.Writer, e *api.Error) {
	if x.shape == nil {
		writeEvent(w, e.Body())
		return
	}
	x.shape.fail(w, e)
}

// responsesShape writes Responses and their events.
type responsesShape struct {
	meta   translate.Meta
	events *translate.Stream
}

func (s *responsesShape) body(chat []byte) ([]byte, error) {
	return translate.ChatToResponse(chat, s.meta)
}

// chunk writes a chunk's events. A chunk that is not a chat completion
// chunk is left out: what the translation cannot read, the caller does not
// get.
func (s *responsesShape) chunk(w *bufio.Writer, data []byte) {
	evs, err := s.events.Chunk(data)
	if err != nil {
		return
	}
	writeNamed(w, evs)
}

func (s *responsesShape) end(w *bufio.Writer) { writeNamed(w, s.events.End()) }

func (s *responsesShape) fail(w *bufio.Writer, e *api.Error) {
	writeNamed(w, s.events.Fail(e.Code, e.Message, e.Param))
}

func writeNamed(w *bufio.Writer, evs []translate.Event) {
	for _, ev := range evs {
		w.WriteString("event: ")
		w.WriteString(ev.Name)
		w.WriteString("\ndata: ")
		w.Write(ev.Data)
		w.WriteString("\n\n")
	}
}

// serveStoredResponse answers the routes of stored responses (GET and
// DELETE /v1/responses/{id}, its input_items, cancel): Sluice stores none.
// The caller is authenticated first, so that an unknown key learns
// nothing, not even that.
func (g *Gateway) serveStoredResponse(ctx *fasthttp.RequestCtx, x *exchange) {
	if _, aerr := g.authenticate(ctx, x); aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	g.fail(ctx, x, &api.Error{Status: http.StatusNotFound, Type: api.TypeInvalidRequest, Code: "not_found",
		Message: fmt.Sprintf("Sluice does not store responses, so there is none to %s; "+
			"keep the Response your application received.", storedAction(string(ctx.Method()), string(ctx.Path())))})
}

// storedResponseRoute reports whether method and path are one of the
// Responses API's routes of a stored response: GET and DELETE
// /v1/responses/{id}, GET /v1/responses/{id}/input_items and POST
// /v1/responses/{id}/cancel.
func storedResponseRoute(method, path string) bool {
	rest, ok := strings.CutPrefix(path, pathResponses+"/")
	if !ok {
		return false
	}
	id, sub, _ := strings.Cut(rest, "/")
	if id == "" || id == "input_tokens" || id == "compact" {
		return false // endpoints of their own, which Sluice does not serve
	}
	switch sub {
	case "":
		return method == fasthttp.MethodGet || method == fasthttp.MethodDelete
	case "input_items":
		return method == fasthttp.MethodGet
	case "cancel":
		return method == fasthttp.MethodPost
	}
	return false
}

func storedAction(method, path string) string {
	switch {
	case method == fasthttp.MethodDelete:
		return "delete"
	case strings.HasSuffix(path, "/cancel"):
		return "cancel"
	case strings.HasSuffix(path, "/input_items"):
		return "list the input items of"
	}
	return "retrieve"
}
