package server

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkResponsesPath measures a Responses request, and an Anthropic
// Messages request, through the whole path in process beside the same
// request as a chat completion, on one gateway with every guard on: the
// ratio is what collecting the body and translating it to and from a chat
// completion costs.
func BenchmarkResponsesPath(b *testing.B) {
	h := newHarness(b, open)
	handler := h.srv.public.Handler
	variants := []struct{ name, path, body string }{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"` + prompt + `"}]}`},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","max_output_tokens":64,"instructions":"You are a helpful assistant.","input":"` + prompt + `"}`},
		{"messages", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":64,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"` + prompt + `"}]}`},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, nil, nil)
			body := []byte(v.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI(v.path)
				ctx.Request.Header.Set("Authorization", "Bearer "+h.key)
				ctx.Request.Header.SetContentType("application/json")
				ctx.Request.SetBody(body)
				handler(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
