package upstream

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"
)

var geminiPath = regexp.MustCompile(`^/v1beta/models/([^/]+):(generateContent|streamGenerateContent)$`)

// GeminiMockHandler serves the mock as the Gemini API does: POST
// /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse,
// authenticated by x-goog-api-key (MockGeminiAPIKey), with Google's error
// shape. The request is translated to a chat request for the chat mock, and
// its reply back.
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
		var req geminiRequest
		if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
			geminiMockError(ctx, 400, "Invalid JSON payload received.")
			return
		}
		r := askMock(m, geminiToChat(&req, match[1], stream), stream)
		if r.Status != 200 {
			geminiMockError(ctx, r.Status, "the mock refused the request")
			return
		}
		if r.Events == nil {
			var reply chatReply
			json.Unmarshal(r.Body, &reply)
			ctx.SetContentType("application/json")
			ctx.SetBody(mustJSON(chatToGemini(&reply)))
			return
		}
		ctx.SetContentType("text/event-stream")
		events := r.Events
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer events.Close()
			s := geminiMockStream{}
			for {
				data, err := events.Next()
				if err != nil {
					if err != io.EOF {
						return
					}
					data = nil
				}
				for _, ev := range s.translate(data) {
					w.WriteString("data: ")
					w.Write(mustJSON(ev))
					w.WriteString("\r\n\r\n")
				}
				if w.Flush() != nil || data == nil {
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

// geminiToChat translates a generateContent request to a chat request:
// the inverse of toGemini.
func geminiToChat(g *geminiRequest, model string, stream bool) []byte {
	req := chatRequest{Model: model, Stream: stream}
	if stream {
		req.StreamOptions = &chatStreamOptions{IncludeUsage: true}
	}
	if g.SystemInstruction != nil {
		var texts []string
		for _, p := range g.SystemInstruction.Parts {
			texts = append(texts, p.Text)
		}
		req.Messages = append(req.Messages, chatMessage{Role: "system", Content: textContent(strings.Join(texts, "\n"))})
	}
	for _, c := range g.Contents {
		var parts []chatPart
		var calls []chatToolCall
		for _, p := range c.Parts {
			switch {
			case p.FunctionResponse != nil:
				id := p.FunctionResponse.ID
				if id == "" {
					id = p.FunctionResponse.Name
				}
				var plain struct {
					Content *string `json:"content"`
				}
				content := string(p.FunctionResponse.Response)
				if json.Unmarshal(p.FunctionResponse.Response, &plain) == nil && plain.Content != nil && isOnlyMember(p.FunctionResponse.Response) {
					content = *plain.Content
				}
				req.Messages = append(req.Messages, chatMessage{Role: "tool", ToolCallID: id, Content: textContent(content)})
			case p.FunctionCall != nil:
				calls = append(calls, geminiToolCall(p.FunctionCall, len(calls)))
			case p.InlineData != nil:
				part := chatPart{Type: "image_url", ImageURL: &struct {
					URL string `json:"url"`
				}{"data:" + p.InlineData.MimeType + ";base64," + base64.StdEncoding.EncodeToString(p.InlineData.Data)}}
				parts = append(parts, part)
			case !p.Thought:
				parts = append(parts, chatPart{Type: "text", Text: p.Text})
			}
		}
		if len(parts) == 0 && len(calls) == 0 {
			continue
		}
		msg := chatMessage{Role: "user", Content: mustJSON(parts)}
		if len(parts) == 1 && parts[0].Type == "text" {
			msg.Content = textContent(parts[0].Text)
		}
		if c.Role == "model" {
			msg.Role = "assistant"
			msg.ToolCalls = calls
		}
		req.Messages = append(req.Messages, msg)
	}
	if gc := g.GenerationConfig; gc != nil {
		req.MaxTokens = gc.MaxOutputTokens
		if gc.ResponseMimeType == "application/json" {
			req.ResponseFormat = &chatResponseFormat{Type: "json_object"}
			if gc.ResponseJSONSchema != nil {
				req.ResponseFormat = &chatResponseFormat{Type: "json_schema", JSONSchema: &struct {
					Name   string          `json:"name,omitempty"`
					Schema json.RawMessage `json:"schema,omitempty"`
				}{Name: "reply", Schema: gc.ResponseJSONSchema}}
			}
		}
	}
	for _, t := range g.Tools {
		for _, d := range t.FunctionDeclarations {
			var ct chatTool
			ct.Type, ct.Function.Name, ct.Function.Description, ct.Function.Parameters = "function", d.Name, d.Description, d.ParametersJSONSchema
			req.Tools = append(req.Tools, ct)
		}
	}
	if tc := g.ToolConfig; tc != nil {
		switch fc := tc.FunctionCallingConfig; {
		case fc.Mode == "NONE":
			req.ToolChoice = json.RawMessage(`"none"`)
		case fc.Mode == "ANY" && len(fc.AllowedFunctionNames) == 1:
			req.ToolChoice = mustJSON(map[string]any{"type": "function", "function": map[string]string{"name": fc.AllowedFunctionNames[0]}})
		case fc.Mode == "ANY":
			req.ToolChoice = json.RawMessage(`"required"`)
		}
	}
	return mustJSON(req)
}

// isOnlyMember reports whether the JSON object b has one member.
func isOnlyMember(b json.RawMessage) bool {
	var o map[string]json.RawMessage
	return json.Unmarshal(b, &o) == nil && len(o) == 1
}

// chatToGemini translates a chat completion to a generateContent reply:
// the inverse of fromGemini.
func chatToGemini(r *chatReply) *geminiResponse {
	out := &geminiResponse{ModelVersion: r.Model, ResponseID: r.ID}
	if len(r.Choices) > 0 && r.Choices[0].Message != nil {
		c := r.Choices[0]
		out.Candidates = []geminiCandidate{{Content: geminiContent{Role: "model", Parts: geminiParts(c.Message.text(), c.Message.ToolCalls)}, FinishReason: geminiFinishOf(c.FinishReason)}}
	}
	if r.Usage != nil {
		out.UsageMetadata = &geminiUsage{PromptTokenCount: r.Usage.PromptTokens, CandidatesTokenCount: r.Usage.CompletionTokens, TotalTokenCount: r.Usage.TotalTokens}
	}
	return out
}

func geminiParts(text string, calls []chatToolCall) []geminiPart {
	var parts []geminiPart
	if text != "" || len(calls) == 0 {
		parts = append(parts, geminiPart{Text: text})
	}
	for _, tc := range calls {
		parts = append(parts, geminiPart{FunctionCall: &geminiFunctionCall{ID: tc.ID, Name: tc.Function.Name, Args: json.RawMessage(tc.Function.Arguments)}})
	}
	return parts
}

// geminiFinishOf is the Gemini finishReason of a chat finish reason.
func geminiFinishOf(reason *string) string {
	if reason == nil {
		return ""
	}
	switch *reason {
	case "length":
		return "MAX_TOKENS"
	case "content_filter":
		return "SAFETY"
	}
	return "STOP"
}

// geminiMockStream turns the chat mock's chunks into streamGenerateContent
// events: text as it comes, a function call whole once its arguments are,
// and the finish reason with the usage in the last event.
type geminiMockStream struct {
	calls  []chatToolCall
	finish *string
}

// translate returns the events for one chat chunk (nil: the stream ended).
func (s *geminiMockStream) translate(data []byte) []*geminiResponse {
	if data == nil {
		return nil
	}
	var chunk chatReply
	if json.Unmarshal(data, &chunk) != nil {
		return nil
	}
	if chunk.Usage != nil {
		last := &geminiResponse{ModelVersion: chunk.Model, ResponseID: chunk.ID,
			UsageMetadata: &geminiUsage{PromptTokenCount: chunk.Usage.PromptTokens, CandidatesTokenCount: chunk.Usage.CompletionTokens, TotalTokenCount: chunk.Usage.TotalTokens}}
		var parts []geminiPart
		if len(s.calls) > 0 {
			parts = geminiParts("", s.calls)
		}
		last.Candidates = []geminiCandidate{{Content: geminiContent{Role: "model", Parts: parts}, FinishReason: geminiFinishOf(s.finish)}}
		return []*geminiResponse{last}
	}
	var out []*geminiResponse
	for _, c := range chunk.Choices {
		if c.FinishReason != nil {
			s.finish = c.FinishReason
		}
		if c.Delta == nil {
			continue
		}
		for _, tc := range c.Delta.ToolCalls {
			if tc.ID != "" {
				s.calls = append(s.calls, tc)
			} else if n := len(s.calls); n > 0 {
				s.calls[n-1].Function.Arguments += tc.Function.Arguments
			}
		}
		if t := c.Delta.text(); t != "" {
			out = append(out, &geminiResponse{ModelVersion: chunk.Model, ResponseID: chunk.ID,
				Candidates: []geminiCandidate{{Content: geminiContent{Role: "model", Parts: []geminiPart{{Text: t}}}}}})
		}
	}
	return out
}
