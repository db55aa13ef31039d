package translate

import (
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/host/api"
)

// FuzzProviderTranslations holds the Bedrock and Gemini translations to
// any body: a chat request is refused with a 400 naming a fixed message,
// or translated into a body the provider's side reads back; and no reply
// or stream event, however malformed, stops the translation of a reply.
func FuzzProviderTranslations(f *testing.F) {
	f.Add([]byte(conversation))
	f.Add([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`))
	f.Add([]byte(`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}`))
	f.Add([]byte(`{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t","name":"f"}},"delta":{"toolUse":{"input":"{"}},"stopReason":"tool_use","usage":{"inputTokens":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, c := range map[string]struct {
			to   func([]byte) (ProviderRequest, *api.Error)
			back func([]byte, string, bool) ([]byte, error)
		}{"bedrock": {ChatToConverse, ConverseToChat}, "gemini": {ChatToGemini, GeminiToChat}} {
			p, aerr := c.to(body)
			if aerr != nil {
				if aerr.Status != 400 || aerr.Message == "" || string(body) != "" && aerr.Message == string(body) {
					t.Fatalf("%s: refusal %+v", name, aerr)
				}
				continue
			}
			back, err := c.back(p.Body, p.Model, false)
			if err != nil && !(name == "bedrock" && isEmptyConverse(p.Body)) {
				t.Fatalf("%s: %s does not read back: %v", name, p.Body, err)
			}
			if err == nil && !json.Valid(back) {
				t.Fatalf("%s: back %s", name, back)
			}
		}
		meta := ChatMeta{ID: "c", Model: "m"}
		for _, chat := range [][]byte{okOrNil(ConverseToChatCompletion(body, meta)), okOrNil(GeminiToChatCompletion(body, meta))} {
			if chat != nil && !json.Valid(chat) {
				t.Fatalf("a reply translated to %s", chat)
			}
		}
		cs := NewConverseStream(meta, true)
		for _, typ := range []string{"messageStart", "contentBlockStart", "contentBlockDelta", "messageStop", "metadata"} {
			cs.Event(typ, body)
		}
		gs := NewGeminiStream(meta, true)
		gs.Event(body)
		gs.End()
		var cw ChatToConverseStream
		cw.Chunk(body)
		var gw ChatToGeminiStream
		gw.Chunk(body)
		ChatToConverseResponse(body)
		ChatToGeminiResponse(body)
	})
}

func okOrNil(b []byte, err error) []byte {
	if err != nil {
		return nil
	}
	return b
}

// isEmptyConverse reports whether a Converse body has no messages: a chat
// of system prompts only, which Bedrock itself refuses.
func isEmptyConverse(b []byte) bool {
	var c converseRequest
	return json.Unmarshal(b, &c) == nil && len(c.Messages) == 0
}
