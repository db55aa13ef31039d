package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/tokens"
	"github.com/sluicehq/sluice/host/upstream"
)

func (h *harness) anthropic(key string) *anthropic.Client {
	c := anthropic.NewClient(aoption.WithBaseURL("http://"+h.srv.Addr()), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))
	return &c
}

// mockCompletion is the mock's count of its reply: the sum of its words'
// counts, as it streams them.
func mockCompletion(reply string) int64 {
	var n int64
	for _, w := range strings.SplitAfter(reply, " ") {
		n += tokens.Count(w)
	}
	return n
}

func userText(text string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "gpt-4o-mini",
		MaxTokens: 200,
		System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))},
	}
}

// anthropicError asserts err is an Anthropic API error with the status, the
// error type and Sluice's code in details.error_code.
func anthropicError(t *testing.T, err error, status int, typ, code string) *anthropic.Error {
	t.Helper()
	var e *anthropic.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an API error; want %d %s", err, status, typ)
	}
	var body struct {
		Type  string
		Error struct {
			Type    string
			Message string
			Details struct {
				ErrorCode string `json:"error_code"`
			}
		}
	}
	json.Unmarshal([]byte(e.RawJSON()), &body)
	if e.StatusCode != status || string(e.Type()) != typ || body.Type != "error" || string(e.ErrorCode()) != code {
		t.Fatalf("got %d %q %q (%s), want %d %q %q", e.StatusCode, e.Type(), e.ErrorCode(), e.RawJSON(), status, typ, code)
	}
	if body.Error.Message == "" || e.RequestID == "" {
		t.Fatalf("the error has no message or no request id: %s %q", e.RawJSON(), e.RequestID)
	}
	return e
}

func TestMessagesAPI(t *testing.T) {
	h := newHarness(t, open)
	c := h.anthropic(h.key)
	var hr *http.Response
	msg, err := c.Messages.New(context.Background(), userText("What is a sluice?"), aoption.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.ID, "msg_") || msg.Role != "assistant" || msg.Model != "gpt-4o-mini" || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("message %+v", msg)
	}
	if len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].Text != upstream.MockReplyPrefix+"What is a sluice?" {
		t.Fatalf("content %+v", msg.Content)
	}
	// The mock's usage is exact: what the ledger bills is what the caller
	// is told.
	wantPrompt := tokens.Chat([]string{"You are terse.", "What is a sluice?"}, 2)
	wantCompletion := mockCompletion(upstream.MockReplyPrefix + "What is a sluice?")
	if msg.Usage.InputTokens != wantPrompt || msg.Usage.OutputTokens != wantCompletion {
		t.Fatalf("usage %+v, want %d in %d out", msg.Usage, wantPrompt, wantCompletion)
	}
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	if row.Endpoint != "/v1/messages" || row.Prompt != wantPrompt || row.Completion != wantCompletion || row.Status != 200 ||
		row.CostNanos != miniCost(wantPrompt, wantCompletion) || row.UsageSource != "upstream" {
		t.Fatalf("ledger row %+v", row)
	}
	if n := sum(h.scrape(), "sluice_requests_total", map[string]string{"endpoint": "/v1/messages", "status": "200"}); n != 1 {
		t.Fatalf("%v requests counted for /v1/messages", n)
	}
}

func TestMessagesStream(t *testing.T) {
	h := newHarness(t, open)
	c := h.anthropic(h.key)
	var hr *http.Response
	s := c.Messages.NewStreaming(context.Background(), userText("Stream me a sluice"), aoption.WithResponseInto(&hr))
	var msg anthropic.Message
	var names []string
	for s.Next() {
		ev := s.Current()
		names = append(names, ev.Type)
		if err := msg.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	want := upstream.MockReplyPrefix + "Stream me a sluice"
	if len(msg.Content) != 1 || msg.Content[0].Text != want || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("accumulated %+v", msg)
	}
	if names[0] != "message_start" || names[len(names)-1] != "message_stop" || names[len(names)-2] != "message_delta" {
		t.Fatalf("events %v", names)
	}
	wantPrompt := tokens.Chat([]string{"You are terse.", "Stream me a sluice"}, 2)
	wantCompletion := mockCompletion(want)
	if msg.Usage.InputTokens != wantPrompt || msg.Usage.OutputTokens != wantCompletion {
		t.Fatalf("usage %+v", msg.Usage)
	}
	waitFor(t, func() bool { r, _ := h.billed(); return r == 1 })
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	if row.Endpoint != "/v1/messages" || !row.Stream || row.Prompt != wantPrompt || row.Completion != wantCompletion || row.UsageSource != "upstream" {
		t.Fatalf("ledger row %+v", row)
	}
}

// The raw stream has Anthropic's event: lines, each naming the type its
// data carries.
func TestMessagesStreamEventLines(t *testing.T) {
	h := newHarness(t, open)
	resp, body := h.raw("POST", "/v1/messages", h.key, `{"model":"gpt-4o-mini","max_tokens":50,"stream":true,
		"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	events := strings.Split(strings.TrimSpace(string(body)), "\n\n")
	for _, ev := range events {
		name, data, ok := strings.Cut(ev, "\n")
		name, _ = strings.CutPrefix(name, "event: ")
		data, _ = strings.CutPrefix(data, "data: ")
		var d struct{ Type string }
		if !ok || json.Unmarshal([]byte(data), &d) != nil || d.Type != name {
			t.Fatalf("event %q", ev)
		}
	}
}

func TestMessagesToolRoundTrip(t *testing.T) {
	h := newHarness(t, open)
	c := h.anthropic(h.key)
	params := userText("What is the weather in Paris? Use get_weather.")
	params.Tools = []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
		Name: "get_weather", Description: anthropic.String("The weather now"),
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}},
	}}}
	msg, err := c.Messages.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 1 || msg.Content[0].Type != "tool_use" {
		t.Fatalf("message %+v", msg)
	}
	use := msg.Content[0].AsToolUse()
	var input map[string]string
	if err := json.Unmarshal(use.Input, &input); err != nil || use.Name != "get_weather" || input["city"] == "" || use.ID == "" {
		t.Fatalf("tool_use %+v (%s)", use, use.Input)
	}
	params.Messages = append(params.Messages, msg.ToParam(),
		anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "sunny, 21 C", false)))
	msg, err = c.Messages.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonEndTurn || msg.Content[0].Text != upstream.MockToolResultPrefix+"sunny, 21 C" {
		t.Fatalf("message %+v", msg)
	}

	// Streamed, the call's input arrives as input_json_delta.
	params.Messages = params.Messages[:1]
	s := c.Messages.NewStreaming(context.Background(), params)
	var acc anthropic.Message
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.StopReason != anthropic.StopReasonToolUse || len(acc.Content) != 1 {
		t.Fatalf("streamed %+v", acc)
	}
	if u := acc.Content[0].AsToolUse(); u.Name != "get_weather" || json.Unmarshal(u.Input, &input) != nil || input["city"] == "" {
		t.Fatalf("streamed tool_use %+v (%s)", u, u.Input)
	}
}

func TestMessagesCountTokens(t *testing.T) {
	h := newHarness(t, open)
	c := h.anthropic(h.key)
	n, err := c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "gpt-4o-mini",
		System:   anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: []anthropic.TextBlockParam{{Text: "You are terse."}}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is a sluice?"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := tokens.Chat([]string{"You are terse.", "What is a sluice?"}, 1); n.InputTokens != want {
		t.Fatalf("input_tokens %d, want %d", n.InputTokens, want)
	}
	if _, billed := h.billed(); billed != 0 {
		t.Fatalf("counting billed %d tokens", billed)
	}
	_, err = h.anthropic("sk-wrong").Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model: "gpt-4o-mini", Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	anthropicError(t, err, 401, "authentication_error", "invalid_api_key")
}

// count_tokens counts against the requests per minute, and a tier
// without the model is refused there too (a refusal counts as well).
func TestMessagesCountTokensIsLimited(t *testing.T) {
	h := newHarness(t, config.Tier{Budget: config.Budget{RPM: 3}, Models: []string{"gpt-4o-mini"}})
	c := h.anthropic(h.key)
	count := func(model string) error {
		_, err := c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
			Model: anthropic.Model(model), Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
		return err
	}
	anthropicError(t, count("gpt-4o"), 403, "permission_error", "model_not_allowed")
	if err := count("gpt-4o-mini"); err != nil {
		t.Fatal(err)
	}
	if err := count("gpt-4o-mini"); err != nil {
		t.Fatal(err)
	}
	anthropicError(t, count("gpt-4o-mini"), 429, "rate_limit_error", "rate_limit_exceeded")
}

// messagesFields are the places of a Messages request where a value can
// ride along to the model: every one must be scanned.
var messagesFields = []requestField{
	{"system string", `{"model":"gpt-4o-mini","max_tokens":50,"system":"Reply to %s","messages":[{"role":"user","content":"hi"}]}`},
	{"system block", `{"model":"gpt-4o-mini","max_tokens":50,"system":[{"type":"text","text":"Reply to %s"}],"messages":[{"role":"user","content":"hi"}]}`},
	{"text block", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":"%s"}]}]}`},
	{"tool_result string", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"look it up"},
		{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"found %s"}]}]}`},
	{"tool_result blocks", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"look it up"},
		{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"found %s"}]}]}]}`},
	{"tool_use input", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"go"},
		{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"%s"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]}]}`},
	{"assistant text", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"%s"},{"role":"user","content":"go"}]}`},
	{"tool description", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"go"}],
		"tools":[{"name":"f","description":"mail %s","input_schema":{"type":"object"}}]}`},
	{"tool schema", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"go"}],
		"tools":[{"name":"f","input_schema":{"type":"object","properties":{"x":{"type":"string","enum":["%s"]}}}}]}`},
	{"image url", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://img.example.net/a.png?who=%s"}}]}]}`},
	{"stop sequence", `{"model":"gpt-4o-mini","max_tokens":50,"stop_sequences":["%s"],"messages":[{"role":"user","content":"go"}]}`},
	{"metadata user_id", `{"model":"gpt-4o-mini","max_tokens":50,"metadata":{"user_id":"%s"},"messages":[{"role":"user","content":"go"}]}`},
}

// The attacker's test: a value hidden anywhere in a Messages request (the
// system prompt, a tool_result, a tool_use's input, a tool's schema…) is
// found, the request is refused in Anthropic's shape, and nothing of it
// reaches the upstream.
func TestMessagesEveryRequestFieldIsScanned(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true})
	c := h.anthropic(h.key)
	for _, f := range messagesFields {
		for _, v := range []string{leakSSN, leakEmail, leakKey} {
			t.Run(f.name+"/"+v, func(t *testing.T) {
				_, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{},
					aoption.WithRequestBody("application/json", []byte(fmt.Sprintf(f.body, v))))
				e := anthropicError(t, err, 400, "invalid_request_error", "pii_detected")
				if strings.Contains(e.RawJSON(), v) {
					t.Fatalf("the error names the value: %s", e.RawJSON())
				}
			})
		}
	}
	if seen := rec.seen(); strings.Contains(seen, leakSSN) || strings.Contains(seen, leakEmail) || strings.Contains(seen, leakKey) {
		t.Fatalf("a value reached the upstream: %s", seen)
	}
}

// Where the policy redacts, the upstream gets the placeholder, inside the
// tool_result it was found in.
func TestMessagesToolResultIsRedacted(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"EMAIL"}})
	_, err := h.anthropic(h.key).Messages.New(context.Background(), anthropic.MessageNewParams{},
		aoption.WithRequestBody("application/json", []byte(fmt.Sprintf(messagesFields[3].body, leakEmail))))
	if err != nil {
		t.Fatal(err)
	}
	seen := rec.seen()
	if strings.Contains(seen, leakEmail) || !strings.Contains(seen, `"role":"tool","content":"found [EMAIL_1]"`) {
		t.Fatalf("forwarded %s", seen)
	}
}

// What Sluice cannot carry is refused with a 400 naming it, in Anthropic's
// shape, before anything is sent.
func TestMessagesRefusals(t *testing.T) {
	h := newHarness(t, open)
	cases := []struct{ name, body, header, param string }{
		{"no max_tokens", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "", "max_tokens"},
		{"thinking", `{"model":"gpt-4o-mini","max_tokens":50,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}`, "", "thinking"},
		{"server tool", `{"model":"gpt-4o-mini","max_tokens":50,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"hi"}]}`, "", "tools[0].type"},
		{"document block", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}]}]}`, "", "messages[0].content[0].type"},
		{"citations", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"x","citations":[]}]}]}`, "", "messages[0].content[0].citations"},
		{"unknown member", `{"model":"gpt-4o-mini","max_tokens":50,"memo":{"note":"x"},"messages":[{"role":"user","content":"hi"}]}`, "", "memo"},
		{"beta header", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, "anthropic-beta", "anthropic-beta"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := []aoption.RequestOption{aoption.WithRequestBody("application/json", []byte(c.body))}
			if c.header != "" {
				opts = append(opts, aoption.WithHeader(c.header, "some-feature-2025-01-01"))
			}
			_, err := h.anthropic(h.key).Messages.New(context.Background(), anthropic.MessageNewParams{}, opts...)
			e := anthropicError(t, err, 400, "invalid_request_error", string(anthropicCode(err)))
			if !strings.Contains(e.RawJSON(), c.param) {
				t.Fatalf("the error does not name %s: %s", c.param, e.RawJSON())
			}
		})
	}
	if r, _ := h.billed(); r != 0 {
		t.Fatalf("%d refusals billed", r)
	}
}

func anthropicCode(err error) anthropic.ErrorCode {
	var e *anthropic.Error
	errors.As(err, &e)
	return e.ErrorCode()
}

func TestMessagesBudgetIsAnthropicShaped(t *testing.T) {
	h := newHarness(t, config.Tier{Budget: config.Budget{DailyTokens: 60}, Models: []string{"*"}})
	c := h.anthropic(h.key)
	params := userText("hi")
	params.MaxTokens = 20
	if _, err := c.Messages.New(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	params.MaxTokens = 100
	_, err := c.Messages.New(context.Background(), params)
	e := anthropicError(t, err, 429, "rate_limit_error", "budget_exceeded")
	if e.Response.Header.Get("retry-after") == "" || e.Response.Header.Get("x-sluice-error-code") != "budget_exceeded" {
		t.Fatalf("headers %v", e.Response.Header)
	}
	_, err = h.anthropic("sk-nope").Messages.New(context.Background(), params)
	anthropicError(t, err, 401, "authentication_error", "invalid_api_key")
	params.Model = "no-such-model"
	_, err = c.Messages.New(context.Background(), params)
	anthropicError(t, err, 404, "not_found_error", "model_not_found")
}

// startBehindAnthropic starts Sluice with gpt-4o-mini served by the
// Anthropic-protocol mock, behind the anthropic adapter.
func startBehindAnthropic(t *testing.T, tier config.Tier) *harness {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), tier)
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "claude", Type: "mock", Provider: config.Provider{Protocol: "anthropic"},
		Timeout: config.Duration(10 * time.Second), IdleTimeout: config.Duration(10 * time.Second), MaxConns: 8})
	for i := range cfg.Models {
		if cfg.Models[i].Name == "gpt-4o-mini" {
			cfg.Models[i].Upstream = "claude"
		}
	}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	return h
}

// A chat completion through an anthropic upstream: translated to a
// Messages request and back, plain and streamed, and billed once with the
// provider's usage.
func TestChatThroughAnthropicUpstream(t *testing.T) {
	h := startBehindAnthropic(t, open)
	c := h.client(h.key)
	var hr *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "What is a sluice?"), option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	want := upstream.MockReplyPrefix + "What is a sluice?"
	if resp.Choices[0].Message.Content != want || resp.Choices[0].FinishReason != "stop" {
		t.Fatalf("reply %+v", resp.Choices[0])
	}
	wantPrompt := tokens.Chat([]string{"You are terse.", "What is a sluice?"}, 2)
	wantCompletion := mockCompletion(want)
	if resp.Usage.PromptTokens != wantPrompt || resp.Usage.CompletionTokens != wantCompletion {
		t.Fatalf("usage %+v", resp.Usage)
	}
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	if row.Prompt != wantPrompt || row.Completion != wantCompletion || row.UsageSource != "upstream" || row.Endpoint != "/v1/chat/completions" {
		t.Fatalf("ledger row %+v", row)
	}

	s := c.Chat.Completions.NewStreaming(context.Background(), chat("gpt-4o-mini", "Stream it"), option.WithResponseInto(&hr))
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != upstream.MockReplyPrefix+"Stream it" || acc.Choices[0].FinishReason != "stop" {
		t.Fatalf("streamed %q %q", got, acc.Choices[0].FinishReason)
	}
	waitFor(t, func() bool { r, _ := h.billed(); return r == 2 })
	row = h.ledgerRow(hr.Header.Get("x-request-id"))
	wantPrompt = tokens.Chat([]string{"You are terse.", "Stream it"}, 2)
	if row.Prompt != wantPrompt || row.Completion != mockCompletion(upstream.MockReplyPrefix+"Stream it") || row.UsageSource != "upstream" || !row.Stream {
		t.Fatalf("streamed ledger row %+v", row)
	}
	if r, _ := h.billed(); r != 2 {
		t.Fatalf("%d rows for two requests", r)
	}
}

// Tools through an anthropic upstream: the call comes back as a chat tool
// call, and its result goes to the provider as a tool_result.
func TestChatToolsThroughAnthropicUpstream(t *testing.T) {
	h := startBehindAnthropic(t, open)
	c := h.client(h.key)
	params := chat("gpt-4o-mini", "Weather in Paris? Use get_weather.")
	params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name: "get_weather", Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	resp, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if resp.Choices[0].FinishReason != "tool_calls" || len(calls) != 1 || calls[0].Function.Name != "get_weather" ||
		!strings.Contains(calls[0].Function.Arguments, "city") {
		t.Fatalf("reply %+v", resp.Choices[0])
	}
	// Streamed, the call arrives in fragments and accumulates whole.
	s := c.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.ToolCalls; len(got) != 1 || got[0].Function.Arguments != calls[0].Function.Arguments ||
		acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("streamed %+v", acc.Choices[0])
	}
	params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(), openai.ToolMessage("rain", calls[0].ID))
	resp, err = c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != upstream.MockToolResultPrefix+"rain" {
		t.Fatalf("reply %q", got)
	}
}

// A provider's 429 and 529 are the provider refusing the gateway, not the
// caller's key or budget: a 503 upstream_rate_limited (a wait the caller's
// SDK retries after) and a 502, and nothing billed.
func TestAnthropicUpstreamErrors(t *testing.T) {
	h := startBehindAnthropic(t, open)
	c := h.client(h.key)
	for _, want := range []struct {
		status, gateway int
		code            string
	}{{429, 503, "upstream_rate_limited"}, {529, 502, "upstream_error"}} {
		_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", fmt.Sprintf("%s%d please", upstream.MockStatusMarker, want.status)))
		apiError(t, err, want.gateway, want.code)
	}
	_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", upstream.MockStatusMarker+"400 please"))
	apiError(t, err, 400, "upstream_error")
	// What a Messages request cannot carry is the caller's 400, naming it.
	params := chat("gpt-4o-mini", "hi")
	params.N = openai.Int(2)
	_, err = c.Chat.Completions.New(context.Background(), params)
	if e := apiError(t, err, 400, "unsupported_parameter"); e.Param != "n" {
		t.Fatalf("param %q", e.Param)
	}
	if _, tokens := h.billed(); tokens != 0 {
		t.Fatalf("%d tokens billed for refusals", tokens)
	}
}

// The Messages API in front and an Anthropic upstream behind: a Message
// in, a Message out, through the one internal form.
func TestMessagesThroughAnthropicUpstream(t *testing.T) {
	h := startBehindAnthropic(t, open)
	msg, err := h.anthropic(h.key).Messages.New(context.Background(), userText("Round trip"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != upstream.MockReplyPrefix+"Round trip" || msg.Usage.InputTokens != tokens.Chat([]string{"You are terse.", "Round trip"}, 2) {
		t.Fatalf("message %+v", msg)
	}
}

// The model's reply passes the reply guardrails before it is a Message:
// a secret the mock echoes back is withheld, whole (an Anthropic-shaped
// 400) or streamed (an Anthropic error event, and none of the secret).
func TestMessagesReplyIsScanned(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, ResponsePlugins: []string{"pii"}})
	c := h.anthropic(h.key)
	_, err := c.Messages.New(context.Background(), userText("repeat "+leakKey))
	e := anthropicError(t, err, 400, "invalid_request_error", "pii_detected")
	if strings.Contains(e.RawJSON(), leakKey) {
		t.Fatalf("the error names the value: %s", e.RawJSON())
	}
	s := c.Messages.NewStreaming(context.Background(), userText("repeat "+leakKey))
	var text strings.Builder
	for s.Next() {
		text.WriteString(s.Current().Delta.Text)
	}
	if !errors.As(s.Err(), &e) || e.Type() != "invalid_request_error" || strings.Contains(text.String(), leakKey) {
		t.Fatalf("stream ended with %v after %q", s.Err(), text.String())
	}
}

// OpenAI's Responses API in front of an Anthropic upstream: both
// translations meet in the chat completion.
func TestResponsesThroughAnthropicUpstream(t *testing.T) {
	h := startBehindAnthropic(t, open)
	c := h.client(h.key)
	resp, err := sendResponses(c, `{"model":"gpt-4o-mini","instructions":"Be terse.","input":"Via Claude"}`)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != upstream.MockReplyPrefix+"Via Claude" || resp.Usage.InputTokens != tokens.Chat([]string{"Be terse.", "Via Claude"}, 2) {
		t.Fatalf("response %q %+v", resp.OutputText(), resp.Usage)
	}
}
