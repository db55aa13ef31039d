package translate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/sluicehq/sluice/host/api"
)

// placeholders matches a string made only of the marks the fuzz test puts
// in place of the collected texts (several when parts are joined).
var placeholders = regexp.MustCompile(`^(T[0-9]+;)*$`)

// enums are the values a member that is not scanned may hold in the chat
// completion sent upstream, by member name.
var enums = map[string][]string{
	"role":             {"system", "user", "assistant", "tool"},
	"type":             {"function", "text", "image_url", "file", "json_object", "json_schema"},
	"detail":           {"auto", "low", "high"},
	"tool_choice":      {"auto", "none", "required"},
	"reasoning_effort": {"none", "minimal", "low", "medium", "high", "xhigh"},
	"verbosity":        {"low", "medium", "high"},
	"service_tier":     {"auto", "default", "flex", "scale", "priority"},
}

// checkScanned fails when a string of the chat completion v (at member
// key) is neither a mark, nor an enum, id or model Sluice checked.
func checkScanned(t *testing.T, key string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			checkScanned(t, k, x)
		}
	case []any:
		for _, x := range v {
			checkScanned(t, key, x)
		}
	case string:
		switch key {
		case "model":
			if v != "up" {
				t.Fatalf("model %q", v)
			}
		case "id", "tool_call_id", "file_id":
			if !validID(v) {
				t.Fatalf("%s %q is not an id", key, v)
			}
		case "prompt_cache_key":
			// Not text the model reads; not scanned on the chat path either.
		case "arguments":
			var nested any
			if json.Unmarshal([]byte(v), &nested) == nil {
				if _, isString := nested.(string); !isString {
					checkNested(t, nested)
					return
				}
			}
			if !placeholders.MatchString(v) {
				t.Fatalf("arguments %q were not scanned", v)
			}
		default:
			if values, ok := enums[key]; ok && oneOf(v, values...) {
				return
			}
			if !placeholders.MatchString(v) {
				t.Fatalf("%s %q was not scanned", key, v)
			}
		}
	}
}

// checkNested checks caller JSON (arguments, schemas): every key and
// string in it is a mark.
func checkNested(t *testing.T, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !placeholders.MatchString(k) {
				t.Fatalf("key %q was not scanned", k)
			}
			checkNested(t, x)
		}
	case []any:
		for _, x := range v {
			checkNested(t, x)
		}
	case string:
		if !placeholders.MatchString(v) {
			t.Fatalf("%q was not scanned", v)
		}
	}
}

// FuzzNothingUnscannedGoesUpstream holds the translation to the guardrails'
// collection: with every collected text of a Responses request replaced by
// a mark, the chat completion sent upstream holds no string but marks and
// the ids and enums Sluice checked itself. A text the collector missed
// and the translation sends would show up as itself.
func FuzzNothingUnscannedGoesUpstream(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi","instructions":"be terse","user":"u","metadata":{"k":"v"}}`,
		`{"model":"m","input":[{"role":"developer","content":"rules"},{"type":"message","role":"user","content":[{"type":"input_text","text":"see"},{"type":"input_image","image_url":"https://x/a.png","detail":"low"},{"type":"input_file","file_data":"data:x","filename":"a.pdf"}]},{"role":"assistant","content":[{"type":"output_text","text":"a"},{"type":"refusal","refusal":"no"}]}]}`,
		`{"model":"m","input":[{"role":"user","content":"go"},{"type":"function_call","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\",\"n\":1234567}"},{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"sunny"}]}],"tools":[{"type":"function","name":"weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string","enum":["Paris"]}}},"strict":true}],"tool_choice":{"type":"function","name":"weather"}}`,
		`{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object","description":"x"}},"verbosity":"low"},"reasoning":{"effort":"low"},"service_tier":"flex","prompt_cache_key":"k","safety_identifier":"s","stream":true,"max_output_tokens":64}`,
		`{"model":"m","input":[{"role":"user","content":"hi","Content":"x"}],"Instructions":"y","INPUT":"z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, aerr := api.ParseResponsesRequest(body)
		if aerr != nil {
			return
		}
		marks := make([]string, len(r.Texts))
		for i := range marks {
			marks[i] = fmt.Sprintf("T%d;", i)
		}
		if err := r.SetTexts(marks); err != nil {
			t.Fatalf("SetTexts: %v", err)
		}
		chat, _, aerr := ResponsesToChat(r.Body(), "up", r.MaxOutputTokens)
		if aerr != nil {
			return
		}
		var v any
		if err := json.Unmarshal(chat, &v); err != nil {
			t.Fatalf("the chat completion is not JSON: %v\n%s", err, chat)
		}
		doc := v.(map[string]any)
		for k, x := range doc {
			switch k {
			case "tools":
				for _, tool := range x.([]any) {
					fn := tool.(map[string]any)["function"].(map[string]any)
					if p, ok := fn["parameters"]; ok {
						checkNested(t, p)
						delete(fn, "parameters")
					}
				}
			case "response_format":
				if js, ok := x.(map[string]any)["json_schema"].(map[string]any); ok {
					checkNested(t, js["schema"])
					delete(js, "schema")
				}
			}
			checkScanned(t, k, x)
		}
	})
}

// checkReply fails when a text member of a Response or event (at key) is
// not a mark: every text a caller gets must be one the reply guardrails
// scanned.
func checkReply(t *testing.T, key string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			checkReply(t, k, x)
		}
	case []any:
		for _, x := range v {
			checkReply(t, key, x)
		}
	case string:
		switch key {
		case "text", "refusal", "name", "delta":
			if !placeholders.MatchString(v) {
				t.Fatalf("%s %q was not scanned", key, v)
			}
		case "arguments":
			var nested any
			if json.Unmarshal([]byte(v), &nested) == nil {
				if _, isString := nested.(string); !isString {
					checkNested(t, nested)
					return
				}
			}
			if !placeholders.MatchString(v) {
				t.Fatalf("arguments %q were not scanned", v)
			}
		case "call_id":
			if !validID(v) {
				t.Fatalf("call_id %q", v)
			}
		}
	}
}

// FuzzNothingUnscannedReachesTheCaller holds the reply translation to the
// reply guardrails' collection: with every text of a chat completion (or
// chunk) replaced by a mark, the Response and the events made of it carry
// only marks where they carry text.
func FuzzNothingUnscannedReachesTheCaller(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello.","refusal":"no","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`), false)
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"Hel","tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":null}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, stream bool) {
		var rc api.ReplyContent
		parse := rc.ParseReply
		if stream {
			parse = rc.ParseChunk
		}
		if parse(body) != nil {
			return
		}
		texts, _ := rc.Texts()
		marks := make([]string, len(texts))
		for i := range marks {
			marks[i] = fmt.Sprintf("T%d;", i)
		}
		marked, err := rc.RewriteTexts(marks)
		if err != nil {
			t.Fatalf("RewriteTexts: %v", err)
		}
		var out [][]byte
		if stream {
			s := NewStream(testMeta)
			evs, err := s.Chunk(marked)
			if err != nil {
				return
			}
			for _, e := range append(evs, s.End()...) {
				out = append(out, e.Data)
			}
		} else {
			r, err := ChatToResponse(marked, testMeta)
			if err != nil {
				return
			}
			out = append(out, r)
		}
		for _, o := range out {
			var v any
			if err := json.Unmarshal(o, &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, o)
			}
			checkReply(t, "", v)
		}
	})
}
