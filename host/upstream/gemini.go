package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// GeminiBaseURL is where the Gemini API is served when base_url is unset.
const GeminiBaseURL = "https://generativelanguage.googleapis.com"

// Gemini is Google's Gemini API (generateContent and
// streamGenerateContent), authenticated by the x-goog-api-key header. Chat
// requests are translated to contents and parts, and replies back.
type Gemini struct {
	http *httpClient
	key  string
	now  func() time.Time
}

// NewGemini returns a client for the gemini upstream u, dialing with dial
// (nil: the network).
func NewGemini(u config.Upstream, dial fasthttp.DialFunc) (*Gemini, error) {
	base := u.BaseURL
	if base == "" {
		base = GeminiBaseURL
	}
	h, err := newHTTPClient(u, base, dial)
	if err != nil {
		return nil, err
	}
	return &Gemini{http: h, key: u.APIKey, now: time.Now}, nil
}

// Close releases idle connections.
func (g *Gemini) Close() { g.http.Close() }

// Send translates the chat call c to generateContent, or to
// streamGenerateContent for a stream, and its reply back.
func (g *Gemini) Send(ctx context.Context, c *Call) (*Reply, error) {
	if c.Endpoint != EndpointChat {
		return openAIErrorReply(404, "invalid_request_error", "unsupported_endpoint", "", "a gemini upstream serves chat completions only"), nil
	}
	var req chatRequest
	if err := json.Unmarshal(c.Body, &req); err != nil {
		return refusalReply(err), nil
	}
	greq, err := toGemini(&req)
	if err != nil {
		return refusalReply(err), nil
	}
	body, _ := json.Marshal(greq)
	path := "/v1beta/models/" + url.PathEscape(req.Model) + ":generateContent"
	if c.Stream {
		path = "/v1beta/models/" + url.PathEscape(req.Model) + ":streamGenerateContent?alt=sse"
	}
	r, err := g.http.post(ctx, c, path, body, g)
	if err != nil {
		return nil, err
	}
	if r.status != fasthttp.StatusOK {
		reply := geminiErrorReply(r.status, r.body)
		reply.Headers = r.headers // a Retry-After among them
		return reply, nil
	}
	id := "chatcmpl-gemini-" + shortHash(c.Body)
	if r.stream == nil {
		var gr geminiResponse
		if err := json.Unmarshal(r.body, &gr); err != nil {
			return openAIErrorReply(502, "server_error", "upstream_error", "", "the Gemini API sent a reply that is not JSON"), nil
		}
		msg, finish, usage := fromGemini(&gr)
		return &Reply{Status: 200, Body: completion(id, g.now().Unix(), req.Model, msg, finish, usage), Headers: r.headers}, nil
	}
	s := &geminiStream{sse: newSSEEvents(r.stream), out: chunker{id: id, created: g.now().Unix(), model: req.Model},
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	return &Reply{Status: 200, Events: &translatedEvents{body: r.stream, read: s.read}, Headers: r.headers}, nil
}

func (g *Gemini) authorize(_ context.Context, req *fasthttp.Request, _ bool) error {
	req.Header.Set("x-goog-api-key", g.key)
	return nil
}

// geminiErrorReply is the gateway's form of a Gemini API error: its status
// and status name (as the code) are kept; its message, which can quote the
// request, is not.
func geminiErrorReply(status int, body []byte) *Reply {
	var e geminiError
	code := "upstream_error"
	if json.Unmarshal(body, &e) == nil && e.Error.Status != "" {
		code = snakeCase(e.Error.Status)
	}
	return openAIErrorReply(status, errorTypeFor(status), code, "", "the Gemini API refused the request")
}

// toGemini translates a chat request to a generateContent request.
func toGemini(req *chatRequest) (*geminiRequest, error) {
	if err := req.commonRefusals(); err != nil {
		return nil, err
	}
	out := &geminiRequest{}
	names := map[string]string{} // tool call id -> function name
	add := func(role string, parts ...geminiPart) {
		if n := len(out.Contents); n > 0 && out.Contents[n-1].Role == role {
			out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, parts...)
			return
		}
		out.Contents = append(out.Contents, geminiContent{Role: role, Parts: parts})
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			if out.SystemInstruction == nil {
				out.SystemInstruction = &geminiContent{}
			}
			out.SystemInstruction.Parts = append(out.SystemInstruction.Parts, geminiPart{Text: m.text()})
		case "user":
			parts, err := m.parts()
			if err != nil {
				return nil, err
			}
			var gparts []geminiPart
			for _, p := range parts {
				switch p.Type {
				case "text":
					gparts = append(gparts, geminiPart{Text: p.Text})
				case "image_url":
					if p.ImageURL == nil {
						return nil, refuse("messages", "an image_url part has no url")
					}
					mt, data, err := dataURL(p.ImageURL.URL)
					if err != nil {
						return nil, err
					}
					gparts = append(gparts, geminiPart{InlineData: &geminiBlob{MimeType: mt, Data: data}})
				default:
					return nil, refuse("messages", "a gemini upstream takes text and image parts only")
				}
			}
			if len(gparts) > 0 {
				add("user", gparts...)
			}
		case "assistant":
			var parts []geminiPart
			if t := m.text(); t != "" {
				parts = append(parts, geminiPart{Text: t})
			}
			for _, tc := range m.ToolCalls {
				args := json.RawMessage(tc.Function.Arguments)
				if !isJSONObject(args) {
					return nil, refuse("messages", "a tool call's arguments must be a JSON object")
				}
				names[tc.ID] = tc.Function.Name
				parts = append(parts, geminiPart{FunctionCall: &geminiFunctionCall{ID: providerCallID(tc.ID), Name: tc.Function.Name, Args: args}})
			}
			if len(parts) > 0 {
				add("model", parts...)
			}
		case "tool":
			name, ok := names[m.ToolCallID]
			if !ok {
				return nil, refuse("messages", "a tool message must answer a tool call of an earlier assistant message")
			}
			resp := json.RawMessage(m.text())
			if !isJSONObject(resp) {
				resp, _ = json.Marshal(map[string]string{"content": m.text()})
			}
			add("user", geminiPart{FunctionResponse: &geminiFunctionResponse{ID: providerCallID(m.ToolCallID), Name: name, Response: resp}})
		default:
			return nil, refuse("messages", "a message's role must be system, developer, user, assistant or tool")
		}
	}
	gc := &geminiGenerationConfig{MaxOutputTokens: req.maxTokens(), Temperature: req.Temperature, TopP: req.TopP}
	var err error
	if gc.StopSequences, err = req.stops(); err != nil {
		return nil, err
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "":
		case "json_object":
			gc.ResponseMimeType = "application/json"
		case "json_schema":
			gc.ResponseMimeType = "application/json"
			if rf.JSONSchema != nil {
				gc.ResponseJSONSchema = rf.JSONSchema.Schema
			}
		default:
			return nil, refuse("response_format", "response_format must be text, json_object or json_schema")
		}
	}
	if gc.MaxOutputTokens != nil || gc.Temperature != nil || gc.TopP != nil || gc.StopSequences != nil || gc.ResponseMimeType != "" {
		out.GenerationConfig = gc
	}
	if len(req.Tools) > 0 {
		var decls []geminiFunctionDeclaration
		for _, t := range req.Tools {
			if t.Type != "function" {
				return nil, refuse("tools", "a gemini upstream takes function tools only")
			}
			decls = append(decls, geminiFunctionDeclaration{Name: t.Function.Name, Description: t.Function.Description, ParametersJSONSchema: t.Function.Parameters})
		}
		out.Tools = []geminiTool{{FunctionDeclarations: decls}}
		mode, name, err := req.toolChoice()
		if err != nil {
			return nil, err
		}
		tc := &geminiToolConfig{}
		tc.FunctionCallingConfig.Mode = map[string]string{"none": "NONE", "auto": "AUTO", "required": "ANY"}[mode]
		if name != "" {
			tc.FunctionCallingConfig.AllowedFunctionNames = []string{name}
		}
		out.ToolConfig = tc
	}
	return out, nil
}

func isJSONObject(b json.RawMessage) bool {
	var o map[string]json.RawMessage
	return json.Unmarshal(b, &o) == nil && o != nil
}

// fromGemini translates a generateContent reply to a chat reply message,
// its finish reason and its usage. Thoughts are not part of the reply;
// their tokens count as completion (reasoning) tokens.
func fromGemini(gr *geminiResponse) (*chatMessage, string, *chatUsage) {
	var text string
	var calls []chatToolCall
	finish := "stop"
	if len(gr.Candidates) > 0 {
		c := gr.Candidates[0]
		for _, p := range c.Content.Parts {
			switch {
			case p.Thought:
			case p.FunctionCall != nil:
				calls = append(calls, geminiToolCall(p.FunctionCall, len(calls)))
			default:
				text += p.Text
			}
		}
		finish = geminiFinish(c.FinishReason, len(calls) > 0)
	} else if gr.PromptFeedback != nil && gr.PromptFeedback.BlockReason != "" {
		finish = "content_filter"
	}
	return assistantMessage(text, calls), finish, geminiChatUsage(gr.UsageMetadata)
}

func geminiToolCall(fc *geminiFunctionCall, i int) chatToolCall {
	id := fc.ID
	if id == "" {
		id = toolCallID(fc.Name, i)
	}
	args := string(fc.Args)
	if args == "" {
		args = "{}"
	}
	return chatToolCall{ID: id, Type: "function", Function: chatFunctionCall{Name: fc.Name, Arguments: args}}
}

// geminiFinish is the chat finish reason of a Gemini finishReason.
func geminiFinish(reason string, calledTools bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return "content_filter"
	}
	if calledTools {
		return "tool_calls"
	}
	return "stop"
}

func geminiChatUsage(u *geminiUsage) *chatUsage {
	if u == nil {
		return nil
	}
	return newChatUsage(u.PromptTokenCount, u.CandidatesTokenCount+u.ThoughtsTokenCount, u.CachedContentTokenCount, u.ThoughtsTokenCount)
}

// geminiStream translates streamGenerateContent's events to chat chunks.
type geminiStream struct {
	sse          *sseEvents
	out          chunker
	includeUsage bool
	started      bool
	calls        int
	finish       string
	usage        *geminiUsage
}

func (s *geminiStream) read() ([][]byte, error) {
	var batch [][]byte
	if !s.started {
		s.started = true
		batch = append(batch, s.out.role())
	}
	data, err := s.sse.Next()
	if err == io.EOF {
		if s.finish == "" {
			// Gemini's last event carries the finish reason: a stream
			// without one was cut short.
			return nil, fmt.Errorf("%w: the Gemini stream ended without a finish reason", ErrUnavailable)
		}
		batch = append(batch, s.out.finish(s.finish))
		if s.includeUsage && s.usage != nil {
			batch = append(batch, s.out.usage(geminiChatUsage(s.usage)))
		}
		return batch, io.EOF
	}
	if err != nil {
		return nil, err
	}
	var gr geminiResponse
	if err := json.Unmarshal(data, &gr); err != nil {
		return nil, fmt.Errorf("%w: an unreadable Gemini stream event", ErrUnavailable)
	}
	if gr.UsageMetadata != nil {
		s.usage = gr.UsageMetadata
	}
	if len(gr.Candidates) > 0 {
		c := gr.Candidates[0]
		for _, p := range c.Content.Parts {
			switch {
			case p.Thought:
			case p.FunctionCall != nil:
				tc := geminiToolCall(p.FunctionCall, s.calls)
				batch = append(batch, s.out.toolCall(s.calls, tc.ID, tc.Function.Name, tc.Function.Arguments))
				s.calls++
			case p.Text != "":
				batch = append(batch, s.out.text(p.Text))
			}
		}
		if c.FinishReason != "" {
			s.finish = geminiFinish(c.FinishReason, s.calls > 0)
		}
	} else if gr.PromptFeedback != nil && gr.PromptFeedback.BlockReason != "" {
		s.finish = "content_filter"
	}
	return batch, nil
}

var _ Upstream = (*Gemini)(nil)
