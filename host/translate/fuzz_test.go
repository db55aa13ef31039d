package translate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
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
		marked, ok := markedReply(t, body, stream)
		if !ok {
			return
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

// joinedMarks undoes the joins the Messages translation makes of marks (a
// system prompt's blocks), and dataURL a base64 image's data URL, so that
// what is left of a string is marks alone.
var (
	joinedMarks = strings.NewReplacer(";\nT", ";T")
	dataURL     = regexp.MustCompile(`^data:image/(jpeg|png|gif|webp);base64,`)
)

func unjoin(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = unjoin(x)
		}
	case []any:
		for i, x := range v {
			v[i] = unjoin(x)
		}
	case string:
		s := joinedMarks.Replace(v)
		s = strings.TrimPrefix(s, "Error: ") // a tool_result's is_error
		return dataURL.ReplaceAllString(s, "")
	}
	return v
}

// nameMark is the mark of a text that is a name.
var nameMark = regexp.MustCompile(`^N([0-9]+)$`)

// nameMarks is v with every name mark, key or value, as the mark T0; is.
func nameMarks(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[nameMark.ReplaceAllString(k, "T$1;")] = nameMarks(x)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = nameMarks(x)
		}
	case string:
		return nameMark.ReplaceAllString(v, "T$1;")
	}
	return v
}

// FuzzMessagesNothingUnscannedGoesUpstream is FuzzNothingUnscannedGoesUpstream
// for Anthropic's Messages API.
func FuzzMessagesNothingUnscannedGoesUpstream(f *testing.F) {
	seed := map[string]bool{}
	for _, s := range []string{
		`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u"},"stop_sequences":["x"]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"see"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVB"}}]}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"go"},{"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris","n":1234567}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"sunny"}],"is_error":true}]}],"tools":[{"name":"weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"any"}}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi","Content":"x"}],"System":"y"}`,
	} {
		f.Add([]byte(s))
		seed[s] = true
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, aerr := api.ParseMessagesRequest(body)
		if aerr != nil {
			return
		}
		// A tool's name must be a name, and T0; is none: a text that is
		// a name gets a mark that is one too (N0), read as T0; below.
		marks := make([]string, len(r.Texts))
		for i := range marks {
			marks[i] = fmt.Sprintf("T%d;", i)
			if loc := r.TextInfo[i].Loc; (loc == api.LocName || loc == api.LocToolDefinition) && validName(r.Texts[i]) {
				marks[i] = fmt.Sprintf("N%d", i)
			}
		}
		if err := r.SetTexts(marks); err != nil {
			t.Fatalf("SetTexts: %v", err)
		}
		chat, aerr := MessagesToChat(r.Body(), "up", r.MaxTokens)
		if aerr != nil {
			if seed[string(body)] {
				t.Fatalf("a seed is refused, so it checks nothing: %s", aerr.Message)
			}
			return
		}
		var v any
		if err := json.Unmarshal(chat, &v); err != nil {
			t.Fatalf("the chat completion is not JSON: %v\n%s", err, chat)
		}
		doc := nameMarks(unjoin(v)).(map[string]any)
		for k, x := range doc {
			if k == "tools" {
				for _, tool := range x.([]any) {
					fn := tool.(map[string]any)["function"].(map[string]any)
					checkNested(t, fn["parameters"])
					delete(fn, "parameters")
				}
			}
			checkScanned(t, k, x)
		}
	})
}

// checkMessage fails when a text of a Message or its events is not a mark.
func checkMessage(t *testing.T, key string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if in, ok := x.(map[string]any); ok && k == "input" {
				if a, ok := in["arguments"].(string); ok && len(in) == 1 {
					checkNested(t, a) // arguments that were no JSON object
					continue
				}
				checkNested(t, in)
				continue
			}
			checkMessage(t, k, x)
		}
	case []any:
		for _, x := range v {
			checkMessage(t, key, x)
		}
	case string:
		switch key {
		case "text", "name", "partial_json", "stop_sequence":
			if !placeholders.MatchString(v) {
				t.Fatalf("%s %q was not scanned", key, v)
			}
		case "id":
			if !validID(v) {
				t.Fatalf("id %q", v)
			}
		}
	}
}

// FuzzMessagesNothingUnscannedReachesTheCaller is
// FuzzNothingUnscannedReachesTheCaller for Messages and their events.
func FuzzMessagesNothingUnscannedReachesTheCaller(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello.","refusal":"no","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"c2","type":"function","function":{"name":"f","arguments":"nope"}}]},"finish_reason":"stop","stop_sequence":"END"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`), false)
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"Hel","tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":null}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, stream bool) {
		marked, ok := markedReply(t, body, stream)
		if !ok {
			return
		}
		meta := MessagesMeta{ID: "msg_1", Model: "m"}
		var out [][]byte
		if stream {
			s := NewMessagesStream(meta)
			evs, err := s.Chunk(marked)
			if err != nil {
				return
			}
			for _, e := range append(evs, s.End()...) {
				out = append(out, e.Data)
			}
		} else {
			m, err := ChatToMessage(marked, meta)
			if err != nil {
				return
			}
			out = append(out, m)
		}
		for _, o := range out {
			var v any
			if err := json.Unmarshal(o, &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, o)
			}
			checkMessage(t, "", unjoin(v))
		}
	})
}

// markedReply parses body as a chat reply (a chunk when stream) and
// replaces each of its texts with a mark, "T<i>;", that a check of the
// translated reply can find; ok is false when body is no reply at all.
func markedReply(t *testing.T, body []byte, stream bool) (marked []byte, ok bool) {
	t.Helper()
	var rc api.ReplyContent
	parse := rc.ParseReply
	if stream {
		parse = rc.ParseChunk
	}
	if parse(body) != nil {
		return nil, false
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
	return marked, true
}
