package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// chatIn is a chat completion request as an Anthropic upstream reads it.
// A member not named here is refused; the ones named but not sent
// (store, metadata, service_tier, prompt_cache_key, stream_options) change
// nothing the model produces.
type chatIn struct {
	Model               string            `json:"model"`
	Messages            []json.RawMessage `json:"messages"`
	Tools               []chatTool        `json:"tools"`
	ToolChoice          json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls   *bool             `json:"parallel_tool_calls"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Temperature         *float64          `json:"temperature"`
	TopP                *float64          `json:"top_p"`
	TopK                *int64            `json:"top_k"`
	Stop                json.RawMessage   `json:"stop"`
	Stream              bool              `json:"stream"`
	StreamOptions       json.RawMessage   `json:"stream_options"`
	User                *string           `json:"user"`
	SafetyIdentifier    *string           `json:"safety_identifier"`
	N                   *int64            `json:"n"`
	ResponseFormat      json.RawMessage   `json:"response_format"`
	Store               json.RawMessage   `json:"store"`
	Metadata            json.RawMessage   `json:"metadata"`
	ServiceTier         json.RawMessage   `json:"service_tier"`
	PromptCacheKey      json.RawMessage   `json:"prompt_cache_key"`
}

type chatInMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Refusal    *string         `json:"refusal"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type chatInPart struct {
	Type     string        `json:"type"`
	Text     *string       `json:"text"`
	ImageURL *chatImageURL `json:"image_url"`
}

// DefaultMaxTokens is the max_tokens sent to an Anthropic upstream for a
// chat completion that sets no reply limit: the Messages API requires one.
const DefaultMaxTokens = 4096

// ChatToMessages translates a chat completion request (as the gateway
// sends it to any upstream) into a Messages request for an Anthropic
// upstream. What the Messages API cannot do (n > 1, response_format,
// logprobs, audio…) is a 400 naming the parameter.
func ChatToMessages(body []byte) ([]byte, *api.Error) {
	var c chatIn
	if aerr := strict(body, &c, ""); aerr != nil {
		return nil, aerr
	}
	if c.N != nil && *c.N != 1 {
		return nil, unsupported("n", "n must be 1: an Anthropic model returns one reply per request")
	}
	if present(c.ResponseFormat) {
		var f struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(c.ResponseFormat, &f) != nil || f.Type != "text" {
			return nil, unsupported("response_format", "response_format is not supported by an Anthropic upstream")
		}
	}
	out := messagesRequest{Model: c.Model, MaxTokens: DefaultMaxTokens, Temperature: c.Temperature, TopP: c.TopP, TopK: c.TopK,
		Stream: c.Stream}
	switch {
	case c.MaxCompletionTokens != nil && *c.MaxCompletionTokens > 0:
		out.MaxTokens = *c.MaxCompletionTokens
	case c.MaxTokens != nil && *c.MaxTokens > 0:
		out.MaxTokens = *c.MaxTokens
	}
	if present(c.Stop) {
		var one string
		if json.Unmarshal(c.Stop, &one) == nil {
			out.StopSequences = []string{one}
		} else if json.Unmarshal(c.Stop, &out.StopSequences) != nil {
			return nil, invalid("stop", "stop must be a string or an array of strings")
		}
	}
	user := c.User
	if user == nil {
		user = c.SafetyIdentifier
	}
	if user != nil && *user != "" {
		out.Metadata = &messagesMetadata{UserID: user}
	}
	var system []string
	var msgs []messagesMessage
	var blocks [][]messagesBlock
	add := func(role string, bs []messagesBlock) {
		if n := len(msgs); n > 0 && msgs[n-1].Role == role {
			// The Messages API alternates roles: a tool's results and
			// the user's next words are one user turn.
			blocks[n-1] = append(blocks[n-1], bs...)
			return
		}
		msgs = append(msgs, messagesMessage{Role: role})
		blocks = append(blocks, bs)
	}
	for i, raw := range c.Messages {
		p := fmt.Sprintf("messages[%d]", i)
		var m chatInMessage
		if aerr := strict(raw, &m, p); aerr != nil {
			return nil, aerr
		}
		switch m.Role {
		case "system", "developer":
			text, aerr := chatText(p+".content", m.Content)
			if aerr != nil {
				return nil, aerr
			}
			system = append(system, text)
		case "user":
			bs, aerr := chatUserBlocks(p+".content", m.Content)
			if aerr != nil {
				return nil, aerr
			}
			add("user", bs)
		case "assistant":
			bs, aerr := chatAssistantBlocks(p, &m)
			if aerr != nil {
				return nil, aerr
			}
			if len(bs) > 0 {
				add("assistant", bs)
			}
		case "tool":
			if !validID(m.ToolCallID) {
				return nil, invalid(p+".tool_call_id", "%s.tool_call_id is not a tool call id", p)
			}
			text, aerr := chatText(p+".content", m.Content)
			if aerr != nil {
				return nil, aerr
			}
			add("user", []messagesBlock{{Type: "tool_result", ToolUseID: m.ToolCallID, Content: jsonString(text)}})
		default:
			return nil, invalid(p+".role", "%s.role must be system, developer, user, assistant or tool", p)
		}
	}
	if len(msgs) == 0 {
		return nil, invalid("messages", "messages must hold at least one user or assistant message")
	}
	for i := range msgs {
		msgs[i].Content, _ = marshal(blocks[i])
		b, _ := marshal(msgs[i])
		out.Messages = append(out.Messages, b)
	}
	if len(system) > 0 {
		out.System = jsonString(strings.Join(system, "\n"))
	}
	for i, t := range c.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return nil, unsupported(p+".type", "%s: an Anthropic upstream takes function tools only", p)
		}
		schema := t.Function.Parameters
		if !present(schema) {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, messagesTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if aerr := chatToolChoice(&out, c.ToolChoice, c.ParallelToolCalls); aerr != nil {
		return nil, aerr
	}
	b, err := marshal(out)
	if err != nil {
		return nil, api.Internal("The request could not be translated for the upstream.")
	}
	return b, nil
}

func chatToolChoice(out *messagesRequest, v json.RawMessage, parallel *bool) *api.Error {
	if len(out.Tools) == 0 {
		return nil // Anthropic refuses a tool_choice without tools
	}
	var choice *messagesToolChoice
	if present(v) {
		var s string
		if json.Unmarshal(v, &s) == nil {
			switch s {
			case "auto":
				choice = &messagesToolChoice{Type: "auto"}
			case "required":
				choice = &messagesToolChoice{Type: "any"}
			case "none":
				choice = &messagesToolChoice{Type: "none"}
			default:
				return invalid("tool_choice", "tool_choice must be auto, none, required or a function")
			}
		} else {
			var c struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if json.Unmarshal(v, &c) != nil || c.Function.Name == "" {
				return invalid("tool_choice", "tool_choice must be auto, none, required or a function")
			}
			// The name is not scanned: it must be one of the tools', which are.
			if !slices.ContainsFunc(out.Tools, func(t messagesTool) bool { return t.Name == c.Function.Name }) {
				return invalid("tool_choice.function.name", "tool_choice names a function that is not among the tools")
			}
			choice = &messagesToolChoice{Type: "tool", Name: c.Function.Name}
		}
	}
	if parallel != nil && !*parallel {
		if choice == nil {
			choice = &messagesToolChoice{Type: "auto"}
		}
		if choice.Type != "none" {
			yes := true
			choice.DisableParallelToolUse = &yes
		}
	}
	out.ToolChoice = choice
	return nil
}

// chatText is a content value that must be text: a string, or text parts
// joined.
func chatText(p string, v json.RawMessage) (string, *api.Error) {
	if !present(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var parts []json.RawMessage
	if json.Unmarshal(v, &parts) != nil {
		return "", invalid(p, "%s must be a string or an array of text parts", p)
	}
	var b strings.Builder
	for j, raw := range parts {
		pp := fmt.Sprintf("%s[%d]", p, j)
		var part chatInPart
		if aerr := strict(raw, &part, pp); aerr != nil {
			return "", aerr
		}
		if part.Type != "text" || part.Text == nil {
			return "", unsupported(pp+".type", "%s: only text parts are supported here by an Anthropic upstream", pp)
		}
		b.WriteString(*part.Text)
	}
	return b.String(), nil
}

func chatUserBlocks(p string, v json.RawMessage) ([]messagesBlock, *api.Error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return []messagesBlock{{Type: "text", Text: &s}}, nil
	}
	var parts []json.RawMessage
	if json.Unmarshal(v, &parts) != nil || len(parts) == 0 {
		return nil, invalid(p, "%s must be a string or an array of content parts", p)
	}
	out := make([]messagesBlock, 0, len(parts))
	for j, raw := range parts {
		pp := fmt.Sprintf("%s[%d]", p, j)
		var part chatInPart
		if aerr := strict(raw, &part, pp); aerr != nil {
			return nil, aerr
		}
		switch {
		case part.Type == "text" && part.Text != nil:
			out = append(out, messagesBlock{Type: "text", Text: part.Text})
		case part.Type == "image_url" && part.ImageURL != nil:
			src, aerr := imageSource(pp+".image_url.url", part.ImageURL.URL)
			if aerr != nil {
				return nil, aerr
			}
			b, _ := marshal(src)
			out = append(out, messagesBlock{Type: "image", Source: b})
		default:
			return nil, unsupported(pp+".type", "%s: an Anthropic upstream takes text and image_url parts only", pp)
		}
	}
	return out, nil
}

// imageSource is a chat image URL as an image block's source.
func imageSource(p, url string) (*messagesSource, *api.Error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		media, data, ok := strings.Cut(rest, ";base64,")
		if !ok || !oneOf(media, imageTypes...) {
			return nil, unsupported(p, "%s: a data URL must be a base64 image of type %s", p, strings.Join(imageTypes, ", "))
		}
		return &messagesSource{Type: "base64", MediaType: media, Data: data}, nil
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return nil, invalid(p, "%s must be an http or https URL or a data URL", p)
	}
	return &messagesSource{Type: "url", URL: url}, nil
}

func chatAssistantBlocks(p string, m *chatInMessage) ([]messagesBlock, *api.Error) {
	text, aerr := chatText(p+".content", m.Content)
	if aerr != nil {
		return nil, aerr
	}
	if m.Refusal != nil {
		text += *m.Refusal
	}
	var out []messagesBlock
	if text != "" {
		out = append(out, messagesBlock{Type: "text", Text: &text})
	}
	for k, tc := range m.ToolCalls {
		tp := fmt.Sprintf("%s.tool_calls[%d]", p, k)
		if !validID(tc.ID) {
			return nil, invalid(tp+".id", "%s.id is not a tool call id", tp)
		}
		args := bytes.TrimSpace([]byte(tc.Function.Arguments))
		if len(args) == 0 {
			args = []byte("{}")
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(args, &obj) != nil || obj == nil {
			return nil, invalid(tp+".function.arguments", "%s.function.arguments must be a JSON object for an Anthropic upstream", tp)
		}
		out = append(out, messagesBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage(args)})
	}
	return out, nil
}
