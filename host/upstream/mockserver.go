package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"
)

// MockHandler serves the mock upstream over HTTP as an OpenAI-compatible server
// (POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models), so that it
// can stand in for a provider in front of anything, Sluice included.
func MockHandler(m *Mock, models []string) fasthttp.RequestHandler {
	modelList, _ := json.Marshal(map[string]any{"object": "list", "data": modelObjects(models)})
	return func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		if string(ctx.Method()) == fasthttp.MethodGet && path == "/v1/models" {
			ctx.SetContentType("application/json")
			ctx.SetBody(modelList)
			return
		}
		endpoint, ok := strings.CutPrefix(path, "/v1")
		if !ok || !ctx.IsPost() {
			writeReply(ctx, mockError(404, "no route for "+string(ctx.Method())+" "+path))
			return
		}
		var probe struct {
			Stream bool `json:"stream"`
		}
		_ = json.Unmarshal(ctx.PostBody(), &probe)
		// Send reads the body now: nothing of ctx is used after the handler returns.
		reply, err := m.Send(context.Background(), &Call{Endpoint: endpoint, Body: ctx.PostBody(), Stream: probe.Stream})
		if err != nil {
			writeReply(ctx, mockError(500, err.Error()))
			return
		}
		if reply.Events == nil {
			writeReply(ctx, reply)
			return
		}
		ctx.SetContentType("text/event-stream")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		events := reply.Events
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer events.Close()
			for {
				data, err := events.Next()
				if err != nil {
					break
				}
				w.WriteString("data: ")
				w.Write(data)
				w.WriteString("\n\n")
				if w.Flush() != nil {
					return
				}
			}
			w.WriteString("data: [DONE]\n\n")
			w.Flush()
		})
	}
}

func writeReply(ctx *fasthttp.RequestCtx, r *Reply) {
	ctx.SetStatusCode(r.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(r.Body)
}

func modelObjects(models []string) []any {
	out := make([]any, 0, len(models))
	for _, m := range models {
		out = append(out, map[string]any{"id": m, "object": "model", "created": 0, "owned_by": "sluice-mock"})
	}
	return out
}
