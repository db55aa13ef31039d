package server

import (
	"context"
	"net/http"
	"testing"
	"time"

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
	ask  func(t *testing.T, c openai.Client, model string, stream bool) (tool string, total int64, requestID string)
}

var inboundAPIs = []inbound{
	{"chat", func(t *testing.T, c openai.Client, model string, stream bool) (string, int64, string) {
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
	{"responses", func(t *testing.T, c openai.Client, model string, stream bool) (string, int64, string) {
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
}

// TestEveryAPIThroughEveryProvider is the matrix: each inbound API, plain
// and streamed, with a tool, through each kind of upstream (the built-in
// mock speaking each provider's wire protocol behind that provider's real
// adapter). The caller's SDK reads a valid reply with the tool call, and the
// ledger bills the request once, with the usage the caller was told.
func TestEveryAPIThroughEveryProvider(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	protocols := []struct{ protocol, upstreamModel string }{
		{config.TypeOpenAI, "gpt-4o-mini"},
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
	c := h.client(h.key)
	for _, api := range inboundAPIs {
		for _, p := range protocols {
			for _, stream := range []bool{false, true} {
				name := api.name + "/" + p.protocol + "/plain"
				if stream {
					name = api.name + "/" + p.protocol + "/streamed"
				}
				t.Run(name, func(t *testing.T) {
					tool, total, id := api.ask(t, c, "matrix-"+p.protocol, stream)
					if tool != "get_weather" {
						t.Errorf("the reply calls %q, want get_weather", tool)
					}
					if total == 0 {
						t.Fatal("the caller was told no usage")
					}
					row := h.ledgerRow(id)
					if row.Status != 200 || row.Total != total || row.UsageSource != "upstream" {
						t.Errorf("ledger %+v; want status 200 and the %d tokens the caller was told, from the upstream", row, total)
					}
				})
			}
		}
	}
}
