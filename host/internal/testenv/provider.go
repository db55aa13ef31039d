package testenv

import (
	"encoding/json"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/upstream"
)

// Provider is an OpenAI-compatible model provider on a real socket whose
// health a test switches: while FailWith is set it answers every call with
// that status, otherwise it answers as the built-in mock does. It counts
// the calls it gets and the tokens its replies report.
type Provider struct {
	Addr     string
	FailWith atomic.Int32
	// Failures, once Counted is set, is how many calls still fail with
	// FailWith; RetryAfter (a string) is sent with each failure.
	Counted    atomic.Bool
	Failures   atomic.Int32
	RetryAfter atomic.Value
	Hits       atomic.Int64
	// Tokens adds up the usage.total_tokens of the replies it sent.
	Tokens atomic.Int64
	// Delay holds every answer back this long (nanoseconds).
	Delay atomic.Int64
}

// NewProvider starts a Provider for the test's lifetime.
func NewProvider(t testing.TB) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{Addr: ln.Addr().String()}
	mock := upstream.MockHandler(upstream.NewMock(0), []string{"x"})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		p.Hits.Add(1)
		time.Sleep(time.Duration(p.Delay.Load()))
		if status := int(p.FailWith.Load()); status != 0 && (!p.Counted.Load() || p.Failures.Add(-1) >= 0) {
			if ra, _ := p.RetryAfter.Load().(string); ra != "" {
				ctx.Response.Header.Set("Retry-After", ra)
			}
			ctx.SetStatusCode(status)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":{"message":"provider trouble","type":"server_error","code":null}}`)
			return
		}
		mock(ctx)
		var reply struct {
			Usage struct {
				TotalTokens int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(ctx.Response.Body(), &reply) == nil {
			p.Tokens.Add(reply.Usage.TotalTokens)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return p
}

// Upstream is an upstream of type openai named name, calling p.
func (p *Provider) Upstream(name string) config.Upstream {
	return config.Upstream{Name: name, Type: "openai", BaseURL: "http://" + p.Addr + "/v1",
		Timeout: config.Duration(5 * time.Second), IdleTimeout: config.Duration(5 * time.Second), MaxConns: 16}
}
