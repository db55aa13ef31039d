// Package translate turns a request of one model API into another's and
// the reply back, with the chat completion as the form they meet in:
// OpenAI's Responses API and Anthropic's Messages API into a chat
// completion, and the chat completion, whole or streamed, into a Response
// or a Message and their events; and, for an Anthropic, Bedrock or Gemini
// upstream, a chat completion into a Messages, Converse or generateContent
// request and the reply, whole or streamed, back. The Bedrock and Gemini
// translations also go the other way (a provider's request into a chat
// completion, and a chat completion into the provider's reply and events),
// for the mocks that stand in for those providers: one set of shapes serves
// both sides.
//
// Translation reads only what the api package collected for the guardrails
// (texts) and what it checks here (ids, enums, numbers): nothing reaches the
// upstream that was not scanned. What the Responses API offers and a chat
// completion cannot do (stored responses, built-in tools, background runs)
// is refused with a 400 naming the parameter, never dropped silently.
package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/host/api"
)

// Echo is what a Response repeats of its request: parameters, never texts.
type Echo struct {
	MaxOutputTokens   int64
	Temperature       *float64
	TopP              *float64
	ParallelToolCalls bool
	// ToolChoice is the request's tool_choice in the Responses API's form,
	// "auto" when absent.
	ToolChoice json.RawMessage
}

// responsesRequest is the part of a Responses request Sluice translates or
// refuses. Members not named here are scanned (api.ResponsesRequest) and
// not sent: a chat completion has no place for them.
type responsesRequest struct {
	Model             string            `json:"model"`
	Input             json.RawMessage   `json:"input"`
	Instructions      *string           `json:"instructions"`
	Tools             []json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls *bool             `json:"parallel_tool_calls"`
	MaxOutputTokens   *int64            `json:"max_output_tokens"`
	Temperature       *float64          `json:"temperature"`
	TopP              *float64          `json:"top_p"`
	Text              *struct {
		Format    json.RawMessage `json:"format"`
		Verbosity *string         `json:"verbosity"`
	} `json:"text"`
	Reasoning *struct {
		Effort *string `json:"effort"`
	} `json:"reasoning"`
	Stream             bool            `json:"stream"`
	User               *string         `json:"user"`
	SafetyIdentifier   *string         `json:"safety_identifier"`
	PromptCacheKey     *string         `json:"prompt_cache_key"`
	ServiceTier        *string         `json:"service_tier"`
	Background         *bool           `json:"background"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Conversation       json.RawMessage `json:"conversation"`
	Prompt             json.RawMessage `json:"prompt"`
	Truncation         *string         `json:"truncation"`
	TopLogprobs        *int64          `json:"top_logprobs"`
}

// chatRequest is the chat completion sent upstream.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Tools               []chatTool      `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	MaxCompletionTokens int64           `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	TopK                *int64          `json:"top_k,omitempty"` // not OpenAI's: vLLM, Ollama and Anthropic take it
	Stop                []string        `json:"stop,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	Verbosity           *string         `json:"verbosity,omitempty"`
	ReasoningEffort     *string         `json:"reasoning_effort,omitempty"`
	User                *string         `json:"user,omitempty"`
	SafetyIdentifier    *string         `json:"safety_identifier,omitempty"`
	PromptCacheKey      *string         `json:"prompt_cache_key,omitempty"`
	ServiceTier         *string         `json:"service_tier,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *streamOptions  `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Refusal    string          `json:"refusal,omitempty"`
	ToolCalls  []chatToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string      `json:"type"`
	Function chatToolDef `json:"function"`
}

type chatToolDef struct {
	Name        string          `json:"name"`
	Description *string         `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type chatPart struct {
	Type     string        `json:"type"`
	Text     *string       `json:"text,omitempty"`
	ImageURL *chatImageURL `json:"image_url,omitempty"`
	File     *chatPartFile `json:"file,omitempty"`
}

type chatImageURL struct {
	URL    string  `json:"url"`
	Detail *string `json:"detail,omitempty"`
}

type chatPartFile struct {
	FileData *string `json:"file_data,omitempty"`
	FileID   *string `json:"file_id,omitempty"`
	Filename *string `json:"filename,omitempty"`
}

// inputItem is one item of a Responses input.
type inputItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// inputPart is one content part of an input or output message.
type inputPart struct {
	Type     string  `json:"type"`
	Text     *string `json:"text"`
	Refusal  *string `json:"refusal"`
	ImageURL *string `json:"image_url"`
	FileID   *string `json:"file_id"`
	FileData *string `json:"file_data"`
	FileURL  *string `json:"file_url"`
	Filename *string `json:"filename"`
	Detail   *string `json:"detail"`
}

type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description *string         `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

// Unsupported is the error code of a parameter Sluice understands and does
// not serve.
const Unsupported = "unsupported_parameter"

func unsupported(param, format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: Unsupported, Param: param,
		Message: fmt.Sprintf(format, args...)}
}

func invalid(param, format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "invalid_value", Param: param,
		Message: fmt.Sprintf(format, args...)}
}

// builtinTools are the Responses API's hosted tools, which run on OpenAI's
// side; a chat completion has none of them.
var builtinTools = map[string]bool{
	"web_search": true, "web_search_preview": true, "web_search_2025_08_26": true, "web_search_preview_2025_03_11": true,
	"file_search": true, "computer_use_preview": true, "computer_use": true, "code_interpreter": true, "image_generation": true,
	"mcp": true, "local_shell": true, "shell": true, "apply_patch": true, "custom": true,
}

// ResponsesToChat translates a Responses request body (as the guardrails
// left it) into a chat completion for upstreamModel. maxTokens, when not 0,
// is the reply limit to send (the caller's, or the policy's lower one).
// Every problem is a 400 naming the parameter.
func ResponsesToChat(body []byte, upstreamModel string, maxTokens int64) ([]byte, Echo, *api.Error) {
	var r responsesRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, Echo{}, decodeError(err)
	}
	if aerr := refuse(&r); aerr != nil {
		return nil, Echo{}, aerr
	}
	out := chatRequest{Model: upstreamModel, ParallelToolCalls: r.ParallelToolCalls, Temperature: r.Temperature, TopP: r.TopP,
		User: r.User, SafetyIdentifier: r.SafetyIdentifier, PromptCacheKey: r.PromptCacheKey, ServiceTier: r.ServiceTier,
		MaxCompletionTokens: maxTokens, Stream: r.Stream}
	if r.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	echo := Echo{MaxOutputTokens: maxTokens, Temperature: r.Temperature, TopP: r.TopP, ParallelToolCalls: true,
		ToolChoice: json.RawMessage(`"auto"`)}
	if r.ParallelToolCalls != nil {
		echo.ParallelToolCalls = *r.ParallelToolCalls
	}
	if r.Instructions != nil && *r.Instructions != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: jsonString(*r.Instructions)})
	}
	msgs, aerr := messages(r.Input)
	if aerr != nil {
		return nil, Echo{}, aerr
	}
	out.Messages = append(out.Messages, msgs...)
	names := map[string]bool{}
	for i, raw := range r.Tools {
		t, aerr := tool(i, raw)
		if aerr != nil {
			return nil, Echo{}, aerr
		}
		names[t.Function.Name] = true
		out.Tools = append(out.Tools, t)
	}
	if len(r.ToolChoice) > 0 && string(r.ToolChoice) != "null" {
		choice, aerr := toolChoice(r.ToolChoice, names)
		if aerr != nil {
			return nil, Echo{}, aerr
		}
		out.ToolChoice, echo.ToolChoice = choice, responsesToolChoice(choice)
	}
	if r.Text != nil {
		if out.ResponseFormat, aerr = responseFormat(r.Text.Format); aerr != nil {
			return nil, Echo{}, aerr
		}
		if v := r.Text.Verbosity; v != nil {
			if !oneOf(*v, "low", "medium", "high") {
				return nil, Echo{}, invalid("text.verbosity", "text.verbosity must be low, medium or high")
			}
			out.Verbosity = v
		}
	}
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		if !oneOf(*r.Reasoning.Effort, "none", "minimal", "low", "medium", "high", "xhigh") {
			return nil, Echo{}, invalid("reasoning.effort", "reasoning.effort must be one of none, minimal, low, medium, high, xhigh")
		}
		out.ReasoningEffort = r.Reasoning.Effort
	}
	if r.ServiceTier != nil && !oneOf(*r.ServiceTier, "auto", "default", "flex", "scale", "priority") {
		return nil, Echo{}, invalid("service_tier", "service_tier must be one of auto, default, flex, scale, priority")
	}
	b, err := marshal(out)
	if err != nil {
		return nil, Echo{}, api.Internal("The request could not be translated for the upstream.")
	}
	return b, echo, nil
}

// Refusal is the error for a Responses body that asks for what Sluice does
// not serve (stored responses, conversations, prompts, background runs), or
// nil. A request that refers to a stored response often sends no input of
// its own: this says why it cannot be served, where a missing input would
// not.
func Refusal(body []byte) *api.Error {
	var r responsesRequest
	if json.Unmarshal(body, &r) != nil {
		return nil
	}
	return refuse(&r)
}

// refuse is the error for what a chat completion cannot do, or nil.
func refuse(r *responsesRequest) *api.Error {
	switch {
	case r.PreviousResponseID != nil && *r.PreviousResponseID != "":
		return unsupported("previous_response_id", "previous_response_id is not supported: Sluice does not store responses. "+
			"Send the conversation so far in input instead.")
	case present(r.Conversation):
		return unsupported("conversation", "conversation is not supported: Sluice does not store conversations. "+
			"Send the conversation so far in input instead.")
	case present(r.Prompt):
		return unsupported("prompt", "prompt templates are not supported: Sluice does not hold OpenAI's stored prompts. "+
			"Send the instructions and input themselves.")
	case r.Background != nil && *r.Background:
		return unsupported("background", "background responses are not supported: Sluice does not store responses. "+
			"Send the request without background, streamed if it is long.")
	case r.Truncation != nil && *r.Truncation != "disabled":
		return unsupported("truncation", "truncation %q is not supported; only \"disabled\" is.", *r.Truncation)
	case r.TopLogprobs != nil && *r.TopLogprobs != 0:
		return unsupported("top_logprobs", "top_logprobs is not supported by Sluice's Responses API.")
	}
	return nil
}

func present(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && string(v) != "null"
}

// messages translates the input: a string is one user message; an array
// holds messages, function calls and their outputs, in order. Consecutive
// function calls become one assistant message, as a chat completion
// returns parallel calls.
func messages(input json.RawMessage) ([]chatMessage, *api.Error) {
	var s string
	if json.Unmarshal(input, &s) == nil {
		return []chatMessage{{Role: "user", Content: jsonString(s)}}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(input, &items); err != nil {
		return nil, invalid("input", "input must be a string or an array of input items")
	}
	var out []chatMessage
	for i, raw := range items {
		p := fmt.Sprintf("input[%d]", i)
		var it inputItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, invalid(p, "%s is not a valid input item: %s", p, typeProblem(err))
		}
		typ := it.Type
		if typ == "" && it.Role != "" {
			typ = "message"
		}
		switch typ {
		case "message":
			m, aerr := message(p, &it)
			if aerr != nil {
				return nil, aerr
			}
			out = append(out, m)
		case "function_call":
			if !validID(it.CallID) {
				return nil, invalid(p+".call_id", "%s.call_id must be 1 to 128 letters, digits, '_', '-', '.' or ':'", p)
			}
			if !validName(it.Name) {
				return nil, invalid(p+".name", "%s.name must be 1 to 64 letters, digits, '_' or '-'", p)
			}
			call := chatToolCall{ID: it.CallID, Type: "function", Function: chatFunction{Name: it.Name, Arguments: it.Arguments}}
			if n := len(out); n > 0 && out[n-1].Role == "assistant" && (len(out[n-1].ToolCalls) > 0 || i > 0 && lastWasAssistantText(items[i-1])) {
				out[n-1].ToolCalls = append(out[n-1].ToolCalls, call)
			} else {
				out = append(out, chatMessage{Role: "assistant", ToolCalls: []chatToolCall{call}})
			}
		case "function_call_output":
			if !validID(it.CallID) {
				return nil, invalid(p+".call_id", "%s.call_id must be 1 to 128 letters, digits, '_', '-', '.' or ':'", p)
			}
			content, aerr := toolOutput(p+".output", it.Output)
			if aerr != nil {
				return nil, aerr
			}
			out = append(out, chatMessage{Role: "tool", ToolCallID: it.CallID, Content: content})
		case "reasoning":
			// A chat completion takes no reasoning back; the model reasons
			// again from the messages.
		case "item_reference":
			return nil, unsupported(p+".type", "%s is an item_reference: Sluice does not store responses, so there is nothing to refer to. "+
				"Send the item itself.", p)
		case "":
			return nil, invalid(p+".type", "%s has neither a type nor a role", p)
		default:
			return nil, unsupported(p+".type", "%s has type %q, which Sluice does not serve: only message, function_call, "+
				"function_call_output and reasoning items are", p, typ)
		}
	}
	if len(out) == 0 {
		return nil, invalid("input", "input holds no message, function call or function call output")
	}
	return out, nil
}

// lastWasAssistantText reports whether the raw item is an assistant
// message, which a function call that follows it belongs to.
func lastWasAssistantText(raw json.RawMessage) bool {
	var it inputItem
	return json.Unmarshal(raw, &it) == nil && (it.Type == "message" || it.Type == "") && it.Role == "assistant"
}

func message(p string, it *inputItem) (chatMessage, *api.Error) {
	role := it.Role
	switch role {
	case "user", "system", "assistant":
	case "developer":
		// Every OpenAI-compatible server knows system; not all know developer.
		role = "system"
	case "":
		return chatMessage{}, invalid(p+".role", "%s has no role", p)
	default:
		return chatMessage{}, invalid(p+".role", "%s.role must be user, assistant, system or developer", p)
	}
	m := chatMessage{Role: role}
	var s string
	if json.Unmarshal(it.Content, &s) == nil {
		m.Content = jsonString(s)
		return m, nil
	}
	var parts []inputPart
	if err := json.Unmarshal(it.Content, &parts); err != nil || parts == nil {
		return chatMessage{}, invalid(p+".content", "%s.content must be a string or an array of content parts", p)
	}
	if role != "user" {
		// System and assistant content is text: a chat completion takes no
		// images there, and many servers take only a string.
		var text, refusal strings.Builder
		for j, part := range parts {
			pp := fmt.Sprintf("%s.content[%d]", p, j)
			switch {
			case oneOf(part.Type, "input_text", "output_text", "text") && part.Text != nil:
				text.WriteString(*part.Text)
			case part.Type == "refusal" && role == "assistant" && part.Refusal != nil:
				refusal.WriteString(*part.Refusal)
			default:
				return chatMessage{}, invalid(pp+".type", "%s: a %s message holds text parts only (input_text or output_text)", pp, it.Role)
			}
		}
		if text.Len() > 0 || refusal.Len() == 0 {
			m.Content = jsonString(text.String())
		}
		m.Refusal = refusal.String()
		return m, nil
	}
	out := make([]chatPart, 0, len(parts))
	for j, part := range parts {
		pp := fmt.Sprintf("%s.content[%d]", p, j)
		cp, aerr := userPart(pp, part)
		if aerr != nil {
			return chatMessage{}, aerr
		}
		out = append(out, cp)
	}
	b, _ := marshal(out)
	m.Content = b
	return m, nil
}

func userPart(pp string, part inputPart) (chatPart, *api.Error) {
	switch part.Type {
	case "input_text", "output_text", "text":
		if part.Text == nil {
			return chatPart{}, invalid(pp+".text", "%s has no text", pp)
		}
		return chatPart{Type: "text", Text: part.Text}, nil
	case "input_image":
		if part.ImageURL == nil {
			return chatPart{}, unsupported(pp+".file_id", "%s: images by file_id are not supported; send image_url (a URL or a data URL)", pp)
		}
		if part.Detail != nil && !oneOf(*part.Detail, "auto", "low", "high") {
			return chatPart{}, invalid(pp+".detail", "%s.detail must be auto, low or high", pp)
		}
		return chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: *part.ImageURL, Detail: part.Detail}}, nil
	case "input_file":
		if part.FileURL != nil {
			return chatPart{}, unsupported(pp+".file_url", "%s: files by file_url are not supported; send file_data or file_id", pp)
		}
		if part.FileData == nil && part.FileID == nil {
			return chatPart{}, invalid(pp, "%s has neither file_data nor file_id", pp)
		}
		if part.FileID != nil && !validID(*part.FileID) {
			return chatPart{}, invalid(pp+".file_id", "%s.file_id is not a file id", pp)
		}
		return chatPart{Type: "file", File: &chatPartFile{FileData: part.FileData, FileID: part.FileID, Filename: part.Filename}}, nil
	case "input_audio":
		return chatPart{}, unsupported(pp+".type", "%s: audio input is not supported by Sluice's Responses API", pp)
	}
	return chatPart{}, invalid(pp+".type", "%s.type must be input_text, input_image or input_file", pp)
}

// toolOutput is a function call's output: a string, or text parts.
func toolOutput(p string, v json.RawMessage) (json.RawMessage, *api.Error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return jsonString(s), nil
	}
	var parts []inputPart
	if err := json.Unmarshal(v, &parts); err != nil || parts == nil {
		return nil, invalid(p, "%s must be a string or an array of input_text parts", p)
	}
	out := make([]chatPart, 0, len(parts))
	for j, part := range parts {
		if part.Type != "input_text" || part.Text == nil {
			return nil, unsupported(fmt.Sprintf("%s[%d].type", p, j), "%s[%d]: a function call's output holds input_text parts only", p, j)
		}
		out = append(out, chatPart{Type: "text", Text: part.Text})
	}
	b, _ := marshal(out)
	return b, nil
}

func tool(i int, raw json.RawMessage) (chatTool, *api.Error) {
	p := fmt.Sprintf("tools[%d]", i)
	var t responsesTool
	if err := json.Unmarshal(raw, &t); err != nil {
		return chatTool{}, invalid(p, "%s is not a valid tool: %s", p, typeProblem(err))
	}
	switch {
	case t.Type == "function":
	case builtinTools[t.Type]:
		return chatTool{}, unsupported(p+".type", "%s is the built-in tool %q, which Sluice does not run; declare function tools and run them in your application", p, t.Type)
	default:
		return chatTool{}, unsupported(p+".type", "%s has type %q; Sluice serves function tools only", p, t.Type)
	}
	if !validName(t.Name) {
		return chatTool{}, invalid(p+".name", "%s.name must be 1 to 64 letters, digits, '_' or '-'", p)
	}
	return chatTool{Type: "function", Function: chatToolDef{Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}}, nil
}

// toolChoice translates tool_choice; a named function must be one of the
// request's tools.
func toolChoice(v json.RawMessage, names map[string]bool) (json.RawMessage, *api.Error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		if !oneOf(s, "auto", "none", "required") {
			return nil, invalid("tool_choice", "tool_choice must be auto, none, required or a function")
		}
		return jsonString(s), nil
	}
	var c struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, invalid("tool_choice", "tool_choice must be auto, none, required or a function")
	}
	if c.Type != "function" {
		return nil, unsupported("tool_choice.type", "tool_choice of type %q is not supported; choose a function tool, or auto, none or required", c.Type)
	}
	if !names[c.Name] {
		return nil, invalid("tool_choice.name", "tool_choice names a function that is not among the tools")
	}
	b, _ := marshal(map[string]any{"type": "function", "function": map[string]string{"name": c.Name}})
	return b, nil
}

// responsesToolChoice is a chat tool_choice in the Responses API's form,
// for the Response to repeat: built from what was checked, never the
// caller's bytes.
func responsesToolChoice(chat json.RawMessage) json.RawMessage {
	var c struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(chat, &c) != nil || c.Function.Name == "" {
		return chat // a string: auto, none or required
	}
	b, _ := marshal(map[string]string{"type": "function", "name": c.Function.Name})
	return b
}

// responseFormat translates text.format into response_format.
func responseFormat(v json.RawMessage) (json.RawMessage, *api.Error) {
	if !present(v) {
		return nil, nil
	}
	var f struct {
		Type        string          `json:"type"`
		Name        *string         `json:"name"`
		Schema      json.RawMessage `json:"schema"`
		Description *string         `json:"description"`
		Strict      *bool           `json:"strict"`
	}
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, invalid("text.format", "text.format is not valid: %s", typeProblem(err))
	}
	switch f.Type {
	case "text":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		if f.Name == nil || *f.Name == "" {
			return nil, invalid("text.format.name", "text.format.name is required for json_schema")
		}
		if !present(f.Schema) {
			return nil, invalid("text.format.schema", "text.format.schema is required for json_schema")
		}
		b, _ := marshal(map[string]any{"type": "json_schema", "json_schema": struct {
			Name        string          `json:"name"`
			Description *string         `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict,omitempty"`
		}{*f.Name, f.Description, f.Schema, f.Strict}})
		return b, nil
	}
	return nil, invalid("text.format.type", "text.format.type must be text, json_object or json_schema")
}

// validID reports whether s looks like a call or file id: it is passed
// to the upstream without a scan, so it must not be able to carry prose.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// validName is a chat completion's rule for function names.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func oneOf(s string, values ...string) bool {
	for _, v := range values {
		if s == v {
			return true
		}
	}
	return false
}

func jsonString(s string) json.RawMessage {
	b, _ := marshal(s)
	return b
}

// marshal is json.Marshal without HTML escaping: the upstream gets the
// caller's characters as they were.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeError is the 400 for a body whose members have the wrong types.
func decodeError(err error) *api.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return invalid(te.Field, "%s has the wrong type: expected %s", te.Field, te.Type)
	}
	return api.InvalidRequest("invalid_json", "The request body could not be read: "+typeProblem(err))
}

// typeProblem describes a decoding error without quoting the value.
func typeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s has the wrong type (expected %s)", te.Field, te.Type)
		}
		return fmt.Sprintf("wrong type (expected %s)", te.Type)
	}
	return "malformed JSON"
}
