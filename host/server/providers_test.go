package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/upstream"
)

// providerModels are public models served by the built-in mock speaking
// each provider's wire protocol, behind that provider's real adapter.
var providerModels = []struct{ protocol, model, upstreamModel string }{
	{config.TypeAzureOpenAI, "gpt-4o-azure", "gpt4o-prod"},
	{config.TypeBedrock, "claude-bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"},
	{config.TypeGemini, "gemini-flash", "gemini-2.5-flash"},
}

func providerHarness(t *testing.T) *harness {
	cfg := testConfig(t, t.TempDir(), open)
	for _, p := range providerModels {
		cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: p.protocol + "-mock", Type: config.TypeMock,
			Timeout: config.Duration(5 * time.Second), IdleTimeout: config.Duration(5 * time.Second), MaxConns: 4,
			Provider: config.Provider{Protocol: p.protocol}})
		cfg.Models = append(cfg.Models, config.Model{Name: p.model, Upstream: p.protocol + "-mock", UpstreamModel: p.upstreamModel,
			InputPerMillion: 1, OutputPerMillion: 4})
	}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	return h
}

// Each provider's model answers the official SDK, plain and streamed, and
// each call is billed once with the provider's own usage.
func TestProvidersServeTheOpenAISDK(t *testing.T) {
	h := providerHarness(t)
	c := h.client(h.key)
	ctx := context.Background()
	for _, p := range providerModels {
		t.Run(p.protocol, func(t *testing.T) {
			resp, err := c.Chat.Completions.New(ctx, chat(p.model, "What is a sluice?"))
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Choices[0].Message.Content; got != upstream.MockReplyPrefix+"What is a sluice?" || resp.Model != p.upstreamModel {
				t.Fatalf("content %q model %q", got, resp.Model)
			}
			u := resp.Usage
			if u.PromptTokens == 0 || u.CompletionTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Fatalf("usage %+v", u)
			}

			params := chat(p.model, "What is a sluice?")
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := c.Chat.Completions.NewStreaming(ctx, params)
			var text strings.Builder
			var streamed openai.CompletionUsage
			usageChunks := 0
			finish := ""
			for stream.Next() {
				ch := stream.Current()
				for _, choice := range ch.Choices {
					text.WriteString(choice.Delta.Content)
					if choice.FinishReason != "" {
						finish = choice.FinishReason
					}
				}
				if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
					streamed = ch.Usage
					usageChunks++
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if text.String() != resp.Choices[0].Message.Content || finish != "stop" || usageChunks != 1 ||
				streamed.PromptTokens != u.PromptTokens || streamed.CompletionTokens != u.CompletionTokens {
				t.Fatalf("streamed %q finish %q usage %+v in %d chunks; plain usage %+v", text.String(), finish, streamed, usageChunks, u)
			}

			if err := h.srv.Ledger().Flush(ctx); err != nil {
				t.Fatal(err)
			}
			rows, err := h.srv.Store().Report(ctx, store.ReportQuery{GroupBy: store.GroupByModel})
			if err != nil {
				t.Fatal(err)
			}
			var row *store.ReportRow
			for i := range rows {
				if rows[i].Group == p.model {
					row = &rows[i]
				}
			}
			if row == nil || row.Requests != 2 || row.PromptTokens != 2*u.PromptTokens || row.CompletionTokens != 2*u.CompletionTokens || row.CostNanos == 0 {
				t.Fatalf("ledger %+v, want 2 requests of %+v", row, u)
			}
		})
	}
}

// A tool call made by the provider reaches the SDK as an OpenAI tool call.
func TestProvidersCallTools(t *testing.T) {
	h := providerHarness(t)
	c := h.client(h.key)
	for _, p := range providerModels {
		t.Run(p.protocol, func(t *testing.T) {
			params := chat(p.model, "What is the weather in Paris? Use get_weather.")
			params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
				Name:       "get_weather",
				Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
			})}
			resp, err := c.Chat.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			calls := resp.Choices[0].Message.ToolCalls
			var args struct{ City string }
			if len(calls) != 1 || calls[0].Function.Name != "get_weather" || json.Unmarshal([]byte(calls[0].Function.Arguments), &args) != nil ||
				args.City == "" || resp.Choices[0].FinishReason != "tool_calls" {
				t.Fatalf("tool calls %+v finish %q", calls, resp.Choices[0].FinishReason)
			}
		})
	}
}

// A provider's 429 or 5xx is never blamed on the caller's key or quota,
// for a plain call and a stream alike: a 429 is the gateway's 503
// upstream_rate_limited (a wait the caller's SDK retries after), a 503 its
// 503 upstream_error, a 500 its 502 upstream_error.
func TestProviderFailuresAreUpstreamErrors(t *testing.T) {
	h := providerHarness(t)
	c := h.client(h.key)
	for _, p := range providerModels {
		for _, want := range []struct {
			status, code string
			gateway      int
		}{{"429", "upstream_rate_limited", 503}, {"500", "upstream_error", 502}, {"503", "upstream_error", 503}} {
			_, err := c.Chat.Completions.New(context.Background(), chat(p.model, upstream.MockStatusPrompt+want.status))
			apiError(t, err, want.gateway, want.code)
			stream := c.Chat.Completions.NewStreaming(context.Background(), chat(p.model, upstream.MockStatusPrompt+want.status))
			for stream.Next() {
			}
			apiError(t, stream.Err(), want.gateway, want.code)
		}
	}
}

// The Responses API, translated to chat completions, reaches each provider
// the same way.
func TestProvidersServeTheResponsesAPI(t *testing.T) {
	h := providerHarness(t)
	for _, p := range providerModels {
		resp, body := h.raw("POST", "/v1/responses", h.key, `{"model":"`+p.model+`","input":"Hello, Sluice!"}`)
		if resp.StatusCode != 200 || !strings.Contains(string(body), upstream.MockReplyPrefix+"Hello, Sluice!") || !strings.Contains(string(body), `"output_tokens"`) {
			t.Errorf("%s: %d %s", p.protocol, resp.StatusCode, body)
		}
	}
}
