package upstream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// The gateway's internal form is OpenAI's chat completion: a provider
// adapter reads a chatRequest and answers a chatReply, or a stream of
// chatReply chunks. These structs hold the members the adapters
// translate; a member they do not know is not sent on.

type chatRequest struct {
	Model               string              `json:"model"`
	Messages            []chatMessage       `json:"messages"`
	MaxTokens           *int64              `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64              `json:"max_completion_tokens,omitempty"`
	Temperature         *float64            `json:"temperature,omitempty"`
	TopP                *float64            `json:"top_p,omitempty"`
	Stop                json.RawMessage     `json:"stop,omitempty"`
	N                   *int                `json:"n,omitempty"`
	Stream              bool                `json:"stream,omitempty"`
	StreamOptions       *chatStreamOptions  `json:"stream_options,omitempty"`
	Tools               []chatTool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage     `json:"tool_choice,omitempty"`
	ResponseFormat      *chatResponseFormat `json:"response_format,omitempty"`
}

type chatStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"` // a string, an array of parts, or null
	ToolCalls  []chatToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url,omitempty"`
}

type chatToolCall struct {
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function chatFunctionCall `json:"function"`
}

type chatFunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

type chatResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name,omitempty"`
		Schema json.RawMessage `json:"schema,omitempty"`
	} `json:"json_schema,omitempty"`
}

type chatReply struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatMessage `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details,omitempty"`
}

// newChatUsage is the usage of a reply: cached counts within prompt,
// reasoning within completion.
func newChatUsage(prompt, completion, cached, reasoning int64) *chatUsage {
	u := &chatUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	if cached > 0 {
		u.PromptTokensDetails = &struct {
			CachedTokens int64 `json:"cached_tokens"`
		}{cached}
	}
	if reasoning > 0 {
		u.CompletionTokensDetails = &struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		}{reasoning}
	}
	return u
}

// textContent is a message content of plain text.
func textContent(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// parts reads a message's content as parts: a string is one text part,
// null none.
func (m *chatMessage) parts() ([]chatPart, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return []chatPart{{Type: "text", Text: s}}, nil
	}
	var parts []chatPart
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return nil, refuse("messages", "a message's content must be a string or an array of parts")
	}
	return parts, nil
}

// text is a message's text parts joined.
func (m *chatMessage) text() string {
	parts, _ := m.parts()
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// maxTokens is the reply's bound the request sets, or nil.
func (r *chatRequest) maxTokens() *int64 {
	if r.MaxCompletionTokens != nil {
		return r.MaxCompletionTokens
	}
	return r.MaxTokens
}

// stops reads stop: a string or an array of strings.
func (r *chatRequest) stops() ([]string, error) {
	if len(r.Stop) == 0 || string(r.Stop) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(r.Stop, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(r.Stop, &many) != nil {
		return nil, refuse("stop", "stop must be a string or an array of strings")
	}
	return many, nil
}

// toolChoice reads tool_choice: mode is none, auto or required, or name
// the one function the model must call.
func (r *chatRequest) toolChoice() (mode, name string, err error) {
	if len(r.ToolChoice) == 0 || string(r.ToolChoice) == "null" {
		return "auto", "", nil
	}
	if json.Unmarshal(r.ToolChoice, &mode) == nil {
		switch mode {
		case "none", "auto", "required":
			return mode, "", nil
		}
		return "", "", refuse("tool_choice", "tool_choice must be none, auto, required or a function")
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(r.ToolChoice, &named) != nil || named.Function.Name == "" {
		return "", "", refuse("tool_choice", "tool_choice must be none, auto, required or a function")
	}
	return "required", named.Function.Name, nil
}

// commonRefusals refuses what no provider adapter translates: more than
// one choice.
func (r *chatRequest) commonRefusals() error {
	if r.N != nil && *r.N > 1 {
		return refuse("n", "this model's provider returns one choice per request: n must be 1")
	}
	return nil
}

// dataURL splits a data: URL into its media type and its bytes; http(s)
// image URLs are refused, since the providers take the image itself.
func dataURL(u string) (mediaType string, data []byte, err error) {
	rest, ok := strings.CutPrefix(u, "data:")
	meta, payload, found := strings.Cut(rest, ",")
	mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
	if !ok || !found || !isBase64 {
		return "", nil, refuse("messages", "this model's provider takes images as base64 data: URLs only")
	}
	if data, err = base64.StdEncoding.DecodeString(payload); err != nil {
		return "", nil, refuse("messages", "an image's data: URL is not valid base64")
	}
	return mediaType, data, nil
}

// refusal is a request an adapter cannot translate: the caller gets a 400
// in OpenAI's shape naming the parameter. Its message is a fixed text,
// never the caller's.
type refusal struct {
	param, msg string
}

func refuse(param, msg string) error { return &refusal{param: param, msg: msg} }

func (r *refusal) Error() string { return r.msg }

// refusalReply is the reply for an error of a translation: a refusal, or
// an unreadable body.
func refusalReply(err error) *Reply {
	r, ok := err.(*refusal)
	if !ok {
		r = &refusal{msg: "the request body could not be read"}
	}
	return openAIErrorReply(400, "invalid_request_error", "unsupported_parameter", r.param, r.msg)
}

// openAIErrorReply is an error reply in OpenAI's shape.
func openAIErrorReply(status int, typ, code, param, msg string) *Reply {
	e := map[string]any{"message": msg, "type": typ, "code": code, "param": nil}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return &Reply{Status: status, Body: b}
}

// errorTypeFor is OpenAI's error type for an HTTP status.
func errorTypeFor(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// snakeCase turns a provider's error name (ThrottlingException,
// RESOURCE_EXHAUSTED) into an OpenAI-style code (throttling_exception,
// resource_exhausted); anything else becomes "upstream_error".
func snakeCase(name string) string {
	var b strings.Builder
	for i, c := range name {
		switch {
		case c >= 'A' && c <= 'Z':
			if i > 0 && !(name[i-1] >= 'A' && name[i-1] <= 'Z') && name[i-1] != '_' {
				b.WriteByte('_')
			}
			b.WriteRune(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c == '_':
			b.WriteRune(c)
		default:
			return "upstream_error"
		}
	}
	if b.Len() == 0 || b.Len() > 64 {
		return "upstream_error"
	}
	return b.String()
}

// chunker writes the chunks of one streamed chat completion.
type chunker struct {
	id      string
	created int64
	model   string
}

func (c *chunker) chunk(delta *chatMessage, finish string) []byte {
	choice := chatChoice{Delta: delta}
	if finish != "" {
		choice.FinishReason = &finish
	}
	b, _ := json.Marshal(chatReply{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model, Choices: []chatChoice{choice}})
	return b
}

func (c *chunker) role() []byte {
	empty := textContent("")
	return c.chunk(&chatMessage{Role: "assistant", Content: empty}, "")
}

func (c *chunker) text(s string) []byte { return c.chunk(&chatMessage{Content: textContent(s)}, "") }

// toolCall is a chunk with a whole tool call (or, with id and name empty,
// a fragment of its arguments).
func (c *chunker) toolCall(index int, id, name, args string) []byte {
	call := chatToolCall{Index: &index, ID: id, Function: chatFunctionCall{Name: name, Arguments: args}}
	if id != "" {
		call.Type = "function"
	}
	return c.chunk(&chatMessage{ToolCalls: []chatToolCall{call}}, "")
}

func (c *chunker) finish(reason string) []byte { return c.chunk(&chatMessage{}, reason) }

func (c *chunker) usage(u *chatUsage) []byte {
	b, _ := json.Marshal(chatReply{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model, Choices: []chatChoice{}, Usage: u})
	return b
}

// completion is a whole chat completion of one choice.
func completion(id string, created int64, model string, msg *chatMessage, finish string, u *chatUsage) []byte {
	b, _ := json.Marshal(chatReply{ID: id, Object: "chat.completion", Created: created, Model: model,
		Choices: []chatChoice{{Message: msg, FinishReason: &finish}}, Usage: u})
	return b
}

// assistantMessage is a reply message of text and tool calls.
func assistantMessage(text string, calls []chatToolCall) *chatMessage {
	m := &chatMessage{Role: "assistant", Content: textContent(text), ToolCalls: calls}
	if text == "" && len(calls) > 0 {
		m.Content = json.RawMessage("null")
	}
	return m
}

// generatedCallPrefix starts the ids Sluice gives the calls a provider did
// not name; they are not sent back to the provider.
const generatedCallPrefix = "call_sluice_"

// toolCallID is a deterministic id for a call a provider did not name.
func toolCallID(name string, i int) string {
	return fmt.Sprintf("%s%s_%d", generatedCallPrefix, shortHash([]byte(name)), i)
}

// providerCallID is the id to send a provider for a call: none for one it
// did not name.
func providerCallID(id string) string {
	if strings.HasPrefix(id, generatedCallPrefix) {
		return ""
	}
	return id
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
