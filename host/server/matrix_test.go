package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/sluicehq/sluice/host/config"
)

// inbound is one API a caller speaks to Sluice, asked for a call of the
// get_weather tool: it returns the tool the reply calls, the usage the
// caller was told, and the request's id.
type inbound struct {
	name string
	ask  func(t *testing.T, h *harness, model string, stream bool) (tool string, total int64, requestID string)
}

var inboundAPIs = []inbound{
	{"chat", func(t *testing.T, h *harness, model string, stream bool) (string, int64, string) {
		c := h.client(h.key)
		params := chat(model, "get_weather for Paris")
		params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name:       "get_weather",
			Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		})}
		var hr *http.Response
		if !stream {
			resp, err := c.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&hr))
			if err != nil {
				t.Fatal(err)
			}
			var tool string
			if calls := resp.Choices[0].Message.ToolCalls; len(calls) > 0 {
				tool = calls[0].Function.Name
			}
			return tool, resp.Usage.TotalTokens, hr.Header.Get("x-request-id")
		}
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		s := c.Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&hr))
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		var tool string
		if len(acc.Choices) > 0 && len(acc.Choices[0].Message.ToolCalls) > 0 {
			tool = acc.Choices[0].Message.ToolCalls[0].Function.Name
		}
		return tool, acc.Usage.TotalTokens, hr.Header.Get("x-request-id")
	}},
	{"responses", func(t *testing.T, h *harness, model string, stream bool) (string, int64, string) {
		c := h.client(h.key)
		params := responses.ResponseNewParams{
			Model: model,
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("get_weather for Paris")},
			Tools: []responses.ToolUnionParam{weatherTool()},
		}
		var hr *http.Response
		var resp *responses.Response
		if !stream {
			var err error
			if resp, err = c.Responses.New(context.Background(), params, option.WithResponseInto(&hr)); err != nil {
				t.Fatal(err)
			}
		} else {
			s := c.Responses.NewStreaming(context.Background(), params, option.WithResponseInto(&hr))
			for s.Next() {
				if ev := s.Current(); ev.Type == "response.completed" {
					r := ev.AsResponseCompleted().Response
					resp = &r
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if resp == nil {
				t.Fatal("no response.completed event")
			}
		}
		var tool string
		for _, item := range resp.Output {
			if item.Type == "function_call" {
				tool = item.Name
			}
		}
		return tool, resp.Usage.TotalTokens, hr.Header.Get("x-request-id")
	}},
	{"messages", func(t *testing.T, h *harness, model string, stream bool) (string, int64, string) {
		c := h.anthropic(h.key)
		params := userText("get_weather for Paris")
		params.Model = anthropic.Model(model)
		params.Tools = []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name:        "get_weather",
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}},
		}}}
		var hr *http.Response
		var msg anthropic.Message
		if !stream {
			m, err := c.Messages.New(context.Background(), params, aoption.WithResponseInto(&hr))
			if err != nil {
				t.Fatal(err)
			}
			msg = *m
		} else {
			s := c.Messages.NewStreaming(context.Background(), params, aoption.WithResponseInto(&hr))
			for s.Next() {
				if err := msg.Accumulate(s.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
		}
		var tool string
		for _, b := range msg.Content {
			if b.Type == "tool_use" {
				tool = b.AsToolUse().Name
			}
		}
		return tool, msg.Usage.InputTokens + msg.Usage.OutputTokens, hr.Header.Get("x-request-id")
	}},
}

// TestEveryAPIThroughEveryProvider is the matrix: each inbound API (chat
// completions, Responses, Anthropic Messages, each with its own SDK), plain
// and streamed, with a tool, through each kind of upstream (the built-in
// mock speaking each provider's wire protocol behind that provider's real
// adapter). The caller's SDK reads a valid reply with the tool call, and the
// ledger bills the request once, with the usage the caller was told.
func TestEveryAPIThroughEveryProvider(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	protocols := []struct{ protocol, upstreamModel string }{
		{config.TypeOpenAI, "gpt-4o-mini"},
		{config.TypeAnthropic, "claude-haiku-4-5"},
		{config.TypeAzureOpenAI, "gpt4o-prod"},
		{config.TypeBedrock, "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{config.TypeGemini, "gemini-2.5-flash"},
	}
	for _, p := range protocols {
		cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "matrix-" + p.protocol, Type: config.TypeMock,
			Timeout: config.Duration(5 * time.Second), IdleTimeout: config.Duration(5 * time.Second), MaxConns: 8,
			Provider: config.Provider{Protocol: p.protocol}})
		cfg.Models = append(cfg.Models, config.Model{Name: "matrix-" + p.protocol, Upstream: "matrix-" + p.protocol,
			UpstreamModel: p.upstreamModel, InputPerMillion: 1, OutputPerMillion: 4})
	}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	for _, api := range inboundAPIs {
		for _, p := range protocols {
			for _, stream := range []bool{false, true} {
				name := api.name + "/" + p.protocol + "/plain"
				if stream {
					name = api.name + "/" + p.protocol + "/streamed"
				}
				t.Run(name, func(t *testing.T) {
					tool, total, id := api.ask(t, h, "matrix-"+p.protocol, stream)
					if tool != "get_weather" {
						t.Errorf("the reply calls %q, want get_weather", tool)
					}
					if total == 0 {
						t.Fatal("the caller was told no usage")
					}
					row := h.ledgerRowEventually(t, id)
					if row.Status != 200 || row.Total != total || row.UsageSource != "upstream" {
						t.Errorf("ledger %+v; want status 200 and the %d tokens the caller was told, from the upstream", row, total)
					}
				})
			}
		}
	}
}

// ledgerRowEventually is the ledger row of a request, waiting for a stream's
// writer, which records its request after the caller has read the end.
func (h *harness) ledgerRowEventually(t *testing.T, requestID string) ledgerRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dataDir, "sluice.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var r ledgerRow
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := h.srv.Ledger().Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		err = db.QueryRow(`SELECT endpoint, stream, prompt_tokens, completion_tokens, total_tokens, cost_nanos, status, code, usage_source
			FROM usage_events WHERE request_id = ?`, requestID).
			Scan(&r.Endpoint, &r.Stream, &r.Prompt, &r.Completion, &r.Total, &r.CostNanos, &r.Status, &r.Code, &r.UsageSource)
		if err == nil || !errors.Is(err, sql.ErrNoRows) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("ledger row of %s: %v", requestID, err)
	}
	return r
}
