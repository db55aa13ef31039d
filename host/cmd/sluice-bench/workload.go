package main

import (
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/host/bench"
)

// benchModel is the one model the benchmark asks for; Sluice routes it to the mock.
const benchModel = "gpt-4o-mini"

// systemPrompt and userPrompt are an ordinary business request: about 1 KB
// of text that the PII scanner and the content filter must read in full and
// find nothing in, as most real traffic does. No digits, names or addresses,
// so that no scanner finding can turn a measurement into a denial.
const (
	systemPrompt = "You are a helpful assistant for the operations team of a mid-sized distribution " +
		"company. Answer in plain language, briefly, and say so when you are unsure."
	userPrompt = "Please summarise the following notes from this week's operations review and list the " +
		"three actions we agreed on. The northern warehouse finished moving to the new shelving layout on " +
		"Tuesday, two days later than planned because the racking delivery arrived incomplete. Picking times " +
		"have already improved by roughly a fifth on the fast-moving lines, although the team reports that " +
		"labels on the upper shelves are hard to read and need to be reprinted in a larger font. Returns " +
		"processing is still the main bottleneck: parcels wait on average three days before they are " +
		"inspected, and customers have started to complain about slow refunds. The group agreed to move two " +
		"people from inbound receiving to the returns desk for the rest of the month and to review the result " +
		"at the next meeting. Transport costs rose again this quarter, mostly because of fuel surcharges on " +
		"the regional routes; the finance lead will ask our two main carriers for revised quotes and compare " +
		"them with a consolidated weekly delivery schedule. Finally, the customer service team asked for a " +
		"short weekly summary of stock shortages so that they can warn customers before orders are delayed, " +
		"and the planning team agreed to send it every Monday morning."
)

// chatRequest is the body every target receives: a non-streaming chat
// completion with a system and a user message and max_tokens 64.
func chatRequest() ([]byte, error) {
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	body, err := json.Marshal(struct {
		Model     string    `json:"model"`
		Messages  []message `json:"messages"`
		MaxTokens int       `json:"max_tokens"`
	}{
		Model:     benchModel,
		Messages:  []message{{"system", systemPrompt}, {"user", userPrompt}},
		MaxTokens: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the benchmark request: %w", err)
	}
	return body, nil
}

// textCases are the bodies of the texts section: the end-to-end request, and
// one that carries 20 tool definitions and a tool call.
func textCases() ([]bench.TextCase, error) {
	chat, err := chatRequest()
	if err != nil {
		return nil, err
	}
	tools := make([]any, 20)
	for i := range tools {
		tools[i] = map[string]any{"type": "function", "function": map[string]any{
			"name":        fmt.Sprintf("tool_%d", i),
			"description": "Looks up the current status of an order in the fulfilment system and returns its state.",
			"parameters": map[string]any{"type": "object", "required": []string{"order_id"}, "properties": map[string]any{
				"order_id": map[string]any{"type": "string", "description": "The order's identifier, as printed on the invoice."},
				"region":   map[string]any{"type": "string", "enum": []string{"eu", "us", "apac"}},
				"verbose":  map[string]any{"type": "boolean", "default": false},
			}},
		}}
	}
	withTools, err := json.Marshal(map[string]any{"model": benchModel, "max_tokens": 64, "tools": tools, "messages": []any{
		map[string]any{"role": "system", "content": systemPrompt},
		map[string]any{"role": "user", "content": "Where is order 20240117?"},
		map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "call_1", "type": "function",
			"function": map[string]any{"name": "tool_3", "arguments": `{"order_id":"20240117","region":"eu"}`}}}},
		map[string]any{"role": "tool", "tool_call_id": "call_1", "content": `{"state":"shipped"}`},
	}})
	if err != nil {
		return nil, err
	}
	return []bench.TextCase{{Name: "e2e request", Body: chat}, {Name: "20 tool definitions", Body: withTools}}, nil
}
