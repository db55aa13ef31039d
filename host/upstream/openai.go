package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// OpenAI is an OpenAI-compatible HTTP upstream: OpenAI itself, Azure OpenAI's
// v1 API, vLLM, Ollama, LiteLLM, or Sluice's own mock server.
type OpenAI struct {
	client  *fasthttp.HostClient
	base    string // scheme://host/path without a trailing slash
	host    string
	auth    string // "Bearer <key>" or ""
	timeout time.Duration
}

// NewOpenAI returns a client for the upstream u.
func NewOpenAI(u config.Upstream) (*OpenAI, error) {
	parsed, err := url.Parse(u.BaseURL)
	if err != nil || parsed.Host == "" {
		return nil, fmt.Errorf("base_url %q is not a URL", u.BaseURL)
	}
	tls := parsed.Scheme == "https"
	addr := parsed.Host
	if parsed.Port() == "" {
		if tls {
			addr = net.JoinHostPort(parsed.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(parsed.Hostname(), "80")
		}
	}
	o := &OpenAI{
		client: &fasthttp.HostClient{
			Addr:               addr,
			IsTLS:              tls,
			MaxConns:           u.MaxConns,
			MaxConnWaitTimeout: 5 * time.Second,
			// Below the keep-alive of common servers (uvicorn: 5 s), so
			// that an idle connection is dropped here before there.
			MaxIdleConnDuration: 4 * time.Second,
			// A kept-alive connection the server closed while idle fails
			// before the request reached it: sending again is safe.
			RetryIfErr: func(_ *fasthttp.Request, attempts int, err error) (bool, bool) {
				return false, attempts < 2 && errors.Is(err, fasthttp.ErrConnectionClosed)
			},
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: false,
			MaxResponseBodySize:           64 << 20,
			// No ReadTimeout: it would cap a whole stream. The per-call
			// timeout below bounds the reply instead.
		},
		base:    strings.TrimRight(u.BaseURL, "/"),
		host:    parsed.Host,
		timeout: u.Timeout.D(),
	}
	if u.APIKey != "" {
		o.auth = "Bearer " + u.APIKey
	}
	return o, nil
}

// Send performs c. The upstream's timeout bounds the whole reply, a stream included.
func (o *OpenAI) Send(ctx context.Context, c *Call) (*Reply, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()

	req.SetRequestURI(o.base + c.Endpoint)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetHost(o.host)
	req.Header.SetContentType("application/json")
	if o.auth != "" {
		req.Header.Set("Authorization", o.auth)
	}
	if c.RequestID != "" {
		req.Header.Set("X-Request-Id", c.RequestID)
	}
	if c.Trace != nil {
		c.Trace(req.Header.Set)
	}
	if c.Stream {
		req.Header.Set("Accept", "text/event-stream")
		resp.StreamBody = true
	}
	req.SetBodyRaw(c.Body)

	timeout := o.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if err := o.client.DoTimeout(req, resp, timeout); err != nil {
		fasthttp.ReleaseResponse(resp)
		if errors.Is(err, fasthttp.ErrTimeout) {
			return nil, fmt.Errorf("%w after %s", ErrTimeout, timeout)
		}
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, err)
	}
	status := resp.StatusCode()
	if !c.Stream || status != fasthttp.StatusOK {
		body, err := readBody(resp)
		fasthttp.ReleaseResponse(resp)
		if err != nil {
			return nil, classify(err)
		}
		return &Reply{Status: status, Body: body}, nil
	}
	return &Reply{Status: status, Events: &httpEvents{resp: resp, sse: newSSEReader(resp.BodyStream())}}, nil
}

func readBody(resp *fasthttp.Response) ([]byte, error) {
	if resp.StreamBody && resp.BodyStream() != nil {
		b, err := io.ReadAll(io.LimitReader(resp.BodyStream(), 1<<20))
		resp.CloseBodyStream()
		return b, err
	}
	return append([]byte(nil), resp.Body()...), nil
}

func classify(err error) error {
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %s", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, err)
}

// Close releases idle connections.
func (o *OpenAI) Close() { o.client.CloseIdleConnections() }

type httpEvents struct {
	once sync.Once
	resp *fasthttp.Response
	sse  *sseReader
}

func (e *httpEvents) Next() ([]byte, error) {
	data, err := e.sse.next()
	if err != nil && err != io.EOF {
		return nil, classify(err)
	}
	return data, err
}

func (e *httpEvents) Close() {
	e.once.Do(func() {
		e.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(e.resp)
	})
}
