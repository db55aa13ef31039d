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
	"sync/atomic"
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
	// headers are set on every call, after the others: a provider's own
	// authentication and version headers.
	headers [][2]string
}

// dialer dials an upstream's connections as idleConns.
func dialer(idle time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := fasthttp.Dial(addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, idle: idle}, nil
	}
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
			// timeout bounds the reply instead, and the idle timeout a
			// reply that stalls once begun.
			Dial:      dialer(u.IdleTimeout.D()),
			Transport: transport{},
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

// Send performs c. The upstream's timeout bounds the whole reply, a stream
// included; its idle timeout, a silence once the reply has begun. When ctx
// is cancelled before the reply's headers, the call is ended and its
// connection closed, and Send returns ErrCancelled.
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
	for _, h := range o.headers {
		req.Header.Set(h[0], h[1])
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
	call := &callState{deadline: time.Now().Add(timeout)}
	req.SetUserValue(callKey{}, call)
	stop := func() bool { return false }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, call.cancel)
	}
	err := o.client.DoTimeout(req, resp, timeout)
	stop()
	if err == nil && call.isCancelled() {
		// Cancelled between the reply's headers and here.
		if call.release != nil {
			resp.CloseBodyStream()
			call.release(false)
		}
		err = errCancelled
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		switch {
		case errors.Is(err, errCancelled):
			return nil, fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
		case errors.Is(err, fasthttp.ErrTimeout):
			return nil, fmt.Errorf("%w after %s", ErrTimeout, timeout)
		}
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, err)
	}
	status := resp.StatusCode()
	events := &httpEvents{resp: resp, release: call.release, call: call}
	if !c.Stream || status != fasthttp.StatusOK {
		body, err := readBody(events)
		if err != nil {
			return nil, classify(err)
		}
		return &Reply{Status: status, Body: body}, nil
	}
	events.sse = newSSEReader(events)
	return &Reply{Status: status, Events: events}, nil
}

// readBody reads a whole reply (an error a stream was asked for, at most
// 1 MiB of it) and releases it.
func readBody(e *httpEvents) ([]byte, error) {
	defer e.Close()
	if e.resp.StreamBody && e.resp.BodyStream() != nil {
		return io.ReadAll(io.LimitReader(e, 1<<20))
	}
	return append([]byte(nil), e.resp.Body()...), nil
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

// httpEvents is a streamed reply: its body, read as events, and the
// connection it holds until Close.
type httpEvents struct {
	once    sync.Once
	resp    *fasthttp.Response
	release func(reuse bool) // nil when the body was read whole
	sse     *sseReader
	// ended is set when the body was read to its end without error: only
	// then may the connection carry another call.
	ended bool
	// call is the call the stream belongs to; Abort cancels it, which
	// closes its connection under a Next in progress.
	call    *callState
	aborted atomic.Bool
}

func (e *httpEvents) Abort() {
	e.aborted.Store(true)
	if e.call != nil {
		e.call.cancel()
	}
}

// Read reads the body stream.
func (e *httpEvents) Read(p []byte) (int, error) {
	n, err := e.resp.BodyStream().Read(p)
	if err == io.EOF {
		e.ended = true
	}
	return n, err
}

func (e *httpEvents) Next() ([]byte, error) {
	if e.aborted.Load() {
		return nil, ErrAborted
	}
	data, err := e.sse.next()
	if err != nil && err != io.EOF {
		if e.aborted.Load() {
			return nil, ErrAborted
		}
		return nil, classify(err)
	}
	return data, err
}

func (e *httpEvents) Close() {
	e.once.Do(func() {
		e.resp.CloseBodyStream()
		if e.release != nil {
			e.release(e.ended)
		}
		fasthttp.ReleaseResponse(e.resp)
	})
}
