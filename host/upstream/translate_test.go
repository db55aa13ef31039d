package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sluicehq/sluice/host/config"
)

// sameJSON fails unless got and want are the same JSON value.
func sameJSON(t *testing.T, what string, got any, want string) {
	t.Helper()
	var g, w any
	b, _ := json.Marshal(got)
	json.Unmarshal(b, &g)
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, b, want)
	}
}

func parseChat(t *testing.T, body string) *chatRequest {
	t.Helper()
	var r chatRequest
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

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
)

func TestToGemini(t *testing.T) {
	g, err := toGemini(parseChat(t, conversation))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "gemini request", g, `{
	 "systemInstruction":{"parts":[{"text":"be brief"}]},
	 "contents":[
	  {"role":"user","parts":[{"text":"look"},{"inlineData":{"mimeType":"image/png","data":"`+pixel+`"}}]},
	  {"role":"model","parts":[{"functionCall":{"id":"call_1","name":"lookup","args":{"q":"x"}}}]},
	  {"role":"user","parts":[{"functionResponse":{"id":"call_1","name":"lookup","response":{"content":"found"}}},{"text":"thanks"}]}],
	 "tools":[{"functionDeclarations":[{"name":"lookup","description":"find","parametersJsonSchema":{"type":"object"}}]}],
	 "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["lookup"]}},
	 "generationConfig":{"maxOutputTokens":50,"temperature":0.5,"stopSequences":["END"]}}`)

	// An id Sluice made up for a call Gemini did not name is not sent back.
	made := toolCallID("lookup", 0)
	g, _ = toGemini(parseChat(t, `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"`+made+`","type":"function","function":{"name":"lookup","arguments":"{}"}}]},{"role":"tool","tool_call_id":"`+made+`","content":"{\"temp\":21}"}]}`))
	sameJSON(t, "made-up ids", g.Contents, `[{"role":"model","parts":[{"functionCall":{"name":"lookup","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"lookup","response":{"temp":21}}}]}]`)

	g, _ = toGemini(parseChat(t, `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"}}},"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`))
	sameJSON(t, "json schema and tool_choice none", map[string]any{"gc": g.GenerationConfig, "tc": g.ToolConfig},
		`{"gc":{"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}},"tc":{"functionCallingConfig":{"mode":"NONE"}}}`)
}

func TestToConverse(t *testing.T) {
	c, err := toConverse(parseChat(t, conversation))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "converse request", c, `{
	 "system":[{"text":"be brief"}],
	 "messages":[
	  {"role":"user","content":[{"text":"look"},{"image":{"format":"png","source":{"bytes":"`+pixel+`"}}}]},
	  {"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"lookup","input":{"q":"x"}}}]},
	  {"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"text":"found"}]}},{"text":"thanks"}]}],
	 "inferenceConfig":{"maxTokens":50,"temperature":0.5,"stopSequences":["END"]},
	 "toolConfig":{"tools":[{"toolSpec":{"name":"lookup","description":"find","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"lookup"}}}}`)

	for choice, want := range map[string]string{
		`"required"`: `{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"any":{}}}`,
		`"auto"`:     `{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]}`,
		`"none"`:     `null`,
	} {
		c, _ := toConverse(parseChat(t, `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":`+choice+`}`))
		sameJSON(t, "tool_choice "+choice, c.ToolConfig, want)
	}
}

// What no provider can be sent is refused with a 400 naming the parameter.
func TestProviderRefusals(t *testing.T) {
	for _, c := range []struct {
		body, param string
		bedrock     bool // refused by bedrock only
	}{
		{`{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, "n", false},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"narrator","content":"hi"}]}`, "messages", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes","tools":[{"type":"function","function":{"name":"f"}}]}`, "tool_choice", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":3}`, "stop", false},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`, "response_format", true},
	} {
		req := parseChat(t, c.body)
		_, berr := toConverse(req)
		_, gerr := toGemini(req)
		for name, err := range map[string]error{"bedrock": berr, "gemini": gerr} {
			if name == "gemini" && c.bedrock {
				if err != nil {
					t.Errorf("gemini refused %s: %v", c.body, err)
				}
				continue
			}
			r := refusalReply(err)
			if err == nil || r.Status != 400 || !strings.Contains(string(r.Body), `"param":"`+c.param+`"`) {
				t.Errorf("%s: %s refusal %v %s, want param %s", c.body, name, err, r.Body, c.param)
			}
		}
	}
	// Gemini must be told which function a tool message answers.
	if _, err := toGemini(parseChat(t, `{"model":"m","messages":[{"role":"tool","tool_call_id":"nowhere","content":"x"}]}`)); err == nil {
		t.Error("gemini took a tool result that answers no call")
	}
}

func TestFromGemini(t *testing.T) {
	for _, c := range []struct {
		name, reply, message, finish, usage string
	}{
		{"text, thoughts and cache",
			`{"candidates":[{"content":{"role":"model","parts":[{"text":"hmm","thought":true},{"text":"Hello "},{"text":"world"}]},"finishReason":"STOP"}],
			  "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5,"thoughtsTokenCount":7,"cachedContentTokenCount":60,"totalTokenCount":112}}`,
			`{"role":"assistant","content":"Hello world"}`, "stop",
			`{"prompt_tokens":100,"completion_tokens":12,"total_tokens":112,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":7}}`},
		{"function call without an id",
			`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"lookup","args":{"q":"x"}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}}`,
			`{"role":"assistant","content":null,"tool_calls":[{"id":"` + toolCallID("lookup", 0) + `","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]}`, "tool_calls",
			`{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}`},
		{"cut at max tokens", `{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS"}]}`, `{"role":"assistant","content":"a"}`, "length", `null`},
		{"safety", `{"candidates":[{"content":{"parts":[]},"finishReason":"SAFETY"}]}`, `{"role":"assistant","content":""}`, "content_filter", `null`},
		{"blocked prompt", `{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}`, `{"role":"assistant","content":""}`, "content_filter",
			`{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9}`},
	} {
		var gr geminiResponse
		if err := json.Unmarshal([]byte(c.reply), &gr); err != nil {
			t.Fatal(err)
		}
		msg, finish, usage := fromGemini(&gr)
		sameJSON(t, c.name+" message", msg, c.message)
		sameJSON(t, c.name+" usage", usage, c.usage)
		if finish != c.finish {
			t.Errorf("%s: finish %q, want %q", c.name, finish, c.finish)
		}
	}
}

func TestFromConverse(t *testing.T) {
	for _, c := range []struct {
		name, reply, message, finish, usage string
	}{
		{"text with prompt cache",
			`{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"hmm"}}},{"text":"Hello "},{"text":"world"}]}},"stopReason":"end_turn",
			  "usage":{"inputTokens":10,"outputTokens":5,"totalTokens":115,"cacheReadInputTokens":80,"cacheWriteInputTokens":20}}`,
			`{"role":"assistant","content":"Hello world"}`, "stop",
			`{"prompt_tokens":110,"completion_tokens":5,"total_tokens":115,"prompt_tokens_details":{"cached_tokens":80}}`},
		{"tool use",
			`{"output":{"message":{"role":"assistant","content":[{"text":"Let me look."},{"toolUse":{"toolUseId":"tooluse_1","name":"lookup","input":{"q":"x"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}`,
			`{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]}`, "tool_calls",
			`{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}`},
		{"max tokens", `{"output":{"message":{"role":"assistant","content":[{"text":"a"}]}},"stopReason":"max_tokens"}`, `{"role":"assistant","content":"a"}`, "length", `null`},
		{"guardrail", `{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"guardrail_intervened"}`, `{"role":"assistant","content":""}`, "content_filter", `null`},
		{"context window", `{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"model_context_window_exceeded"}`, `{"role":"assistant","content":""}`, "length", `null`},
	} {
		var cr converseResponse
		if err := json.Unmarshal([]byte(c.reply), &cr); err != nil {
			t.Fatal(err)
		}
		msg, finish, usage := fromConverse(&cr)
		sameJSON(t, c.name+" message", msg, c.message)
		sameJSON(t, c.name+" usage", usage, c.usage)
		if finish != c.finish {
			t.Errorf("%s: finish %q, want %q", c.name, finish, c.finish)
		}
	}
}

// The mocks' translations are the inverses of the adapters': a chat
// request sent to a provider and read back by its mock is the same
// conversation.
func TestMockTranslationsInvertTheAdapters(t *testing.T) {
	want := parseChat(t, conversation)
	check := func(name string, body []byte) {
		t.Helper()
		got := parseChat(t, string(body))
		if len(got.Messages) != len(want.Messages) || len(got.Tools) != 1 || got.Tools[0].Function.Name != "lookup" {
			t.Fatalf("%s: %s", name, body)
		}
		for i, m := range want.Messages {
			g := got.Messages[i]
			if g.Role != m.Role || g.text() != m.text() || g.ToolCallID != m.ToolCallID || len(g.ToolCalls) != len(m.ToolCalls) {
				t.Errorf("%s: message %d is %+v, want %+v", name, i, g, m)
			}
			gp, _ := g.parts()
			mp, _ := m.parts()
			if len(gp) != len(mp) {
				t.Errorf("%s: message %d has parts %+v, want %+v", name, i, gp, mp)
			}
		}
		if got.MaxTokens == nil || *got.MaxTokens != 50 || string(got.ToolChoice) != `{"function":{"name":"lookup"},"type":"function"}` {
			t.Errorf("%s: max_tokens %v tool_choice %s", name, got.MaxTokens, got.ToolChoice)
		}
	}
	g, _ := toGemini(want)
	check("gemini", geminiToChat(g, "m", false))
	c, _ := toConverse(want)
	check("bedrock", converseToChat(c, "m", false))

	reply := chatReply{Model: "m", Choices: []chatChoice{{Message: assistantMessage("", []chatToolCall{{ID: "call_9", Type: "function", Function: chatFunctionCall{Name: "lookup", Arguments: `{"q":"y"}`}}}), FinishReason: ptr("tool_calls")}},
		Usage: newChatUsage(12, 3, 0, 0)}
	msg, finish, usage := fromGemini(chatToGemini(&reply))
	sameJSON(t, "gemini reply", []any{msg, finish, usage}, string(mustJSON([]any{reply.Choices[0].Message, "tool_calls", reply.Usage})))
	msg, finish, usage = fromConverse(chatToConverse(&reply))
	sameJSON(t, "bedrock reply", []any{msg, finish, usage}, string(mustJSON([]any{reply.Choices[0].Message, "tool_calls", reply.Usage})))
}

func ptr[T any](v T) *T { return &v }

// An exception Bedrock sends in the middle of a stream ends it with an
// upstream error, after the chunks that came before it.
func TestBedrockStreamException(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/vnd.amazon.eventstream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			s := bedrockMockStream{enc: eventstream.NewEncoder(), w: w}
			s.emit("messageStart", map[string]string{"role": "assistant"})
			s.emit("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": "Hel"}})
			var h eventstream.Headers
			h.Set(":message-type", eventstream.StringValue("exception"))
			h.Set(":exception-type", eventstream.StringValue("throttlingException"))
			s.enc.Encode(w, eventstream.Message{Headers: h, Payload: []byte(`{"message":"slow down"}`)})
		})
	})
	b, err := NewBedrock(config.Upstream{Name: "b", Timeout: config.Duration(5e9), MaxConns: 2, BaseURL: "http://bedrock.test",
		Provider: config.Provider{Region: "us-east-1", AWSAccessKeyID: "AKID", AWSSecretAccessKey: "s"}},
		func(string) (net.Conn, error) { return ln.Dial() })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.Send(context.Background(), &Call{Endpoint: EndpointChat, Stream: true, Body: []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil || r.Events == nil {
		t.Fatalf("%v %v", r, err)
	}
	defer r.Events.Close()
	var text strings.Builder
	for {
		data, err := r.Events.Next()
		if err != nil {
			if err == io.EOF || !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "slow down") {
				t.Fatalf("stream ended with %v, want ErrUnavailable without the provider's message", err)
			}
			break
		}
		var c chatReply
		json.Unmarshal(data, &c)
		for _, ch := range c.Choices {
			if ch.Delta != nil {
				text.WriteString(ch.Delta.text())
			}
		}
	}
	if text.String() != "Hel" {
		t.Fatalf("text before the exception %q", text.String())
	}
}

// Without keys in the configuration, Bedrock signs with the AWS SDK's
// default credential chain: here, the environment's keys.
func TestBedrockUsesTheDefaultCredentialChain(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, BedrockMockHandler(NewMock(0), "eu-central-1"))
	send := func() int {
		b, err := NewBedrock(config.Upstream{Name: "b", Timeout: config.Duration(5e9), MaxConns: 2, BaseURL: "http://bedrock.test",
			Provider: config.Provider{Region: "eu-central-1"}},
			func(string) (net.Conn, error) { return ln.Dial() })
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		r, err := b.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(`{"model":"amazon.nova-lite-v1:0","messages":[{"role":"user","content":"hi"}]}`)})
		if err != nil {
			t.Log(err)
			return 0
		}
		return r.Status
	}
	t.Setenv("AWS_ACCESS_KEY_ID", MockAWSAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", MockAWSSecretAccessKey)
	if got := send(); got != 200 {
		t.Fatalf("with the environment's keys: status %d", got)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "another-secret")
	if got := send(); got != 403 {
		t.Fatalf("with a wrong secret in the environment: status %d, want 403", got)
	}
}

// The Bedrock mock's check can fail: a request altered after it was signed,
// an old signature, or none, is refused as Bedrock refuses it.
func TestBedrockMockVerifiesSignatures(t *testing.T) {
	b, err := NewBedrock(config.Upstream{Name: "b", BaseURL: "http://bedrock-runtime.us-east-1.amazonaws.com", MaxConns: 1,
		Provider: config.Provider{Region: "us-east-1", AWSAccessKeyID: MockAWSAccessKeyID, AWSSecretAccessKey: MockAWSSecretAccessKey}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	signed := func() *fasthttp.Request {
		req := &fasthttp.Request{}
		req.SetRequestURI("/model/amazon.nova-lite-v1%3A0/converse")
		req.Header.SetHost("bedrock-runtime.us-east-1.amazonaws.com")
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
		if err := b.authorize(context.Background(), req, false); err != nil {
			t.Fatal(err)
		}
		return req
	}
	verify := func(req *fasthttp.Request, now time.Time) string {
		var ctx fasthttp.RequestCtx
		ctx.Init(req, nil, nil)
		errType, _ := verifySigV4(&ctx, v4.NewSigner(), aws.Credentials{AccessKeyID: MockAWSAccessKeyID, SecretAccessKey: MockAWSSecretAccessKey}, "us-east-1", now)
		return errType
	}
	if got := verify(signed(), time.Now()); got != "" {
		t.Fatalf("a good signature was refused: %s", got)
	}
	for name, c := range map[string]struct {
		alter func(*fasthttp.Request)
		now   time.Time
		want  string
	}{
		"body changed":    {func(r *fasthttp.Request) { r.SetBodyString(`{"messages":[{"role":"user","content":[{"text":"HI"}]}]}`) }, time.Now(), "InvalidSignatureException"},
		"model changed":   {func(r *fasthttp.Request) { r.SetRequestURI("/model/amazon.nova-pro-v1%3A0/converse") }, time.Now(), "InvalidSignatureException"},
		"header changed":  {func(r *fasthttp.Request) { r.Header.SetContentType("text/plain") }, time.Now(), "InvalidSignatureException"},
		"no signature":    {func(r *fasthttp.Request) { r.Header.Del("Authorization") }, time.Now(), "MissingAuthenticationTokenException"},
		"signed long ago": {func(*fasthttp.Request) {}, time.Now().Add(10 * time.Minute), "InvalidSignatureException"},
	} {
		req := signed()
		c.alter(req)
		if got := verify(req, c.now); got != c.want {
			t.Errorf("%s: %q, want %s", name, got, c.want)
		}
	}
}

// A provider's stream cut before its end (Bedrock's messageStop, Gemini's
// finish reason) is an upstream failure, not a reply that looks complete.
func TestCutStreamsAreUpstreamErrors(t *testing.T) {
	serve := func(write func(w *bufio.Writer)) fasthttp.DialFunc {
		ln := fasthttputil.NewInmemoryListener()
		t.Cleanup(func() { ln.Close() })
		go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyStreamWriter(write) })
		return func(string) (net.Conn, error) { return ln.Dial() }
	}
	u := config.Upstream{Name: "x", Timeout: config.Duration(5e9), MaxConns: 2, BaseURL: "http://provider.test", APIKey: "k"}
	gemini, _ := NewGemini(u, serve(func(w *bufio.Writer) {
		w.WriteString(`data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}` + "\r\n\r\n")
	}))
	u.APIKey, u.Region, u.AWSAccessKeyID, u.AWSSecretAccessKey = "", "us-east-1", "AKID", "s"
	bedrock, _ := NewBedrock(u, serve(func(w *bufio.Writer) {
		s := bedrockMockStream{enc: eventstream.NewEncoder(), w: w}
		s.emit("messageStart", map[string]string{"role": "assistant"})
		s.emit("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": "Hel"}})
	}))
	for name, up := range map[string]Upstream{"gemini": gemini, "bedrock": bedrock} {
		defer up.Close()
		r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Stream: true, Body: []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
		if err != nil || r.Events == nil {
			t.Fatalf("%s: %v %v", name, r, err)
		}
		for {
			_, err := r.Events.Next()
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: a cut stream ended with %v, want ErrUnavailable", name, err)
			}
			break
		}
		r.Events.Close()
	}
}
