package upstream

import (
	"bufio"
	"regexp"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/translate"
)

var geminiPath = regexp.MustCompile(`^/v1beta/models/([^/]+):(generateContent|streamGenerateContent)$`)

// GeminiMockHandler serves the mock as the Gemini API does: POST
// /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse,
// authenticated by x-goog-api-key (MockGeminiAPIKey), with Google's error
// shape. The request is translated (by package translate) to a chat
// request for the chat mock, and its reply back.
func GeminiMockHandler(m *Mock) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		match := geminiPath.FindStringSubmatch(string(ctx.Path()))
		if match == nil || !ctx.IsPost() {
			geminiMockError(ctx, 404, "the mock serves generateContent and streamGenerateContent")
			return
		}
		switch key := string(ctx.Request.Header.Peek("x-goog-api-key")); {
		case key == "":
			geminiMockError(ctx, 403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
			return
		case key != MockGeminiAPIKey:
			geminiMockError(ctx, 400, "API key not valid. Please pass a valid API key.")
			return
		}
		stream := match[2] == "streamGenerateContent"
		if stream && string(ctx.QueryArgs().Peek("alt")) != "sse" {
			geminiMockError(ctx, 400, "the mock streams Server-Sent Events only: add alt=sse")
			return
		}
		chat, err := translate.GeminiToChat(ctx.PostBody(), match[1], stream)
		if err != nil {
			geminiMockError(ctx, 400, "Invalid JSON payload received.")
			return
		}
		r := askMock(m, chat, stream)
		if r.Status != 200 {
			geminiMockError(ctx, r.Status, "the mock refused the request")
			return
		}
		if r.Events == nil {
			ctx.SetContentType("application/json")
			ctx.SetBody(translate.ChatToGeminiResponse(r.Body))
			return
		}
		ctx.SetContentType("text/event-stream")
		events := r.Events
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer events.Close()
			var s translate.ChatToGeminiStream
			for {
				data, err := events.Next()
				if err != nil {
					return
				}
				for _, ev := range s.Chunk(data) {
					w.WriteString("data: ")
					w.Write(ev)
					w.WriteString("\r\n\r\n")
				}
				if w.Flush() != nil {
					return
				}
			}
		})
	}
}

func geminiMockError(ctx *fasthttp.RequestCtx, status int, msg string) {
	var e geminiError
	e.Error.Code, e.Error.Message, e.Error.Status = status, msg, geminiStatus(status)
	writeReply(ctx, &Reply{Status: status, Body: mustJSON(e)})
}
