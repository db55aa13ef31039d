package translate

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// ChatToGemini translates a chat completion request into a request of the
// Gemini API's generateContent (the same body serves
// streamGenerateContent). What Gemini cannot carry (n > 1, http image
// URLs, a tool result that answers no call…) is a 400 naming the
// parameter.
func ChatToGemini(body []byte) (ProviderRequest, *api.Error) {
	req, aerr := readWireRequest(body)
	if aerr != nil {
		return ProviderRequest{}, aerr
	}
	greq, aerr := toGemini(req)
	if aerr != nil {
		return ProviderRequest{}, aerr
	}
	return req.providerRequest(greq), nil
}

func toGemini(req *wireRequest) (*geminiRequest, *api.Error) {
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
			parts, aerr := geminiUserParts(&m)
			if aerr != nil {
				return nil, aerr
			}
			if len(parts) > 0 {
				add("user", parts...)
			}
		case "assistant":
			var parts []geminiPart
			if t := m.text(); t != "" {
				parts = append(parts, geminiPart{Text: t})
			}
			for _, tc := range m.ToolCalls {
				args, aerr := toolArguments(tc)
				if aerr != nil {
					return nil, aerr
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
				return nil, unsupported("messages", "a tool message must answer a tool call of an earlier assistant message")
			}
			// Gemini takes an object as a function's response: a text that
			// is not one is wrapped as {"content": text}.
			resp := json.RawMessage(m.text())
			if !isJSONObject(resp) {
				resp, _ = json.Marshal(map[string]string{"content": m.text()})
			}
			add("user", geminiPart{FunctionResponse: &geminiFunctionResponse{ID: providerCallID(m.ToolCallID), Name: name, Response: resp}})
		default:
			return nil, unsupported("messages", "a message's role must be system, developer, user, assistant or tool")
		}
	}
	gc, aerr := geminiConfig(req)
	if aerr != nil {
		return nil, aerr
	}
	if gc.MaxOutputTokens != nil || gc.Temperature != nil || gc.TopP != nil || gc.StopSequences != nil || gc.ResponseMimeType != "" {
		out.GenerationConfig = gc
	}
	if out.Tools, out.ToolConfig, aerr = geminiTools(req); aerr != nil {
		return nil, aerr
	}
	return out, nil
}

// geminiUserParts is a user message's text and images.
func geminiUserParts(m *wireMessage) ([]geminiPart, *api.Error) {
	parts, aerr := m.parts()
	if aerr != nil {
		return nil, aerr
	}
	var out []geminiPart
	for _, p := range parts {
		switch p.Type {
		case "text":
			out = append(out, geminiPart{Text: p.Text})
		case "image_url":
			mt, data, aerr := imageData(p)
			if aerr != nil {
				return nil, aerr
			}
			out = append(out, geminiPart{InlineData: &geminiBlob{MimeType: mt, Data: data}})
		default:
			return nil, unsupported("messages", "a gemini upstream takes text and image parts only")
		}
	}
	return out, nil
}

// geminiConfig is the generation config of req: its bounds, stops and
// reply format.
func geminiConfig(req *wireRequest) (*geminiGenerationConfig, *api.Error) {
	gc := &geminiGenerationConfig{MaxOutputTokens: req.maxTokens(), Temperature: req.Temperature, TopP: req.TopP}
	var aerr *api.Error
	if gc.StopSequences, aerr = req.stops(); aerr != nil {
		return nil, aerr
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
			return nil, unsupported("response_format", "response_format must be text, json_object or json_schema")
		}
	}
	return gc, nil
}

// geminiTools is req's functions and tool choice.
func geminiTools(req *wireRequest) ([]geminiTool, *geminiToolConfig, *api.Error) {
	if len(req.Tools) == 0 {
		return nil, nil, nil
	}
	var decls []geminiFunctionDeclaration
	for _, t := range req.Tools {
		if t.Type != "function" {
			return nil, nil, unsupported("tools", "a gemini upstream takes function tools only")
		}
		decls = append(decls, geminiFunctionDeclaration{Name: t.Function.Name, Description: t.Function.Description, ParametersJSONSchema: t.Function.Parameters})
	}
	mode, name, aerr := req.toolChoice()
	if aerr != nil {
		return nil, nil, aerr
	}
	tc := &geminiToolConfig{}
	tc.FunctionCallingConfig.Mode = map[string]string{"none": "NONE", "auto": "AUTO", "required": "ANY"}[mode]
	if name != "" {
		tc.FunctionCallingConfig.AllowedFunctionNames = []string{name}
	}
	return []geminiTool{{FunctionDeclarations: decls}}, tc, nil
}

// GeminiToChatCompletion translates a generateContent reply into a chat
// completion. Thoughts are not part of the reply; their tokens count as
// completion (reasoning) tokens.
func GeminiToChatCompletion(body []byte, m ChatMeta) ([]byte, error) {
	var gr geminiResponse
	if err := json.Unmarshal(body, &gr); err != nil {
		return nil, err
	}
	msg, finish, usage := fromGemini(&gr)
	return completion(m, msg, finish, usage), nil
}

func fromGemini(gr *geminiResponse) (*wireMessage, string, *wireUsage) {
	var text string
	var calls []wireToolCall
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

// geminiToolCall is the chat tool call of a function call, named by Sluice
// when Gemini did not name it.
func geminiToolCall(fc *geminiFunctionCall, i int) wireToolCall {
	id := fc.ID
	if id == "" {
		id = toolCallID(fc.Name, i)
	}
	args := string(fc.Args)
	if args == "" {
		args = "{}"
	}
	return wireToolCall{ID: id, Type: "function", Function: wireFunctionCall{Name: fc.Name, Arguments: args}}
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

// geminiChatUsage is the chat usage of Gemini's: thoughts are completion
// tokens, and reasoning ones.
func geminiChatUsage(u *geminiUsage) *wireUsage {
	if u == nil {
		return nil
	}
	return newWireUsage(u.PromptTokenCount, u.CandidatesTokenCount+u.ThoughtsTokenCount, u.CachedContentTokenCount, u.ThoughtsTokenCount)
}

// GeminiStream translates streamGenerateContent's events into the chunks
// of a chat completion.
type GeminiStream struct {
	out          chunker
	includeUsage bool
	started      bool
	calls        int
	finish       string
	usage        *geminiUsage
}

// NewGeminiStream reads a streamGenerateContent as the chat completion m;
// with includeUsage it ends with a chunk of usage.
func NewGeminiStream(m ChatMeta, includeUsage bool) *GeminiStream {
	return &GeminiStream{out: chunker{m}, includeUsage: includeUsage}
}

var (
	errUnreadableGeminiEvent = errors.New("an unreadable Gemini stream event")
	errGeminiStreamCut       = errors.New("the Gemini stream ended without a finish reason")
)

// Event translates the data of one event into chat chunks.
func (s *GeminiStream) Event(data []byte) ([][]byte, error) {
	var batch [][]byte
	if !s.started {
		s.started = true
		batch = append(batch, s.out.role())
	}
	var gr geminiResponse
	if err := json.Unmarshal(data, &gr); err != nil {
		return nil, errUnreadableGeminiEvent
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

// End is the last chunks, once the events ended: the finish reason and the
// usage. Gemini's last event carries the finish reason: a stream without
// one was cut short, and is an error.
func (s *GeminiStream) End() ([][]byte, error) {
	if s.finish == "" {
		return nil, errGeminiStreamCut
	}
	batch := [][]byte{s.out.finish(s.finish)}
	if s.includeUsage && s.usage != nil {
		batch = append(batch, s.out.usage(geminiChatUsage(s.usage)))
	}
	return batch, nil
}

// The other way, for a server that speaks the Gemini API in front of a
// chat completion (the gemini mock).

// errNoGeminiRequest is a body that is not a generateContent request.
var errNoGeminiRequest = errors.New("the body is not a generateContent request")

// GeminiToChat translates a generateContent request for model into a chat
// completion request: the inverse of ChatToGemini. A stream asks for its
// usage.
func GeminiToChat(body []byte, model string, stream bool) ([]byte, error) {
	var g geminiRequest
	if err := json.Unmarshal(body, &g); err != nil {
		return nil, errNoGeminiRequest
	}
	req := wireRequest{Model: model, Stream: stream}
	if stream {
		req.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if g.SystemInstruction != nil {
		var texts []string
		for _, p := range g.SystemInstruction.Parts {
			texts = append(texts, p.Text)
		}
		req.Messages = append(req.Messages, wireMessage{Role: "system", Content: textContent(strings.Join(texts, "\n"))})
	}
	for _, c := range g.Contents {
		req.Messages = append(req.Messages, geminiContentToChat(c)...)
	}
	if gc := g.GenerationConfig; gc != nil {
		req.MaxTokens, req.Temperature, req.TopP = gc.MaxOutputTokens, gc.Temperature, gc.TopP
		if len(gc.StopSequences) > 0 {
			req.Stop, _ = json.Marshal(gc.StopSequences)
		}
		if gc.ResponseMimeType == "application/json" {
			req.ResponseFormat = &wireResponseFormat{Type: "json_object"}
			if gc.ResponseJSONSchema != nil {
				req.ResponseFormat = &wireResponseFormat{Type: "json_schema", JSONSchema: &wireJSONSchema{Name: "reply", Schema: gc.ResponseJSONSchema}}
			}
		}
	}
	for _, t := range g.Tools {
		for _, d := range t.FunctionDeclarations {
			var ct wireTool
			ct.Type, ct.Function.Name, ct.Function.Description, ct.Function.Parameters = "function", d.Name, d.Description, d.ParametersJSONSchema
			req.Tools = append(req.Tools, ct)
		}
	}
	if tc := g.ToolConfig; tc != nil {
		switch fc := tc.FunctionCallingConfig; {
		case fc.Mode == "NONE":
			req.ToolChoice = json.RawMessage(`"none"`)
		case fc.Mode == "ANY" && len(fc.AllowedFunctionNames) == 1:
			req.ToolChoice = namedToolChoice(fc.AllowedFunctionNames[0])
		case fc.Mode == "ANY":
			req.ToolChoice = json.RawMessage(`"required"`)
		}
	}
	return json.Marshal(req)
}

// geminiContentToChat is a content as chat messages: its function
// responses each a tool message, then its text, images and calls.
func geminiContentToChat(c geminiContent) []wireMessage {
	var out []wireMessage
	var parts []wirePart
	var calls []wireToolCall
	for _, p := range c.Parts {
		switch {
		case p.FunctionResponse != nil:
			id := p.FunctionResponse.ID
			if id == "" {
				id = p.FunctionResponse.Name
			}
			out = append(out, wireMessage{Role: "tool", ToolCallID: id, Content: textContent(functionResponseText(p.FunctionResponse.Response))})
		case p.FunctionCall != nil:
			calls = append(calls, geminiToolCall(p.FunctionCall, len(calls)))
		case p.InlineData != nil:
			parts = append(parts, imagePart(p.InlineData.MimeType, p.InlineData.Data))
		case !p.Thought:
			parts = append(parts, wirePart{Type: "text", Text: p.Text})
		}
	}
	if len(parts) == 0 && len(calls) == 0 {
		return out
	}
	msg := wireMessage{Role: "user", Content: chatContent(parts)}
	if c.Role == "model" {
		msg.Role = "assistant"
		msg.ToolCalls = calls
	}
	return append(out, msg)
}

// functionResponseText is the text of a function's response: the inverse
// of the wrapping of a plain text as {"content": text}.
func functionResponseText(resp json.RawMessage) string {
	var o map[string]json.RawMessage
	var text *string
	if json.Unmarshal(resp, &o) == nil && len(o) == 1 && json.Unmarshal(o["content"], &text) == nil && text != nil {
		return *text
	}
	return string(resp)
}

// ChatToGeminiResponse translates a chat completion into a generateContent
// reply: the inverse of GeminiToChatCompletion. A body that is not a chat
// completion is a reply without candidates.
func ChatToGeminiResponse(chat []byte) []byte {
	r, _ := readWireReply(chat)
	if r == nil {
		r = &wireReply{}
	}
	out := &geminiResponse{ModelVersion: r.Model, ResponseID: r.ID, UsageMetadata: geminiUsageOf(r.Usage)}
	if len(r.Choices) > 0 && r.Choices[0].Message != nil {
		c := r.Choices[0]
		out.Candidates = []geminiCandidate{{Content: geminiContent{Role: "model", Parts: geminiParts(c.Message.text(), c.Message.ToolCalls)}, FinishReason: geminiFinishReason(c.FinishReason)}}
	}
	b, _ := json.Marshal(out)
	return b
}

// geminiUsageOf is the Gemini usage of a chat usage: reasoning tokens are
// thoughts, apart from the candidates' tokens.
func geminiUsageOf(u *wireUsage) *geminiUsage {
	if u == nil {
		return nil
	}
	thoughts := u.reasoningTokens()
	return &geminiUsage{PromptTokenCount: u.PromptTokens, CandidatesTokenCount: u.CompletionTokens - thoughts, ThoughtsTokenCount: thoughts,
		CachedContentTokenCount: u.cached(), TotalTokenCount: u.TotalTokens}
}

func geminiParts(text string, calls []wireToolCall) []geminiPart {
	var parts []geminiPart
	if text != "" || len(calls) == 0 {
		parts = append(parts, geminiPart{Text: text})
	}
	for _, tc := range calls {
		parts = append(parts, geminiPart{FunctionCall: &geminiFunctionCall{ID: tc.ID, Name: tc.Function.Name, Args: json.RawMessage(tc.Function.Arguments)}})
	}
	return parts
}

// geminiFinishReason is the Gemini finishReason of a chat finish reason.
func geminiFinishReason(reason *string) string {
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

// ChatToGeminiStream translates a streamed chat completion's chunks into
// streamGenerateContent events: text as it comes, a function call whole
// once its arguments are, and the finish reason with the usage in the last
// event. The inverse of GeminiStream.
type ChatToGeminiStream struct {
	calls  []wireToolCall
	finish *string
}

// Chunk returns the data of the events for one chat chunk (none for a
// chunk it cannot read).
func (s *ChatToGeminiStream) Chunk(data []byte) [][]byte {
	chunk, err := readWireReply(data)
	if err != nil {
		return nil
	}
	if chunk.Usage != nil {
		last := &geminiResponse{ModelVersion: chunk.Model, ResponseID: chunk.ID, UsageMetadata: geminiUsageOf(chunk.Usage)}
		var parts []geminiPart
		if len(s.calls) > 0 {
			parts = geminiParts("", s.calls)
		}
		last.Candidates = []geminiCandidate{{Content: geminiContent{Role: "model", Parts: parts}, FinishReason: geminiFinishReason(s.finish)}}
		return [][]byte{mustMarshal(last)}
	}
	var out [][]byte
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
			out = append(out, mustMarshal(&geminiResponse{ModelVersion: chunk.Model, ResponseID: chunk.ID,
				Candidates: []geminiCandidate{{Content: geminiContent{Role: "model", Parts: []geminiPart{{Text: t}}}}}}))
		}
	}
	return out
}

// mustMarshal is json.Marshal of a value of plain structs and valid raw
// JSON, which cannot fail.
func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
