package translate

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/api"
)

// Shared by the Bedrock and Gemini tables.

const (
	pixel = "iVBORw0KGgo="
	// conversation has every kind of message: system, user text and image,
	// an assistant's tool call, the tool's result, and the user again.
	conversation = `{"model":"m","max_completion_tokens":50,"temperature":0.5,"stop":"END",
	 "messages":[
	  {"role":"system","content":"be brief"},
	  {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + pixel + `"}}]},
	  {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},
	  {"role":"tool","tool_call_id":"call_1","content":"found"},
	  {"role":"user","content":"thanks"}],
	 "tools":[{"type":"function","function":{"name":"lookup","description":"find","parameters":{"type":"object"}}}],
	 "tool_choice":{"type":"function","function":{"name":"lookup"}}}`

	// conversationBack is conversation as a provider's request reads back:
	// the system prompt, the image as a data: URL, the bound as
	// max_tokens, the stop as a list.
	conversationBack = `{"model":"m","max_tokens":50,"temperature":0.5,"stop":["END"],
	 "messages":[
	  {"role":"system","content":"be brief"},
	  {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + pixel + `"}}]},
	  {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},
	  {"role":"tool","tool_call_id":"call_1","content":"found"},
	  {"role":"user","content":"thanks"}],
	 "tools":[{"type":"function","function":{"name":"lookup","description":"find","parameters":{"type":"object"}}}],
	 "tool_choice":{"function":{"name":"lookup"},"type":"function"}}`
)

// sameJSON fails unless got and want are the same JSON value.
func sameJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if g, w := canon(t, got), canon(t, []byte(want)); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// sameChunks fails unless got are the chunks (or events) of want, one
// JSON value a line.
func sameChunks(t *testing.T, what string, got [][]byte, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(want), "\n")
	if len(got) != len(lines) {
		t.Errorf("%s: %d chunks, want %d", what, len(got), len(lines))
		for _, g := range got {
			t.Logf("  %s", g)
		}
		return
	}
	for i, l := range lines {
		sameJSON(t, what, got[i], strings.TrimSpace(l))
	}
}

// What no provider can be sent is refused with a 400 naming the parameter,
// in OpenAI's shape.
func TestProviderRefusals(t *testing.T) {
	for _, c := range []struct {
		body, param string
		bedrockOnly bool
	}{
		{`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, "n", false},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,!!"}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"user","content":7}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"narrator","content":"hi"}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes","tools":[{"type":"function","function":{"name":"f"}}]}`, "tool_choice", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search"}]}`, "tools", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":3}`, "stop", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`, "response_format", true},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/tiff;base64,` + pixel + `"}}]}]}`, "messages", true},
	} {
		_, berr := ChatToConverse([]byte(c.body))
		_, gerr := ChatToGemini([]byte(c.body))
		if c.bedrockOnly && gerr != nil {
			t.Errorf("gemini refused %s: %v", c.body, gerr)
		}
		for name, aerr := range map[string]*api.Error{"bedrock": berr, "gemini": gerr} {
			if name == "gemini" && c.bedrockOnly {
				continue
			}
			if aerr == nil || aerr.Status != 400 || !strings.Contains(string(aerr.Body()), `"param":"`+c.param+`"`) || !strings.Contains(string(aerr.Body()), `"type":"invalid_request_error"`) {
				t.Errorf("%s: %s refusal %v, want param %s", c.body, name, aerr, c.param)
			}
		}
	}
	// Gemini must be told which function a tool message answers.
	if _, aerr := ChatToGemini([]byte(`{"model":"m","messages":[{"role":"tool","tool_call_id":"nowhere","content":"x"}]}`)); aerr == nil {
		t.Error("gemini took a tool result that answers no call")
	}
	// Bedrock must be told which call a tool message answers.
	if _, aerr := ChatToConverse([]byte(`{"model":"m","messages":[{"role":"tool","content":"x"}]}`)); aerr == nil {
		t.Error("bedrock took a tool result that answers no call")
	}
	for name, f := range map[string]func([]byte) (ProviderRequest, *api.Error){"bedrock": ChatToConverse, "gemini": ChatToGemini} {
		if _, aerr := f([]byte(`{"model":`)); aerr == nil || aerr.Status != 400 || aerr.Param != "" {
			t.Errorf("%s: an unreadable body gave %v, want a 400", name, aerr)
		}
	}
}
