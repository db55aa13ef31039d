package api

// The reference parser: Sluice's original request parsing, written directly
// with encoding/json. The differential and fuzz tests hold the scanner-based
// parser to its behaviour, and the benchmarks measure against it.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// refChatRequest is what the gateway needs to know about a chat completion request.
// The body is kept as raw top-level fields so that everything Sluice does not
// touch reaches the upstream byte for byte.
type refChatRequest struct {
	Model        string
	Stream       bool
	IncludeUsage bool  // the caller asked for the final usage chunk itself
	MaxTokens    int64 // max_completion_tokens or max_tokens; 0 when absent
	Choices      int64
	MessageCount int
	// Texts are the text parts of all messages, in order; TextMessage[i] is the
	// index in messages of the message Texts[i] came from.
	Texts       []string
	TextMessage []int

	fields map[string]json.RawMessage
}

type refChatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type refContentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// refParseChatRequest reads a /v1/chat/completions body. Every problem is reported
// as a 400 naming the offending parameter, as OpenAI does.
func refParseChatRequest(body []byte) (*refChatRequest, *Error) {
	fields, aerr := refParseObject(body, "model", "stream", "stream_options", "max_completion_tokens", "max_tokens", "messages", "n")
	if aerr != nil {
		return nil, aerr
	}
	r := &refChatRequest{fields: fields}
	if r.Model, aerr = refModelField(fields); aerr != nil {
		return nil, aerr
	}
	if err := refOptional(fields, "stream", &r.Stream); err != nil {
		return nil, err
	}
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	if err := refOptional(fields, "stream_options", &opts); err != nil {
		return nil, err
	}
	r.IncludeUsage = opts.IncludeUsage
	for _, name := range []string{"max_completion_tokens", "max_tokens"} {
		var n int64
		if err := refOptional(fields, name, &n); err != nil {
			return nil, err
		}
		if n < 0 || n > MaxTokensLimit {
			return nil, refParam(name, "%s must be an integer from 1 to %d", name, MaxTokensLimit)
		}
		if n > 0 && r.MaxTokens == 0 {
			r.MaxTokens = n
		}
	}
	r.Choices = 1
	if raw, ok := fields["n"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var n int64
		if err := refOptional(fields, "n", &n); err != nil {
			return nil, err
		}
		if n < 1 || n > MaxChoices {
			return nil, refParam("n", "n must be an integer from 1 to %d", MaxChoices)
		}
		r.Choices = n
	}
	raw, ok := fields["messages"]
	if !ok {
		return nil, refParam("messages", "you must provide a messages parameter")
	}
	var msgs []refChatMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, refParam("messages", "messages must be an array of message objects")
	}
	if len(msgs) == 0 {
		return nil, refParam("messages", "messages must contain at least one message")
	}
	r.MessageCount = len(msgs)
	for i, m := range msgs {
		if m.Role == "" {
			return nil, refParam(fmt.Sprintf("messages[%d].role", i), "messages[%d] has no role", i)
		}
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || bytes.Equal(c, []byte("null")):
			// An assistant message that only carries tool calls.
		case c[0] == '"':
			var s string
			if err := json.Unmarshal(c, &s); err != nil {
				return nil, refParam(fmt.Sprintf("messages[%d].content", i), "messages[%d].content is not a valid string", i)
			}
			r.Texts = append(r.Texts, s)
			r.TextMessage = append(r.TextMessage, i)
		case c[0] == '[':
			var parts []refContentPart
			if err := json.Unmarshal(c, &parts); err != nil {
				return nil, refParam(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or an array of content parts", i)
			}
			for _, p := range parts {
				if p.Type == "text" {
					r.Texts = append(r.Texts, p.Text)
					r.TextMessage = append(r.TextMessage, i)
				}
			}
		default:
			return nil, refParam(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or an array of content parts", i)
		}
	}
	return r, nil
}

// UpstreamBody is the body to send upstream: the caller's request with the model
// renamed to the upstream's name and, for a stream, usage reporting switched on so
// that a streamed reply is billed from exact figures.
func (r *refChatRequest) UpstreamBody(upstreamModel string) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.fields)+1)
	for k, v := range r.fields {
		out[k] = v
	}
	m, err := json.Marshal(upstreamModel)
	if err != nil {
		return nil, err
	}
	out["model"] = m
	if r.Stream {
		out["stream_options"] = json.RawMessage(`{"include_usage":true}`)
	}
	return json.Marshal(out)
}

// refEmbeddingsRequest is what the gateway needs to know about a /v1/embeddings body.
type refEmbeddingsRequest struct {
	Model string
	// Texts are the string inputs; token-array inputs are passed through unscanned.
	Texts []string
	// InputTokens counts the tokens given directly as token arrays.
	InputTokens int64

	fields map[string]json.RawMessage
}

// refParseEmbeddingsRequest reads a /v1/embeddings body.
func refParseEmbeddingsRequest(body []byte) (*refEmbeddingsRequest, *Error) {
	fields, aerr := refParseObject(body, "model", "input")
	if aerr != nil {
		return nil, aerr
	}
	r := &refEmbeddingsRequest{fields: fields}
	if r.Model, aerr = refModelField(fields); aerr != nil {
		return nil, aerr
	}
	raw, ok := fields["input"]
	if !ok {
		return nil, refParam("input", "you must provide an input parameter")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		r.Texts = []string{one}
		return r, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		r.Texts = many
		return r, nil
	}
	var tokens []int64
	if json.Unmarshal(raw, &tokens) == nil {
		r.InputTokens = int64(len(tokens))
		return r, nil
	}
	var batches [][]int64
	if json.Unmarshal(raw, &batches) == nil {
		for _, b := range batches {
			r.InputTokens += int64(len(b))
		}
		return r, nil
	}
	return nil, refParam("input", "input must be a string, an array of strings, or an array of token arrays")
}

// UpstreamBody is the caller's request with the model renamed for the upstream.
func (r *refEmbeddingsRequest) UpstreamBody(upstreamModel string) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.fields))
	for k, v := range r.fields {
		out[k] = v
	}
	m, err := json.Marshal(upstreamModel)
	if err != nil {
		return nil, err
	}
	out["model"] = m
	return json.Marshal(out)
}

func refParseObject(body []byte, read ...string) (map[string]json.RawMessage, *Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, InvalidRequest("invalid_request_body", "The request body is empty; send a JSON object.")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, InvalidRequest("invalid_json", "The request body is not valid JSON: "+err.Error())
	}
	if fields == nil {
		return nil, InvalidRequest("invalid_json", "The request body must be a JSON object.")
	}
	// The first top-level key, in body order, that names a field Sluice reads
	// in another case is refused.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		key, _ := tok.(string)
		var skip json.RawMessage
		dec.Decode(&skip)
		if slices.Contains(read, key) {
			continue
		}
		for _, name := range read {
			if strings.EqualFold(key, name) {
				return nil, refParam(name, "a member named %q in another case is not accepted; send %q in lower case, once", name, name)
			}
		}
	}
	return fields, nil
}

func refModelField(fields map[string]json.RawMessage) (string, *Error) {
	var model string
	if err := refOptional(fields, "model", &model); err != nil {
		return "", err
	}
	if model == "" {
		return "", refParam("model", "you must provide a model parameter")
	}
	return model, nil
}

// refOptional decodes fields[name] into v when present and not null.
func refOptional(fields map[string]json.RawMessage, name string, v any) *Error {
	raw, ok := fields[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return refParam(name, "%s has the wrong type: %s", name, refJSONTypeHint(v))
	}
	return nil
}

func refJSONTypeHint(v any) string {
	switch v.(type) {
	case *string:
		return "expected a string"
	case *bool:
		return "expected a boolean"
	case *int64:
		return "expected an integer"
	default:
		return "expected an object"
	}
}

func refParam(name, format string, args ...any) *Error {
	e := InvalidRequest("invalid_value", fmt.Sprintf(format, args...))
	e.Param = name
	return e
}

// SetTexts replaces the message texts, in the order of Texts, keeping every
// other part of the messages as it was. It is how redaction reaches the body.
func (r *refChatRequest) SetTexts(texts []string) error {
	if len(texts) != len(r.Texts) {
		return fmt.Errorf("api: %d texts for %d text parts", len(texts), len(r.Texts))
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(r.fields["messages"], &msgs); err != nil {
		return fmt.Errorf("api: messages: %w", err)
	}
	next := 0
	for _, m := range msgs {
		c := bytes.TrimSpace(m["content"])
		switch {
		case len(c) == 0 || bytes.Equal(c, []byte("null")):
		case c[0] == '"':
			b, err := json.Marshal(texts[next])
			if err != nil {
				return err
			}
			m["content"] = b
			next++
		case c[0] == '[':
			var parts []map[string]json.RawMessage
			if err := json.Unmarshal(c, &parts); err != nil {
				return fmt.Errorf("api: content parts: %w", err)
			}
			for _, p := range parts {
				var typ string
				json.Unmarshal(p["type"], &typ)
				if typ != "text" {
					continue
				}
				b, err := json.Marshal(texts[next])
				if err != nil {
					return err
				}
				p["text"] = b
				next++
			}
			b, err := json.Marshal(parts)
			if err != nil {
				return err
			}
			m["content"] = b
		}
	}
	b, err := json.Marshal(msgs)
	if err != nil {
		return err
	}
	r.fields["messages"] = b
	copy(r.Texts, texts)
	return nil
}

// SetTexts replaces the string inputs of an embeddings request.
func (r *refEmbeddingsRequest) SetTexts(texts []string) error {
	if len(texts) != len(r.Texts) {
		return fmt.Errorf("api: %d texts for %d inputs", len(texts), len(r.Texts))
	}
	var v any = texts
	if len(texts) == 1 && bytes.HasPrefix(bytes.TrimSpace(r.fields["input"]), []byte(`"`)) {
		v = texts[0]
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.fields["input"] = b
	copy(r.Texts, texts)
	return nil
}
