package translate

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestCompletionsToChat(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"model":"m","prompt":"hi"}`, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{`{"prompt":["a <b>"],"model":"m","max_tokens":5,"n":2,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true},"suffix":null,"echo":false}`,
			`{"model":"m","messages":[{"role":"user","content":"a <b>"}],"max_tokens":5,"n":2,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true}}`},
		// The last of repeated members is the one read, as everywhere.
		{`{"model":"m","prompt":"one","prompt":"two","temperature":0.5}`, `{"model":"m","messages":[{"role":"user","content":"two"}],"temperature":0.5}`},
	}
	for _, tc := range cases {
		got, aerr := CompletionsToChat([]byte(tc.in))
		if aerr != nil {
			t.Fatalf("%s: %v", tc.in, aerr)
		}
		if canon(t, got) != canon(t, []byte(tc.want)) {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestCompletionsToChatRefuses(t *testing.T) {
	for in, param := range map[string]string{
		`{"model":"m","prompt":"hi","suffix":"x"}`:   "suffix",
		`{"model":"m","prompt":"hi","echo":true}`:    "echo",
		`{"model":"m","prompt":"hi","logprobs":1}`:   "logprobs",
		`{"model":"m","prompt":"hi","best_of":2}`:    "best_of",
		`{"model":"m","prompt":["a","b"]}`:           "prompt",
		`{"model":"m","prompt":[[1,2]]}`:             "prompt",
		`{"model":"m","prompt":{"text":"hi"}}`:       "prompt",
		`{"model":"m"}`:                              "prompt",
		`{"prompt":"hi"}`:                            "model",
		`{"model":"m","prompt":"hi","tools":[]}`:     "tools",
		`{"model":"m","prompt":"hi","MAX_TOKENS":1}`: "MAX_TOKENS",
	} {
		_, aerr := CompletionsToChat([]byte(in))
		if aerr == nil || aerr.Status != 400 || aerr.Param != param {
			t.Errorf("%s: %+v, want a 400 naming %s", in, aerr, param)
		}
	}
	for _, in := range []string{`[]`, `null`, `{"model":`} {
		if _, aerr := CompletionsToChat([]byte(in)); aerr == nil || aerr.Code != "invalid_json" {
			t.Errorf("%s: %+v", in, aerr)
		}
	}
}

func TestChatToCompletion(t *testing.T) {
	m := CompletionMeta{ID: "cmpl-1", Model: "public", Created: 7}
	chat := `{"id":"chatcmpl-x","object":"chat.completion","model":"upstream-name","system_fingerprint":"fp",
		"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"},
		{"index":1,"message":{"role":"assistant","content":null,"refusal":"no"},"finish_reason":"length"}],
		"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	got, err := ChatToCompletion([]byte(chat), m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"cmpl-1","object":"text_completion","created":7,"model":"public",
		"choices":[{"text":"hello","index":0,"logprobs":null,"finish_reason":"stop"},{"text":"no","index":1,"logprobs":null,"finish_reason":"length"}],
		"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	if canon(t, got) != canon(t, []byte(want)) {
		t.Fatalf("got %s", got)
	}
	if _, err := ChatToCompletion([]byte(`{"choices":[]}`), m); err == nil {
		t.Fatal("a reply without a choice was translated")
	}
}

func TestChatChunkToCompletion(t *testing.T) {
	m := CompletionMeta{ID: "cmpl-1", Model: "public", Created: 7}
	for _, tc := range []struct{ in, want string }{
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, ""},
		{`{"choices":[{"index":0,"delta":{"content":"he"}}]}`,
			`{"id":"cmpl-1","object":"text_completion","created":7,"model":"public","choices":[{"text":"he","index":0,"logprobs":null,"finish_reason":null}]}`},
		{`{"choices":[{"index":1,"delta":{},"finish_reason":"tool_calls"}]}`,
			`{"id":"cmpl-1","object":"text_completion","created":7,"model":"public","choices":[{"text":"","index":1,"logprobs":null,"finish_reason":"stop"}]}`},
		{`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
			`{"id":"cmpl-1","object":"text_completion","created":7,"model":"public","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`},
	} {
		got, aerr, err := ChatChunkToCompletion([]byte(tc.in), m)
		if err != nil || aerr != nil {
			t.Fatalf("%s: %v %v", tc.in, aerr, err)
		}
		if tc.want == "" {
			if got != nil {
				t.Errorf("%s: got %s, want nothing", tc.in, got)
			}
			continue
		}
		if canon(t, got) != canon(t, []byte(tc.want)) {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// An upstream's error event is not passed on in its own words.
	_, aerr, _ := ChatChunkToCompletion([]byte(`{"error":{"message":"your SSN 123-45-6789 is invalid"}}`), m)
	if aerr == nil || aerr.Code != "upstream_error" {
		t.Fatalf("error event: %+v", aerr)
	}
	var v any
	if json.Unmarshal(aerr.Body(), &v) != nil {
		t.Fatal("error body is not JSON")
	}
}

// FuzzCompletionsToChat holds the translation's one promise: what it
// accepts becomes a chat completion whose one message is the prompt as
// the caller wrote it, with no member but the model, the messages and the
// parameters it carries.
func FuzzCompletionsToChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","prompt":"hi"}`,
		`{"model":"m","prompt":["a\u0000b"],"stop":["x"],"user":"u","logit_bias":{"1":2},"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","prompt":"\ud800","prompt":"two","echo":false,"suffix":"","best_of":1,"logprobs":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		chat, aerr := CompletionsToChat(body)
		if aerr != nil {
			return
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal(chat, &out); err != nil {
			t.Fatalf("the chat completion is not JSON: %v\n%s", err, chat)
		}
		for name := range out {
			if name != "model" && name != "messages" && !slices.Contains(completionsCarried, name) {
				t.Fatalf("member %q sent upstream", name)
			}
		}
		var in struct{ Prompt json.RawMessage }
		json.Unmarshal(body, &in)
		want, _ := completionPrompt(in.Prompt)
		var msgs []struct{ Role, Content string }
		if err := json.Unmarshal(out["messages"], &msgs); err != nil || len(msgs) != 1 || msgs[0].Role != "user" || msgs[0].Content != want {
			t.Fatalf("messages %s, want the prompt %q", out["messages"], want)
		}
	})
}
