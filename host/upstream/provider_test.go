package upstream

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/config"
)

var protocols = []string{config.TypeAzureOpenAI, config.TypeBedrock, config.TypeGemini}

func protocolMock(t *testing.T, u config.Upstream) Upstream {
	t.Helper()
	u.Type = config.TypeMock
	u.Timeout, u.IdleTimeout, u.MaxConns = config.Duration(5e9), config.Duration(5e9), 16
	up, err := newMock(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	return up
}

// direct is the chat mock's own reply to body: what every protocol must
// carry unchanged through its adapter and mock.
func direct(t *testing.T, body string) (string, api.Usage) {
	t.Helper()
	r, err := NewMock(0).Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body)})
	if err != nil || r.Status != 200 {
		t.Fatalf("chat mock: %v %v", r, err)
	}
	var c chatReply
	json.Unmarshal(r.Body, &c)
	u, _ := api.ParseUsage(r.Body)
	return c.Choices[0].Message.text(), u
}

func TestProviderMocksChat(t *testing.T) {
	body := `{"model":"us.anthropic.claude-3-5-haiku-20241022-v1:0","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}]}`
	wantText, wantUsage := direct(t, body)
	for _, p := range protocols {
		t.Run(p, func(t *testing.T) {
			up := protocolMock(t, config.Upstream{Name: p, Provider: config.Provider{Protocol: p}})
			r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body)})
			if err != nil || r.Status != 200 {
				t.Fatalf("reply %v %v", r, err)
			}
			var c chatReply
			if err := json.Unmarshal(r.Body, &c); err != nil || len(c.Choices) != 1 {
				t.Fatalf("reply %s", r.Body)
			}
			u, ok := api.ParseUsage(r.Body)
			if got := c.Choices[0].Message.text(); got != wantText || !ok || u != wantUsage || *c.Choices[0].FinishReason != "stop" {
				t.Fatalf("got %q %+v %s, want %q %+v", got, u, r.Body, wantText, wantUsage)
			}
		})
	}
}

// readStream reads a chat stream: its text, tool calls, finish reason and usage.
func readStream(t *testing.T, e Events) (text string, calls map[int]*chatToolCall, finish string, usage api.Usage, usageChunks int) {
	t.Helper()
	defer e.Close()
	calls = map[int]*chatToolCall{}
	var b strings.Builder
	for {
		data, err := e.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var c chatReply
		if err := json.Unmarshal(data, &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %s", data)
		}
		if c.Usage != nil {
			usageChunks++
			usage, _ = api.ParseUsage(data)
			if len(c.Choices) != 0 {
				t.Fatalf("usage chunk with choices: %s", data)
			}
		}
		for _, ch := range c.Choices {
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
			if ch.Delta == nil {
				continue
			}
			b.WriteString(ch.Delta.text())
			for _, tc := range ch.Delta.ToolCalls {
				i := *tc.Index
				if calls[i] == nil {
					calls[i] = &chatToolCall{}
				}
				if tc.ID != "" {
					calls[i].ID, calls[i].Function.Name = tc.ID, tc.Function.Name
				}
				calls[i].Function.Arguments += tc.Function.Arguments
			}
		}
	}
	return b.String(), calls, finish, usage, usageChunks
}

func TestProviderMocksStream(t *testing.T) {
	body := `{"model":"us.anthropic.claude-3-5-haiku-20241022-v1:0","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}]}`
	wantText, wantUsage := direct(t, strings.Replace(body, `"stream":true,`, "", 1))
	for _, p := range protocols {
		t.Run(p, func(t *testing.T) {
			up := protocolMock(t, config.Upstream{Name: p, Provider: config.Provider{Protocol: p}})
			r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body), Stream: true})
			if err != nil || r.Events == nil {
				t.Fatalf("reply %v %v", r, err)
			}
			text, _, finish, u, n := readStream(t, r.Events)
			if text != wantText || finish != "stop" || u != wantUsage || n != 1 {
				t.Fatalf("streamed %q finish %q usage %+v (%d usage chunks), want %q %+v", text, finish, u, n, wantText, wantUsage)
			}
		})
	}
}

const toolBody = `{"model":"m","messages":[{"role":"user","content":"what is the weather in Paris? use get_weather"}],
 "tools":[{"type":"function","function":{"name":"get_weather","description":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`

func TestProviderMocksToolCalls(t *testing.T) {
	for _, p := range protocols {
		for _, stream := range []bool{false, true} {
			t.Run(p, func(t *testing.T) {
				up := protocolMock(t, config.Upstream{Name: p, Provider: config.Provider{Protocol: p}})
				body := toolBody
				if stream {
					body = strings.Replace(body, `{"model"`, `{"stream":true,"stream_options":{"include_usage":true},"model"`, 1)
				}
				r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body), Stream: stream})
				if err != nil {
					t.Fatal(err)
				}
				var call chatToolCall
				var finish string
				if stream {
					_, calls, f, u, _ := readStream(t, r.Events)
					if len(calls) != 1 || u.CompletionTokens == 0 {
						t.Fatalf("calls %v usage %+v", calls, u)
					}
					call, finish = *calls[0], f
				} else {
					var c chatReply
					json.Unmarshal(r.Body, &c)
					if r.Status != 200 || len(c.Choices) != 1 || len(c.Choices[0].Message.ToolCalls) != 1 {
						t.Fatalf("reply %d %s", r.Status, r.Body)
					}
					call, finish = c.Choices[0].Message.ToolCalls[0], *c.Choices[0].FinishReason
				}
				var args struct{ City string }
				if call.Function.Name != "get_weather" || call.ID == "" || json.Unmarshal([]byte(call.Function.Arguments), &args) != nil || args.City == "" || finish != "tool_calls" {
					t.Fatalf("call %+v finish %q", call, finish)
				}
				// The tool's result goes back and the model answers with it.
				next := `{"model":"m","messages":[{"role":"user","content":"weather in Paris? use get_weather"},
				 {"role":"assistant","content":null,"tool_calls":[{"id":"` + call.ID + `","type":"function","function":{"name":"get_weather","arguments":` + mustQuote(call.Function.Arguments) + `}}]},
				 {"role":"tool","tool_call_id":"` + call.ID + `","content":"sunny, 21C"}],
				 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}`
				r, err = up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(next)})
				if err != nil || r.Status != 200 || !strings.Contains(string(r.Body), MockToolResultPrefix+"sunny, 21C") {
					t.Fatalf("after the tool's result: %v %v", r, err)
				}
			})
		}
	}
}

func mustQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// An upstream's 429 and 5xx come back as the status the gateway maps to its
// own errors, in OpenAI's shape, for a plain call and a stream alike.
func TestProviderMocksErrorsOnDemand(t *testing.T) {
	for _, p := range protocols {
		for _, status := range []int{429, 500, 503} {
			for _, stream := range []bool{false, true} {
				up := protocolMock(t, config.Upstream{Name: p, Provider: config.Provider{Protocol: p}})
				body := `{"model":"m","stream":` + map[bool]string{false: "false", true: "true"}[stream] + `,"messages":[{"role":"user","content":"` + MockStatusPrompt + strconv.Itoa(status) + `"}]}`
				r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body), Stream: stream})
				if err != nil {
					t.Fatal(err)
				}
				var e struct {
					Error struct{ Type, Code string }
				}
				if r.Status != status || r.Events != nil || json.Unmarshal(r.Body, &e) != nil || e.Error.Type != errorTypeFor(status) {
					t.Errorf("%s %d stream=%v: reply %d %s", p, status, stream, r.Status, r.Body)
				}
			}
		}
	}
}

func TestBedrockMockRefusesBadSignatures(t *testing.T) {
	body := `{"model":"anthropic.claude-3-haiku-20240307-v1:0","messages":[{"role":"user","content":"hi"}]}`
	for _, c := range []struct {
		name     string
		u        config.Provider
		wantCode string
	}{
		{"wrong secret", config.Provider{Protocol: "bedrock", AWSAccessKeyID: MockAWSAccessKeyID, AWSSecretAccessKey: "not-the-secret"}, "invalid_signature_exception"},
		{"unknown key", config.Provider{Protocol: "bedrock", AWSAccessKeyID: "AKIDOTHER", AWSSecretAccessKey: MockAWSSecretAccessKey}, "unrecognized_client_exception"},
		{"other region", config.Provider{Protocol: "bedrock", Region: "eu-west-1"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := protocolMock(t, config.Upstream{Name: "b", Provider: c.u})
			r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body)})
			if err != nil {
				t.Fatal(err)
			}
			if c.wantCode == "" {
				// A mock in another region signs and verifies in that region.
				if r.Status != 200 {
					t.Fatalf("reply %d %s", r.Status, r.Body)
				}
				return
			}
			if r.Status != 403 || !strings.Contains(string(r.Body), `"code":"`+c.wantCode+`"`) {
				t.Fatalf("reply %d %s, want 403 %s", r.Status, r.Body, c.wantCode)
			}
		})
	}
}

func TestAzureMockChecksKeyAndVersion(t *testing.T) {
	body := `{"model":"gpt4o-prod","messages":[{"role":"user","content":"hi"}]}`
	for _, c := range []struct {
		name   string
		u      config.Upstream
		status int
	}{
		{"api key", config.Upstream{}, 200},
		{"entra token", config.Upstream{Provider: config.Provider{AzureADToken: MockAzureADToken}}, 200},
		{"wrong key", config.Upstream{APIKey: "nope"}, 401},
		{"wrong token", config.Upstream{Provider: config.Provider{AzureADToken: "nope"}}, 401},
		{"bad version", config.Upstream{Provider: config.Provider{APIVersion: "latest"}}, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.u.Name, c.u.Protocol = "az", config.TypeAzureOpenAI
			up := protocolMock(t, c.u)
			r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body)})
			if err != nil || r.Status != c.status {
				t.Fatalf("reply %v %v, want %d", r, err, c.status)
			}
		})
	}
}

func TestGeminiMockChecksKey(t *testing.T) {
	up := protocolMock(t, config.Upstream{Name: "g", APIKey: "AIza-wrong", Provider: config.Provider{Protocol: config.TypeGemini}})
	r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(`{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil || r.Status != 400 || !strings.Contains(string(r.Body), `"code":"invalid_argument"`) {
		t.Fatalf("reply %v %v", r, err)
	}
}

// Azure serves embeddings at the deployment's own path; the other
// providers refuse them.
func TestProviderEmbeddings(t *testing.T) {
	body := []byte(`{"model":"embed-prod","input":["one","two"]}`)
	for _, p := range protocols {
		up := protocolMock(t, config.Upstream{Name: p, Provider: config.Provider{Protocol: p}})
		r, err := up.Send(context.Background(), &Call{Endpoint: EndpointEmbeddings, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := api.ParseUsage(r.Body)
		switch {
		case p == config.TypeAzureOpenAI && (r.Status != 200 || strings.Count(string(r.Body), `"object":"embedding"`) != 2 || u.PromptTokens == 0):
			t.Errorf("azure embeddings: %d %s", r.Status, r.Body)
		case p != config.TypeAzureOpenAI && (r.Status != 404 || !strings.Contains(string(r.Body), "unsupported_endpoint")):
			t.Errorf("%s embeddings: %d %s", p, r.Status, r.Body)
		}
	}
}
