package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/host/tokens"
)

// Mock is the built-in upstream: deterministic OpenAI-shaped replies with exact
// usage, streaming included, and an optional latency. It is what `make run`
// serves before any provider key is configured, and what tests and benchmarks
// stand on. The same replies are served over HTTP by MockServer.
type Mock struct {
	latency time.Duration
	now     func() time.Time
}

// NewMock returns a mock upstream that waits latency before each reply (and a
// tenth of it between streamed chunks).
func NewMock(latency time.Duration) *Mock { return &Mock{latency: latency, now: time.Now} }

// Close does nothing: the mock holds no connections.
func (m *Mock) Close() {}

// MockReplyPrefix starts every mock chat reply to a user's message, and
// MockToolResultPrefix every reply to a tool's result.
const (
	MockReplyPrefix      = "Mock reply. You said: "
	MockToolResultPrefix = "Mock reply. Tool result: "
)

type mockChatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	MaxTokens           int64 `json:"max_tokens"`
	MaxCompletionTokens int64 `json:"max_completion_tokens"`
	N                   int   `json:"n"`
	Stream              bool  `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice     json.RawMessage `json:"tool_choice"`
	ResponseFormat struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
}

// MockStatusPrompt followed by an HTTP status, as the last user message
// ("mock status 429"), makes the mock fail with that status and an
// OpenAI-shaped error, so that a provider's refusals can be tried.
const MockStatusPrompt = "mock status "

// statusOnDemand is the error reply the last user message asks for, or nil.
func (req *mockChatRequest) statusOnDemand() *Reply {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role != "user" {
			continue
		}
		asked, ok := strings.CutPrefix(contentText(req.Messages[i].Content), MockStatusPrompt)
		status, err := strconv.Atoi(asked)
		if !ok || err != nil || status < 400 || status > 599 {
			return nil
		}
		code := "mock_status"
		if status == 429 {
			code = "rate_limit_exceeded"
		}
		return openAIErrorReply(status, errorTypeFor(status), code, "", fmt.Sprintf("the mock answers status %d as asked", status))
	}
	return nil
}

type mockEmbeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     int             `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// mockToolCall is a call the mock makes to one of the request's tools.
type mockToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Send answers c as an OpenAI server would.
func (m *Mock) Send(ctx context.Context, c *Call) (*Reply, error) {
	if err := m.wait(ctx, m.latency); err != nil {
		return nil, err
	}
	switch c.Endpoint {
	case EndpointChat:
		var req mockChatRequest
		if err := json.Unmarshal(c.Body, &req); err != nil {
			return mockError(400, "invalid JSON: "+err.Error()), nil
		}
		if len(req.Messages) == 0 {
			return mockError(400, "messages must not be empty"), nil
		}
		if req.N < 0 || req.N > 128 {
			return mockError(400, "n must be from 1 to 128"), nil
		}
		req.N = max(req.N, 1)
		if strings.Contains(string(c.Body), MockStatusPrompt) {
			if r := req.statusOnDemand(); r != nil {
				return r, nil
			}
		}
		chunks, call, usage, finishReason := m.chat(&req)
		id := "chatcmpl-mock-" + shortHash(c.Body)
		created := m.now().Unix()
		if !req.Stream {
			return &Reply{Status: 200, Body: chatCompletion(id, created, &req, strings.Join(chunks, ""), call, finishReason, usage)}, nil
		}
		return &Reply{Status: 200, Events: &mockEvents{m: m, ctx: context.WithoutCancel(ctx), aborted: make(chan struct{}), events: streamEvents(id, created, &req, chunks, call, usage, finishReason)}}, nil
	case EndpointEmbeddings:
		var req mockEmbeddingsRequest
		if err := json.Unmarshal(c.Body, &req); err != nil {
			return mockError(400, "invalid JSON: "+err.Error()), nil
		}
		return embeddings(&req), nil
	default:
		return mockError(404, "the mock upstream does not serve "+c.Endpoint), nil
	}
}

func (m *Mock) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
		}
		return fmt.Errorf("%w: %s", ErrTimeout, ctx.Err())
	}
}

type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// chat builds the reply and its exact usage (the reply's tokens count once
// per choice). By default the reply is the prefix and the last user
// message, cut at max_tokens, as word-sized chunks. With tools, the mock
// calls one when tool_choice names it or is "required", or when the last
// user message names it, with arguments made from its parameter schema;
// after a tool's result, it answers with that result. With response_format
// json_object or json_schema, the content is JSON: the schema's shape, or
// {"reply": …}.
func (m *Mock) chat(req *mockChatRequest) ([]string, *mockToolCall, usage, string) {
	var texts []string
	last, lastRole := "", ""
	for _, msg := range req.Messages {
		t := contentText(msg.Content)
		texts = append(texts, t)
		if msg.Role == "user" {
			last = t
		}
		lastRole = msg.Role
	}
	prompt := tokens.Chat(texts, len(req.Messages))
	reply := MockReplyPrefix + last
	if lastRole == "tool" {
		reply = MockToolResultPrefix + texts[len(texts)-1]
	} else if call := req.toolCall(last); call != nil {
		completion := tokens.Count(call.Name) + tokens.Count(call.Arguments)
		completion *= int64(req.N)
		return nil, call, usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}, "tool_calls"
	}
	switch req.ResponseFormat.Type {
	case "json_object":
		b, _ := json.Marshal(map[string]string{"reply": last})
		reply = string(b)
	case "json_schema":
		b, _ := json.Marshal(schemaValue(req.ResponseFormat.JSONSchema.Schema, last, 0))
		reply = string(b)
	}
	limit := req.MaxCompletionTokens
	if limit == 0 {
		limit = req.MaxTokens
	}
	var chunks []string
	var completion int64
	finishReason := "stop"
	for _, w := range strings.SplitAfter(reply, " ") {
		if w == "" {
			continue
		}
		n := tokens.Count(w)
		if limit > 0 && completion+n > limit {
			finishReason = "length"
			break
		}
		chunks = append(chunks, w)
		completion += n
	}
	completion *= int64(req.N)
	return chunks, nil, usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}, finishReason
}

// toolCall is the call the mock makes for a request whose last user message
// is last, or nil.
func (req *mockChatRequest) toolCall(last string) *mockToolCall {
	if len(req.Tools) == 0 {
		return nil
	}
	var choice struct {
		Function struct{ Name string } `json:"function"`
	}
	var mode string
	if json.Unmarshal(req.ToolChoice, &mode) != nil {
		json.Unmarshal(req.ToolChoice, &choice)
	}
	if mode == "none" {
		return nil
	}
	pick := -1
	for i, t := range req.Tools {
		switch {
		case choice.Function.Name != "":
			if t.Function.Name == choice.Function.Name {
				pick = i
			}
		case t.Function.Name != "" && strings.Contains(last, t.Function.Name) && pick < 0:
			pick = i
		}
	}
	if pick < 0 && mode == "required" {
		pick = 0
	}
	if pick < 0 {
		return nil
	}
	fn := req.Tools[pick].Function
	args, _ := json.Marshal(schemaValue(fn.Parameters, last, 0))
	if string(args) == "null" {
		args = []byte("{}")
	}
	return &mockToolCall{ID: "call_mock_" + shortHash([]byte(fn.Name+last)), Name: fn.Name, Arguments: string(args)}
}

// schemaValue is a value of the JSON schema raw: objects get every property,
// strings the text, numbers 1, booleans true, enums their first value.
func schemaValue(raw json.RawMessage, text string, depth int) any {
	var s struct {
		Type       any                        `json:"type"`
		Enum       []any                      `json:"enum"`
		Properties map[string]json.RawMessage `json:"properties"`
		Items      json.RawMessage            `json:"items"`
	}
	if json.Unmarshal(raw, &s) != nil || depth > 8 {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	typ, _ := s.Type.(string)
	if types, ok := s.Type.([]any); ok && len(types) > 0 {
		typ, _ = types[0].(string)
	}
	switch {
	case typ == "object" || typ == "" && s.Properties != nil:
		out := map[string]any{}
		for name, p := range s.Properties {
			out[name] = schemaValue(p, text, depth+1)
		}
		return out
	case typ == "array":
		return []any{schemaValue(s.Items, text, depth+1)}
	case typ == "integer" || typ == "number":
		return 1
	case typ == "boolean":
		return true
	case typ == "null":
		return nil
	}
	return text
}

func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type, Text string
	}
	if json.Unmarshal(raw, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				b.WriteString(p.Text)
			}
		}
		return b.String()
	}
	return ""
}

func chatCompletion(id string, created int64, req *mockChatRequest, content string, call *mockToolCall, finishReason string, u usage) []byte {
	message := map[string]any{"role": "assistant", "content": content}
	if call != nil {
		message = map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
			"id": call.ID, "type": "function", "function": map[string]any{"name": call.Name, "arguments": call.Arguments},
		}}}
	}
	choices := make([]any, req.N)
	for i := range choices {
		choices[i] = map[string]any{"index": i, "message": message, "finish_reason": finishReason}
	}
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": req.Model,
		"choices": choices, "usage": u,
	})
	return b
}

func streamEvents(id string, created int64, req *mockChatRequest, chunks []string, call *mockToolCall, u usage, finishReason string) [][]byte {
	var events [][]byte
	for i := 0; i < req.N; i++ {
		chunk := func(delta map[string]any, finishReason any) []byte {
			b, _ := json.Marshal(map[string]any{
				"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
				"choices": []any{map[string]any{"index": i, "delta": delta, "finish_reason": finishReason}},
			})
			return b
		}
		if call != nil {
			events = append(events, chunk(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"index": 0, "id": call.ID, "type": "function", "function": map[string]any{"name": call.Name, "arguments": ""}}}}, nil))
			// The arguments in fragments of up to 8 bytes, as providers stream them.
			for a := call.Arguments; a != ""; {
				n := min(8, len(a))
				events = append(events, chunk(map[string]any{"tool_calls": []any{map[string]any{
					"index": 0, "function": map[string]any{"arguments": a[:n]}}}}, nil))
				a = a[n:]
			}
		} else {
			events = append(events, chunk(map[string]any{"role": "assistant", "content": ""}, nil))
			for _, c := range chunks {
				events = append(events, chunk(map[string]any{"content": c}, nil))
			}
		}
		events = append(events, chunk(map[string]any{}, finishReason))
	}
	if req.StreamOptions.IncludeUsage {
		b, _ := json.Marshal(map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{}, "usage": u,
		})
		events = append(events, b)
	}
	return events
}

type mockEvents struct {
	m      *Mock
	ctx    context.Context
	events [][]byte
	i      int

	abortOnce sync.Once
	aborted   chan struct{}
}

func (e *mockEvents) Next() ([]byte, error) {
	select {
	case <-e.aborted:
		return nil, ErrAborted
	default:
	}
	if e.i >= len(e.events) {
		return nil, io.EOF
	}
	if d := e.m.latency / 10; e.i > 0 && d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-e.aborted:
			return nil, ErrAborted
		case <-e.ctx.Done():
			return nil, e.m.wait(e.ctx, d) // the context's error, as wait words it
		}
	}
	ev := e.events[e.i]
	e.i++
	return ev, nil
}

func (e *mockEvents) Close() {}

func (e *mockEvents) Abort() { e.abortOnce.Do(func() { close(e.aborted) }) }

// embeddings returns a deterministic unit vector per input, derived from its hash.
func embeddings(req *mockEmbeddingsRequest) *Reply {
	var inputs, strs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &strs) == nil {
		inputs = strs
	} else {
		var toks [][]int64
		var flat []int64
		if json.Unmarshal(req.Input, &flat) == nil {
			toks = [][]int64{flat}
		} else if json.Unmarshal(req.Input, &toks) != nil {
			return mockError(400, "input must be a string, an array of strings, or token arrays")
		}
		for _, t := range toks {
			inputs = append(inputs, fmt.Sprint(t))
		}
	}
	dims := req.Dimensions
	if dims <= 0 || dims > 3072 {
		dims = 8
	}
	var data []any
	var prompt int64
	for i, in := range inputs {
		prompt += tokens.Count(in)
		var emb any = vector(in, dims)
		if req.EncodingFormat == "base64" {
			// OpenAI's base64 form: the float32s, little-endian, encoded.
			v := vector(in, dims)
			buf := make([]byte, 4*len(v))
			for k, f := range v {
				binary.LittleEndian.PutUint32(buf[4*k:], math.Float32bits(float32(f)))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": emb})
	}
	b, _ := json.Marshal(map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int64{"prompt_tokens": prompt, "total_tokens": prompt},
	})
	return &Reply{Status: 200, Body: b}
}

func vector(s string, dims int) []float64 {
	v := make([]float64, dims)
	var norm float64
	seed := sha256.Sum256([]byte(s))
	for i := range v {
		h := sha256.Sum256(append(seed[:], byte(i), byte(i>>8)))
		v[i] = float64(int32(binary.LittleEndian.Uint32(h[:4]))) / math.MaxInt32
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = math.Round(v[i]/norm*1e6) / 1e6
	}
	return v
}

func mockError(status int, msg string) *Reply {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": "invalid_request_error", "param": nil, "code": nil,
	}})
	return &Reply{Status: status, Body: b}
}

func shortHash(b []byte) string {
	h := sha256.Sum256(b)
	return fmt.Sprintf("%x", h[:6])
}
