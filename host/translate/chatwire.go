package translate

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// The chat completion as the Bedrock and Gemini translations read and
// write it. They read a request leniently, as an OpenAI-protocol upstream
// would: a member they do not translate is not sent on, where the Messages
// translation (chatIn) refuses it. They write chunks and completions with
// the optional members left out, as OpenAI sends them.

type wireRequest struct {
	Model               string              `json:"model"`
	Messages            []wireMessage       `json:"messages"`
	MaxTokens           *int64              `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64              `json:"max_completion_tokens,omitempty"`
	Temperature         *float64            `json:"temperature,omitempty"`
	TopP                *float64            `json:"top_p,omitempty"`
	Stop                json.RawMessage     `json:"stop,omitempty"`
	N                   *int                `json:"n,omitempty"`
	Stream              bool                `json:"stream,omitempty"`
	StreamOptions       *streamOptions      `json:"stream_options,omitempty"`
	Tools               []wireTool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage     `json:"tool_choice,omitempty"`
	ResponseFormat      *wireResponseFormat `json:"response_format,omitempty"`
}

type wireMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"` // a string, an array of parts, or null
	ToolCalls  []wireToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type wirePart struct {
	Type     string        `json:"type"`
	Text     string        `json:"text,omitempty"`
	ImageURL *chatImageURL `json:"image_url,omitempty"`
}

type wireToolCall struct {
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function wireFunctionCall `json:"function"`
}

type wireFunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type wireTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

type wireResponseFormat struct {
	Type       string          `json:"type"`
	JSONSchema *wireJSONSchema `json:"json_schema,omitempty"`
}

type wireJSONSchema struct {
	Name   string          `json:"name,omitempty"`
	Schema json.RawMessage `json:"schema,omitempty"`
}

type wireReply struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []wireChoice `json:"choices"`
	Usage   *wireUsage   `json:"usage,omitempty"`
}

type wireChoice struct {
	Index        int          `json:"index"`
	Message      *wireMessage `json:"message,omitempty"`
	Delta        *wireMessage `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
}

type wireUsage struct {
	PromptTokens            int64         `json:"prompt_tokens"`
	CompletionTokens        int64         `json:"completion_tokens"`
	TotalTokens             int64         `json:"total_tokens"`
	PromptTokensDetails     *cachedTokens `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *reasoning    `json:"completion_tokens_details,omitempty"`
}

// newWireUsage is the usage of a reply: cached counts within prompt,
// reasoning within completion.
func newWireUsage(prompt, completion, cached, reasoningTokens int64) *wireUsage {
	u := &wireUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	if cached > 0 {
		u.PromptTokensDetails = &cachedTokens{cached}
	}
	if reasoningTokens > 0 {
		u.CompletionTokensDetails = &reasoning{reasoningTokens}
	}
	return u
}

// cached and reasoningTokens read the details of u (zero when absent).
func (u *wireUsage) cached() int64 {
	if u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

func (u *wireUsage) reasoningTokens() int64 {
	if u.CompletionTokensDetails == nil {
		return 0
	}
	return u.CompletionTokensDetails.ReasoningTokens
}

// ProviderRequest is a chat completion request translated for a provider
// whose API is not OpenAI's: the body to send, and what the transport
// needs of the chat request to address the provider and read its reply.
type ProviderRequest struct {
	// Model is the chat request's model: the provider's model id.
	Model string
	// Body is the provider's request body.
	Body []byte
	// IncludeUsage is stream_options.include_usage: a stream ends with a
	// chunk of usage.
	IncludeUsage bool
}

// ChatMeta is what a chat completion translated from a provider's reply
// says of itself.
type ChatMeta struct {
	ID      string
	Created int64
	Model   string
}

// readWireRequest reads a chat completion request for a provider
// translation, refusing what no provider translation can send: more than
// one choice.
func readWireRequest(body []byte) (*wireRequest, *api.Error) {
	var req wireRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: Unsupported,
			Message: "the request body could not be read"}
	}
	if req.N != nil && *req.N > 1 {
		return nil, unsupported("n", "this model's provider returns one choice per request: n must be 1")
	}
	return &req, nil
}

// providerRequest is the ProviderRequest of req with the body v.
func (r *wireRequest) providerRequest(v any) ProviderRequest {
	b, _ := json.Marshal(v) // plain structs and valid raw JSON: cannot fail
	return ProviderRequest{Model: r.Model, Body: b, IncludeUsage: r.StreamOptions != nil && r.StreamOptions.IncludeUsage}
}

// textContent is a message content of plain text.
func textContent(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// parts reads a message's content as parts: a string is one text part,
// null none.
func (m *wireMessage) parts() ([]wirePart, *api.Error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return []wirePart{{Type: "text", Text: s}}, nil
	}
	var parts []wirePart
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return nil, unsupported("messages", "a message's content must be a string or an array of parts")
	}
	return parts, nil
}

// text is a message's text parts joined.
func (m *wireMessage) text() string {
	parts, _ := m.parts()
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// chatContent is the content of a message of parts: a single text part is
// sent as a string, as callers write it.
func chatContent(parts []wirePart) json.RawMessage {
	if len(parts) == 1 && parts[0].Type == "text" {
		return textContent(parts[0].Text)
	}
	b, _ := json.Marshal(parts)
	return b
}

// maxTokens is the reply's bound the request sets, or nil.
func (r *wireRequest) maxTokens() *int64 {
	if r.MaxCompletionTokens != nil {
		return r.MaxCompletionTokens
	}
	return r.MaxTokens
}

// stops reads stop: a string or an array of strings.
func (r *wireRequest) stops() ([]string, *api.Error) {
	if len(r.Stop) == 0 || string(r.Stop) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(r.Stop, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(r.Stop, &many) != nil {
		return nil, unsupported("stop", "stop must be a string or an array of strings")
	}
	return many, nil
}

// toolChoice reads tool_choice: mode is none, auto or required, or name
// the one function the model must call.
func (r *wireRequest) toolChoice() (mode, name string, aerr *api.Error) {
	if len(r.ToolChoice) == 0 || string(r.ToolChoice) == "null" {
		return "auto", "", nil
	}
	if json.Unmarshal(r.ToolChoice, &mode) == nil {
		switch mode {
		case "none", "auto", "required":
			return mode, "", nil
		}
		return "", "", unsupported("tool_choice", "tool_choice must be none, auto, required or a function")
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(r.ToolChoice, &named) != nil || named.Function.Name == "" {
		return "", "", unsupported("tool_choice", "tool_choice must be none, auto, required or a function")
	}
	return "required", named.Function.Name, nil
}

// namedToolChoice is the chat tool_choice that names one function.
func namedToolChoice(name string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": name}})
	return b
}

// imageData splits an image part's data: URL into its media type and its
// bytes; http(s) image URLs are refused, since the providers take the
// image itself.
func imageData(p wirePart) (mediaType string, data []byte, aerr *api.Error) {
	if p.ImageURL == nil {
		return "", nil, unsupported("messages", "an image_url part has no url")
	}
	rest, ok := strings.CutPrefix(p.ImageURL.URL, "data:")
	meta, payload, found := strings.Cut(rest, ",")
	mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
	if !ok || !found || !isBase64 {
		return "", nil, unsupported("messages", "this model's provider takes images as base64 data: URLs only")
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return "", nil, unsupported("messages", "an image's data: URL is not valid base64")
	}
	return mediaType, data, nil
}

// imagePart is the chat part of an image of type mediaType.
func imagePart(mediaType string, data []byte) wirePart {
	return wirePart{Type: "image_url", ImageURL: &chatImageURL{URL: "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(data)}}
}

// toolArguments checks a tool call's arguments: the providers take a JSON
// object.
func toolArguments(tc wireToolCall) (json.RawMessage, *api.Error) {
	args := json.RawMessage(tc.Function.Arguments)
	if !isJSONObject(args) {
		return nil, unsupported("messages", "a tool call's arguments must be a JSON object")
	}
	return args, nil
}

func isJSONObject(b json.RawMessage) bool {
	var o map[string]json.RawMessage
	return json.Unmarshal(b, &o) == nil && o != nil
}

// chunker writes the chunks of one streamed chat completion.
type chunker struct{ ChatMeta }

func (c *chunker) chunk(delta *wireMessage, finish string) []byte {
	choice := wireChoice{Delta: delta}
	if finish != "" {
		choice.FinishReason = &finish
	}
	b, _ := json.Marshal(wireReply{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model, Choices: []wireChoice{choice}})
	return b
}

func (c *chunker) role() []byte {
	return c.chunk(&wireMessage{Role: "assistant", Content: textContent("")}, "")
}

func (c *chunker) text(s string) []byte { return c.chunk(&wireMessage{Content: textContent(s)}, "") }

// toolCall is a chunk with a whole tool call (or, with id and name empty,
// a fragment of its arguments).
func (c *chunker) toolCall(index int, id, name, args string) []byte {
	call := wireToolCall{Index: &index, ID: id, Function: wireFunctionCall{Name: name, Arguments: args}}
	if id != "" {
		call.Type = "function"
	}
	return c.chunk(&wireMessage{ToolCalls: []wireToolCall{call}}, "")
}

func (c *chunker) finish(reason string) []byte { return c.chunk(&wireMessage{}, reason) }

func (c *chunker) usage(u *wireUsage) []byte {
	b, _ := json.Marshal(wireReply{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model, Choices: []wireChoice{}, Usage: u})
	return b
}

// completion is a whole chat completion of one choice.
func completion(m ChatMeta, msg *wireMessage, finish string, u *wireUsage) []byte {
	b, _ := json.Marshal(wireReply{ID: m.ID, Object: "chat.completion", Created: m.Created, Model: m.Model,
		Choices: []wireChoice{{Message: msg, FinishReason: &finish}}, Usage: u})
	return b
}

// assistantMessage is a reply message of text and tool calls.
func assistantMessage(text string, calls []wireToolCall) *wireMessage {
	m := &wireMessage{Role: "assistant", Content: textContent(text), ToolCalls: calls}
	if text == "" && len(calls) > 0 {
		m.Content = json.RawMessage("null")
	}
	return m
}

// readWireReply reads a chat completion, or one chunk of a stream.
func readWireReply(body []byte) (*wireReply, error) {
	var r wireReply
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// generatedCallPrefix starts the ids Sluice gives the calls a provider did
// not name; they are not sent back to the provider.
const generatedCallPrefix = "call_sluice_"

// toolCallID is a deterministic id for a call a provider did not name.
func toolCallID(name string, i int) string {
	h := sha256.Sum256([]byte(name))
	return fmt.Sprintf("%s%x_%d", generatedCallPrefix, h[:6], i)
}

// providerCallID is the id to send a provider for a call: none for one it
// did not name.
func providerCallID(id string) string {
	if strings.HasPrefix(id, generatedCallPrefix) {
		return ""
	}
	return id
}
