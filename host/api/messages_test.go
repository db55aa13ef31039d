package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every text of a Messages request the model reads is collected, with
// where it sits; ids and enums are not.
func TestMessagesRequestTexts(t *testing.T) {
	body := `{"model":"m","max_tokens":10,"system":[{"type":"text","text":"sys"}],"messages":[
		{"role":"user","content":"hello"},
		{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"query"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"result"}]},
			{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0"}}]}],
		"tools":[{"name":"finder","description":"desc","input_schema":{"type":"object"}}],
		"tool_choice":{"type":"auto"},"stop_sequences":["STOP"],"metadata":{"user_id":"u-1"}}`
	r, aerr := ParseMessagesRequest([]byte(body))
	if aerr != nil {
		t.Fatal(aerr.Message)
	}
	got := map[string]Text{}
	for i, s := range r.Texts {
		got[s] = r.TextInfo[i]
	}
	want := map[string]Text{
		"sys":     {LocContent, NotMessage, -1},
		"hello":   {LocContent, 0, -1},
		"lookup":  {LocName, 1, -1},
		"query":   {LocToolArguments, 1, -1},
		"q":       {LocToolArguments, 1, -1},
		"result":  {LocContent, 2, -1},
		"iVBORw0": {LocFile, 2, -1},
		"desc":    {LocToolDefinition, NotMessage, -1},
		"finder":  {LocToolDefinition, NotMessage, -1},
		"object":  {LocToolDefinition, NotMessage, -1},
		"STOP":    {LocStop, NotMessage, -1},
		"u-1":     {LocUser, NotMessage, -1},
	}
	for s, w := range want {
		if g, ok := got[s]; !ok || g != w {
			t.Errorf("%q: got %+v (%v), want %+v", s, g, ok, w)
		}
	}
	for _, skipped := range []string{"toolu_1", "image/png", "auto", "tool_use", "m"} {
		if _, ok := got[skipped]; ok {
			t.Errorf("%q was collected", skipped)
		}
	}
	if r.Model != "m" || r.MaxTokens != 10 || r.MessageCount != 3 {
		t.Fatalf("parsed %+v", r)
	}
}

// Redaction rewrites a text where it sits and leaves the body valid JSON.
func TestMessagesRequestSetTexts(t *testing.T) {
	r, aerr := ParseMessagesRequest([]byte(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
		{"type":"tool_result","tool_use_id":"t1","content":"mail ann@example.com"}]}]}`))
	if aerr != nil {
		t.Fatal(aerr.Message)
	}
	texts := append([]string(nil), r.Texts...)
	for i, s := range texts {
		texts[i] = strings.ReplaceAll(s, "ann@example.com", "[EMAIL_1]")
	}
	if err := r.SetTexts(texts); err != nil {
		t.Fatal(err)
	}
	body := r.Body()
	if !json.Valid(body) || !strings.Contains(string(body), `"content":"mail [EMAIL_1]"`) {
		t.Fatalf("body %s", body)
	}
	if !r.LowerMaxTokens(5) || r.MaxTokens != 5 || r.LowerMaxTokens(8) {
		t.Fatal("max_tokens is lowered, never raised")
	}
}

func TestParseMessagesRequestRefuses(t *testing.T) {
	cases := []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"model":"m","max_tokens":"5","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{`{"model":"m","max_tokens":5,"messages":[]}`, "messages"},
		{`{"model":"m","max_tokens":5,"messages":"hi"}`, "messages"},
		{`{"model":"m","max_tokens":5,"messages":["hi"]}`, "messages[0]"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"Messages":[]}`, "messages"},
	}
	for _, c := range cases {
		if _, aerr := ParseMessagesRequest([]byte(c.body)); aerr == nil || aerr.Param != c.param || aerr.Status != 400 {
			t.Errorf("%s: got %+v, want a 400 naming %s", c.body, aerr, c.param)
		}
	}
	if _, aerr := ParseCountTokensRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`)); aerr != nil {
		t.Errorf("count_tokens needs no max_tokens: %s", aerr.Message)
	}
}
