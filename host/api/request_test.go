package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseChatRequest(t *testing.T) {
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"temperature":0.2,
		"messages":[{"role":"system","content":"sys"},{"role":"assistant","content":null,"tool_calls":[]},
		{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}`
	r, aerr := ParseChatRequest([]byte(body))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if r.Model != "m" || !r.Stream || !r.IncludeUsage || r.MaxTokens != 50 || r.MessageCount != 3 {
		t.Fatalf("parsed %+v", r)
	}
	want := []Text{{LocContent, 0, -1}, {LocContent, 2, -1}, {LocURL, 2, -1}, {LocContent, 2, -1}}
	if !slices.Equal(r.Texts, []string{"sys", "a", "x", "b"}) || !slices.Equal(r.TextInfo, want) {
		t.Fatalf("texts %q at %v", r.Texts, r.TextInfo)
	}
	up, err := r.UpstreamBody("upstream-m")
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(up, &out)
	if out["model"] != "upstream-m" || out["temperature"] != 0.2 || out["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("upstream body %s", up)
	}
}

func TestParseChatRequestErrors(t *testing.T) {
	cases := []struct{ body, code, param string }{
		{``, "invalid_request_body", ""},
		{`{`, "invalid_json", ""},
		{`null`, "invalid_json", ""},
		{`{"messages":[{"role":"user","content":"x"}]}`, "invalid_value", "model"},
		{`{"model":5,"messages":[]}`, "invalid_value", "model"},
		{`{"model":"m"}`, "invalid_value", "messages"},
		{`{"model":"m","messages":[]}`, "invalid_value", "messages"},
		{`{"model":"m","messages":[{"content":"x"}]}`, "invalid_value", "messages[0].role"},
		{`{"model":"m","messages":[{"role":"user","content":7}]}`, "invalid_value", "messages[0].content"},
		{`{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}`, "invalid_value", "stream"},
		{`{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`, "invalid_value", "max_tokens"},
	}
	for _, c := range cases {
		_, aerr := ParseChatRequest([]byte(c.body))
		if aerr == nil || aerr.Code != c.code || aerr.Param != c.param || aerr.Status != 400 {
			t.Errorf("%s: got %+v, want %s param %q", c.body, aerr, c.code, c.param)
		}
	}
}

func TestSetTextsKeepsEverythingElse(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","name":"ann","content":"mail ann@x.io"},
		{"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"and ann@x.io"}]}]}`
	r, aerr := ParseChatRequest([]byte(body))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if !slices.Equal(r.Texts, []string{"ann", "mail ann@x.io", "u", "and ann@x.io"}) {
		t.Fatalf("texts %q", r.Texts)
	}
	if err := r.SetTexts([]string{"ann", "mail [EMAIL_1]", "u", "and [EMAIL_1]"}); err != nil {
		t.Fatal(err)
	}
	up, _ := r.UpstreamBody("m")
	s := string(up)
	if strings.Contains(s, "ann@x.io") || !strings.Contains(s, `"name":"ann"`) || !strings.Contains(s, `"url":"u"`) ||
		strings.Count(s, "[EMAIL_1]") != 2 {
		t.Fatalf("upstream body %s", s)
	}
	if err := r.SetTexts([]string{"one"}); err == nil {
		t.Fatal("a wrong number of texts must be refused")
	}
}

func TestErrorBody(t *testing.T) {
	e := InvalidRequest("invalid_value", "bad")
	e.Param = "model"
	var got map[string]map[string]any
	json.Unmarshal(e.Body(), &got)
	if got["error"]["param"] != "model" || got["error"]["code"] != "invalid_value" || got["error"]["type"] != "invalid_request_error" {
		t.Fatalf("body %s", e.Body())
	}
	var nullParam map[string]map[string]any
	json.Unmarshal(InvalidAPIKey().Body(), &nullParam)
	if v, ok := nullParam["error"]["param"]; !ok || v != nil {
		t.Fatalf("param must be present and null: %s", InvalidAPIKey().Body())
	}
}

func TestUpstreamBodyKeepsTheCallersBytes(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"model renamed, all else kept",
			"{ \"temperature\" : 1.0e0,\n\t\"model\":\"m\", \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\/ x\"}] }",
			"{ \"temperature\" : 1.0e0,\n\t\"model\":\"up\", \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\/ x\"}] }"},
		{"stream gets usage reporting added",
			`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}] }`,
			`{"model":"up","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true} }`},
		{"stream has its stream_options replaced",
			`{"model":"m","stream_options":{"include_usage":false,"x":1},"stream":true,"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","stream_options":{"include_usage":true},"stream":true,"messages":[{"role":"user","content":"x"}]}`},
		{"no stream keeps stream_options",
			`{"model":"m","stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}`,
			`{"model":"up","stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}`},
		{"repeated keys Sluice reads keep only the last",
			`{"model":"a", "messages":[{"role":"user","content":"hidden"}], "user":"x", "model":"b","messages":[{"role":"user","content":"seen"}],"user":"y"}`,
			`{"user":"x", "model":"up","messages":[{"role":"user","content":"seen"}],"user":"y"}`},
	}
	for _, c := range cases {
		r, aerr := ParseChatRequest([]byte(c.body))
		if aerr != nil {
			t.Fatalf("%s: %v", c.name, aerr)
		}
		up, err := r.UpstreamBody("up")
		if err != nil || string(up) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, up, c.want)
		}
	}
}

// LowerMaxTokens lowers the limit in the members the caller sent, adds one
// when it sent none, and never raises a limit.
func TestLowerMaxTokens(t *testing.T) {
	cases := []struct {
		name, body string
		cap        int64
		lowered    bool
		want       string
	}{
		{"max_tokens lowered", `{"model":"m","max_tokens":1000,"messages":[{"role":"user","content":"x"}]}`, 256, true,
			`{"model":"up","max_tokens":256,"messages":[{"role":"user","content":"x"}]}`},
		{"max_completion_tokens lowered", `{"model":"m","max_completion_tokens":1000,"messages":[{"role":"user","content":"x"}]}`, 256, true,
			`{"model":"up","max_completion_tokens":256,"messages":[{"role":"user","content":"x"}]}`},
		{"both lowered", `{"model":"m","max_completion_tokens":1000,"max_tokens":900,"messages":[{"role":"user","content":"x"}]}`, 256, true,
			`{"model":"up","max_completion_tokens":256,"max_tokens":256,"messages":[{"role":"user","content":"x"}]}`},
		{"none sent: added", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 256, true,
			`{"model":"up","messages":[{"role":"user","content":"x"}],"max_completion_tokens":256}`},
		{"null sent: replaced", `{"model":"m","max_tokens":null,"messages":[{"role":"user","content":"x"}]}`, 256, true,
			`{"model":"up","max_tokens":256,"messages":[{"role":"user","content":"x"}]}`},
		{"stream: both added", `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`, 64, true,
			`{"model":"up","stream":true,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true},"max_completion_tokens":64}`},
		{"lower already: kept", `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`, 256, false,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`},
		{"no cap", `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`, 0, false,
			`{"model":"up","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`},
	}
	for _, c := range cases {
		r, aerr := ParseChatRequest([]byte(c.body))
		if aerr != nil {
			t.Fatalf("%s: %v", c.name, aerr)
		}
		before := r.MaxTokens
		if got := r.LowerMaxTokens(c.cap); got != c.lowered {
			t.Errorf("%s: lowered %v, want %v", c.name, got, c.lowered)
		}
		if c.lowered && r.MaxTokens != c.cap || !c.lowered && r.MaxTokens != before {
			t.Errorf("%s: MaxTokens %d", c.name, r.MaxTokens)
		}
		up, err := r.UpstreamBody("up")
		if err != nil || string(up) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, up, c.want)
		}
	}
}

func TestAmbiguousMessagesAreRefused(t *testing.T) {
	// Each body names a scanned field twice or in another case. Sluice would
	// scan one copy and an upstream might read the other, so none is forwarded.
	cases := []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":"hi","content":"ann@x.io"}]}`, "messages[0].content"},
		{`{"model":"m","messages":[{"role":"user","content":"ann@x.io","CONTENT":"hi"}]}`, "messages[0].content"},
		{`{"model":"m","messages":[{"role":"user","Content":"hi"}]}`, "messages[0].content"},
		{`{"model":"m","messages":[{"role":"user","content":"ok"},{"role":"user","content":[{"type":"text","text":"ann@x.io","text":"hi"}]}]}`, "messages[1].text"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","TYPE":"image_url","text":"ann@x.io"}]}]}`, "messages[0].type"},
	}
	for _, c := range cases {
		_, aerr := ParseChatRequest([]byte(c.body))
		if aerr == nil || aerr.Status != 400 || aerr.Param != c.param {
			t.Errorf("%s: got %+v, want a 400 on %s", c.body, aerr, c.param)
		}
	}
	// An escape that decodes to the exact name is not ambiguous.
	if _, aerr := ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","cont\u0065nt":"hi"}]}`)); aerr != nil {
		t.Errorf("escaped key: %v", aerr)
	}
}

func TestSetTextsRewritesOnlyTheTexts(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","content":"keep\u0021"},` +
		`{"role":"user","content":[{"type":"text","text":"mail ann@x.io"},{"type":"text"},{"type":"text","text":null}]}]}`
	r, aerr := ParseChatRequest([]byte(body))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if !slices.Equal(r.Texts, []string{"keep!", "mail ann@x.io"}) {
		t.Fatalf("texts %q", r.Texts)
	}
	if err := r.SetTexts([]string{"keep!", "mail [EMAIL_1] \"quoted\""}); err != nil {
		t.Fatal(err)
	}
	up, _ := r.UpstreamBody("m")
	want := `{"model":"m","messages":[{"role":"user","content":"keep\u0021"},` +
		`{"role":"user","content":[{"type":"text","text":"mail [EMAIL_1] \"quoted\""},{"type":"text"},{"type":"text","text":null}]}]}`
	if string(up) != want {
		t.Fatalf("upstream body\n got %s\nwant %s", up, want)
	}
	// A second redaction works on the first one's result.
	if err := r.SetTexts([]string{"keep!", "mail [REDACTED]"}); err != nil {
		t.Fatal(err)
	}
	up, _ = r.UpstreamBody("m")
	if !strings.Contains(string(up), `"text":"mail [REDACTED]"`) || strings.Contains(string(up), "EMAIL_1") {
		t.Fatalf("upstream body after a second SetTexts %s", up)
	}
}

func TestEmbeddingsRequest(t *testing.T) {
	cases := []struct {
		body   string
		texts  []string
		tokens int64
		redact []string
		want   string
	}{
		{`{"model":"e","input":"call 555-0100"}`, []string{"call 555-0100"}, 0,
			[]string{"call [PHONE]"}, `{"model":"up","input":"call [PHONE]"}`},
		{`{"input":["a", "b@x.io"],"model":"e","dimensions":8}`, []string{"a", "b@x.io"}, 0,
			[]string{"a", "[EMAIL]"}, `{"input":["a", "[EMAIL]"],"model":"up","dimensions":8}`},
		{`{"model":"e","input":[1,2,3]}`, nil, 3, nil, `{"model":"up","input":[1,2,3]}`},
		{`{"model":"e","input":[[1,2],[3]]}`, nil, 3, nil, `{"model":"up","input":[[1,2],[3]]}`},
	}
	for _, c := range cases {
		r, aerr := ParseEmbeddingsRequest([]byte(c.body))
		if aerr != nil {
			t.Fatalf("%s: %v", c.body, aerr)
		}
		if r.Model != "e" || !slices.Equal(r.Texts, c.texts) || r.InputTokens != c.tokens {
			t.Fatalf("%s: parsed %q %q %d", c.body, r.Model, r.Texts, r.InputTokens)
		}
		if err := r.SetTexts(c.redact); err != nil {
			t.Fatal(err)
		}
		if up, _ := r.UpstreamBody("up"); string(up) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.body, up, c.want)
		}
	}
	for _, body := range []string{`{"model":"e"}`, `{"model":"e","input":[1,"a"]}`, `{"model":"e","input":{}}`} {
		if _, aerr := ParseEmbeddingsRequest([]byte(body)); aerr == nil || aerr.Param != "input" {
			t.Errorf("%s: got %v, want an error about input", body, aerr)
		}
	}
}

func TestTopLevelCaseVariantsAreRefused(t *testing.T) {
	// encoding/json reads "Messages" as messages; Sluice must not scan one
	// array while an upstream reads another.
	for _, c := range []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"Messages":[{"role":"user","content":"SSN 123-45-6789"}]}`, "messages"},
		{`{"model":"gpt-4o-mini","MODEL":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "model"},
		{`{"model":"m","Stream":true,"messages":[{"role":"user","content":"hi"}]}`, "stream"},
	} {
		_, aerr := ParseChatRequest([]byte(c.body))
		if aerr == nil || aerr.Status != 400 || aerr.Param != c.param {
			t.Errorf("%s: got %+v, want a 400 on %s", c.body, aerr, c.param)
		}
	}
	if _, aerr := ParseEmbeddingsRequest([]byte(`{"model":"m","input":"hi","Input":"SSN 123-45-6789"}`)); aerr == nil || aerr.Param != "input" {
		t.Errorf("embeddings Input: %+v", aerr)
	}
}

func TestTokenBoundsAndChoices(t *testing.T) {
	r, aerr := ParseChatRequest([]byte(`{"model":"m","n":3,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
	if aerr != nil || r.Choices != 3 || r.MaxTokens != 100 {
		t.Fatalf("%+v %v", r, aerr)
	}
	for _, body := range []string{
		`{"model":"m","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_completion_tokens":16777217,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","n":0,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","n":129,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","n":"2","messages":[{"role":"user","content":"hi"}]}`,
	} {
		if _, aerr := ParseChatRequest([]byte(body)); aerr == nil || aerr.Status != 400 {
			t.Errorf("%s: accepted", body)
		}
	}
}

func TestParseUsage(t *testing.T) {
	cases := []struct {
		body string
		want Usage
		ok   bool
	}{
		{`{"id":"x","choices":[{"message":{"content":"the \"usage\" word"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`, Usage{12, 5, 17}, true},
		{`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, Usage{3, 4, 7}, true},
		{`{"choices":[],"usage":null}`, Usage{}, false},
		{`{"choices":[{"delta":{"content":"usage"}}]}`, Usage{}, false},
		{`{"usage":{"prompt_tokens":"many"}}`, Usage{}, false},
		{`{"usage":`, Usage{}, false},
	}
	for _, c := range cases {
		got, ok := ParseUsage([]byte(c.body))
		if ok != c.ok || got != c.want {
			t.Errorf("ParseUsage(%s) = %+v, %v; want %+v, %v", c.body, got, ok, c.want, c.ok)
		}
	}
}
