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
	if !slices.Equal(r.Texts, []string{"sys", "a", "b"}) || !slices.Equal(r.TextMessage, []int{0, 2, 2}) {
		t.Fatalf("texts %q at %v", r.Texts, r.TextMessage)
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
	if err := r.SetTexts([]string{"mail [EMAIL_1]", "and [EMAIL_1]"}); err != nil {
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
