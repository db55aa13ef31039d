package translate

import (
	"testing"
)

const geminiConversation = `{
 "systemInstruction":{"parts":[{"text":"be brief"}]},
 "contents":[
  {"role":"user","parts":[{"text":"look"},{"inlineData":{"mimeType":"image/png","data":"` + pixel + `"}}]},
  {"role":"model","parts":[{"functionCall":{"id":"call_1","name":"lookup","args":{"q":"x"}}}]},
  {"role":"user","parts":[{"functionResponse":{"id":"call_1","name":"lookup","response":{"content":"found"}}},{"text":"thanks"}]}],
 "tools":[{"functionDeclarations":[{"name":"lookup","description":"find","parametersJsonSchema":{"type":"object"}}]}],
 "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["lookup"]}},
 "generationConfig":{"maxOutputTokens":50,"temperature":0.5,"stopSequences":["END"]}}`

// Chat requests into generateContent requests, and back (as the gemini
// mock reads them): messages, system prompts, images, function calls and
// responses, tools and the tool choice, the reply's format and bounds.
func TestChatToGeminiAndBack(t *testing.T) {
	made := toolCallID("lookup", 0)
	for _, c := range []struct {
		name, chat, gemini, back string
	}{
		{"every kind of message", conversation, geminiConversation, conversationBack},
		{"ids Sluice made up are not sent; an object result is sent as it is",
			`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"` + made + `","type":"function","function":{"name":"lookup","arguments":"{}"}}]},{"role":"tool","tool_call_id":"` + made + `","content":"{\"temp\":21}"}]}`,
			`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"lookup","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"lookup","response":{"temp":21}}}]}]}`,
			// Gemini's unnamed call gets Sluice's id again; its response
			// names the function.
			`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"` + made + `","type":"function","function":{"name":"lookup","arguments":"{}"}}]},{"role":"tool","tool_call_id":"lookup","content":"{\"temp\":21}"}]}`},
		{"json schema and tool_choice none",
			`{"model":"m","messages":[{"role":"developer","content":"rules"},{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"reply","schema":{"type":"object"}}},"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`,
			`{"systemInstruction":{"parts":[{"text":"rules"}]},"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}},
			  "generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}}}`,
			`{"model":"m","messages":[{"role":"system","content":"rules"},{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"reply","schema":{"type":"object"}}},"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`},
		{"json object and required tools",
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY"}},"generationConfig":{"responseMimeType":"application/json"}}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`},
		{"auto tools",
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","description":"d"}}]}`,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f","description":"d"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","description":"d"}}]}`},
	} {
		got, aerr := ChatToGemini([]byte(c.chat))
		if aerr != nil {
			t.Fatalf("%s: %v", c.name, aerr)
		}
		if got.Model != "m" {
			t.Errorf("%s: model %q", c.name, got.Model)
		}
		sameJSON(t, c.name+": to Gemini", got.Body, c.gemini)
		back, err := GeminiToChat(got.Body, "m", false)
		if err != nil {
			t.Fatalf("%s: back: %v", c.name, err)
		}
		sameJSON(t, c.name+": back to chat", back, c.back)
	}
	if _, err := GeminiToChat([]byte(`{"contents":7}`), "m", false); err == nil {
		t.Error("a body that is not a generateContent request was read")
	}
}

// generateContent replies into chat completions, and back (as the gemini
// mock writes them): text, thoughts, function calls, finish reasons, and
// the usage with cached and thought tokens.
func TestGeminiReplies(t *testing.T) {
	meta := ChatMeta{ID: "chatcmpl-1", Created: 7, Model: "m"}
	for _, c := range []struct {
		name, gemini, chat, back string
	}{
		{"text, thoughts and cache",
			`{"candidates":[{"content":{"role":"model","parts":[{"text":"hmm","thought":true},{"text":"Hello "},{"text":"world"}]},"finishReason":"STOP"}],
			  "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5,"thoughtsTokenCount":7,"cachedContentTokenCount":60,"totalTokenCount":112}}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello world"},"finish_reason":"stop"}],
			  "usage":{"prompt_tokens":100,"completion_tokens":12,"total_tokens":112,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":7}}}`,
			`{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{"text":"Hello world"}]},"finishReason":"STOP","index":0}],
			  "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5,"thoughtsTokenCount":7,"cachedContentTokenCount":60,"totalTokenCount":112}}`},
		{"function call without an id",
			`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"lookup","args":{"q":"x"}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"` + toolCallID("lookup", 0) + `","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},"finish_reason":"tool_calls"}],
			  "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
			`{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"` + toolCallID("lookup", 0) + `","name":"lookup","args":{"q":"x"}}}]},"finishReason":"STOP","index":0}],
			  "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}}`},
		{"cut at max tokens", `{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS"}]}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"length"}]}`,
			`{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS","index":0}]}`},
		{"safety", `{"candidates":[{"content":{"parts":[]},"finishReason":"SAFETY"}]}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`,
			`{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{}]},"finishReason":"SAFETY","index":0}]}`},
		{"blocked prompt", `{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}`,
			`{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}],
			  "usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9}}`,
			`{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{}]},"finishReason":"SAFETY","index":0}],"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}`},
	} {
		chat, err := GeminiToChatCompletion([]byte(c.gemini), meta)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sameJSON(t, c.name+": to chat", chat, c.chat)
		sameJSON(t, c.name+": back to Gemini", ChatToGeminiResponse(chat), c.back)
	}
	if _, err := GeminiToChatCompletion([]byte(`<html>`), meta); err == nil {
		t.Error("a reply that is not JSON was read")
	}
}

// streamGenerateContent events into chat chunks, and chat chunks into the
// events (as the gemini mock streams them): text, thoughts left out, a
// function call, the finish reason and the usage of the last event.
func TestGeminiStreams(t *testing.T) {
	meta := ChatMeta{ID: "chatcmpl-1", Created: 7, Model: "m"}
	events := []string{
		`{"candidates":[{"content":{"role":"model","parts":[{"text":"hmm","thought":true}]}}]}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me look."}]}}]}`,
		`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"fc_1","name":"lookup","args":{"q":"x"}}}]},"finishReason":"STOP"}],
		  "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5,"thoughtsTokenCount":7,"cachedContentTokenCount":60,"totalTokenCount":112}}`,
	}
	// Deltas after the first carry an empty role, as the adapters have
	// always sent them.
	const chunks = `
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"","content":"Let me look."},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"","tool_calls":[{"index":0,"id":"fc_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},"finish_reason":null}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":""},"finish_reason":"tool_calls"}]}
	{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":12,"total_tokens":112,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":7}}}`
	read := func(includeUsage bool) [][]byte {
		s := NewGeminiStream(meta, includeUsage)
		var got [][]byte
		for _, ev := range events {
			out, err := s.Event([]byte(ev))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, out...)
		}
		end, err := s.End()
		if err != nil {
			t.Fatal(err)
		}
		return append(got, end...)
	}
	got := read(true)
	sameChunks(t, "to chat", got, chunks)
	if n := len(read(false)); n != 4 {
		t.Errorf("without include_usage: %d chunks, want 4 (no usage)", n)
	}
	s := NewGeminiStream(meta, true)
	s.Event([]byte(events[1]))
	if _, err := s.End(); err == nil {
		t.Error("a stream without a finish reason ended well")
	}
	if _, err := NewGeminiStream(meta, true).Event([]byte(`{"candidates":`)); err == nil {
		t.Error("an unreadable event was read")
	}
	blocked := NewGeminiStream(meta, false)
	blocked.Event([]byte(`{"promptFeedback":{"blockReason":"SAFETY"}}`))
	end, err := blocked.End()
	if err != nil || len(end) != 1 {
		t.Fatalf("a blocked prompt's stream: %v %d", err, len(end))
	}
	sameJSON(t, "blocked prompt", end[0], `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":""},"finish_reason":"content_filter"}]}`)

	// And back: text as it comes, the call whole with the finish reason
	// and the usage last.
	var w ChatToGeminiStream
	var back [][]byte
	for _, c := range got {
		back = append(back, w.Chunk(c)...)
	}
	sameChunks(t, "back to Gemini", back, `
	{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{"text":"Let me look."}]},"index":0}]}
	{"modelVersion":"m","responseId":"chatcmpl-1","candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"fc_1","name":"lookup","args":{"q":"x"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5,"thoughtsTokenCount":7,"cachedContentTokenCount":60,"totalTokenCount":112}}`)
}
