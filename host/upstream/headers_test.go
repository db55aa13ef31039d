package upstream

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// headerUpstream answers every call with status and the reply headers
// given, and hands the request's headers it received to seen.
func headerUpstream(t *testing.T, status int, reply map[string]string, seen chan<- *fasthttp.RequestHeader) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := &fasthttp.RequestHeader{}
		ctx.Request.Header.CopyTo(h)
		seen <- h
		for k, v := range reply {
			ctx.Response.Header.Set(k, v)
		}
		ctx.SetStatusCode(status)
		ctx.SetBodyString(`{"choices":[]}`)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/v1"
}

// The attacker's test: whatever the configuration lists and whatever the
// caller sends, the caller's credentials, cookies, hop-by-hop headers and
// Sluice's own headers never reach the upstream; the allowed ones do.
func TestCallerHeadersForwarded(t *testing.T) {
	seen := make(chan *fasthttp.RequestHeader, 1)
	base := headerUpstream(t, 200, nil, seen)
	// A configuration built in code skips validation: the adapter refuses
	// the same names itself.
	u := config.Upstream{Name: "t", Type: "openai", BaseURL: base, APIKey: "sk-upstream", Timeout: config.Duration(5 * time.Second), MaxConns: 4,
		ForwardHeaders: []string{"OpenAI-Organization", "OpenAI-Beta", "Authorization", "x-api-key", "Cookie", "Connection", "X-Sluice-Client",
			"Transfer-Encoding", "Host", "Content-Length"},
		Headers: map[string]string{"OpenAI-Project": "proj_fixed", "Authorization": "Bearer sk-other"}}
	o, err := NewOpenAI(u)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var caller fasthttp.RequestHeader
	for k, v := range map[string]string{"OpenAI-Organization": "org-1", "OpenAI-Beta": "assistants=v2", "OpenAI-Project": "proj_caller",
		"Authorization": "Bearer sk-sluice-caller", "x-api-key": "sk-sluice-caller", "Cookie": "session=1", "X-Sluice-Client": "someone",
		"anthropic-version": "2023-06-01"} {
		caller.Set(k, v)
	}
	r, err := o.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody), CallerHeaders: &caller})
	if err != nil || r.Status != 200 {
		t.Fatalf("send: %v %+v", err, r)
	}
	got := <-seen
	for name, want := range map[string]string{"OpenAI-Organization": "org-1", "OpenAI-Beta": "assistants=v2",
		"OpenAI-Project": "proj_fixed", "Authorization": "Bearer sk-upstream", "x-api-key": "", "Cookie": "", "X-Sluice-Client": "",
		"anthropic-version": ""} {
		if v := string(got.Peek(name)); v != want {
			t.Errorf("upstream got %s: %q, want %q", name, v, want)
		}
	}

	// The default list, with no configuration.
	o2 := newClient(t, base, 5*time.Second)
	if _, err := o2.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody), CallerHeaders: &caller}); err != nil {
		t.Fatal(err)
	}
	got = <-seen
	if string(got.Peek("anthropic-version")) != "2023-06-01" || string(got.Peek("OpenAI-Project")) != "proj_caller" ||
		string(got.Peek("Authorization")) != "" || len(got.Peek("Cookie")) != 0 {
		t.Errorf("default forwarding sent %s", got.Header())
	}
}

// Of a reply's headers only the provider's request id, its processing time
// and, on a 429 or 503, its Retry-After pass, and only in their shape.
func TestReplyHeaders(t *testing.T) {
	provider := map[string]string{"x-request-id": "req_abc123", "openai-processing-ms": "42", "retry-after": "3", "retry-after-ms": "2500",
		"set-cookie": "__cf_bm=secret", "x-ratelimit-remaining-requests": "5", "openai-organization": "org-provider"}
	cases := []struct {
		status int
		reply  map[string]string
		want   []Header
	}{
		{200, provider, []Header{{HeaderUpstreamRequestID, "req_abc123"}, {HeaderProcessingMS, "42"}}},
		{429, provider, []Header{{HeaderUpstreamRequestID, "req_abc123"}, {HeaderProcessingMS, "42"}, {HeaderRetryAfter, "3"}, {HeaderRetryAfterMS, "2500"}}},
		{503, map[string]string{"request-id": "req-anthropic-1", "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"},
			[]Header{{HeaderUpstreamRequestID, "req-anthropic-1"}, {HeaderRetryAfter, "Wed, 21 Oct 2026 07:28:00 GMT"}}},
		{429, map[string]string{"x-request-id": "req <script>", "openai-processing-ms": "Inf", "retry-after": "soon", "retry-after-ms": "-1"}, nil},
	}
	for _, tc := range cases {
		seen := make(chan *fasthttp.RequestHeader, 1)
		o := newClient(t, headerUpstream(t, tc.status, tc.reply, seen), 5*time.Second)
		r, err := o.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(chatBody)})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Headers) != len(tc.want) {
			t.Errorf("%d %v: headers %v, want %v", tc.status, tc.reply, r.Headers, tc.want)
			continue
		}
		for i := range tc.want {
			if r.Headers[i] != tc.want[i] {
				t.Errorf("%d: header %v, want %v", tc.status, r.Headers[i], tc.want[i])
			}
		}
	}
}
