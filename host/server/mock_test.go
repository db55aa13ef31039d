package server

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// The built-in mock is what a new user tries an app against: tools,
// structured output, n and base64 embeddings work as an OpenAI server's do.
func TestMockServesTools(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what is the weather in Paris?")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "weather",
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
				"city": map[string]any{"type": "string"}, "days": map[string]any{"type": "integer"},
				"unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
			}},
		})},
	}
	resp, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].FinishReason != "tool_calls" || len(resp.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("reply %+v", resp.Choices)
	}
	call := resp.Choices[0].Message.ToolCalls[0]
	var args struct {
		City string
		Days int
		Unit string
	}
	if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil || call.Function.Name != "weather" ||
		args.City != "what is the weather in Paris?" || args.Days != 1 || args.Unit != "celsius" {
		t.Fatalf("tool call %s %s (%v)", call.Function.Name, call.Function.Arguments, err)
	}

	// Streamed, the arguments come in fragments and add up to the same call.
	s := c.Chat.Completions.NewStreaming(context.Background(), params)
	acc := openai.ChatCompletionAccumulator{}
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.ToolCalls[0].Function.Arguments; got != call.Function.Arguments {
		t.Fatalf("streamed arguments %s, want %s", got, call.Function.Arguments)
	}

	// The tool's result comes back as the reply.
	params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(), openai.ToolMessage(`{"temp_c":18}`, call.ID))
	resp, err = c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != `Mock reply. Tool result: {"temp_c":18}` {
		t.Fatalf("reply after the tool %q", got)
	}
}

func TestMockServesStructuredOutputAndChoices(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("name a colour")},
		N:        openai.Int(2),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "answer", Schema: map[string]any{
				"type": "object", "properties": map[string]any{"colour": map[string]any{"type": "string"}, "certain": map[string]any{"type": "boolean"}},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 2 || resp.Choices[1].Index != 1 {
		t.Fatalf("%d choices", len(resp.Choices))
	}
	var out struct {
		Colour  string
		Certain bool
	}
	if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &out); err != nil || out.Colour != "name a colour" || !out.Certain {
		t.Fatalf("structured reply %q (%v)", resp.Choices[0].Message.Content, err)
	}
}

func TestMockServesBase64Embeddings(t *testing.T) {
	h := newHarness(t, open)
	decode := func(format string) []float64 {
		_, body := h.raw("POST", "/v1/embeddings", h.key, `{"model":"text-embedding-3-small","input":"alpha","encoding_format":"`+format+`"}`)
		var r struct {
			Data []struct{ Embedding json.RawMessage }
		}
		if err := json.Unmarshal(body, &r); err != nil || len(r.Data) != 1 {
			t.Fatalf("%s: %s", format, body)
		}
		var v []float64
		if format == "float" {
			json.Unmarshal(r.Data[0].Embedding, &v)
			return v
		}
		var s string
		json.Unmarshal(r.Data[0].Embedding, &s)
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw)%4 != 0 {
			t.Fatalf("base64 embedding %q", s)
		}
		for i := 0; i < len(raw); i += 4 {
			v = append(v, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))))
		}
		return v
	}
	f, b := decode("float"), decode("base64")
	if len(f) == 0 || len(f) != len(b) {
		t.Fatalf("float %v, base64 %v", f, b)
	}
	for i := range f {
		if math.Abs(f[i]-b[i]) > 1e-6 {
			t.Fatalf("component %d: %v vs %v", i, f[i], b[i])
		}
	}
}
