package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
)

func textCompletion(prompt string) openai.CompletionNewParams {
	return openai.CompletionNewParams{
		Model:     "gpt-4o-mini",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens: openai.Int(100),
	}
}

func TestCompletionsAPI(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	var hr *http.Response
	resp, err := c.Completions.New(context.Background(), textCompletion("Say what a sluice is"), option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text != "Mock reply. You said: Say what a sluice is" ||
		resp.Choices[0].FinishReason != openai.CompletionChoiceFinishReasonStop {
		t.Fatalf("choices %+v", resp.Choices)
	}
	if !strings.HasPrefix(resp.ID, "cmpl-") || resp.Object != "text_completion" || resp.Model != "gpt-4o-mini" {
		t.Fatalf("completion %s %s %s", resp.ID, resp.Object, resp.Model)
	}
	u := resp.Usage
	if u.PromptTokens == 0 || u.CompletionTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Fatalf("usage %+v", u)
	}
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	want := ledgerRow{Endpoint: "/v1/completions", Prompt: u.PromptTokens, Completion: u.CompletionTokens, Total: u.TotalTokens,
		CostNanos: miniCost(u.PromptTokens, u.CompletionTokens), Status: 200, UsageSource: "upstream"}
	if row != want {
		t.Fatalf("ledger %+v, want %+v", row, want)
	}

	// A prompt in an array of one, several choices, and a reply cut at
	// max_tokens.
	params := openai.CompletionNewParams{Model: "gpt-4o-mini", N: openai.Int(2), MaxTokens: openai.Int(3),
		Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"one two three four five six"}}}
	resp, err = c.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 2 || resp.Choices[1].Index != 1 || resp.Choices[0].FinishReason != openai.CompletionChoiceFinishReasonLength ||
		!strings.HasPrefix("Mock reply. You said: ", resp.Choices[0].Text) {
		t.Fatalf("choices %+v", resp.Choices)
	}
}

func TestCompletionsAPIStreamed(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	var hr *http.Response
	params := textCompletion("Stream me a sluice")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := c.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&hr))
	var text strings.Builder
	var usage openai.CompletionUsage
	finish := ""
	for s.Next() {
		ch := s.Current()
		if ch.Object != "text_completion" || !strings.HasPrefix(ch.ID, "cmpl-") {
			t.Fatalf("chunk %s", ch.RawJSON())
		}
		for _, choice := range ch.Choices {
			text.WriteString(choice.Text)
			if choice.FinishReason != "" {
				finish = string(choice.FinishReason)
			}
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "Mock reply. You said: Stream me a sluice" || finish != "stop" {
		t.Fatalf("streamed %q, finish %q", text.String(), finish)
	}
	if usage.PromptTokens == 0 || usage.CompletionTokens == 0 {
		t.Fatalf("usage %+v", usage)
	}
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	want := ledgerRow{Endpoint: "/v1/completions", Stream: true, Prompt: usage.PromptTokens, Completion: usage.CompletionTokens,
		Total: usage.TotalTokens, CostNanos: miniCost(usage.PromptTokens, usage.CompletionTokens), Status: 200, UsageSource: "upstream"}
	if row != want {
		t.Fatalf("ledger %+v, want %+v", row, want)
	}

	// On the wire: text_completion chunks only, no usage chunk unless
	// asked for, and [DONE] last.
	r, body := h.raw("POST", "/v1/completions", h.key, `{"model":"gpt-4o-mini","prompt":"hi there","stream":true}`)
	if r.StatusCode != 200 || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Fatalf("status %d body %q", r.StatusCode, body)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n\n") {
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			continue
		}
		var ch struct {
			Object  string
			Choices []json.RawMessage
			Usage   json.RawMessage
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil || ch.Object != "text_completion" || len(ch.Choices) == 0 || ch.Usage != nil {
			t.Fatalf("event %q", line)
		}
	}
}

// The attacker's test: a value hidden in any member of a completions
// request is found and the request refused before anything reaches the
// upstream; the reply is scanned as a chat reply is.
func TestCompletionsEveryFieldIsScanned(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true})
	bodies := []string{
		`{"model":"gpt-4o-mini","prompt":"mail %s"}`,
		`{"model":"gpt-4o-mini","prompt":["mail %s"]}`,
		`{"model":"gpt-4o-mini","prompt":"hi","stop":["%s"]}`,
		`{"model":"gpt-4o-mini","prompt":"hi","user":"%s"}`,
		`{"model":"gpt-4o-mini","prompt":"hi","prompt":"mail %s"}`,
	}
	for _, b := range bodies {
		for _, v := range []string{leakSSN, leakEmail, leakKey} {
			r, body := h.raw("POST", "/v1/completions", h.key, fmt.Sprintf(b, v))
			var e struct {
				Error struct{ Code, Message string }
			}
			json.Unmarshal(body, &e)
			if r.StatusCode != 400 || e.Error.Code != "pii_detected" || strings.Contains(string(body), v) {
				t.Errorf("%s with %s: %d %s", b, v, r.StatusCode, body)
			}
		}
	}
	if seen := rec.seen(); strings.Contains(seen, leakSSN) || strings.Contains(seen, leakEmail) || strings.Contains(seen, leakKey) {
		t.Fatalf("a value reached the upstream: %s", seen)
	}
	// Through the SDK, the error is the SDK's.
	c := h.client(h.key)
	_, err := c.Completions.New(context.Background(), textCompletion("my SSN is "+leakSSN))
	apiError(t, err, 400, "pii_detected")
}

// What a chat model cannot do is refused with a 400 naming the parameter,
// never dropped.
func TestCompletionsRefusals(t *testing.T) {
	h := newHarness(t, open)
	cases := []struct{ body, param, code string }{
		{`{"model":"gpt-4o-mini","prompt":"hi","suffix":"end"}`, "suffix", "unsupported_parameter"},
		{`{"model":"gpt-4o-mini","prompt":"hi","echo":true}`, "echo", "unsupported_parameter"},
		{`{"model":"gpt-4o-mini","prompt":"hi","logprobs":0}`, "logprobs", "unsupported_parameter"},
		{`{"model":"gpt-4o-mini","prompt":"hi","best_of":3}`, "best_of", "unsupported_parameter"},
		{`{"model":"gpt-4o-mini","prompt":["one","two"]}`, "prompt", "unsupported_parameter"},
		{`{"model":"gpt-4o-mini","prompt":[1,2,3]}`, "prompt", "unsupported_parameter"},
		{`{"model":"gpt-4o-mini","prompt":[]}`, "prompt", "invalid_value"},
		{`{"model":"gpt-4o-mini"}`, "prompt", "invalid_value"},
		{`{"model":"gpt-4o-mini","prompt":"hi","messages":[{"role":"system","content":"x"}]}`, "messages", "unknown_parameter"},
		{`{"model":"gpt-4o-mini","prompt":"hi","Prompt":"x"}`, "Prompt", "unknown_parameter"},
		{`{"model":"gpt-4o-mini","prompt":"hi","max_tokens":-1}`, "max_tokens", "invalid_value"},
	}
	for _, tc := range cases {
		r, body := h.raw("POST", "/v1/completions", h.key, tc.body)
		var e struct {
			Error struct {
				Param *string
				Code  string
			}
		}
		json.Unmarshal(body, &e)
		if r.StatusCode != 400 || e.Error.Param == nil || *e.Error.Param != tc.param || e.Error.Code != tc.code {
			t.Errorf("%s: %d %s; want param %s code %s", tc.body, r.StatusCode, body, tc.param, tc.code)
		}
	}
	// The values that ask for nothing are accepted.
	r, body := h.raw("POST", "/v1/completions", h.key, `{"model":"gpt-4o-mini","prompt":"hi","suffix":null,"echo":false,"logprobs":null,"best_of":1}`)
	if r.StatusCode != 200 {
		t.Fatalf("defaults refused: %d %s", r.StatusCode, body)
	}
}

func TestCompletionsBudget(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 150}})
	c := h.client(h.key)
	admitted := 0
	var last error
	for range 5 {
		if _, last = c.Completions.New(context.Background(), textCompletion("hi")); last == nil {
			admitted++
		}
	}
	e := apiError(t, last, 429, "budget_exceeded")
	if e.Type != "insufficient_quota" || e.Response.Header.Get("x-sluice-budget-limit-tokens-day") != "150" ||
		e.Response.Header.Get("x-ratelimit-limit-tokens") != "" || e.Response.Header.Get("x-should-retry") != "false" {
		t.Fatalf("budget 429: %s, headers %v", e.Type, e.Response.Header)
	}
	if admitted == 0 || admitted == 5 {
		t.Fatalf("admitted %d of 5 against a 150-token budget", admitted)
	}
	if requests, tokens := h.billed(); requests != int64(admitted) || tokens > 150 {
		t.Fatalf("billed %d requests, %d tokens; budget 150", requests, tokens)
	}
}

// The reply is scanned as a chat reply is, whole or streamed, before it
// becomes a text completion: a secret the model writes is blocked, or
// masked where the policy redacts it.
func TestCompletionsRepliesAreScanned(t *testing.T) {
	half := len(leakKey) / 2
	script := &scriptedUpstream{
		reply: completion(`{"role":"assistant","content":"the key is ` + leakKey + `"}`),
		events: []string{
			chunk(`{"role":"assistant","content":""}`, ""),
			chunk(`{"content":"the key is `+leakKey[:half]+`"}`, ""),
			chunk(`{"content":"`+leakKey[half:]+`"}`, ""),
			chunk(`{}`, "stop"),
		},
	}
	params := openai.CompletionNewParams{Model: "scripted", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")}}
	read := func(c openai.Client) (string, error) {
		s := c.Completions.NewStreaming(context.Background(), params)
		var b strings.Builder
		for s.Next() {
			for _, ch := range s.Current().Choices {
				b.WriteString(ch.Text)
			}
		}
		return b.String(), s.Err()
	}

	h := startScripted(t, config.Tier{Models: []string{"*"}, ResponsePlugins: []string{"pii"}}, script)
	c := h.client(h.key)
	_, err := c.Completions.New(context.Background(), params)
	if e := apiError(t, err, 400, "pii_detected"); strings.Contains(e.Message, leakKey) {
		t.Fatalf("the error names the value: %s", e.Message)
	}
	if got, err := read(c); err == nil || strings.Contains(got, leakKey[:half]) {
		t.Fatalf("blocked stream gave %q, %v", got, err)
	}

	h = startScripted(t, config.Tier{Models: []string{"*"}, ResponsePlugins: []string{"pii"}, Redact: []string{"AWS_ACCESS_KEY"}}, script)
	c = h.client(h.key)
	resp, err := c.Completions.New(context.Background(), params)
	if err != nil || resp.Choices[0].Text != "the key is [AWS_ACCESS_KEY_1]" {
		t.Fatalf("masked reply %+v, %v", resp, err)
	}
	if got, err := read(c); err != nil || got != "the key is [AWS_ACCESS_KEY_1]" {
		t.Fatalf("masked stream gave %q, %v", got, err)
	}
}
