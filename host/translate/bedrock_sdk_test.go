package translate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// The Converse wire structs are written out by hand (bedrockwire.go says
// why); these tests hold them to the AWS SDK, which is what Bedrock's wire
// JSON is.

// sdkServer is a Bedrock runtime endpoint that records the body the SDK
// client sends and answers with reply; the client signs with test keys.
func sdkServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*bedrockruntime.Client, *[]byte) {
	t.Helper()
	var sent []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent, _ = io.ReadAll(r.Body)
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")})
	return c, &sent
}

// sdkConversation is conversation as the SDK's types: what an SDK user
// sends Bedrock for the same chat.
func sdkConversation(t *testing.T) *bedrockruntime.ConverseInput {
	img, err := base64.StdEncoding.DecodeString(pixel)
	if err != nil {
		t.Fatal(err)
	}
	return &bedrockruntime.ConverseInput{
		ModelId: aws.String("m"),
		System:  []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "be brief"}},
		Messages: []types.Message{
			{Role: types.ConversationRoleUser, Content: []types.ContentBlock{
				&types.ContentBlockMemberText{Value: "look"},
				&types.ContentBlockMemberImage{Value: types.ImageBlock{Format: types.ImageFormatPng, Source: &types.ImageSourceMemberBytes{Value: img}}}}},
			{Role: types.ConversationRoleAssistant, Content: []types.ContentBlock{
				&types.ContentBlockMemberToolUse{Value: types.ToolUseBlock{ToolUseId: aws.String("call_1"), Name: aws.String("lookup"),
					Input: document.NewLazyDocument(map[string]any{"q": "x"})}}}},
			{Role: types.ConversationRoleUser, Content: []types.ContentBlock{
				&types.ContentBlockMemberToolResult{Value: types.ToolResultBlock{ToolUseId: aws.String("call_1"),
					Content: []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: "found"}}}},
				&types.ContentBlockMemberText{Value: "thanks"}}},
		},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(50), Temperature: aws.Float32(0.5), StopSequences: []string{"END"}},
		ToolConfig: &types.ToolConfiguration{
			Tools: []types.Tool{&types.ToolMemberToolSpec{Value: types.ToolSpecification{Name: aws.String("lookup"), Description: aws.String("find"),
				InputSchema: &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(map[string]any{"type": "object"})}}}},
			ToolChoice: &types.ToolChoiceMemberTool{Value: types.SpecificToolChoice{Name: aws.String("lookup")}},
		},
	}
}

// What Sluice sends Bedrock for a chat is what the SDK sends for the same
// conversation; and what the SDK sends reads into the wire structs with
// nothing lost.
func TestConverseRequestIsTheSDKs(t *testing.T) {
	c, sent := sdkServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1}}`))
	})
	if _, err := c.Converse(context.Background(), sdkConversation(t)); err != nil {
		t.Fatal(err)
	}
	ours, aerr := ChatToConverse([]byte(conversation))
	if aerr != nil {
		t.Fatal(aerr)
	}
	sameJSON(t, "Sluice's body against the SDK's", ours.Body, string(*sent))

	var read converseRequest
	if err := json.Unmarshal(*sent, &read); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(read)
	sameJSON(t, "the SDK's body read and written again", again, string(*sent))
}

// The SDK reads the Converse reply a chat completion is translated to:
// text, a tool use and its input, the stop reason, the usage with the
// prompt cache.
func TestConverseResponseIsReadByTheSDK(t *testing.T) {
	chat := `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Let me look.",
	  "tool_calls":[{"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]},"finish_reason":"tool_calls"}],
	  "usage":{"prompt_tokens":90,"completion_tokens":5,"total_tokens":95,"prompt_tokens_details":{"cached_tokens":80}}}`
	c, _ := sdkServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(ChatToConverseResponse([]byte(chat)))
	})
	out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String("m"),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(msg.Value.Content) != 2 {
		t.Fatalf("output %#v", out.Output)
	}
	text, _ := msg.Value.Content[0].(*types.ContentBlockMemberText)
	use, _ := msg.Value.Content[1].(*types.ContentBlockMemberToolUse)
	if text == nil || text.Value != "Let me look." || use == nil || aws.ToString(use.Value.ToolUseId) != "tooluse_1" || aws.ToString(use.Value.Name) != "lookup" {
		t.Fatalf("content %#v %#v", msg.Value.Content[0], msg.Value.Content[1])
	}
	var input map[string]string
	if err := use.Value.Input.UnmarshalSmithyDocument(&input); err != nil || input["q"] != "x" {
		t.Errorf("tool input %v %v", input, err)
	}
	u := out.Usage
	if out.StopReason != types.StopReasonToolUse || u == nil || aws.ToInt32(u.InputTokens) != 10 || aws.ToInt32(u.CacheReadInputTokens) != 80 ||
		aws.ToInt32(u.OutputTokens) != 5 || aws.ToInt32(u.TotalTokens) != 95 {
		t.Errorf("stop %q usage %+v", out.StopReason, u)
	}
}

// The SDK reads the ConverseStream events a streamed chat completion is
// translated to, and Sluice reads what the SDK read back to the chunks.
func TestConverseStreamIsReadByTheSDK(t *testing.T) {
	meta := ChatMeta{ID: "chatcmpl-1", Created: 7, Model: "m"}
	in := NewConverseStream(meta, true)
	var chunks [][]byte
	for _, ev := range []ConverseEvent{
		{"messageStart", []byte(`{"role":"assistant"}`)},
		{"contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Let me look."}}`)},
		{"contentBlockStart", []byte(`{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"lookup"}}}`)},
		{"contentBlockDelta", []byte(`{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"q\":\"x\"}"}}}`)},
		{"messageStop", []byte(`{"stopReason":"tool_use"}`)},
		{"metadata", []byte(`{"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":95,"cacheReadInputTokens":80},"metrics":{"latencyMs":3}}`)},
	} {
		out, err := in.Event(ev.Type, ev.Payload)
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, out...)
	}
	c, _ := sdkServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		enc := eventstream.NewEncoder()
		var s ChatToConverseStream
		for _, chunk := range chunks {
			for _, ev := range s.Chunk(chunk) {
				var h eventstream.Headers
				h.Set(":event-type", eventstream.StringValue(ev.Type))
				h.Set(":content-type", eventstream.StringValue("application/json"))
				h.Set(":message-type", eventstream.StringValue("event"))
				enc.Encode(w, eventstream.Message{Headers: h, Payload: ev.Payload})
			}
		}
	})
	stream, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String("m"),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	events := stream.GetStream()
	var text, tool, input strings.Builder
	var stop types.StopReason
	var usage *types.TokenUsage
	for ev := range events.Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			switch d := e.Value.Delta.(type) {
			case *types.ContentBlockDeltaMemberText:
				text.WriteString(d.Value)
			case *types.ContentBlockDeltaMemberToolUse:
				input.WriteString(aws.ToString(d.Value.Input))
			}
		case *types.ConverseStreamOutputMemberContentBlockStart:
			if s, ok := e.Value.Start.(*types.ContentBlockStartMemberToolUse); ok {
				tool.WriteString(aws.ToString(s.Value.ToolUseId) + " " + aws.ToString(s.Value.Name))
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			stop = e.Value.StopReason
		case *types.ConverseStreamOutputMemberMetadata:
			usage = e.Value.Usage
		}
	}
	events.Close()
	if err := events.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "Let me look." || tool.String() != "tooluse_1 lookup" || input.String() != `{"q":"x"}` || stop != types.StopReasonToolUse {
		t.Errorf("text %q tool %q input %q stop %q", text.String(), tool.String(), input.String(), stop)
	}
	if usage == nil || aws.ToInt32(usage.InputTokens) != 10 || aws.ToInt32(usage.CacheReadInputTokens) != 80 || aws.ToInt32(usage.OutputTokens) != 5 {
		t.Errorf("usage %+v", usage)
	}
}
