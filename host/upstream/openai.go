package upstream

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// OpenAI is an OpenAI-compatible HTTP upstream: OpenAI itself, Azure OpenAI's
// v1 API, vLLM, Ollama, LiteLLM, or Sluice's own mock server.
type OpenAI struct {
	http *httpClient
	auth string // "Bearer <key>" or ""
}

// NewOpenAI returns a client for the upstream u.
func NewOpenAI(u config.Upstream) (*OpenAI, error) {
	h, err := newHTTPClient(u, u.BaseURL, nil)
	if err != nil {
		return nil, err
	}
	o := &OpenAI{http: h}
	if u.APIKey != "" {
		o.auth = "Bearer " + u.APIKey
	}
	return o, nil
}

// Send performs c. The upstream's timeout bounds the whole reply, a stream
// included; its idle timeout, a silence once the reply has begun. When ctx
// is cancelled before the reply's headers, the call is ended and its
// connection closed, and Send returns ErrCancelled.
func (o *OpenAI) Send(ctx context.Context, c *Call) (*Reply, error) {
	return sendOpenAI(ctx, o.http, c, c.Endpoint, o)
}

func (o *OpenAI) authorize(_ context.Context, req *fasthttp.Request, _ bool) error {
	if o.auth != "" {
		req.Header.Set("Authorization", o.auth)
	}
	return nil
}

// sendOpenAI posts an OpenAI-shaped call to path and reads a stream as
// Server-Sent Events.
func sendOpenAI(ctx context.Context, h *httpClient, c *Call, path string, auth authorizer) (*Reply, error) {
	r, err := h.post(ctx, c, path, c.Body, auth)
	if err != nil {
		return nil, err
	}
	if r.stream == nil {
		return &Reply{Status: r.status, Body: r.body, Headers: r.headers}, nil
	}
	return &Reply{Status: r.status, Events: newSSEEvents(r.stream), Headers: r.headers}, nil
}

// Close releases idle connections.
func (o *OpenAI) Close() { o.http.Close() }

var _ Upstream = (*OpenAI)(nil)
