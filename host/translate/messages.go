package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// Anthropic's Messages API, both ways: a Messages request into the chat
// completion every upstream adapter takes (MessagesToChat), and a chat
// completion request into a Messages request for an Anthropic upstream
// (ChatToMessages); the replies and streams likewise (messages_reply.go,
// messages_stream.go).
//
// The wire structs are written here rather than taken from
// anthropic-sdk-go: its param types are unions built for encoding a
// caller's own request, not for reading a stranger's strictly, and every
// member a body may carry has to be named here anyway, to refuse the ones a
// chat completion cannot carry. The tests hold these structs to the SDK.

// AnthropicVersion is the version of the Messages API Sluice speaks.
const AnthropicVersion = "2023-06-01"

// messagesRequest is a Messages request, as read (strictly: a member not
// named here is refused) and as written for an Anthropic upstream.
type messagesRequest struct {
	Model         string              `json:"model"`
	Messages      []json.RawMessage   `json:"messages"`
	System        json.RawMessage     `json:"system,omitempty"`
	MaxTokens     int64               `json:"max_tokens"`
	StopSequences []string            `json:"stop_sequences,omitempty"`
	Temperature   *float64            `json:"temperature,omitempty"`
	TopP          *float64            `json:"top_p,omitempty"`
	TopK          *int64              `json:"top_k,omitempty"`
	Metadata      *messagesMetadata   `json:"metadata,omitempty"`
	Stream        bool                `json:"stream,omitempty"`
	Tools         []messagesTool      `json:"tools,omitempty"`
	ToolChoice    *messagesToolChoice `json:"tool_choice,omitempty"`
}

// messagesRequestIn is a Messages request as read: the members that hold
// objects are read one by one, so that an unknown member inside one is
// named with its path.
type messagesRequestIn struct {
	Model         string            `json:"model"`
	Messages      []json.RawMessage `json:"messages"`
	System        json.RawMessage   `json:"system"`
	MaxTokens     int64             `json:"max_tokens"`
	StopSequences []string          `json:"stop_sequences"`
	Temperature   *float64          `json:"temperature"`
	TopP          *float64          `json:"top_p"`
	TopK          *int64            `json:"top_k"`
	Metadata      json.RawMessage   `json:"metadata"`
	Stream        bool              `json:"stream"`
	Tools         []json.RawMessage `json:"tools"`
	ToolChoice    json.RawMessage   `json:"tool_choice"`
}

type messagesMetadata struct {
	UserID *string `json:"user_id,omitempty"`
}

type messagesMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// messagesBlock is one content block of any type Sluice carries: text,
// image, tool_use, tool_result.
type messagesBlock struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Source    json.RawMessage `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	IsError   *bool           `json:"is_error,omitempty"`
	// CacheControl is a prompt-caching hint; it changes nothing the model
	// reads, and a chat completion has no place for it.
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type messagesSource struct {
	Type string `json:"type"`
	// FileID is read to be refused by name: an image by file id is not
	// carried.
	FileID    string `json:"file_id,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type messagesTool struct {
	Type         string          `json:"type,omitempty"`
	Name         string          `json:"name"`
	Description  *string         `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type messagesToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse *bool  `json:"disable_parallel_tool_use,omitempty"`
}

// strict decodes v into out, refusing members out does not name: what
// Sluice cannot carry is refused, never dropped. p names v in errors.
func strict(v []byte, out any, p string) *api.Error {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	err := dec.Decode(out)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return invalid(p, "%s is not valid JSON", orBody(p))
		}
		return nil
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		q := name
		if p != "" {
			q = p + "." + name
		}
		return unsupported(q, "%s is not supported by Sluice's Messages API", q)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		q := te.Field
		if p != "" && q != "" {
			q = p + "." + q
		} else if q == "" {
			q = p
		}
		return invalid(q, "%s has the wrong type: expected %s", orBody(q), te.Type)
	}
	return invalid(p, "%s is not valid JSON", orBody(p))
}

func orBody(p string) string {
	if p == "" {
		return "the request body"
	}
	return p
}

// imageTypes are the media types Anthropic takes for images.
var imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// MessagesToChat translates a Messages request body (as the guardrails
// left it) into a chat completion for upstreamModel with maxTokens (the
// caller's max_tokens, or the policy's lower one). Every problem is a 400
// naming the parameter; a member Sluice cannot carry (thinking, server
// tools, containers, MCP servers, citations, documents…) is refused.
func MessagesToChat(body []byte, upstreamModel string, maxTokens int64) ([]byte, *api.Error) {
	var r messagesRequestIn
	if aerr := strict(body, &r, ""); aerr != nil {
		return nil, aerr
	}
	var meta *messagesMetadata
	if present(r.Metadata) {
		meta = &messagesMetadata{}
		if aerr := strict(r.Metadata, meta, "metadata"); aerr != nil {
			return nil, aerr
		}
	}
	tools := make([]messagesTool, len(r.Tools))
	for i, raw := range r.Tools {
		if aerr := strict(raw, &tools[i], fmt.Sprintf("tools[%d]", i)); aerr != nil {
			return nil, aerr
		}
	}
	var choice *messagesToolChoice
	if present(r.ToolChoice) {
		choice = &messagesToolChoice{}
		if aerr := strict(r.ToolChoice, choice, "tool_choice"); aerr != nil {
			return nil, aerr
		}
	}
	out := chatRequest{Model: upstreamModel, MaxCompletionTokens: maxTokens, Temperature: r.Temperature, TopP: r.TopP,
		TopK: r.TopK, Stop: r.StopSequences, Stream: r.Stream}
	if r.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if meta != nil && meta.UserID != nil {
		out.User = meta.UserID
	}
	if present(r.System) {
		system, aerr := messagesSystem(r.System)
		if aerr != nil {
			return nil, aerr
		}
		if system != "" {
			out.Messages = append(out.Messages, chatMessage{Role: "system", Content: jsonString(system)})
		}
	}
	for i, raw := range r.Messages {
		msgs, aerr := messagesMessageToChat(i, raw)
		if aerr != nil {
			return nil, aerr
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if len(r.Messages) == 0 {
		return nil, invalid("messages", "messages: at least one message is required")
	}
	names := map[string]bool{}
	for i, t := range tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "custom" {
			return nil, unsupported(p+".type", "%s is the server tool %q, which Sluice does not run; declare client tools "+
				"(name, description, input_schema) and run them in your application", p, t.Type)
		}
		if !validName(t.Name) {
			return nil, invalid(p+".name", "%s.name must be 1 to 64 letters, digits, '_' or '-'", p)
		}
		if !present(t.InputSchema) {
			return nil, invalid(p+".input_schema", "%s.input_schema: Field required", p)
		}
		names[t.Name] = true
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: chatToolDef{Name: t.Name, Description: t.Description,
			Parameters: t.InputSchema}})
	}
	if c := choice; c != nil {
		switch c.Type {
		case "auto":
			out.ToolChoice = jsonString("auto")
		case "any":
			out.ToolChoice = jsonString("required")
		case "none":
			out.ToolChoice = jsonString("none")
		case "tool":
			if !names[c.Name] {
				return nil, invalid("tool_choice.name", "tool_choice names a tool that is not among the tools")
			}
			out.ToolChoice, _ = marshal(map[string]any{"type": "function", "function": map[string]string{"name": c.Name}})
		default:
			return nil, invalid("tool_choice.type", "tool_choice.type must be auto, any, tool or none")
		}
		if c.Name != "" && c.Type != "tool" {
			return nil, invalid("tool_choice.name", "tool_choice.name is only for tool_choice of type tool")
		}
		if c.DisableParallelToolUse != nil && *c.DisableParallelToolUse && len(out.Tools) > 0 {
			no := false
			out.ParallelToolCalls = &no
		}
	}
	b, err := marshal(out)
	if err != nil {
		return nil, api.Internal("The request could not be translated for the upstream.")
	}
	return b, nil
}

// messagesSystem is the system prompt: a string, or text blocks, joined.
func messagesSystem(v json.RawMessage) (string, *api.Error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var blocks []json.RawMessage
	if json.Unmarshal(v, &blocks) != nil {
		return "", invalid("system", "system must be a string or an array of text blocks")
	}
	texts := make([]string, 0, len(blocks))
	for j, raw := range blocks {
		p := fmt.Sprintf("system[%d]", j)
		var b messagesBlock
		if aerr := strict(raw, &b, p); aerr != nil {
			return "", aerr
		}
		if b.Type != "text" || b.Text == nil {
			return "", invalid(p+".type", "%s: the system prompt holds text blocks only", p)
		}
		texts = append(texts, *b.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// messagesBlocks reads a content value: a string is one text block.
func messagesBlocks(v json.RawMessage, p string) ([]messagesBlock, *api.Error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return []messagesBlock{{Type: "text", Text: &s}}, nil
	}
	var raws []json.RawMessage
	if json.Unmarshal(v, &raws) != nil || raws == nil {
		return nil, invalid(p, "%s must be a string or an array of content blocks", p)
	}
	out := make([]messagesBlock, len(raws))
	for j, raw := range raws {
		if aerr := strict(raw, &out[j], fmt.Sprintf("%s[%d]", p, j)); aerr != nil {
			return nil, aerr
		}
	}
	return out, nil
}

// messagesMessageToChat translates one message. A user message's
// tool_result blocks become tool messages, in their place among its other
// blocks; an assistant's tool_use blocks become its tool calls.
func messagesMessageToChat(i int, raw json.RawMessage) ([]chatMessage, *api.Error) {
	p := fmt.Sprintf("messages[%d]", i)
	var m messagesMessage
	if aerr := strict(raw, &m, p); aerr != nil {
		return nil, aerr
	}
	if m.Role != "user" && m.Role != "assistant" {
		return nil, invalid(p+".role", "%s.role must be user or assistant", p)
	}
	if !present(m.Content) {
		return nil, invalid(p+".content", "%s.content: Field required", p)
	}
	if m.Role == "user" {
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			return []chatMessage{{Role: "user", Content: jsonString(s)}}, nil
		}
	}
	blocks, aerr := messagesBlocks(m.Content, p+".content")
	if aerr != nil {
		return nil, aerr
	}
	if m.Role == "assistant" {
		msg, aerr := assistantToChat(p, blocks)
		if aerr != nil {
			return nil, aerr
		}
		return []chatMessage{msg}, nil
	}
	var out []chatMessage
	var parts []chatPart
	flush := func() {
		if len(parts) > 0 {
			b, _ := marshal(parts)
			out = append(out, chatMessage{Role: "user", Content: b})
			parts = nil
		}
	}
	for j, b := range blocks {
		bp := fmt.Sprintf("%s.content[%d]", p, j)
		switch b.Type {
		case "text":
			if b.Text == nil {
				return nil, invalid(bp+".text", "%s.text: Field required", bp)
			}
			parts = append(parts, chatPart{Type: "text", Text: b.Text})
		case "image":
			url, aerr := imageURL(bp, b.Source)
			if aerr != nil {
				return nil, aerr
			}
			parts = append(parts, chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: url}})
		case "tool_result":
			flush()
			if !validID(b.ToolUseID) {
				return nil, invalid(bp+".tool_use_id", "%s.tool_use_id must be 1 to 128 letters, digits, '_', '-', '.' or ':'", bp)
			}
			text, aerr := toolResultText(bp, b.Content)
			if aerr != nil {
				return nil, aerr
			}
			if b.IsError != nil && *b.IsError {
				// A chat completion has no error flag on a tool's result:
				// the model is told in words.
				text = "Error: " + text
			}
			out = append(out, chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: jsonString(text)})
		case "tool_use":
			return nil, invalid(bp+".type", "%s: tool_use blocks belong to assistant messages", bp)
		default:
			return nil, unsupported(bp+".type", "%s has type %q, which Sluice does not serve: only text, image, tool_use "+
				"and tool_result blocks are", bp, b.Type)
		}
	}
	flush()
	return out, nil
}

func assistantToChat(p string, blocks []messagesBlock) (chatMessage, *api.Error) {
	m := chatMessage{Role: "assistant"}
	var text strings.Builder
	for j, b := range blocks {
		bp := fmt.Sprintf("%s.content[%d]", p, j)
		switch b.Type {
		case "text":
			if b.Text == nil {
				return m, invalid(bp+".text", "%s.text: Field required", bp)
			}
			text.WriteString(*b.Text)
		case "tool_use":
			if !validID(b.ID) {
				return m, invalid(bp+".id", "%s.id must be 1 to 128 letters, digits, '_', '-', '.' or ':'", bp)
			}
			if !validName(b.Name) {
				return m, invalid(bp+".name", "%s.name must be 1 to 64 letters, digits, '_' or '-'", bp)
			}
			in := bytes.TrimSpace(b.Input)
			if len(in) == 0 || in[0] != '{' {
				return m, invalid(bp+".input", "%s.input must be an object", bp)
			}
			var buf bytes.Buffer
			json.Compact(&buf, in)
			m.ToolCalls = append(m.ToolCalls, chatToolCall{ID: b.ID, Type: "function",
				Function: chatFunction{Name: b.Name, Arguments: buf.String()}})
		case "image", "tool_result":
			return m, invalid(bp+".type", "%s: %s blocks belong to user messages", bp, b.Type)
		default:
			return m, unsupported(bp+".type", "%s has type %q, which Sluice does not serve: only text, image, tool_use "+
				"and tool_result blocks are", bp, b.Type)
		}
	}
	if text.Len() > 0 || len(m.ToolCalls) == 0 {
		m.Content = jsonString(text.String())
	}
	return m, nil
}

// imageURL is an image block's source as a chat image URL: a data URL for
// base64 data, or the URL itself.
func imageURL(bp string, raw json.RawMessage) (string, *api.Error) {
	if !present(raw) {
		return "", invalid(bp+".source", "%s.source: Field required", bp)
	}
	s := &messagesSource{}
	if aerr := strict(raw, s, bp+".source"); aerr != nil {
		return "", aerr
	}
	switch s.Type {
	case "base64":
		if !oneOf(s.MediaType, imageTypes...) {
			return "", invalid(bp+".source.media_type", "%s.source.media_type must be one of %s", bp, strings.Join(imageTypes, ", "))
		}
		if s.Data == "" {
			return "", invalid(bp+".source.data", "%s.source.data: Field required", bp)
		}
		return "data:" + s.MediaType + ";base64," + s.Data, nil
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return "", invalid(bp+".source.url", "%s.source.url must be an http or https URL", bp)
		}
		return s.URL, nil
	}
	if s.FileID != "" {
		return "", unsupported(bp+".source.file_id", "%s.source: images by file_id are not supported; send base64 data or a url", bp)
	}
	return "", unsupported(bp+".source.type", "%s.source.type must be base64 or url", bp)
}

// toolResultText is a tool_result's content as text: a string, or text
// blocks joined.
func toolResultText(bp string, v json.RawMessage) (string, *api.Error) {
	if !present(v) {
		return "", nil
	}
	blocks, aerr := messagesBlocks(v, bp+".content")
	if aerr != nil {
		return "", aerr
	}
	var b strings.Builder
	for k, blk := range blocks {
		if blk.Type != "text" || blk.Text == nil {
			return "", unsupported(fmt.Sprintf("%s.content[%d].type", bp, k), "%s.content[%d]: a tool_result holds text only "+
				"through Sluice", bp, k)
		}
		b.WriteString(*blk.Text)
	}
	return b.String(), nil
}
