package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Every string of a Responses request the model could read is collected,
// wherever it hides; ids and enums are not.
func TestResponsesTextsAreCollectedByExclusion(t *testing.T) {
	const v = "SECRET-VALUE"
	cases := []struct {
		name, body string
		loc        Location
		msg        int
	}{
		{"string input", `{"model":"m","input":"%s"}`, LocContent, 0},
		{"instructions", `{"model":"m","instructions":"%s","input":"hi"}`, LocContent, NotMessage},
		{"input_text part", `{"model":"m","input":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"input_text","text":"%s"}]}]}`, LocContent, 1},
		{"image url", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/%s"}]}]}`, LocURL, 0},
		{"file name", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","filename":"%s","file_data":"x"}]}]}`, LocName, 0},
		{"function call arguments", `{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{\"q\":\"%s\"}"}]}`, LocToolArguments, 0},
		{"function call output", `{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":"%s"}]}`, LocContent, 0},
		{"function call output parts", `{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"%s"}]}]}`, LocContent, 0},
		{"tool description", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f","description":"%s"}]}`, LocToolDefinition, NotMessage},
		{"tool parameter enum", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f","parameters":{"properties":{"x":{"enum":["%s"]}}}}]}`, LocToolDefinition, NotMessage},
		{"format schema", `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"n","schema":{"description":"%s"}}}}`, LocResponseFormat, NotMessage},
		{"metadata value", `{"model":"m","input":"hi","metadata":{"k":"%s"}}`, LocMetadata, NotMessage},
		{"metadata key", `{"model":"m","input":"hi","metadata":{"%s":"v"}}`, LocMetadata, NotMessage},
		{"user", `{"model":"m","input":"hi","user":"%s"}`, LocUser, NotMessage},
		{"reasoning summary", `{"model":"m","input":[{"type":"reasoning","summary":[{"type":"summary_text","text":"%s"}]}]}`, LocReasoning, 0},
		{"unknown top-level member", `{"model":"m","input":"hi","memo":{"note":"%s"}}`, LocOther, NotMessage},
		{"unknown item member", `{"model":"m","input":[{"role":"user","content":"hi","context":"%s"}]}`, LocOther, 0},
		{"key in another case", `{"model":"m","input":[{"role":"user","Content":"%s"}]}`, LocOther, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, aerr := ParseResponsesRequest([]byte(fmt.Sprintf(c.body, v)))
			if aerr != nil {
				t.Fatalf("refused: %s", aerr.Message)
			}
			i := slices.IndexFunc(r.Texts, func(s string) bool { return strings.Contains(s, v) })
			if i < 0 {
				t.Fatalf("not collected: %q", r.Texts)
			}
			if got := r.TextInfo[i]; got.Loc != c.loc || got.Message != c.msg {
				t.Fatalf("at %v message %d, want %v message %d", got.Loc, got.Message, c.loc, c.msg)
			}
		})
	}
	r, _ := ParseResponsesRequest([]byte(`{"model":"m","input":[{"type":"function_call_output","call_id":"call_1","id":"fc_1","status":"completed","output":"x"}],
		"tool_choice":"auto","service_tier":"flex","truncation":"disabled","reasoning":{"effort":"low"}}`))
	if !slices.Equal(r.Texts, []string{"x"}) {
		t.Fatalf("ids and enums collected: %q", r.Texts)
	}
}

// Redaction rewrites the texts where they are and keeps the rest; the body
// the translation reads is the rewritten one.
func TestResponsesSetTexts(t *testing.T) {
	body := `{"model":"m","instructions":"mail ann@x.io","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{\"to\":\"ann@x.io\"}"}],"max_output_tokens":64}`
	r, aerr := ParseResponsesRequest([]byte(body))
	if aerr != nil {
		t.Fatal(aerr)
	}
	texts := slices.Clone(r.Texts)
	for i := range texts {
		texts[i] = strings.ReplaceAll(texts[i], "ann@x.io", "[EMAIL_1]")
	}
	if err := r.SetTexts(texts); err != nil {
		t.Fatal(err)
	}
	out := string(r.Body())
	if strings.Contains(out, "ann@x.io") || strings.Count(out, "[EMAIL_1]") != 2 {
		t.Fatalf("body %s", out)
	}
	var v struct {
		Input []struct{ Arguments string }
	}
	if err := json.Unmarshal(r.Body(), &v); err != nil || !json.Valid([]byte(v.Input[0].Arguments)) {
		t.Fatalf("arguments no longer JSON: %v %s", err, out)
	}
	if r.MaxOutputTokens != 64 || !r.LowerMaxTokens(32) || r.MaxOutputTokens != 32 || r.LowerMaxTokens(100) {
		t.Fatal("max_output_tokens")
	}
}

func TestParseResponsesRequestErrors(t *testing.T) {
	cases := []struct{ body, param string }{
		{`{"input":"hi"}`, "model"},
		{`{"model":"m"}`, "input"},
		{`{"model":"m","input":[]}`, "input"},
		{`{"model":"m","input":3}`, "input"},
		{`{"model":"m","input":["hi"]}`, "input[0]"},
		{`{"model":"m","input":"hi","stream":"yes"}`, "stream"},
		{`{"model":"m","input":"hi","max_output_tokens":1}`, "max_output_tokens"},
		{`{"model":"m","input":"hi","Model":"x"}`, "model"},
	}
	for _, c := range cases {
		_, aerr := ParseResponsesRequest([]byte(c.body))
		if aerr == nil || aerr.Status != 400 || aerr.Param != c.param {
			t.Errorf("%s: got %+v, want 400 on %s", c.body, aerr, c.param)
		}
	}
}
