package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// MessagesMeta is what a Message says of itself: its id and the model as
// the caller named it.
type MessagesMeta struct {
	ID    string
	Model string
	// PromptTokens is the gateway's count of the prompt, which a stream's
	// message_start reports before the upstream's own figure arrives.
	PromptTokens int64
}

// NewMessagesMeta is the MessagesMeta of a new Message.
func NewMessagesMeta(model string, promptTokens int64) MessagesMeta {
	return MessagesMeta{ID: NewID("msg_"), Model: model, PromptTokens: promptTokens}
}

// messageObject is a Message object as Anthropic sends it.
type messageObject struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []messageBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        messagesUsage  `json:"usage"`
}

type messageBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type messagesUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

// chatStopSequence is a member Sluice adds to a chat choice translated
// from a Message that stopped at one of its stop sequences, so that the
// Message translated back says which: a chat completion has no place for it.
const chatStopSequence = "stop_sequence"

// chatMessageReply is a chat completion, whole or one chunk, as a Message is
// made of it.
type chatMessageReply struct {
	Choices []struct {
		Message      *chatDelta `json:"message"`
		Delta        *chatDelta `json:"delta"`
		FinishReason *string    `json:"finish_reason"`
		StopSequence *string    `json:"stop_sequence"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// usage is u as a Message's: Anthropic's input_tokens leave out the
// tokens read from its cache.
func (u *chatUsage) messages() messagesUsage {
	if u == nil {
		return messagesUsage{}
	}
	out := messagesUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil && d.CachedTokens <= u.PromptTokens {
		out.CacheReadInputTokens = d.CachedTokens
		out.InputTokens -= d.CachedTokens
	}
	return out
}

// stopReason is a Message's stop_reason for a chat completion's
// finish_reason.
func stopReason(finish string, stopSeq *string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	if stopSeq != nil {
		return "stop_sequence"
	}
	return "end_turn"
}

// toolUseID is a chat tool call's id as a tool_use block's: kept when it
// looks like an id, a new one otherwise (it is not text the guardrails
// scan).
func toolUseID(id string) string {
	if validID(id) {
		return id
	}
	return NewID("toolu_")
}

// toolInput is a tool call's arguments as a tool_use's input, which must be
// a JSON object: arguments that are not one are kept as a string member.
func toolInput(args string) json.RawMessage {
	a := bytes.TrimSpace([]byte(args))
	if len(a) == 0 {
		return json.RawMessage(`{}`)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(a, &obj) == nil && obj != nil {
		var buf bytes.Buffer
		json.Compact(&buf, a)
		return buf.Bytes()
	}
	b, _ := marshal(map[string]string{"arguments": args})
	return b
}

// ChatToMessage translates a whole chat completion (after the reply
// guardrails) into a Message. Only the first choice is read: a Messages
// request never asks for more.
func ChatToMessage(body []byte, m MessagesMeta) ([]byte, error) {
	var c chatMessageReply
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("translate: reading the chat completion: %w", err)
	}
	if len(c.Choices) == 0 || c.Choices[0].Message == nil {
		return nil, ErrNoChoice
	}
	ch := c.Choices[0]
	msg := ch.Message
	out := messageObject{ID: m.ID, Type: "message", Role: "assistant", Model: m.Model, Content: []messageBlock{}, Usage: c.Usage.messages()}
	text := ""
	if msg.Content != nil {
		text = *msg.Content
	}
	if msg.Refusal != nil {
		text += *msg.Refusal
	}
	if text != "" {
		out.Content = append(out.Content, messageBlock{Type: "text", Text: &text})
	}
	for _, tc := range msg.ToolCalls {
		out.Content = append(out.Content, messageBlock{Type: "tool_use", ID: toolUseID(tc.ID), Name: tc.Function.Name,
			Input: toolInput(tc.Function.Arguments)})
	}
	finish := ""
	if ch.FinishReason != nil {
		finish = *ch.FinishReason
	}
	reason := stopReason(finish, ch.StopSequence)
	out.StopReason = &reason
	if reason == "stop_sequence" {
		out.StopSequence = ch.StopSequence
	}
	return marshal(out)
}

// MessageToChat translates a Message from an Anthropic upstream into a
// chat completion, with the provider's usage: what Sluice bills. Input
// tokens read from or written to the provider's cache are prompt tokens.
func MessageToChat(body []byte, created int64) ([]byte, error) {
	var m struct {
		ID           string  `json:"id"`
		Model        string  `json:"model"`
		StopReason   *string `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
		Content      []struct {
			Type  string          `json:"type"`
			Text  string          `json:"text"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		Usage messagesUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("translate: reading the Message: %w", err)
	}
	var text strings.Builder
	var calls []chatToolCall
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := "{}"
			if present(b.Input) {
				var buf bytes.Buffer
				if json.Compact(&buf, b.Input) == nil {
					args = buf.String()
				}
			}
			calls = append(calls, chatToolCall{ID: b.ID, Type: "function", Function: chatFunction{Name: b.Name, Arguments: args}})
		}
		// Thinking blocks are not asked for (thinking is refused), and
		// nothing else is text for the caller.
	}
	msg := map[string]any{"role": "assistant", "content": text.String()}
	if text.Len() == 0 && len(calls) > 0 {
		msg["content"] = nil
	}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
	}
	choice := map[string]any{"index": 0, "message": msg, "finish_reason": chatFinishReason(m.StopReason)}
	if m.StopReason != nil && *m.StopReason == "stop_sequence" && m.StopSequence != nil {
		choice[chatStopSequence] = *m.StopSequence
	}
	return marshal(map[string]any{
		"id": "chatcmpl-" + m.ID, "object": "chat.completion", "created": created, "model": m.Model,
		"choices": []any{choice}, "usage": chatUsageOf(m.Usage),
	})
}

// chatFinishReason is a chat completion's finish_reason for a Message's
// stop_reason.
func chatFinishReason(stop *string) string {
	if stop == nil {
		return "stop"
	}
	switch *stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn
}

func chatUsageOf(u messagesUsage) map[string]any {
	prompt := u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	return map[string]any{
		"prompt_tokens": prompt, "completion_tokens": u.OutputTokens, "total_tokens": prompt + u.OutputTokens,
		"prompt_tokens_details": map[string]int64{"cached_tokens": u.CacheReadInputTokens},
	}
}

// Anthropic's error types.
const (
	messagesInvalidRequest = "invalid_request_error"
	messagesOverloaded     = "overloaded_error"
)

// MessagesError is e in Anthropic's shape and status:
//
//	{"type":"error","error":{"type":"rate_limit_error","message":"…","details":{"error_code":"budget_exceeded"}}}
//
// 503s (a guardrail that could not run, a shutdown) are Anthropic's 529
// overloaded_error, other server failures its 500 api_error: both are
// what its SDKs retry.
func MessagesError(e *api.Error) (status int, body []byte) {
	status = e.Status
	var typ string
	switch {
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status == http.StatusForbidden:
		typ = "permission_error"
	case status == http.StatusNotFound:
		typ = "not_found_error"
	case status == http.StatusRequestEntityTooLarge:
		typ = "request_too_large"
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status == http.StatusServiceUnavailable:
		status, typ = 529, messagesOverloaded
	case status >= 500:
		status, typ = http.StatusInternalServerError, "api_error"
	default:
		typ = messagesInvalidRequest
	}
	msg := e.Message
	if e.Param != "" && !strings.HasPrefix(msg, e.Param) {
		// Anthropic's error has no param: its message names it first.
		msg = e.Param + ": " + msg
	}
	return status, messagesErrorBody(typ, msg, e.Code)
}

// messagesErrorBody is an Anthropic error; Sluice's own code (budget_exceeded
// or rate_limit_exceeded, pii_detected…) is its details.error_code, where
// Anthropic puts the stable code that names a cause.
func messagesErrorBody(typ, msg, code string) []byte {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["details"] = map[string]string{"error_code": code}
	}
	b, _ := marshal(map[string]any{"type": "error", "error": e})
	return b
}

// ChatError is an Anthropic upstream's error body in OpenAI's shape, for
// the gateway to read as any upstream's: only its type is kept (mapped to
// OpenAI's), never its message, which can quote the request.
func ChatError(status int, body []byte) []byte {
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	json.Unmarshal(body, &e)
	typ := api.TypeForStatus(status)
	switch e.Error.Type {
	case "invalid_request_error":
		typ = api.TypeInvalidRequest
	case "authentication_error":
		typ = api.TypeAuthentication
	case "permission_error":
		typ = api.TypePermission
	case "not_found_error":
		typ = api.TypeNotFound
	case "rate_limit_error":
		typ = api.TypeRateLimit
	}
	b, _ := marshal(map[string]any{"error": map[string]any{"type": typ, "code": nil, "param": nil,
		"message": fmt.Sprintf("The Anthropic upstream answered with status %d.", status)}})
	return b
}
