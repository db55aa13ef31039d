package translate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Meta is what a Response says of itself and its request.
type Meta struct {
	ID        string // resp_…
	Model     string // the model as the caller named it
	CreatedAt int64
	Echo      Echo
}

// NewMeta is the Meta of a new Response.
func NewMeta(model string, createdAt int64, echo Echo) Meta {
	return Meta{ID: NewID("resp_"), Model: model, CreatedAt: createdAt, Echo: echo}
}

// NewID is prefix and 24 random bytes in hex, the form of OpenAI's ids.
func NewID(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// chatReply is what a Response is made of from a chat completion, whole
// (message) or one chunk (delta).
type chatReply struct {
	Choices []struct {
		Message      *chatDelta `json:"message"`
		Delta        *chatDelta `json:"delta"`
		FinishReason *string    `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
	// Error is an error event in the middle of a stream.
	Error json.RawMessage `json:"error"`
}

type chatDelta struct {
	Content   *string `json:"content"`
	Refusal   *string `json:"refusal"`
	ToolCalls []struct {
		Index    *int   `json:"index"`
		ID       string `json:"id"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// Usage is a Response's usage.
type Usage struct {
	InputTokens         int64        `json:"input_tokens"`
	InputTokensDetails  cachedTokens `json:"input_tokens_details"`
	OutputTokens        int64        `json:"output_tokens"`
	OutputTokensDetails reasoning    `json:"output_tokens_details"`
	TotalTokens         int64        `json:"total_tokens"`
}

type cachedTokens struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type reasoning struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

func (u *chatUsage) responses() *Usage {
	if u == nil {
		return nil
	}
	out := &Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	if d := u.PromptTokensDetails; d != nil {
		out.InputTokensDetails.CachedTokens = d.CachedTokens
	}
	if d := u.CompletionTokensDetails; d != nil {
		out.OutputTokensDetails.ReasoningTokens = d.ReasoningTokens
	}
	return out
}

// Output items of a Response.
type (
	outputItem struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Status string `json:"status"`
		// message
		Role    string        `json:"role,omitempty"`
		Content *[]outputPart `json:"content,omitempty"`
		// function_call
		CallID    string  `json:"call_id,omitempty"`
		Name      string  `json:"name,omitempty"`
		Arguments *string `json:"arguments,omitempty"`
	}
	outputPart struct {
		Type        string    `json:"type"`
		Text        *string   `json:"text,omitempty"`
		Refusal     *string   `json:"refusal,omitempty"`
		Annotations *[]string `json:"annotations,omitempty"`
		Logprobs    *[]string `json:"logprobs,omitempty"`
	}
)

func textPart(text string) outputPart {
	none := []string{}
	return outputPart{Type: "output_text", Text: &text, Annotations: &none, Logprobs: &none}
}

func refusalPart(text string) outputPart {
	return outputPart{Type: "refusal", Refusal: &text}
}

// response is a Response object.
type response struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Background         bool            `json:"background"`
	Error              *struct{}       `json:"error"`
	IncompleteDetails  *incomplete     `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	Metadata           struct{}        `json:"metadata"`
	Model              string          `json:"model"`
	Output             []outputItem    `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              bool            `json:"store"`
	Temperature        *float64        `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              []struct{}      `json:"tools"`
	TopP               *float64        `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *Usage          `json:"usage"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

// object is the Response with status, output and usage. It repeats the
// request's parameters but none of its texts (instructions, tools,
// metadata): a caller has them, and Sluice sends no text it did not have to.
func (m *Meta) object(status string, output []outputItem, usage *Usage, reason string) response {
	r := response{ID: m.ID, Object: "response", CreatedAt: m.CreatedAt, Status: status, Model: m.Model, Output: output,
		ParallelToolCalls: m.Echo.ParallelToolCalls, Temperature: m.Echo.Temperature, TopP: m.Echo.TopP,
		Text: json.RawMessage(`{"format":{"type":"text"}}`), ToolChoice: m.Echo.ToolChoice, Tools: []struct{}{},
		Truncation: "disabled", Usage: usage}
	if r.Output == nil {
		r.Output = []outputItem{}
	}
	if r.ToolChoice == nil {
		r.ToolChoice = json.RawMessage(`"auto"`)
	}
	if m.Echo.MaxOutputTokens > 0 {
		n := m.Echo.MaxOutputTokens
		r.MaxOutputTokens = &n
	}
	if reason != "" {
		r.IncompleteDetails = &incomplete{Reason: reason}
	}
	return r
}

// statusOf is a Response's status and incomplete reason for a chat
// completion's finish reason.
func statusOf(finish string) (status, reason string) {
	switch finish {
	case "length":
		return "incomplete", "max_output_tokens"
	case "content_filter":
		return "incomplete", "content_filter"
	}
	return "completed", ""
}

// ErrNoChoice is returned for a chat completion without a choice to make a
// Response of.
var ErrNoChoice = errors.New("translate: the chat completion has no choice")

// ChatToResponse translates a whole chat completion (after the reply
// guardrails) into a Response. Only the first choice is read: a Responses
// request never asks for more. A tool call's id is not text the guardrails
// scan, so one that does not look like an id is replaced by a new one: the
// caller sends it back with the call, and no upstream keeps it.
func ChatToResponse(body []byte, m Meta) ([]byte, error) {
	var c chatReply
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("translate: reading the chat completion: %w", err)
	}
	if len(c.Choices) == 0 || c.Choices[0].Message == nil {
		return nil, ErrNoChoice
	}
	ch := c.Choices[0]
	msg := ch.Message
	var output []outputItem
	var parts []outputPart
	if msg.Content != nil && *msg.Content != "" {
		parts = append(parts, textPart(*msg.Content))
	}
	if msg.Refusal != nil && *msg.Refusal != "" {
		parts = append(parts, refusalPart(*msg.Refusal))
	}
	if len(parts) > 0 {
		output = append(output, outputItem{Type: "message", ID: NewID("msg_"), Status: "completed", Role: "assistant", Content: &parts})
	}
	for _, tc := range msg.ToolCalls {
		args := tc.Function.Arguments
		callID := tc.ID
		if !validID(callID) {
			callID = NewID("call_")
		}
		output = append(output, outputItem{Type: "function_call", ID: NewID("fc_"), Status: "completed", CallID: callID,
			Name: tc.Function.Name, Arguments: &args})
	}
	finish := ""
	if ch.FinishReason != nil {
		finish = *ch.FinishReason
	}
	status, reason := statusOf(finish)
	return marshal(m.object(status, output, c.Usage.responses(), reason))
}
