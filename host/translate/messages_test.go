package translate

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/api"
)

func TestMessagesToChat(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"string content and system", `{"model":"m","max_tokens":50,"system":"Be terse.","messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"up","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"hi"}],"max_completion_tokens":50}`},
		{"system blocks and parameters", `{"model":"m","max_tokens":50,"system":[{"type":"text","text":"A"},{"type":"text","text":"B","cache_control":{"type":"ephemeral"}}],
			"messages":[{"role":"user","content":"hi"}],"temperature":0.5,"top_p":0.9,"top_k":40,"stop_sequences":["END"],"metadata":{"user_id":"u1"},"stream":true}`,
			`{"model":"up","messages":[{"role":"system","content":"A\nB"},{"role":"user","content":"hi"}],"max_completion_tokens":50,
			"temperature":0.5,"top_p":0.9,"top_k":40,"stop":["END"],"user":"u1","stream":true,"stream_options":{"include_usage":true}}`},
		{"images", `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"see"},
			{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}},
			{"type":"image","source":{"type":"url","url":"https://x.example/a.png"}}]}]}`,
			`{"model":"up","messages":[{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBOR"}},
			{"type":"image_url","image_url":{"url":"https://x.example/a.png"}}]}],"max_completion_tokens":50}`},
		{"tool use and results", `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"weather?"},
			{"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city": "Paris"}},
				{"type":"tool_use","id":"toolu_2","name":"weather","input":{"city":"Rome"}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},
				{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"rain"}],"is_error":true},{"type":"text","text":"thanks"}]}],
			"tools":[{"name":"weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
			"tool_choice":{"type":"tool","name":"weather","disable_parallel_tool_use":true}}`,
			`{"model":"up","messages":[{"role":"user","content":"weather?"},
			{"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
				{"id":"toolu_2","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
			{"role":"tool","tool_call_id":"toolu_1","content":"sunny"},{"role":"tool","tool_call_id":"toolu_2","content":"Error: rain"},
			{"role":"user","content":[{"type":"text","text":"thanks"}]}],
			"tools":[{"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
			"tool_choice":{"type":"function","function":{"name":"weather"}},"parallel_tool_calls":false,"max_completion_tokens":50}`},
		{"tool_choice any", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}}`,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
			"tool_choice":"required","max_completion_tokens":5}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, aerr := MessagesToChat([]byte(c.in), "up", 50)
			if aerr != nil {
				t.Fatalf("refused: %s", aerr.Body())
			}
			want := strings.Replace(c.want, `"max_completion_tokens":5}`, `"max_completion_tokens":50}`, 1)
			if g, w := canon(t, got), canon(t, []byte(want)); g != w {
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// What a chat completion cannot carry is refused, naming the parameter.
func TestMessagesToChatRefuses(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct{ name, in, param string }{
		{"thinking", `{"model":"m","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":1024},` + msgs + `}`, "thinking"},
		{"mcp servers", `{"model":"m","max_tokens":5,"mcp_servers":[],` + msgs + `}`, "mcp_servers"},
		{"container", `{"model":"m","max_tokens":5,"container":"c1",` + msgs + `}`, "container"},
		{"service tier", `{"model":"m","max_tokens":5,"service_tier":"auto",` + msgs + `}`, "service_tier"},
		{"server tool", `{"model":"m","max_tokens":5,"tools":[{"type":"bash_20250124","name":"bash"}],` + msgs + `}`, "tools[0].type"},
		{"document", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"x"}}]}]}`, "messages[0].content[0].type"},
		{"thinking block", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"}]}]}`, "messages[1].content[0].thinking"},
		{"citations", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x","citations":[]}]}]}`, "messages[0].content[0].citations"},
		{"image in a tool_result", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"url","url":"https://x.example/a.png"}}]}]}]}`, "messages[0].content[0].content[0].type"},
		{"image by file id", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, "messages[0].content[0].source.file_id"},
		{"system role", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, "messages[0].role"},
		{"tool_use id that carries prose", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"my secret note","name":"f","input":{}}]}]}`, "messages[1].content[0].id"},
		{"tool_choice of an unknown tool", `{"model":"m","max_tokens":5,"tool_choice":{"type":"tool","name":"g"},"tools":[{"name":"f","input_schema":{}}],` + msgs + `}`, "tool_choice.name"},
		{"wrong type", `{"model":"m","max_tokens":5,"temperature":"hot",` + msgs + `}`, "temperature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, aerr := MessagesToChat([]byte(c.in), "up", 5)
			if aerr == nil || aerr.Status != 400 || aerr.Param != c.param {
				t.Fatalf("got %+v, want a 400 naming %s", aerr, c.param)
			}
		})
	}
}

func TestChatToMessages(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"system, user, defaults", `{"model":"claude","messages":[{"role":"system","content":"Be terse."},{"role":"developer","content":[{"type":"text","text":"Really."}]},
			{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"user":"u1","stop":"END"}`,
			`{"model":"claude","system":"Be terse.\nReally.","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":4096,
			"stop_sequences":["END"],"metadata":{"user_id":"u1"},"stream":true}`},
		{"tools and results in one user turn", `{"model":"claude","max_completion_tokens":100,"messages":[{"role":"user","content":"weather?"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","tool_call_id":"call_1","content":"sunny"},{"role":"user","content":[{"type":"text","text":"and"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]}],
			"tools":[{"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false}`,
			`{"model":"claude","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"weather?"}]},
			{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"sunny"},{"type":"text","text":"and"},
				{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}}]}],
			"tools":[{"name":"weather","description":"Weather now","input_schema":{"type":"object"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, aerr := ChatToMessages([]byte(c.in))
			if aerr != nil {
				t.Fatalf("refused: %s", aerr.Body())
			}
			if g, w := canon(t, got), canon(t, []byte(c.want)); g != w {
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
			// What Anthropic's SDK would send decodes into the same request.
			var p anthropic.MessageNewParams
			if err := json.Unmarshal(got, &p); err != nil || p.MaxTokens == 0 || len(p.Messages) == 0 {
				t.Fatalf("the SDK reads %+v (%v)", p, err)
			}
		})
	}
}

func TestChatToMessagesRefuses(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct{ name, in, param string }{
		{"n", `{"model":"c","n":2,` + msgs + `}`, "n"},
		{"response_format", `{"model":"c","response_format":{"type":"json_object"},` + msgs + `}`, "response_format"},
		{"logprobs", `{"model":"c","logprobs":true,` + msgs + `}`, "logprobs"},
		{"audio part", `{"model":"c","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0].input_audio"},
		{"tool_choice of an unknown function", `{"model":"c","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}},` + msgs + `}`, "tool_choice.function.name"},
		{"arguments not an object", `{"model":"c","messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, aerr := ChatToMessages([]byte(c.in))
			if aerr == nil || aerr.Status != 400 || aerr.Param != c.param {
				t.Fatalf("got %+v, want a 400 naming %s", aerr, c.param)
			}
		})
	}
}

func TestChatToMessage(t *testing.T) {
	chat := `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Let me look.",
		"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
		{"id":"bad id with spaces","type":"function","function":{"name":"f","arguments":"not json"}}]},"finish_reason":"tool_calls"}],
		"usage":{"prompt_tokens":30,"completion_tokens":7,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":10}}}`
	b, err := ChatToMessage([]byte(chat), MessagesMeta{ID: "msg_1", Model: "claude"})
	if err != nil {
		t.Fatal(err)
	}
	var m anthropic.Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "msg_1" || m.Type != "message" || m.Role != "assistant" || m.Model != "claude" || m.StopReason != anthropic.StopReasonToolUse {
		t.Fatalf("message %s", b)
	}
	if m.Usage.InputTokens != 20 || m.Usage.CacheReadInputTokens != 10 || m.Usage.OutputTokens != 7 {
		t.Fatalf("usage %s", b)
	}
	if len(m.Content) != 3 || m.Content[0].Text != "Let me look." || m.Content[1].ID != "call_1" || string(m.Content[1].Input) != `{"city":"Paris"}` ||
		!strings.HasPrefix(m.Content[2].ID, "toolu_") || string(m.Content[2].Input) != `{"arguments":"not json"}` {
		t.Fatalf("content %s", b)
	}
	for finish, want := range map[string]anthropic.StopReason{"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"} {
		b, _ := ChatToMessage([]byte(`{"choices":[{"message":{"content":"x"},"finish_reason":"`+finish+`"}]}`), MessagesMeta{})
		json.Unmarshal(b, &m)
		if m.StopReason != want {
			t.Errorf("%s became %s", finish, m.StopReason)
		}
	}
}

// A Message from an Anthropic upstream becomes a chat completion with the
// provider's usage, cache tokens included in the prompt, and a stop
// sequence survives the way back.
func TestMessageToChatAndBack(t *testing.T) {
	msg := `{"id":"msg_9","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Done"},
		{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],"stop_reason":"stop_sequence","stop_sequence":"END",
		"usage":{"input_tokens":5,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":4}}`
	b, err := MessageToChat([]byte(msg), 7)
	if err != nil {
		t.Fatal(err)
	}
	var c openai.ChatCompletion
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != "Done" || c.Choices[0].FinishReason != "stop" || c.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"a":1}` {
		t.Fatalf("chat %s", b)
	}
	if c.Usage.PromptTokens != 10 || c.Usage.CompletionTokens != 4 || c.Usage.TotalTokens != 14 || c.Usage.PromptTokensDetails.CachedTokens != 3 {
		t.Fatalf("usage %s", b)
	}
	if u, ok := api.ParseUsage(b); !ok || u.TotalTokens != 14 {
		t.Fatalf("the gateway reads usage %+v", u)
	}
	back, _ := ChatToMessage(b, MessagesMeta{ID: "msg_x"})
	var m anthropic.Message
	json.Unmarshal(back, &m)
	if m.StopReason != anthropic.StopReasonStopSequence || m.StopSequence != "END" {
		t.Fatalf("back %s", back)
	}
}

// sse is the events as a stream's bytes.
func sse(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("event: " + ev.Name + "\ndata: " + string(ev.Data) + "\n\n")
	}
	return b.String()
}

func TestMessagesStream(t *testing.T) {
	chunks := []string{
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
		`{"choices":[{"index":0,"delta":{"content":"Hel"}}]}`,
		`{"choices":[{"index":0,"delta":{"content":"lo"}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`,
	}
	s := NewMessagesStream(MessagesMeta{ID: "msg_1", Model: "claude", PromptTokens: 11})
	var evs []Event
	for _, c := range chunks {
		out, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, out...)
	}
	evs = append(evs, s.End()...)
	var m anthropic.Message
	var names []string
	for _, ev := range evs {
		var u anthropic.MessageStreamEventUnion
		if err := json.Unmarshal(ev.Data, &u); err != nil || u.Type != ev.Name {
			t.Fatalf("event %s: %s (%v)", ev.Name, ev.Data, err)
		}
		names = append(names, ev.Name)
		if err := m.Accumulate(u); err != nil {
			t.Fatalf("%v\n%s", err, sse(evs))
		}
	}
	want := "message_start ping content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if strings.Join(names, " ") != want {
		t.Fatalf("events %s", names)
	}
	if m.ID != "msg_1" || m.Content[0].Text != "Hello" || string(m.Content[1].Input) != `{"a":1}` || m.Content[1].ID != "call_1" ||
		m.StopReason != anthropic.StopReasonToolUse || m.Usage.InputTokens != 12 || m.Usage.OutputTokens != 5 {
		t.Fatalf("accumulated %+v\n%s", m, sse(evs))
	}
	if out := s.Fail(api.UpstreamError("x")); len(out) != 1 || out[0].Name != "error" || !strings.Contains(string(out[0].Data), `"api_error"`) {
		t.Fatalf("fail %s", sse(out))
	}
	if out := s.Fail(api.UpstreamError("x")); out != nil {
		t.Fatal("a second error event")
	}
}

// An Anthropic upstream's stream, as Anthropic sends it, becomes chat
// chunks that the OpenAI SDK accumulates into the same reply, and ends
// with the usage chunk the gateway bills from.
func TestChatStream(t *testing.T) {
	events := []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":9,"cache_read_input_tokens":1,"output_tokens":1}}}`,
		`{"type":"ping"}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"there"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"2}"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":6}}`,
		`{"type":"message_stop"}`,
	}
	s := NewChatStream(1)
	var acc openai.ChatCompletionAccumulator
	var last []byte
	for _, e := range events {
		chunks, err := s.Event([]byte(e))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			var chunk openai.ChatCompletionChunk
			if err := json.Unmarshal(c, &chunk); err != nil {
				t.Fatal(err)
			}
			acc.AddChunk(chunk)
			last = c
		}
	}
	if !s.Done() {
		t.Fatal("message_stop did not end the stream")
	}
	ch := acc.Choices[0]
	if ch.Message.Content != "Hi there" || ch.FinishReason != "tool_calls" || ch.Message.ToolCalls[0].ID != "toolu_1" ||
		ch.Message.ToolCalls[0].Function.Arguments != `{"a":2}` {
		t.Fatalf("accumulated %+v", ch)
	}
	chunk, ok := api.ParseStreamChunk(last)
	if !ok || !chunk.HasUsage || !chunk.NoChoices || chunk.Usage.PromptTokens != 10 || chunk.Usage.CompletionTokens != 6 {
		t.Fatalf("usage chunk %s", last)
	}
	if out, _ := NewChatStream(1).Event([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"secret prompt echoed"}}`)); len(out) != 1 ||
		strings.Contains(string(out[0]), "secret") || !strings.Contains(string(out[0]), `"error"`) {
		t.Fatalf("error chunk %s", out)
	}
}

func TestMessagesError(t *testing.T) {
	cases := []struct {
		e            *api.Error
		status       int
		typ, message string
	}{
		{api.BudgetExceeded("over"), 429, "rate_limit_error", "over"},
		{api.InvalidAPIKey(), 401, "authentication_error", ""},
		{api.GuardrailUnavailable("down"), 529, "overloaded_error", "down"},
		{api.UpstreamTimeout("slow"), 500, "api_error", "slow"},
		{&api.Error{Status: 413, Code: "request_too_large", Message: "big"}, 413, "request_too_large", "big"},
		{&api.Error{Status: 400, Code: "invalid_value", Param: "max_tokens", Message: "must be positive"}, 400, "invalid_request_error", "max_tokens: must be positive"},
	}
	for _, c := range cases {
		status, body := MessagesError(c.e)
		var b struct {
			Type  string
			Error struct {
				Type, Message string
				Details       struct {
					ErrorCode string `json:"error_code"`
				}
			}
		}
		json.Unmarshal(body, &b)
		if status != c.status || b.Type != "error" || b.Error.Type != c.typ || b.Error.Details.ErrorCode != c.e.Code ||
			c.message != "" && b.Error.Message != c.message {
			t.Errorf("%s: %d %s", c.e.Code, status, body)
		}
	}
}
