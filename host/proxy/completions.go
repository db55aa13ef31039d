package proxy

import (
	"bufio"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/translate"
)

// OpenAI's legacy completions API is served as a chat completion: the
// request is translated first (translate.CompletionsToChat), and the chat
// completion it becomes is parsed, scanned, decided, reserved and sent as
// a chat request is. The reply passes the reply guardrails as a chat
// completion, and only then becomes a text completion or its chunks.

const pathCompletions = "/v1/completions"

// serveCompletions is the request path of a completions request: serveChat's,
// on the chat request the body parses into, with the reply written back as
// a text completion.
func (g *Gateway) serveCompletions(ctx *fasthttp.RequestCtx, x *exchange) {
	g.serveAsChat(ctx, x, parseCompletions, pathCompletions, func(model string, start time.Time) replyShape {
		return &completionsShape{meta: translate.NewCompletionMeta(model, start.Unix())}
	})
}

// parseCompletions reads a completions body as the chat request that
// serves it. The chat request's problems are named in the completions
// API's terms: its messages are the prompt.
func parseCompletions(body []byte) (*api.ChatRequest, *api.Error) {
	chat, aerr := translate.CompletionsToChat(body)
	if aerr != nil {
		return nil, aerr
	}
	req, aerr := api.ParseChatRequest(chat)
	if aerr != nil && strings.HasPrefix(aerr.Param, "messages") {
		out := *aerr
		out.Param, out.Message = "prompt", strings.ReplaceAll(aerr.Message, aerr.Param, "prompt")
		return nil, &out
	}
	return req, aerr
}

// completionsShape writes text completions and their chunks.
type completionsShape struct {
	meta translate.CompletionMeta
	// failed is set once an error event is out: nothing follows it.
	failed bool
}

func (s *completionsShape) body(chat []byte) ([]byte, error) {
	return translate.ChatToCompletion(chat, s.meta)
}

// chunk writes a chunk as a text completion chunk. A chunk that is not a
// chat completion chunk is left out: what the translation cannot read,
// the caller does not get.
func (s *completionsShape) chunk(w *bufio.Writer, data []byte) {
	if s.failed {
		return
	}
	out, aerr, err := translate.ChatChunkToCompletion(data, s.meta)
	switch {
	case err != nil:
	case aerr != nil:
		s.fail(w, aerr)
	case out != nil:
		writeEvent(w, out)
	}
}

func (s *completionsShape) end(w *bufio.Writer) {
	if !s.failed {
		w.WriteString("data: [DONE]\n\n")
	}
}

func (s *completionsShape) fail(w *bufio.Writer, e *api.Error) {
	if !s.failed {
		s.failed = true
		writeEvent(w, e.Body())
	}
}
