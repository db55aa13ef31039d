package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
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

// MockReplyPrefix starts every mock chat reply.
const MockReplyPrefix = "Mock reply. You said: "

type mockChatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	MaxTokens           int64 `json:"max_tokens"`
	MaxCompletionTokens int64 `json:"max_completion_tokens"`
	Stream              bool  `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type mockEmbeddingsRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Dimensions int             `json:"dimensions"`
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
		chunks, usage, finishReason := m.chat(&req)
		id := "chatcmpl-mock-" + shortHash(c.Body)
		created := m.now().Unix()
		if !req.Stream {
			return &Reply{Status: 200, Body: chatCompletion(id, created, req.Model, strings.Join(chunks, ""), finishReason, usage)}, nil
		}
		return &Reply{Status: 200, Events: &mockEvents{m: m, ctx: ctx, events: streamEvents(id, created, &req, chunks, usage, finishReason)}}, nil
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
		return fmt.Errorf("%w: %s", ErrTimeout, ctx.Err())
	}
}

type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// chat builds the reply: the prefix and the last user message, cut at
// max_tokens, as word-sized chunks; and the exact usage of prompt and reply.
func (m *Mock) chat(req *mockChatRequest) ([]string, usage, string) {
	var texts []string
	last := ""
	for _, msg := range req.Messages {
		t := contentText(msg.Content)
		texts = append(texts, t)
		if msg.Role == "user" {
			last = t
		}
	}
	limit := req.MaxCompletionTokens
	if limit == 0 {
		limit = req.MaxTokens
	}
	var chunks []string
	var completion int64
	finishReason := "stop"
	for _, w := range strings.SplitAfter(MockReplyPrefix+last, " ") {
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
	prompt := tokens.Chat(texts, len(req.Messages))
	return chunks, usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}, finishReason
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

func chatCompletion(id string, created int64, model, content, finishReason string, u usage) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"finish_reason": finishReason,
		}},
		"usage": u,
	})
	return b
}

func streamEvents(id string, created int64, req *mockChatRequest, chunks []string, u usage, finishReason string) [][]byte {
	chunk := func(delta map[string]any, finishReason any) []byte {
		b, _ := json.Marshal(map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finishReason}},
		})
		return b
	}
	events := [][]byte{chunk(map[string]any{"role": "assistant", "content": ""}, nil)}
	for _, c := range chunks {
		events = append(events, chunk(map[string]any{"content": c}, nil))
	}
	events = append(events, chunk(map[string]any{}, finishReason))
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
}

func (e *mockEvents) Next() ([]byte, error) {
	if e.i >= len(e.events) {
		return nil, io.EOF
	}
	if e.i > 0 {
		if err := e.m.wait(e.ctx, e.m.latency/10); err != nil {
			return nil, err
		}
	}
	ev := e.events[e.i]
	e.i++
	return ev, nil
}

func (e *mockEvents) Close() {}

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
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": vector(in, dims)})
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
