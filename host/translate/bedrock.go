package translate

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/sluicehq/sluice/host/api"
)

// ChatToConverse translates a chat completion request into a request of
// Bedrock's Converse API (the same body serves ConverseStream). What
// Converse cannot carry (n > 1, response_format, http image URLs, tools
// other than functions…) is a 400 naming the parameter.
func ChatToConverse(body []byte) (ProviderRequest, *api.Error) {
	req, aerr := readWireRequest(body)
	if aerr != nil {
		return ProviderRequest{}, aerr
	}
	creq, aerr := toConverse(req)
	if aerr != nil {
		return ProviderRequest{}, aerr
	}
	return req.providerRequest(creq), nil
}

func toConverse(req *wireRequest) (*converseRequest, *api.Error) {
	if rf := req.ResponseFormat; rf != nil && rf.Type != "text" && rf.Type != "" {
		return nil, unsupported("response_format", "a bedrock upstream answers text only: response_format must be text")
	}
	out := &converseRequest{}
	add := func(role types.ConversationRole, blocks ...bedrockBlock) {
		// Converse wants the roles to alternate: a tool's results and the
		// user's next words form one user message.
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
			return
		}
		out.Messages = append(out.Messages, bedrockMessage{Role: role, Content: blocks})
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			out.System = append(out.System, bedrockSystemBlock{Text: m.text()})
		case "user":
			blocks, aerr := converseUserBlocks(&m)
			if aerr != nil {
				return nil, aerr
			}
			if len(blocks) > 0 {
				add(types.ConversationRoleUser, blocks...)
			}
		case "assistant":
			var blocks []bedrockBlock
			if t := m.text(); t != "" {
				blocks = append(blocks, bedrockBlock{Text: &t})
			}
			for _, tc := range m.ToolCalls {
				args, aerr := toolArguments(tc)
				if aerr != nil {
					return nil, aerr
				}
				blocks = append(blocks, bedrockBlock{ToolUse: &bedrockToolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: args}})
			}
			if len(blocks) > 0 {
				add(types.ConversationRoleAssistant, blocks...)
			}
		case "tool":
			if m.ToolCallID == "" {
				return nil, unsupported("messages", "a tool message must name the tool call it answers")
			}
			t := m.text()
			add(types.ConversationRoleUser, bedrockBlock{ToolResult: &bedrockToolResult{ToolUseID: m.ToolCallID,
				Content: []bedrockToolResultContent{{Text: &t}}}})
		default:
			return nil, unsupported("messages", "a message's role must be system, developer, user, assistant or tool")
		}
	}
	stops, aerr := req.stops()
	if aerr != nil {
		return nil, aerr
	}
	if ic := (bedrockInferenceConfig{MaxTokens: req.maxTokens(), Temperature: req.Temperature, TopP: req.TopP, StopSequences: stops}); ic.MaxTokens != nil || ic.Temperature != nil || ic.TopP != nil || stops != nil {
		out.InferenceConfig = &ic
	}
	if out.ToolConfig, aerr = converseTools(req); aerr != nil {
		return nil, aerr
	}
	return out, nil
}

// converseUserBlocks is a user message's text and images.
func converseUserBlocks(m *wireMessage) ([]bedrockBlock, *api.Error) {
	parts, aerr := m.parts()
	if aerr != nil {
		return nil, aerr
	}
	var blocks []bedrockBlock
	for _, p := range parts {
		switch p.Type {
		case "text":
			blocks = append(blocks, bedrockBlock{Text: &p.Text})
		case "image_url":
			img, aerr := converseImage(p)
			if aerr != nil {
				return nil, aerr
			}
			blocks = append(blocks, bedrockBlock{Image: img})
		default:
			return nil, unsupported("messages", "a bedrock upstream takes text and image parts only")
		}
	}
	return blocks, nil
}

func converseImage(p wirePart) (*bedrockImage, *api.Error) {
	mt, data, aerr := imageData(p)
	if aerr != nil {
		return nil, aerr
	}
	format := types.ImageFormat(strings.TrimPrefix(mt, "image/"))
	switch format {
	case types.ImageFormatPng, types.ImageFormatJpeg, types.ImageFormatGif, types.ImageFormatWebp:
	default:
		return nil, unsupported("messages", "a bedrock upstream takes png, jpeg, gif and webp images")
	}
	img := &bedrockImage{Format: format}
	img.Source.Bytes = data
	return img, nil
}

// converseTools is the tool configuration of req: none when it has no
// tools or tool_choice is none, since Converse has no "none".
func converseTools(req *wireRequest) (*bedrockToolConfig, *api.Error) {
	mode, name, aerr := req.toolChoice()
	if aerr != nil {
		return nil, aerr
	}
	if len(req.Tools) == 0 || mode == "none" {
		return nil, nil
	}
	tc := &bedrockToolConfig{}
	for _, t := range req.Tools {
		if t.Type != "function" {
			return nil, unsupported("tools", "a bedrock upstream takes function tools only")
		}
		var bt bedrockTool
		bt.ToolSpec.Name, bt.ToolSpec.Description = t.Function.Name, t.Function.Description
		bt.ToolSpec.InputSchema.JSON = t.Function.Parameters
		if len(bt.ToolSpec.InputSchema.JSON) == 0 {
			bt.ToolSpec.InputSchema.JSON = json.RawMessage(`{"type":"object"}`)
		}
		tc.Tools = append(tc.Tools, bt)
	}
	switch {
	case name != "":
		tc.ToolChoice = &bedrockToolChoice{Tool: &struct {
			Name string `json:"name"`
		}{name}}
	case mode == "required":
		tc.ToolChoice = &bedrockToolChoice{Any: &struct{}{}}
	}
	return tc, nil
}

// ConverseToChatCompletion translates a Converse reply into a chat
// completion. Reasoning blocks are not part of the reply.
func ConverseToChatCompletion(body []byte, m ChatMeta) ([]byte, error) {
	var cr converseResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		return nil, err
	}
	msg, finish, usage := fromConverse(&cr)
	return completion(m, msg, finish, usage), nil
}

// fromConverse is a Converse reply's message, finish reason and usage.
func fromConverse(cr *converseResponse) (*wireMessage, string, *wireUsage) {
	var text strings.Builder
	var calls []wireToolCall
	if cr.Output.Message != nil {
		for _, b := range cr.Output.Message.Content {
			switch {
			case b.Text != nil:
				text.WriteString(*b.Text)
			case b.ToolUse != nil:
				args := string(b.ToolUse.Input)
				if args == "" || args == "null" {
					args = "{}"
				}
				calls = append(calls, wireToolCall{ID: b.ToolUse.ToolUseID, Type: "function", Function: wireFunctionCall{Name: b.ToolUse.Name, Arguments: args}})
			}
		}
	}
	return assistantMessage(text.String(), calls), converseFinish(cr.StopReason), converseChatUsage(cr.Usage)
}

// converseFinish is the chat finish reason of a Converse stop reason.
func converseFinish(r types.StopReason) string {
	switch r {
	case types.StopReasonToolUse:
		return "tool_calls"
	case types.StopReasonMaxTokens, types.StopReasonModelContextWindowExceeded:
		return "length"
	case types.StopReasonGuardrailIntervened, types.StopReasonContentFiltered:
		return "content_filter"
	}
	return "stop"
}

// converseChatUsage is the chat usage of Converse's: the prompt counts the
// tokens read from and written to the prompt cache, which Converse counts
// apart from inputTokens. Converse reports no reasoning tokens apart: they
// are among its outputTokens.
func converseChatUsage(u *bedrockUsage) *wireUsage {
	if u == nil {
		return nil
	}
	return newWireUsage(u.InputTokens+u.CacheReadInputTokens+u.CacheWriteInputTokens, u.OutputTokens, u.CacheReadInputTokens, 0)
}

// ConverseStream translates ConverseStream's events into the chunks of a
// chat completion.
type ConverseStream struct {
	out          chunker
	includeUsage bool
	tools        map[int]int // content block index -> tool call index
	stopped      bool
}

// NewConverseStream reads a ConverseStream as the chat completion m; with
// includeUsage its metadata event is a chunk of usage.
func NewConverseStream(m ChatMeta, includeUsage bool) *ConverseStream {
	return &ConverseStream{out: chunker{m}, includeUsage: includeUsage, tools: map[int]int{}}
}

// Stopped reports whether messageStop was read: a stream that ends before
// it was cut short.
func (s *ConverseStream) Stopped() bool { return s.stopped }

// errUnreadableEvent is an event whose payload is not the JSON it should
// be; the payload is not quoted, since it may carry the reply's text.
var errUnreadableEvent = errors.New("unreadable event")

// Event translates one event, of the event-stream message type :event-type
// eventType, into chat chunks (none for most).
func (s *ConverseStream) Event(eventType string, payload []byte) ([][]byte, error) {
	var ev bedrockStreamEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, errUnreadableEvent
	}
	block := 0
	if ev.ContentBlockIndex != nil {
		block = *ev.ContentBlockIndex
	}
	switch eventType {
	case "messageStart":
		return [][]byte{s.out.role()}, nil
	case "contentBlockStart":
		if ev.Start != nil && ev.Start.ToolUse != nil {
			i := len(s.tools)
			s.tools[block] = i
			return [][]byte{s.out.toolCall(i, ev.Start.ToolUse.ToolUseID, ev.Start.ToolUse.Name, "")}, nil
		}
	case "contentBlockDelta":
		switch {
		case ev.Delta == nil:
		case ev.Delta.Text != nil:
			return [][]byte{s.out.text(*ev.Delta.Text)}, nil
		case ev.Delta.ToolUse != nil:
			if i, ok := s.tools[block]; ok {
				return [][]byte{s.out.toolCall(i, "", "", ev.Delta.ToolUse.Input)}, nil
			}
		}
	case "messageStop":
		s.stopped = true
		return [][]byte{s.out.finish(converseFinish(ev.StopReason))}, nil
	case "metadata":
		if s.includeUsage && ev.Usage != nil {
			return [][]byte{s.out.usage(converseChatUsage(ev.Usage))}, nil
		}
	}
	return nil, nil
}

// The other way, for a server that speaks Converse in front of a chat
// completion (the bedrock mock): a Converse request into a chat request,
// and the chat completion, whole or streamed, into Converse's reply.

// errNoConverseRequest is a body that is not a Converse request.
var errNoConverseRequest = errors.New("the body is not a Converse request with messages")

// ConverseToChat translates a Converse request for model into a chat
// completion request: the inverse of ChatToConverse. A stream asks for its
// usage.
func ConverseToChat(body []byte, model string, stream bool) ([]byte, error) {
	var c converseRequest
	if err := json.Unmarshal(body, &c); err != nil || len(c.Messages) == 0 {
		return nil, errNoConverseRequest
	}
	req := wireRequest{Model: model, Stream: stream}
	if stream {
		req.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	for _, s := range c.System {
		req.Messages = append(req.Messages, wireMessage{Role: "system", Content: textContent(s.Text)})
	}
	for _, m := range c.Messages {
		req.Messages = append(req.Messages, converseMessageToChat(m)...)
	}
	if ic := c.InferenceConfig; ic != nil {
		req.MaxTokens, req.Temperature, req.TopP = ic.MaxTokens, ic.Temperature, ic.TopP
		if len(ic.StopSequences) > 0 {
			req.Stop, _ = json.Marshal(ic.StopSequences)
		}
	}
	if tc := c.ToolConfig; tc != nil {
		for _, t := range tc.Tools {
			var ct wireTool
			ct.Type, ct.Function.Name, ct.Function.Description, ct.Function.Parameters = "function", t.ToolSpec.Name, t.ToolSpec.Description, t.ToolSpec.InputSchema.JSON
			req.Tools = append(req.Tools, ct)
		}
		switch ch := tc.ToolChoice; {
		case ch == nil:
		case ch.Tool != nil:
			req.ToolChoice = namedToolChoice(ch.Tool.Name)
		case ch.Any != nil:
			req.ToolChoice = json.RawMessage(`"required"`)
		}
	}
	return json.Marshal(req)
}

// converseMessageToChat is a Converse message as chat messages: its tool
// results each a tool message, then its text, images and tool uses.
func converseMessageToChat(m bedrockMessage) []wireMessage {
	var out []wireMessage
	var parts []wirePart
	var calls []wireToolCall
	for _, b := range m.Content {
		switch {
		case b.ToolResult != nil:
			var texts []string
			for _, rc := range b.ToolResult.Content {
				if rc.Text != nil {
					texts = append(texts, *rc.Text)
				} else if rc.JSON != nil {
					texts = append(texts, string(rc.JSON))
				}
			}
			out = append(out, wireMessage{Role: "tool", ToolCallID: b.ToolResult.ToolUseID, Content: textContent(strings.Join(texts, ""))})
		case b.ToolUse != nil:
			calls = append(calls, wireToolCall{ID: b.ToolUse.ToolUseID, Type: "function", Function: wireFunctionCall{Name: b.ToolUse.Name, Arguments: string(b.ToolUse.Input)}})
		case b.Image != nil:
			parts = append(parts, imagePart("image/"+string(b.Image.Format), b.Image.Source.Bytes))
		case b.Text != nil:
			parts = append(parts, wirePart{Type: "text", Text: *b.Text})
		}
	}
	if len(parts) == 0 && len(calls) == 0 {
		return out
	}
	return append(out, wireMessage{Role: string(m.Role), Content: chatContent(parts), ToolCalls: calls})
}

// ChatToConverseResponse translates a chat completion into a Converse
// reply: the inverse of ConverseToChatCompletion. A body that is not a
// chat completion is an empty reply that ended its turn.
func ChatToConverseResponse(chat []byte) []byte {
	r, _ := readWireReply(chat)
	if r == nil {
		r = &wireReply{}
	}
	out := &converseResponse{StopReason: types.StopReasonEndTurn, Metrics: &bedrockMetrics{LatencyMs: 1}}
	if len(r.Choices) > 0 && r.Choices[0].Message != nil {
		c := r.Choices[0]
		msg := &bedrockMessage{Role: types.ConversationRoleAssistant}
		if t := c.Message.text(); t != "" || len(c.Message.ToolCalls) == 0 {
			msg.Content = append(msg.Content, bedrockBlock{Text: &t})
		}
		for _, tc := range c.Message.ToolCalls {
			msg.Content = append(msg.Content, bedrockBlock{ToolUse: &bedrockToolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage(tc.Function.Arguments)}})
		}
		out.Output.Message = msg
		out.StopReason = converseStopReason(c.FinishReason)
	}
	out.Usage = converseUsage(r.Usage)
	b, _ := json.Marshal(out)
	return b
}

// converseUsage is the Converse usage of a chat usage: the cached tokens
// are read from the prompt cache, the rest of the prompt is inputTokens.
func converseUsage(u *wireUsage) *bedrockUsage {
	if u == nil {
		return nil
	}
	cached := u.cached()
	return &bedrockUsage{InputTokens: u.PromptTokens - cached, CacheReadInputTokens: cached, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}

// converseStopReason is the Converse stop reason of a chat finish reason.
func converseStopReason(reason *string) types.StopReason {
	if reason == nil {
		return types.StopReasonEndTurn
	}
	switch *reason {
	case "length":
		return types.StopReasonMaxTokens
	case "tool_calls":
		return types.StopReasonToolUse
	case "content_filter":
		return types.StopReasonContentFiltered
	}
	return types.StopReasonEndTurn
}

// ConverseEvent is one ConverseStream event: its :event-type and its JSON
// payload.
type ConverseEvent struct {
	Type    string
	Payload []byte
}

// ChatToConverseStream translates a streamed chat completion's chunks into
// ConverseStream events: messageStart, a text block's deltas or a tool
// use's start and input fragments, contentBlockStop, messageStop, and
// metadata with the usage. The inverse of ConverseStream.
type ChatToConverseStream struct {
	block   int
	open    bool // a content block is open
	started bool
}

func (s *ChatToConverseStream) closeBlock(out []ConverseEvent) []ConverseEvent {
	if !s.open {
		return out
	}
	s.open = false
	out = appendConverseEvent(out, "contentBlockStop", map[string]int{"contentBlockIndex": s.block})
	s.block++
	return out
}

func appendConverseEvent(out []ConverseEvent, eventType string, payload any) []ConverseEvent {
	b, _ := json.Marshal(payload)
	return append(out, ConverseEvent{Type: eventType, Payload: b})
}

// Chunk returns the events of one chat chunk (none for a chunk it cannot
// read).
func (s *ChatToConverseStream) Chunk(data []byte) []ConverseEvent {
	chunk, err := readWireReply(data)
	if err != nil {
		return nil
	}
	var out []ConverseEvent
	if chunk.Usage != nil {
		return appendConverseEvent(out, "metadata", map[string]any{"usage": converseUsage(chunk.Usage), "metrics": bedrockMetrics{LatencyMs: 1}})
	}
	for _, c := range chunk.Choices {
		if !s.started {
			s.started = true
			out = appendConverseEvent(out, "messageStart", map[string]any{"role": types.ConversationRoleAssistant})
		}
		if c.Delta != nil {
			out = s.delta(out, c.Delta)
		}
		if c.FinishReason != nil {
			out = s.closeBlock(out)
			out = appendConverseEvent(out, "messageStop", map[string]any{"stopReason": converseStopReason(c.FinishReason)})
		}
	}
	return out
}

func (s *ChatToConverseStream) delta(out []ConverseEvent, d *wireMessage) []ConverseEvent {
	for _, tc := range d.ToolCalls {
		if tc.ID != "" {
			out = s.closeBlock(out)
			s.open = true
			out = appendConverseEvent(out, "contentBlockStart", map[string]any{"contentBlockIndex": s.block,
				"start": map[string]any{"toolUse": map[string]string{"toolUseId": tc.ID, "name": tc.Function.Name}}})
		}
		if tc.Function.Arguments != "" {
			out = appendConverseEvent(out, "contentBlockDelta", map[string]any{"contentBlockIndex": s.block,
				"delta": map[string]any{"toolUse": map[string]string{"input": tc.Function.Arguments}}})
		}
	}
	if t := d.text(); t != "" {
		s.open = true
		out = appendConverseEvent(out, "contentBlockDelta", map[string]any{"contentBlockIndex": s.block, "delta": map[string]string{"text": t}})
	}
	return out
}
