package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/redact"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/upstream"
	"github.com/valyala/fasthttp"
)

// send calls the upstream. The call does not use the request's context: a
// stream outlives the handler, and nothing of a fasthttp.RequestCtx may be used
// after it returns. The upstream's own timeout bounds the call; ctx is
// cancelled when the caller goes away first, and send then returns
// errAbandoned. A reply the caller gets an error for instead is returned
// with it, its stream closed, for its headers.
func (g *Gateway) send(ctx context.Context, t upstream.Target, call *upstream.Call) (*upstream.Reply, *api.Error) {
	up, err := t.Upstream.Send(ctx, call)
	return g.judge(ctx, t, call, up, err)
}

// judge turns an upstream call's result into the reply to pass on or the
// error to answer with.
func (g *Gateway) judge(ctx context.Context, t upstream.Target, call *upstream.Call, up *upstream.Reply, err error) (*upstream.Reply, *api.Error) {
	switch {
	case errors.Is(err, upstream.ErrCancelled) && errors.Is(context.Cause(ctx), errShuttingDown):
		return nil, errShutdown
	case errors.Is(err, upstream.ErrCancelled):
		return nil, errAbandoned
	case errors.Is(err, upstream.ErrTimeout):
		return nil, api.UpstreamTimeout(fmt.Sprintf("The upstream for %s did not answer in time.", t.Model.Name))
	case err != nil:
		g.log.Warn("upstream failed", "request_id", call.RequestID, "model", t.Model.Name, "error", err)
		return nil, api.UpstreamError(fmt.Sprintf("The upstream for %s could not be reached.", t.Model.Name))
	case up.Status == http.StatusTooManyRequests || up.Status == http.StatusServiceUnavailable:
		if up.Events != nil {
			up.Events.Close()
		}
		g.log.Warn("upstream refused for load", "request_id", call.RequestID, "model", t.Model.Name, "status", up.Status)
		return up, upstreamBusy(t.Model.Name, up.Status)
	case up.Status >= 500:
		if up.Events != nil {
			up.Events.Close()
		}
		return up, api.UpstreamError(fmt.Sprintf("The upstream for %s failed with status %d.", t.Model.Name, up.Status))
	case up.Status == http.StatusUnauthorized || up.Status == http.StatusForbidden:
		// The provider refused Sluice's own credentials. Passed on as they
		// are, its invalid_api_key would make the caller's SDK blame the
		// caller's key.
		g.log.Warn("upstream refused the gateway", "request_id", call.RequestID, "model", t.Model.Name, "status", up.Status)
		return up, api.UpstreamError(fmt.Sprintf("The upstream for %s refused the gateway's request (status %d); this is not a problem with your key.", t.Model.Name, up.Status))
	}
	return up, nil
}

// upstreamBusy is the error for an upstream's 429 or 503: a 503 that
// carries the provider's Retry-After (send's caller writes the reply's
// headers). Not a 429: the provider limits Sluice's key, shared by every
// caller, and a 429 would tell the caller's SDK that its own key is over
// its limit, next to the x-ratelimit-* headers of the caller's real
// limits. A 503 is what SDKs retry after Retry-After without blaming the
// caller.
func upstreamBusy(model string, status int) *api.Error {
	if status == http.StatusTooManyRequests {
		return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable, Code: "upstream_rate_limited",
			Message: fmt.Sprintf("The upstream for %s is rate limiting the gateway; retry after the time in Retry-After. "+
				"This is not a limit on your key.", model)}
	}
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable, Code: "upstream_error",
		Message: fmt.Sprintf("The upstream for %s is unavailable (status 503); retry after the time in Retry-After.", model)}
}

// errAbandoned is send's answer when the caller left before the upstream
// answered. Nobody reads it: the request is recorded with status 499.
var errAbandoned = &api.Error{Status: statusCallerLeft, Type: api.TypeServer, Code: "client_disconnected",
	Message: "The caller closed its connection before the upstream answered."}

// statusCallerLeft is the status the ledger gives a request whose caller
// left before it was answered (nginx's "client closed request").
const statusCallerLeft = 499

// abandoned records a request whose upstream call was ended while the
// upstream was still silent: its caller left (errAbandoned), or the
// shutdown deadline came (errShutdown, which its caller gets). The
// provider may have started work on it and says nothing of its usage, so
// it is billed as a stream its caller left without the provider's usage:
// the reservation.
func (g *Gateway) abandoned(ctx *fasthttp.RequestCtx, x *exchange, t upstream.Target, res limits.Reservation, why *api.Error) {
	x.upstreamSpan.Fail(why.Code)
	usage, source := unreportedUsage(x.prompt, "", res, true)
	x.ev.UsageSource = source
	g.charge(x, t, usage)
	g.limiter.Commit(res, limits.Cost{Tokens: usage.TotalTokens, Nanos: x.ev.CostNanos})
	ctx.SetConnectionClose()
	g.fail(ctx, x, why)
}

// finish answers a non-streamed reply and reconciles its usage.
func (g *Gateway) finish(ctx *fasthttp.RequestCtx, x *exchange, t upstream.Target, res limits.Reservation, up *upstream.Reply, prompt int64) {
	if up.Status != http.StatusOK {
		// An upstream 4xx (context too long, a parameter it refuses…) used no
		// tokens. Its body is not passed on: it can echo the caller's data or
		// carry the provider's own key material.
		g.limiter.Commit(res, limits.Cost{})
		aerr := upstreamRefusal(t.Model.Name, up.Status, up.Body)
		g.log.Warn("upstream refused the request", "request_id", x.ev.RequestID, "model", t.Model.Name, "status", up.Status,
			"type", aerr.Type, "code", aerr.Code)
		x.ev.Status, x.ev.Code = x.writeError(ctx, aerr), "upstream_"+strconv.Itoa(up.Status)
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
	// The tokens are spent whether or not the reply phase lets the reply through.
	g.charge(x, t, u)
	g.limiter.Commit(res, limits.Cost{Tokens: u.TotalTokens, Nanos: x.ev.CostNanos})
	body := up.Body
	if x.ev.Endpoint != pathEmbeddings {
		var aerr *api.Error
		if body, aerr = g.filterReply(x, up.Body); aerr != nil {
			g.fail(ctx, x, aerr)
			return
		}
	}
	if x.shape != nil {
		var err error
		if body, err = x.shape.body(body); err != nil {
			// The error is not logged: it can quote the reply.
			g.log.Warn("upstream reply could not be translated", "request_id", x.ev.RequestID, "model", t.Model.Name)
			g.fail(ctx, x, api.UpstreamError(fmt.Sprintf("The upstream for %s sent a reply Sluice could not read.", t.Model.Name)))
			return
		}
	}
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	x.ev.Status = http.StatusOK
	g.record(x)
}

// upstreamRefusal is the error to answer an upstream's non-200 reply with.
// Only the parts of the upstream's error that cannot carry text are kept,
// and only when they have the shape OpenAI gives them: its status, type,
// code and param. The message is Sluice's own.
func upstreamRefusal(model string, status int, body []byte) *api.Error {
	var e struct {
		Error struct {
			Type  any `json:"type"`
			Code  any `json:"code"`
			Param any `json:"param"`
		} `json:"error"`
	}
	json.Unmarshal(body, &e)
	if status < 400 || status > 499 {
		status = http.StatusBadGateway
	}
	out := &api.Error{Status: status, Type: api.TypeForStatus(status), Code: "upstream_error"}
	if t, ok := e.Error.Type.(string); ok && slices.Contains(api.ErrorTypes, t) {
		out.Type = t
	}
	if c, ok := e.Error.Code.(string); ok && isIdentifier(c, false) {
		out.Code = c
	}
	if p, ok := e.Error.Param.(string); ok && isIdentifier(p, true) {
		out.Param = p
	}
	out.Message = fmt.Sprintf("The upstream for %s refused the request with status %d (%s).", model, status, out.Code)
	return out
}

// isIdentifier reports whether s looks like an API's code or parameter
// name, and so cannot carry a sentence, a value or a key: lower-case words
// joined by '_' (and, for a param, '.', '[' and ']' with digits).
func isIdentifier(s string, param bool) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case param && (c >= '0' && c <= '9' || c == '.' || c == '[' || c == ']'):
		default:
			return false
		}
	}
	return true
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
	// The connection outlives the handler as long as the writer runs; at
	// the shutdown deadline a write deadline ends, a moment later, a Flush
	// that a caller not reading holds, while a caller that reads still
	// gets the last event and the end of the response.
	conn := ctx.Conn()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer g.streams.Done()
		defer events.Close()
		defer context.AfterFunc(g.stopping, func() {
			events.Abort()
			conn.SetWriteDeadline(time.Now().Add(abortWriteGrace))
		})()
		var usage api.Usage
		var haveUsage bool
		var text strings.Builder
		filter := g.newReplyFilter(x)
		var guard replyGuard
		if spendsTokens(g.scopes(x, x.dec)) { // else there is no budget to outgrow
			guard = newReplyGuard(res.Cost().Tokens - prompt)
		}
		ended, first := false, true
		for {
			data, err := events.Next()
			if first {
				// For a stream, time to first byte is the first event.
				x.stages[metrics.StageUpstream] = time.Since(x.sent)
				first = false
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					ended = true
				} else if errors.Is(err, upstream.ErrAborted) {
					x.ev.Code = codeShutdown
					x.writeStreamError(w, errShutdown)
					w.Flush()
				} else {
					g.log.Warn("upstream stream broke", "request_id", x.ev.RequestID, "model", t.Model.Name, "error", err)
					aerr, code := api.UpstreamError("The upstream stream ended early."), "upstream_stream_error"
					if errors.Is(err, upstream.ErrTimeout) {
						// A stall past the upstream's idle timeout (or its
						// timeout): the caller learns it was a timeout.
						aerr = api.UpstreamTimeout(fmt.Sprintf("The upstream for %s stopped sending in the middle of the reply.", t.Model.Name))
						code = aerr.Code
					}
					x.ev.Code = code
					x.writeStreamError(w, aerr)
					w.Flush()
				}
				break
			}
			chunk, ok := api.ParseStreamChunk(data)
			if ok {
				text.WriteString(chunk.Generated)
				if guard.over(text.String(), chunk.Generated) {
					g.log.Warn("stream stopped: the reply outgrew its reservation", "request_id", x.ev.RequestID,
						"model", t.Model.Name, "reserved_tokens", res.Cost().Tokens-prompt)
					aerr := replyOverReservation()
					x.ev.Code = aerr.Code
					x.writeStreamError(w, aerr)
					w.Flush()
					break
				}
				if chunk.HasUsage {
					usage, haveUsage = chunk.Usage, true
					if chunk.NoChoices && !callerWantsUsage {
						continue
					}
				}
			}
			events := [][]byte{data}
			if filter != nil {
				if events, err = filter.chunk(data); err != nil {
					g.endStream(w, x, err)
					break
				}
			}
			for _, ev := range events {
				x.writeChunk(w, ev)
			}
			if w.Flush() != nil {
				x.ev.Code = "client_disconnected"
				break
			}
		}
		if ended && filter != nil {
			held, err := filter.end()
			for _, data := range held {
				x.writeChunk(w, data)
			}
			if err != nil {
				g.endStream(w, x, err)
				ended = false
			}
		}
		if filter != nil {
			x.noteReplyFindings(filter.rs.Findings())
		}
		if ended {
			x.writeStreamEnd(w)
			if w.Flush() != nil {
				x.ev.Code = "client_disconnected"
			}
		}
		// cut: the stream was still open at the shutdown deadline.
		cut := g.stopping.Err() != nil && (x.ev.Code == codeShutdown || x.ev.Code == "client_disconnected")
		callerLeft := x.ev.Code == "client_disconnected" && !cut
		if !haveUsage && callerLeft {
			usage, haveUsage = drainForUsage(events, &text)
		}
		switch {
		case haveUsage:
			x.ev.UsageSource = store.UsageUpstream
		case cut:
			// What was relayed: the provider's usage never came, and
			// the process is about to exit.
			usage, _ = unreportedUsage(prompt, text.String(), res, false)
			x.ev.Code, x.ev.UsageSource = codeShutdown, store.UsageShutdown
		default:
			usage, x.ev.UsageSource = unreportedUsage(prompt, text.String(), res, callerLeft)
		}
		g.charge(x, t, usage)
		g.limiter.Commit(res, limits.Cost{Tokens: usage.TotalTokens, Nanos: x.ev.CostNanos})
		g.record(x)
	})
}

// abortWriteGrace is how long a stream cut at the shutdown deadline may
// take to write its last event to its caller.
const abortWriteGrace = time.Second

// codeShutdown is the ledger code of a stream cut at the shutdown
// deadline, and errShutdown the event its caller gets.
const codeShutdown = "shutdown"

var errShutdown = &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeForStatus(http.StatusServiceUnavailable), Code: codeShutdown,
	Message: "The gateway is shutting down: the stream was ended before the upstream finished it. Retry the request."}

// endStream stops a stream the reply phase refused, with an error event.
func (g *Gateway) endStream(w *bufio.Writer, x *exchange, err error) {
	aerr := replyBlocked(err)
	var blocked *redact.Blocked
	if !errors.As(err, &blocked) && !errors.Is(err, errGuard) {
		g.log.Warn("stream chunk could not be read for the response checks", "request_id", x.ev.RequestID, "error", err)
		aerr = api.UpstreamError("The upstream's stream could not be read for the response checks.")
	}
	x.ev.Code = aerr.Code
	x.writeStreamError(w, aerr)
	w.Flush()
}

func writeEvent(w *bufio.Writer, data []byte) {
	w.WriteString("data: ")
	w.Write(data)
	w.WriteString("\n\n")
}
