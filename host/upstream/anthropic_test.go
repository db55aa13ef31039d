package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/translate"
)

// anthropicSDK is Anthropic's own SDK pointed at the Anthropic-protocol
// mock, served in memory.
func anthropicSDK(t *testing.T, key string) anthropic.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: MockAnthropicHandler(NewMock(0), "k1")}
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	hc := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}}
	return anthropic.NewClient(aoption.WithBaseURL("http://mock"), aoption.WithAPIKey(key), aoption.WithHTTPClient(hc),
		aoption.WithMaxRetries(0), aoption.WithHeader("anthropic-version", translate.AnthropicVersion))
}

func sdkParams(text string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{Model: "claude-x", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}}
}

// The mock speaks Anthropic's protocol as Anthropic's SDK reads it: a
// Message, a stream of its events, and errors.
func TestAnthropicMockSpeaksAnthropic(t *testing.T) {
	c := anthropicSDK(t, "k1")
	msg, err := c.Messages.New(context.Background(), sdkParams("hello there"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != MockReplyPrefix+"hello there" || msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.InputTokens == 0 ||
		msg.Usage.OutputTokens == 0 || msg.Model != "claude-x" {
		t.Fatalf("message %+v", msg)
	}
	s := c.Messages.NewStreaming(context.Background(), sdkParams("stream please"))
	var acc anthropic.Message
	for s.Next() {
		if err := acc.Accumulate(s.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil || acc.Content[0].Text != MockReplyPrefix+"stream please" || acc.Usage.OutputTokens == 0 {
		t.Fatalf("streamed %+v (%v)", acc, err)
	}
	_, err = c.Messages.New(context.Background(), sdkParams(MockStatusMarker+"529"))
	var e *anthropic.Error
	if !errors.As(err, &e) || e.StatusCode != 529 || e.Type() != "overloaded_error" {
		t.Fatalf("asked for 529: %v", err)
	}
	bad := anthropicSDK(t, "wrong")
	_, err = bad.Messages.New(context.Background(), sdkParams("hi"))
	if !errors.As(err, &e) || e.StatusCode != 401 || e.Type() != "authentication_error" {
		t.Fatalf("wrong key: %v", err)
	}
}

// recordingAnthropic is the Anthropic-protocol mock on loopback, keeping
// the path and headers of each request.
type recordingAnthropic struct {
	mu      sync.Mutex
	headers []string
	bodies  []string
}

func serveAnthropic(t *testing.T) (string, *recordingAnthropic) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingAnthropic{}
	mock := MockAnthropicHandler(NewMock(0), "sk-ant-test")
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r.mu.Lock()
		r.headers = append(r.headers, string(ctx.Path())+" "+string(ctx.Request.Header.Peek("x-api-key"))+" "+
			string(ctx.Request.Header.Peek("anthropic-version"))+" "+string(ctx.Request.Header.Peek("Authorization")))
		r.bodies = append(r.bodies, string(ctx.PostBody()))
		r.mu.Unlock()
		mock(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String(), r
}

// The adapter sends a Messages request with Anthropic's headers and no
// bearer token, and answers with a chat completion carrying the
// provider's usage, whole and streamed.
func TestAnthropicAdapter(t *testing.T) {
	base, rec := serveAnthropic(t)
	a, err := NewAnthropic(config.Upstream{Name: "claude", Type: "anthropic", BaseURL: base, APIKey: "sk-ant-test",
		Timeout: config.Duration(5 * time.Second), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	r, err := a.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody)})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := api.ParseUsage(r.Body)
	if r.Status != 200 || !strings.Contains(string(r.Body), MockReplyPrefix+"hello there world") || !ok || u.PromptTokens == 0 || u.CompletionTokens == 0 {
		t.Fatalf("reply %d %s", r.Status, r.Body)
	}
	if got := rec.headers[0]; got != "/v1/messages sk-ant-test 2023-06-01 " {
		t.Fatalf("request line %q", got)
	}
	if !strings.Contains(rec.bodies[0], `"system":"be brief"`) || !strings.Contains(rec.bodies[0], `"max_tokens":4096`) {
		t.Fatalf("sent %s", rec.bodies[0])
	}

	body := strings.Replace(chatBody, `{"model"`, `{"stream":true,"stream_options":{"include_usage":true},"model"`, 1)
	r, err = a.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body), Stream: true})
	if err != nil || r.Events == nil {
		t.Fatalf("stream: %v %+v", err, r)
	}
	defer r.Events.Close()
	var text strings.Builder
	var usage api.Usage
	for {
		data, err := r.Events.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, ok := api.ParseStreamChunk(data)
		if !ok {
			t.Fatalf("not a chunk: %s", data)
		}
		text.WriteString(c.Content)
		if c.HasUsage {
			usage = c.Usage
		}
	}
	if text.String() != MockReplyPrefix+"hello there world" || usage.PromptTokens == 0 || usage.CompletionTokens == 0 {
		t.Fatalf("streamed %q %+v", text.String(), usage)
	}

	// The provider's refusal keeps its status, not its words.
	r, err = a.Send(context.Background(), &Call{Endpoint: EndpointChat,
		Body: []byte(`{"model":"m","messages":[{"role":"user","content":"` + MockStatusMarker + `429 my secret"}]}`)})
	if err != nil || r.Status != 429 || strings.Contains(string(r.Body), "secret") || !strings.Contains(string(r.Body), api.TypeRateLimit) {
		t.Fatalf("429: %v %d %s", err, r.Status, r.Body)
	}
	// A chat completion a Messages request cannot carry never leaves.
	sent := len(rec.bodies)
	r, _ = a.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(`{"model":"m","n":3,"messages":[{"role":"user","content":"x"}]}`)})
	if r.Status != 400 || !strings.Contains(string(r.Body), `"param":"n"`) || len(rec.bodies) != sent {
		t.Fatalf("n=3: %d %s", r.Status, r.Body)
	}
	r, _ = a.Send(context.Background(), &Call{Endpoint: EndpointEmbeddings, Body: []byte(`{"model":"m","input":"x"}`)})
	if r.Status != 404 {
		t.Fatalf("embeddings: %d", r.Status)
	}
}

func TestRouterBuildsAnthropicUpstreams(t *testing.T) {
	cfg := &config.Config{
		Upstreams: []config.Upstream{{Name: "claude", Type: "anthropic", BaseURL: "https://api.anthropic.com", APIKey: "k"},
			{Name: "claude-mock", Type: "mock", Provider: config.Provider{Protocol: "anthropic"}, Timeout: config.Duration(5 * time.Second), MaxConns: 2}},
		Models: []config.Model{{Name: "c", Upstream: "claude", UpstreamModel: "c"}, {Name: "m", Upstream: "claude-mock", UpstreamModel: "m"}},
	}
	r, err := NewRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tg, _ := r.Route("m")
	if _, ok := tg.Upstream.(*Anthropic); !ok {
		t.Fatalf("the anthropic mock is a %T, not the adapter", tg.Upstream)
	}
	reply, err := tg.Upstream.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody)})
	if err != nil || reply.Status != 200 || !strings.Contains(string(reply.Body), MockReplyPrefix) {
		t.Fatalf("%v %+v", err, reply)
	}
}

// A stream that ends without message_stop was cut: the reader says so
// rather than end it as if it were whole.
func TestAnthropicStreamCutShort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3}}}\n\n" +
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n")
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	a, err := NewAnthropic(config.Upstream{Name: "c", Type: "anthropic", BaseURL: "http://" + ln.Addr().String(), APIKey: "k",
		Timeout: config.Duration(5 * time.Second), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	r, err := a.Send(context.Background(), &Call{Endpoint: EndpointChat, Stream: true,
		Body: []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)})
	if err != nil || r.Events == nil {
		t.Fatalf("%v %+v", err, r)
	}
	defer r.Events.Close()
	for {
		_, err := r.Events.Next()
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a cut stream ended with %v", err)
		}
		break
	}
}
