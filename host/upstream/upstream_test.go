package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/config"
)

// serveMock serves the mock over loopback and returns its base URL.
func serveMock(t *testing.T, latency time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: MockHandler(NewMock(latency), []string{"m1"})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/v1"
}

func newClient(t *testing.T, base string, timeout time.Duration) *OpenAI {
	t.Helper()
	o, err := NewOpenAI(config.Upstream{Name: "t", Type: "openai", BaseURL: base, Timeout: config.Duration(timeout), MaxConns: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

const chatBody = `{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}]}`

func TestOpenAIChatOverHTTP(t *testing.T) {
	o := newClient(t, serveMock(t, 0), 5*time.Second)
	r, err := o.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || !strings.Contains(string(r.Body), MockReplyPrefix+"hello there world") {
		t.Fatalf("reply %d %s", r.Status, r.Body)
	}
	u, ok := api.ParseUsage(r.Body)
	if !ok || u.PromptTokens == 0 || u.CompletionTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Fatalf("usage %+v, %v", u, ok)
	}
}

func TestOpenAIStreamOverHTTP(t *testing.T) {
	o := newClient(t, serveMock(t, 0), 5*time.Second)
	body := strings.Replace(chatBody, `{"model"`, `{"stream":true,"stream_options":{"include_usage":true},"model"`, 1)
	r, err := o.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(body), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Events == nil {
		t.Fatalf("no stream: %d %s", r.Status, r.Body)
	}
	defer r.Events.Close()
	var text strings.Builder
	var usage api.Usage
	n := 0
	for {
		data, err := r.Events.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		c, ok := api.ParseStreamChunk(data)
		if !ok {
			t.Fatalf("unreadable chunk %s", data)
		}
		text.WriteString(c.Content)
		if c.HasUsage {
			usage = c.Usage
			if !c.NoChoices {
				t.Fatal("the usage chunk must have empty choices")
			}
		}
	}
	if text.String() != MockReplyPrefix+"hello there world" {
		t.Fatalf("streamed text %q", text.String())
	}
	if n < 5 || usage.CompletionTokens == 0 {
		t.Fatalf("%d events, usage %+v", n, usage)
	}
}

func TestMaxTokensCutsReply(t *testing.T) {
	m := NewMock(0)
	r, _ := m.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(`{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"one two three four five six"}]}`)})
	u, _ := api.ParseUsage(r.Body)
	if u.CompletionTokens > 3 || !strings.Contains(string(r.Body), `"finish_reason":"length"`) {
		t.Fatalf("usage %+v body %s", u, r.Body)
	}
}

func TestUpstreamErrorsArePassedBack(t *testing.T) {
	o := newClient(t, serveMock(t, 0), 5*time.Second)
	r, err := o.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(`{"model":"m1","messages":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 400 || !strings.Contains(string(r.Body), "messages must not be empty") {
		t.Fatalf("reply %d %s", r.Status, r.Body)
	}
}

func TestDeadAndSlowUpstreams(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	_, err := newClient(t, dead, time.Second).Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody)})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("dead upstream: err = %v, want ErrUnavailable", err)
	}
	_, err = newClient(t, serveMock(t, 2*time.Second), 100*time.Millisecond).Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody)})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow upstream: err = %v, want ErrTimeout", err)
	}
}

func TestEmbeddingsAreDeterministic(t *testing.T) {
	m := NewMock(0)
	body := []byte(`{"model":"e","input":["a","b"]}`)
	r1, _ := m.Send(context.Background(), &Call{Endpoint: EndpointEmbeddings, Body: body})
	r2, _ := m.Send(context.Background(), &Call{Endpoint: EndpointEmbeddings, Body: body})
	if r1.Status != 200 || string(r1.Body) != string(r2.Body) || strings.Count(string(r1.Body), `"embedding"`) != 4 {
		t.Fatalf("embeddings %d %s", r1.Status, r1.Body)
	}
}

func TestSSEReader(t *testing.T) {
	in := ": comment\n\ndata: {\"a\":1}\n\nevent: x\ndata: line1\ndata: line2\n\r\ndata: [DONE]\n\ndata: after\n\n"
	r := newSSEReader(strings.NewReader(in))
	var got []string
	for {
		d, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d))
	}
	want := []string{`{"a":1}`, "line1\nline2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestRouter(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if tg, ok := r.Route("gpt-4o-mini"); !ok || tg.Model.UpstreamModel != "gpt-4o-mini" {
		t.Fatalf("route = %+v, %v", tg, ok)
	}
	if _, ok := r.Route("nope"); ok {
		t.Fatal("unknown model routed")
	}
}
