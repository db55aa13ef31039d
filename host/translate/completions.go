package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// OpenAI's legacy completions API (POST /v1/completions) is served as a
// chat completion: the prompt becomes one user message, the parameters a
// chat completion shares with it are carried as they were sent, and what
// only a completion model can do (suffix, echo, logprobs, best_of) is
// refused. The chat completion this makes is what the guardrails scan and
// what the upstream receives, so nothing reaches the upstream unscanned.
// One prompt per request: an array of several prompts is refused rather
// than fanned out into several upstream calls, so that one request is one
// model call, one reservation and one ledger row.

// completionsCarried are the members of a completions request that a chat
// completion has under the same name and meaning, in the order they are
// sent upstream.
var completionsCarried = []string{"max_tokens", "temperature", "top_p", "n", "stop", "stream", "stream_options",
	"frequency_penalty", "presence_penalty", "logit_bias", "seed", "user"}

// completionsRefused are the members Sluice understands and does not serve,
// each with the value that asks for nothing and may be sent anyway.
var completionsRefused = map[string]func(json.RawMessage) bool{
	"suffix":   func(v json.RawMessage) bool { return string(v) == `""` },
	"echo":     func(v json.RawMessage) bool { return string(v) == "false" },
	"logprobs": func(json.RawMessage) bool { return false },
	"best_of":  func(v json.RawMessage) bool { return string(v) == "1" },
}

// CompletionsToChat translates a completions request body into the chat
// completion that serves it, for the model the caller named (the gateway
// renames it for the upstream as it does a chat request's). Every problem
// is a 400 naming the parameter. Members are matched by their exact name:
// a member the completions API does not have is refused, as OpenAI does,
// rather than passed on or dropped.
func CompletionsToChat(body []byte) ([]byte, *api.Error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return nil, api.InvalidRequest("invalid_json", "The request body must be a JSON object.")
	}
	for name, v := range members {
		if name == "model" || name == "prompt" || slices.Contains(completionsCarried, name) {
			continue
		}
		accepts, known := completionsRefused[name]
		if !known {
			return nil, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "unknown_parameter",
				Param: boundedName(name), Message: "Unrecognized request argument supplied: " + boundedName(name)}
		}
		if v = bytes.TrimSpace(v); present(v) && !accepts(v) {
			return nil, unsupported(name, "%s is not supported: Sluice serves completions through a chat model, "+
				"which has no %s. Send the request without it.", name, name)
		}
	}
	model, ok := members["model"]
	if !ok || !present(model) {
		return nil, invalid("model", "you must provide a model parameter")
	}
	prompt, aerr := completionPrompt(members["prompt"])
	if aerr != nil {
		return nil, aerr
	}
	var b bytes.Buffer
	b.WriteString(`{"model":`)
	b.Write(bytes.TrimSpace(model))
	b.WriteString(`,"messages":[{"role":"user","content":`)
	b.Write(jsonString(prompt))
	b.WriteString(`}]`)
	for _, name := range completionsCarried {
		v, ok := members[name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, `,%q:`, name)
		b.Write(bytes.TrimSpace(v))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// completionPrompt is the one prompt of a request: a string, or an array
// holding one string.
func completionPrompt(v json.RawMessage) (string, *api.Error) {
	if !present(v) {
		return "", invalid("prompt", "you must provide a prompt parameter")
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) != nil {
		return "", invalid("prompt", "prompt must be a string or an array of strings")
	}
	if len(list) == 0 {
		return "", invalid("prompt", "prompt must not be an empty array")
	}
	if json.Unmarshal(list[0], &s) != nil {
		return "", unsupported("prompt", "prompt as token ids is not supported: send the prompt's text.")
	}
	if len(list) > 1 {
		return "", unsupported("prompt", "prompt holds %d prompts; Sluice serves one prompt per request. "+
			"Send each prompt as a request of its own.", len(list))
	}
	return s, nil
}

// boundedName is a caller's member name fit to be quoted in an error: at
// most 64 bytes of it, cut at a character.
func boundedName(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "")
}

// CompletionMeta is what a text completion says of itself.
type CompletionMeta struct {
	ID      string // cmpl-…
	Model   string // the model as the caller named it
	Created int64
}

// NewCompletionMeta is the CompletionMeta of a new text completion.
func NewCompletionMeta(model string, created int64) CompletionMeta {
	return CompletionMeta{ID: NewID("cmpl-"), Model: model, Created: created}
}

// chatChoices is what a text completion is made of from a chat completion,
// whole (message) or one chunk (delta).
type chatChoices struct {
	Choices []struct {
		Index        int        `json:"index"`
		Message      *chatDelta `json:"message"`
		Delta        *chatDelta `json:"delta"`
		FinishReason *string    `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type (
	textCompletion struct {
		ID      string       `json:"id"`
		Object  string       `json:"object"`
		Created int64        `json:"created"`
		Model   string       `json:"model"`
		Choices []textChoice `json:"choices"`
		Usage   *textUsage   `json:"usage,omitempty"`
	}
	textChoice struct {
		Text         string    `json:"text"`
		Index        int       `json:"index"`
		Logprobs     *struct{} `json:"logprobs"` // always null: logprobs are refused
		FinishReason *string   `json:"finish_reason"`
	}
	textUsage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	}
)

func (u *chatUsage) completions() *textUsage {
	if u == nil {
		return nil
	}
	out := &textUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return out
}

// textFinishReason is a chat completion's finish reason as a text completion
// says it: stop, length or content_filter. A chat model that stops to call
// a tool (no tools are sent, so it should not) has stopped.
func textFinishReason(r *string) *string {
	if r == nil || *r == "" {
		return nil
	}
	out := "stop"
	if *r == "length" || *r == "content_filter" {
		out = *r
	}
	return &out
}

// choiceText is the text of a choice: its content, or its refusal when it
// has no content.
func choiceText(d *chatDelta) string {
	switch {
	case d == nil:
		return ""
	case d.Content != nil && *d.Content != "":
		return *d.Content
	case d.Refusal != nil:
		return *d.Refusal
	}
	return ""
}

// ChatToCompletion translates a whole chat completion (after the reply
// guardrails) into a text completion: each choice's text, index and finish
// reason, and the usage. Nothing else of the upstream's reply is passed on.
func ChatToCompletion(body []byte, m CompletionMeta) ([]byte, error) {
	var c chatChoices
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("translate: reading the chat completion: %w", err)
	}
	if len(c.Choices) == 0 {
		return nil, ErrNoChoice
	}
	out := m.object(c.Usage.completions())
	for _, ch := range c.Choices {
		out.Choices = append(out.Choices, textChoice{Text: choiceText(ch.Message), Index: ch.Index, FinishReason: textFinishReason(ch.FinishReason)})
	}
	return marshal(out)
}

func (m *CompletionMeta) object(u *textUsage) textCompletion {
	return textCompletion{ID: m.ID, Object: "text_completion", Created: m.Created, Model: m.Model, Choices: []textChoice{}, Usage: u}
}

// ChatChunkToCompletion translates one chat.completion.chunk (the JSON of
// its data line, after the reply guardrails) into the data of a streamed
// text completion chunk, or nil when the chunk carries nothing a text
// completion has (the first chunk's role, an empty delta). A usage chunk
// becomes a chunk with no choices and the usage, as OpenAI sends it. An
// upstream's error event is an error the caller gets in Sluice's words:
// the upstream's own can quote the request, and no guardrail read them.
func ChatChunkToCompletion(data []byte, m CompletionMeta) ([]byte, *api.Error, error) {
	var c chatChoices
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, fmt.Errorf("translate: reading a chat completion chunk: %w", err)
	}
	if present(c.Error) {
		return nil, api.UpstreamError("The upstream reported an error during the stream."), nil
	}
	out := m.object(c.Usage.completions())
	for _, ch := range c.Choices {
		text, finish := choiceText(ch.Delta), textFinishReason(ch.FinishReason)
		if text == "" && finish == nil {
			continue
		}
		out.Choices = append(out.Choices, textChoice{Text: text, Index: ch.Index, FinishReason: finish})
	}
	if len(out.Choices) == 0 && out.Usage == nil {
		return nil, nil, nil
	}
	b, err := marshal(out)
	return b, nil, err
}
