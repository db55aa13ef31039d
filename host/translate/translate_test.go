package translate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// canon is v (JSON) decoded and encoded again, so that key order and
// spacing do not matter.
func canon(t *testing.T, v []byte) string {
	t.Helper()
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, v)
	}
	b, _ := json.Marshal(x)
	return string(b)
}

func TestResponsesToChat(t *testing.T) {
	cases := []struct {
		name, in, want string
		max            int64
	}{
		{"string input", `{"model":"m","input":"hi"}`,
			`{"model":"up","messages":[{"role":"user","content":"hi"}]}`, 0},
		{"instructions become the system message", `{"model":"m","instructions":"Be terse.","input":"hi","max_output_tokens":50}`,
			`{"model":"up","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"hi"}],"max_completion_tokens":50}`, 50},
		{"message items and parts", `{"model":"m","input":[
			{"role":"developer","content":"rules"},
			{"type":"message","role":"user","content":[{"type":"input_text","text":"see"},{"type":"input_image","image_url":"https://x.example/a.png","detail":"low"}]},
			{"type":"message","role":"assistant","content":[{"type":"output_text","text":"a cat","annotations":[]}]},
			{"role":"user","content":[{"type":"input_file","file_data":"data:application/pdf;base64,JVBE","filename":"a.pdf"}]}]}`,
			`{"model":"up","messages":[{"role":"system","content":"rules"},
			{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"https://x.example/a.png","detail":"low"}}]},
			{"role":"assistant","content":"a cat"},
			{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE","filename":"a.pdf"}}]}]}`, 0},
		{"function calls and outputs", `{"model":"m","input":[
			{"role":"user","content":"weather in Paris and Rome?"},
			{"type":"function_call","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}"},
			{"type":"function_call","call_id":"call_2","name":"weather","arguments":"{\"city\":\"Rome\"}"},
			{"type":"function_call_output","call_id":"call_1","output":"sunny"},
			{"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"rain"}]}],
			"tools":[{"type":"function","name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
			"tool_choice":{"type":"function","name":"weather"},"parallel_tool_calls":false}`,
			`{"model":"up","messages":[{"role":"user","content":"weather in Paris and Rome?"},
			{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
				{"id":"call_2","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
			{"role":"tool","tool_call_id":"call_1","content":"sunny"},
			{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"rain"}]}],
			"tools":[{"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}}],
			"tool_choice":{"type":"function","function":{"name":"weather"}},"parallel_tool_calls":false}`, 0},
		{"a call after the assistant's text joins its message", `{"model":"m","input":[{"role":"user","content":"go"},
			{"role":"assistant","content":"Checking."},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
			{"type":"function_call_output","call_id":"c1","output":"ok"}]}`,
			`{"model":"up","messages":[{"role":"user","content":"go"},
			{"role":"assistant","content":"Checking.","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"c1","content":"ok"}]}`, 0},
		{"reasoning items are left out", `{"model":"m","input":[{"type":"reasoning","id":"rs_1","summary":[]},{"role":"user","content":"hi"}]}`,
			`{"model":"up","messages":[{"role":"user","content":"hi"}]}`, 0},
		{"parameters, formats and streaming", `{"model":"m","input":"hi","temperature":0.2,"top_p":0.9,"stream":true,"user":"u1",
			"text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object"},"strict":true},"verbosity":"low"},
			"reasoning":{"effort":"low"},"store":true,"metadata":{"k":"v"},"include":["message.output_text.logprobs"],"truncation":"disabled"}`,
			`{"model":"up","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_p":0.9,
			"response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"},"strict":true}},
			"verbosity":"low","reasoning_effort":"low","user":"u1","stream":true,"stream_options":{"include_usage":true}}`, 0},
		{"json_object", `{"model":"m","input":"hi","text":{"format":{"type":"json_object"}}}`,
			`{"model":"up","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, aerr := ResponsesToChat([]byte(c.in), "up", c.max)
			if aerr != nil {
				t.Fatalf("refused: %s", aerr.Body())
			}
			if g, w := canon(t, got), canon(t, []byte(c.want)); g != w {
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// What a chat completion cannot serve is refused with the parameter named,
// never dropped.
func TestResponsesToChatRefuses(t *testing.T) {
	cases := []struct{ in, param, code string }{
		{`{"model":"m","input":"hi","previous_response_id":"resp_1"}`, "previous_response_id", Unsupported},
		{`{"model":"m","input":"hi","background":true}`, "background", Unsupported},
		{`{"model":"m","input":"hi","conversation":"conv_1"}`, "conversation", Unsupported},
		{`{"model":"m","input":"hi","prompt":{"id":"pmpt_1"}}`, "prompt", Unsupported},
		{`{"model":"m","input":"hi","truncation":"auto"}`, "truncation", Unsupported},
		{`{"model":"m","input":"hi","tools":[{"type":"web_search"}]}`, "tools[0].type", Unsupported},
		{`{"model":"m","input":"hi","tools":[{"type":"function","name":"f"},{"type":"file_search","vector_store_ids":["vs_1"]}]}`, "tools[1].type", Unsupported},
		{`{"model":"m","input":"hi","tools":[{"type":"function","name":"bad name"}]}`, "tools[0].name", "invalid_value"},
		{`{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}`, "tool_choice.name", "invalid_value"},
		{`{"model":"m","input":"hi","tool_choice":{"type":"web_search_preview"}}`, "tool_choice.type", Unsupported},
		{`{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0].type", Unsupported},
		{`{"model":"m","input":[{"type":"web_search_call","id":"ws_1"}]}`, "input[0].type", Unsupported},
		{`{"model":"m","input":[{"role":"tool","content":"x"}]}`, "input[0].role", "invalid_value"},
		{`{"model":"m","input":[{"type":"function_call_output","call_id":"SSN 123-45-6789","output":"x"}]}`, "input[0].call_id", "invalid_value"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}`, "input[0].content[0].file_id", Unsupported},
		{`{"model":"m","input":[{"role":"system","content":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0].content[0].type", "invalid_value"},
		{`{"model":"m","input":"hi","text":{"format":{"type":"json_schema","schema":{}}}}`, "text.format.name", "invalid_value"},
		{`{"model":"m","input":"hi","reasoning":{"effort":"max"}}`, "reasoning.effort", "invalid_value"},
	}
	for _, c := range cases {
		t.Run(c.param, func(t *testing.T) {
			_, _, aerr := ResponsesToChat([]byte(c.in), "up", 0)
			if aerr == nil {
				t.Fatal("served")
			}
			if aerr.Status != 400 || aerr.Param != c.param || aerr.Code != c.code {
				t.Fatalf("got %d %s %q (%s), want 400 %s %q", aerr.Status, aerr.Code, aerr.Param, aerr.Message, c.code, c.param)
			}
			if strings.Contains(aerr.Message, "123-45-6789") {
				t.Fatalf("the error quotes the value: %s", aerr.Message)
			}
		})
	}
}

var testMeta = Meta{ID: "resp_1", Model: "gpt-4o-mini", CreatedAt: 1700000000,
	Echo: Echo{ParallelToolCalls: true, ToolChoice: json.RawMessage(`"auto"`)}}

// outputOf is a Response's status, usage and output with the items' ids
// left out (they are random).
func outputOf(t *testing.T, body []byte) (status string, usage map[string]any, output []map[string]any, incomplete any) {
	t.Helper()
	var r struct {
		Object, Status    string
		Usage             map[string]any
		Output            []map[string]any
		IncompleteDetails any `json:"incomplete_details"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Object != "response" {
		t.Fatalf("object %q", r.Object)
	}
	for _, it := range r.Output {
		id, _ := it["id"].(string)
		prefix := map[string]string{"message": "msg_", "function_call": "fc_"}[it["type"].(string)]
		if !strings.HasPrefix(id, prefix) {
			t.Fatalf("item id %q", id)
		}
		delete(it, "id")
	}
	return r.Status, r.Usage, r.Output, r.IncompleteDetails
}

func TestChatToResponse(t *testing.T) {
	usage := `"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}`
	wantUsage := map[string]any{"input_tokens": 10.0, "output_tokens": 4.0, "total_tokens": 14.0,
		"input_tokens_details": map[string]any{"cached_tokens": 2.0}, "output_tokens_details": map[string]any{"reasoning_tokens": 1.0}}
	cases := []struct {
		name, chat, status string
		output             []map[string]any
		incomplete         any
	}{
		{"text", `{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],` + usage + `}`, "completed",
			[]map[string]any{{"type": "message", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": "Hello.", "annotations": []any{}, "logprobs": []any{}}}}}, nil},
		{"tool calls", `{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
			{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
			{"id":"call_2","type":"function","function":{"name":"weather","arguments":"{}"}}]},"finish_reason":"tool_calls"}],` + usage + `}`, "completed",
			[]map[string]any{
				{"type": "function_call", "status": "completed", "call_id": "call_1", "name": "weather", "arguments": `{"city":"Paris"}`},
				{"type": "function_call", "status": "completed", "call_id": "call_2", "name": "weather", "arguments": `{}`}}, nil},
		{"refusal", `{"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"No."},"finish_reason":"stop"}],` + usage + `}`, "completed",
			[]map[string]any{{"type": "message", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "refusal", "refusal": "No."}}}}, nil},
		{"cut at max tokens", `{"choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"finish_reason":"length"}],` + usage + `}`, "incomplete",
			[]map[string]any{{"type": "message", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": "Hel", "annotations": []any{}, "logprobs": []any{}}}}},
			map[string]any{"reason": "max_output_tokens"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, err := ChatToResponse([]byte(c.chat), testMeta)
			if err != nil {
				t.Fatal(err)
			}
			status, u, output, incomplete := outputOf(t, body)
			if status != c.status || !reflect.DeepEqual(u, wantUsage) || !reflect.DeepEqual(incomplete, c.incomplete) {
				t.Fatalf("status %q usage %v incomplete %v", status, u, incomplete)
			}
			if !reflect.DeepEqual(output, c.output) {
				g, _ := json.Marshal(output)
				w, _ := json.Marshal(c.output)
				t.Fatalf("output\n%s\nwant\n%s", g, w)
			}
		})
	}
	if _, err := ChatToResponse([]byte(`{"choices":[]}`), testMeta); err != ErrNoChoice {
		t.Fatalf("no choice: %v", err)
	}
}

func chunkOf(delta, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return `{"object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}`
}

// A stream's chunks become the Responses events, in order, with a
// sequence number each, and the completed Response holds what the deltas
// said.
func TestStreamEvents(t *testing.T) {
	chunks := []string{
		chunkOf(`{"role":"assistant","content":""}`, ""),
		chunkOf(`{"content":"Let me "}`, ""),
		chunkOf(`{"content":"check."}`, ""),
		chunkOf(`{"tool_calls":[{"index":0,"id":"call_9","type":"function","function":{"name":"weather","arguments":""}}]}`, ""),
		chunkOf(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`, ""),
		chunkOf(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, ""),
		chunkOf(`{}`, "tool_calls"),
		`{"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}`,
	}
	s := NewStream(testMeta)
	var evs []Event
	for _, c := range chunks {
		e, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e...)
	}
	evs = append(evs, s.End()...)
	var names []string
	for i, e := range evs {
		names = append(names, e.Name)
		var d struct {
			Type string
			Seq  int `json:"sequence_number"`
		}
		json.Unmarshal(e.Data, &d)
		if d.Type != e.Name || d.Seq != i {
			t.Fatalf("event %d: type %q sequence %d", i, d.Type, d.Seq)
		}
	}
	want := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done",
		"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
		"response.function_call_arguments.done", "response.output_item.done", "response.completed"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("events\n%v\nwant\n%v", names, want)
	}
	var done struct{ Text string }
	json.Unmarshal(evs[6].Data, &done)
	if done.Text != "Let me check." {
		t.Fatalf("output_text.done %q", done.Text)
	}
	var completed struct{ Response json.RawMessage }
	json.Unmarshal(evs[len(evs)-1].Data, &completed)
	status, usage, output, _ := outputOf(t, completed.Response)
	if status != "completed" || usage["input_tokens"] != 20.0 || usage["output_tokens"] != 9.0 || usage["total_tokens"] != 29.0 {
		t.Fatalf("status %q usage %v", status, usage)
	}
	if len(output) != 2 || output[1]["arguments"] != `{"city":"Paris"}` || output[1]["call_id"] != "call_9" {
		t.Fatalf("output %v", output)
	}
}

// A stream cut at max tokens ends incomplete; one the gateway stops ends
// with an error event.
func TestStreamEndings(t *testing.T) {
	s := NewStream(testMeta)
	s.Chunk([]byte(chunkOf(`{"content":"Hel"}`, "length")))
	evs := s.End()
	last := evs[len(evs)-1]
	if last.Name != "response.incomplete" || !strings.Contains(string(last.Data), `"reason":"max_output_tokens"`) {
		t.Fatalf("%s %s", last.Name, last.Data)
	}
	s = NewStream(testMeta)
	evs = s.Fail("pii_detected", "The reply was blocked.", "")
	if len(evs) != 3 || evs[2].Name != "error" || canon(t, evs[2].Data) !=
		`{"code":"pii_detected","message":"The reply was blocked.","param":null,"sequence_number":2,"type":"error"}` {
		t.Fatalf("%v", evs)
	}
}

// A Response repeats tool_choice as Sluice read it, not as the caller
// wrote it: members it does not read do not come back.
func TestEchoedToolChoice(t *testing.T) {
	for in, want := range map[string]string{
		`"required"`: `"required"`,
		`{"type":"function","name":"f","note":"anything"}`: `{"name":"f","type":"function"}`,
	} {
		_, echo, aerr := ResponsesToChat([]byte(`{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":`+in+`}`), "up", 0)
		if aerr != nil {
			t.Fatal(aerr)
		}
		if got := canon(t, echo.ToolChoice); got != want {
			t.Fatalf("%s echoed as %s, want %s", in, got, want)
		}
	}
}

// An upstream's tool call id reaches the caller only when it looks like
// one: the guardrails do not scan ids.
func TestUpstreamCallIDsAreIDs(t *testing.T) {
	reply := `{"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"my SSN is 123-45-6789","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`
	body, err := ChatToResponse([]byte(reply), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream(testMeta)
	evs, _ := s.Chunk([]byte(chunkOf(`{"tool_calls":[{"index":0,"id":"my SSN is 123-45-6789","function":{"name":"f","arguments":"{}"}}]}`, "tool_calls")))
	for _, e := range append(evs, s.End()...) {
		body = append(body, e.Data...)
	}
	if strings.Contains(string(body), "123-45-6789") || !strings.Contains(string(body), `"call_id":"call_`) {
		t.Fatalf("%s", body)
	}
}

// An upstream's error in the middle of a stream ends the Response with an
// error event of Sluice's words, and nothing follows it.
func TestStreamUpstreamError(t *testing.T) {
	s := NewStream(testMeta)
	s.Chunk([]byte(chunkOf(`{"content":"Hel"}`, "")))
	evs, err := s.Chunk([]byte(`{"error":{"message":"your prompt 123-45-6789 is too long","type":"invalid_request_error"}}`))
	if err != nil || len(evs) != 1 || evs[0].Name != "error" || strings.Contains(string(evs[0].Data), "123-45-6789") ||
		!strings.Contains(string(evs[0].Data), `"code":"upstream_error"`) {
		t.Fatalf("%v %v", evs, err)
	}
	more, _ := s.Chunk([]byte(chunkOf(`{"content":"lo"}`, "stop")))
	if len(more) != 0 || len(s.End()) != 0 {
		t.Fatal("events after the error")
	}
}
