package translate

import (
	"testing"
)

const converseConversation = `{
 "system":[{"text":"be brief"}],
 "messages":[
  {"role":"user","content":[{"text":"look"},{"image":{"format":"png","source":{"bytes":"` + pixel + `"}}}]},
  {"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"lookup","input":{"q":"x"}}}]},
  {"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"text":"found"}]}},{"text":"thanks"}]}],
 "inferenceConfig":{"maxTokens":50,"temperature":0.5,"stopSequences":["END"]},
 "toolConfig":{"tools":[{"toolSpec":{"name":"lookup","description":"find","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"lookup"}}}}`

// Chat requests into Converse requests, and back (as the bedrock mock
// reads them): messages, system prompts, images, tool calls and results,
// tools and the tool choice, and the inference bounds.
func TestChatToConverseAndBack(t *testing.T) {
	for _, c := range []struct {
		name, chat, converse, back string
	}{
		{"every kind of message", conversation, converseConversation, conversationBack},
		{"developer text joins the system prompt, text parts join",
			`{"model":"m","messages":[{"role":"developer","content":"rules"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"c"}]}`,
			`{"system":[{"text":"rules"}],"messages":[{"role":"user","content":[{"text":"a"},{"text":"b"}]},{"role":"assistant","content":[{"text":"c"}]}]}`,
			`{"model":"m","messages":[{"role":"system","content":"rules"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"c"}]}`},
		{"required tools",
			`{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`,
			`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":9},"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"any":{}}}}`,
			`{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required"}`},
		{"auto tools",
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}],"tool_choice":"auto"}`,
			`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}}]}}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]}`},
		{"no tools for tool_choice none: Converse has no none",
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`,
			`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
	} {
		got, aerr := ChatToConverse([]byte(c.chat))
		if aerr != nil {
			t.Fatalf("%s: %v", c.name, aerr)
		}
		if got.Model != "m" {
			t.Errorf("%s: model %q", c.name, got.Model)
		}
		sameJSON(t, c.name+": to Converse", got.Body, c.converse)
		back, err := ConverseToChat(got.Body, "m", false)
		if err != nil {
			t.Fatalf("%s: back: %v", c.name, err)
		}
		sameJSON(t, c.name+": back to chat", back, c.back)
		again, aerr := ChatToConverse(back)
		if aerr != nil {
			t.Fatalf("%s: again: %v", c.name, aerr)
		}
		sameJSON(t, c.name+": to Converse again", again.Body, c.converse)
	}

	// A stream asks for its usage, both ways.
	p, _ := ChatToConverse([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`))
	back, _ := ConverseToChat(p.Body, "m", true)
	if !p.IncludeUsage {
		t.Error("include_usage was not read")
	}
	sameJSON(t, "stream", back, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)

	for _, bad := range []string{`{"messages":[]}`, `not json`, `{"messages":"x"}`} {
		if _, err := ConverseToChat([]byte(bad), "m", false); err == nil {
			t.Errorf("%s was read as a Converse request", bad)
		}
	}
}

// Converse replies into chat completions, and back (as the bedrock mock
// writes them): text, tool use, stop reasons, and the usage with the
// prompt cache.
func TestConverseReplies(t *testing.T) {
	meta := ChatMeta{ID: "chatcmpl-1", Created: 7, Model: "m"}
	for _, c := range []struct {
		name, converse, chat, back string
	}{
		{"text with prompt cache and reasoning",
			`{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"hmm"}}},{"text":"Hello "},{"text":"world"}]}},"stopReason":"end_turn",
			  "usage":{"inputTokens":10,"outputTokens":5,"totalTokens":115,"cacheReadInputTokens":80,"cacheWriteInputTokens":20}}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello world"},"finish_reason":"stop"}],
			  "usage":{"prompt_tokens":110,"completion_tokens":5,"total_tokens":115,"prompt_tokens_details":{"cached_tokens":80}}}`,
			// The cache writes are among the prompt's tokens in chat usage:
			// they come back as input.
			`{"output":{"message":{"role":"assistant","content":[{"text":"Hello world"}]}},"stopReason":"end_turn","metrics":{"latencyMs":1},
			  "usage":{"inputTokens":30,"outputTokens":5,"totalTokens":115,"cacheReadInputTokens":80}}`},
		{"tool use",
			`{"output":{"message":{"role":"assistant","content":[{"text":"Let me look."},{"toolUse":{"toolUseId":"tooluse_1","name":"lookup","input":{"q":"x"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},"finish_reason":"tool_calls"}],
			  "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
			`{"output":{"message":{"role":"assistant","content":[{"text":"Let me look."},{"toolUse":{"toolUseId":"tooluse_1","name":"lookup","input":{"q":"x"}}}]}},"stopReason":"tool_use","metrics":{"latencyMs":1},"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}`},
		{"a tool use alone, without input",
			`{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"now"}}]}},"stopReason":"tool_use"}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"now","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
			`{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"now","input":{}}}]}},"stopReason":"tool_use","metrics":{"latencyMs":1}}`},
		{"max tokens", `{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":"max_tokens"}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"length"}]}`,
			`{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":"max_tokens","metrics":{"latencyMs":1}}`},
		{"guardrail", `{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"guardrail_intervened"}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`,
			`{"output":{"message":{"role":"assistant","content":[{"text":""}]}},"stopReason":"content_filtered","metrics":{"latencyMs":1}}`},
		{"context window", `{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":"model_context_window_exceeded"}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"length"}]}`,
			`{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":"max_tokens","metrics":{"latencyMs":1}}`},
	} {
		chat, err := ConverseToChatCompletion([]byte(c.converse), meta)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sameJSON(t, c.name+": to chat", chat, c.chat)
		sameJSON(t, c.name+": back to Converse", ChatToConverseResponse(chat), c.back)
	}
	if _, err := ConverseToChatCompletion([]byte(`<html>`), meta); err == nil {
		t.Error("a reply that is not JSON was read")
	}
}

func converseEvents(evs []ConverseEvent) [][]byte {
	var out [][]byte
	for _, ev := range evs {
		out = append(out, []byte(`{"`+ev.Type+`":`+string(ev.Payload)+`}`))
	}
	return out
}

// ConverseStream events into chat chunks, and chat chunks into the events
// (as the bedrock mock streams them): text, a tool use in fragments, the
// stop reason, and the metadata's usage with the prompt cache.
func TestConverseStreams(t *testing.T) {
	meta := ChatMeta{ID: "chatcmpl-1", Created: 7, Model: "m"}
	events := []ConverseEvent{
		{"messageStart", []byte(`{"role":"assistant"}`)},
		{"contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Let me look."}}`)},
		{"contentBlockStop", []byte(`{"contentBlockIndex":0}`)},
		{"contentBlockStart", []byte(`{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"lookup"}}}`)},
		{"contentBlockDelta", []byte(`{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"q\":"}}}`)},
		{"contentBlockDelta", []byte(`{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"x\"}"}}}`)},
		{"contentBlockStop", []byte(`{"contentBlockIndex":1}`)},
		{"messageStop", []byte(`{"stopReason":"tool_use"}`)},
		{"metadata", []byte(`{"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":95,"cacheReadInputTokens":80},"metrics":{"latencyMs":3}}`)},
	}
	// Deltas after the first carry an empty role, as the adapters have
	// always sent them.
	const chunks = `
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"","content":"Let me look."},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"","tool_calls":[{"index":0,"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":""}}]},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"","tool_calls":[{"index":0,"function":{"arguments":"{\"q\":"}}]},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"","tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":""},"finish_reason":"tool_calls"}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":90,"completion_tokens":5,"total_tokens":95,"prompt_tokens_details":{"cached_tokens":80}}}`
	read := func(includeUsage bool) ([][]byte, *ConverseStream) {
		s := NewConverseStream(meta, includeUsage)
		var got [][]byte
		for _, ev := range events {
			out, err := s.Event(ev.Type, ev.Payload)
			if err != nil {
				t.Fatalf("%s: %v", ev.Type, err)
			}
			got = append(got, out...)
		}
		return got, s
	}
	got, s := read(true)
	sameChunks(t, "to chat", got, chunks)
	if !s.Stopped() {
		t.Error("messageStop was not seen")
	}
	got, _ = read(false)
	if len(got) != 6 {
		t.Errorf("without include_usage: %d chunks, want 6 (no usage)", len(got))
	}
	if _, err := NewConverseStream(meta, true).Event("contentBlockDelta", []byte(`{"delta":`)); err == nil {
		t.Error("an unreadable event was read")
	}
	if s := NewConverseStream(meta, true); func() bool { s.Event("messageStart", []byte(`{}`)); return s.Stopped() }() {
		t.Error("a stream without messageStop counts as stopped")
	}

	// And back: the chat chunks as the events they came from (the mock
	// reports no latency of its own).
	var w ChatToConverseStream
	var back []ConverseEvent
	chunked, _ := read(true)
	for _, c := range chunked {
		back = append(back, w.Chunk(c)...)
	}
	sameChunks(t, "back to Converse", converseEvents(back), `
	{"messageStart":{"role":"assistant"}}
	{"contentBlockDelta":{"contentBlockIndex":0,"delta":{"text":"Let me look."}}}
	{"contentBlockStop":{"contentBlockIndex":0}}
	{"contentBlockStart":{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"lookup"}}}}
	{"contentBlockDelta":{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"q\":"}}}}
	{"contentBlockDelta":{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"x\"}"}}}}
	{"contentBlockStop":{"contentBlockIndex":1}}
	{"messageStop":{"stopReason":"tool_use"}}
	{"metadata":{"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":95,"cacheReadInputTokens":80},"metrics":{"latencyMs":1}}}`)
}
