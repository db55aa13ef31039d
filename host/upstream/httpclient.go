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

// DefaultConnectTimeout bounds opening a connection to an upstream whose
// connect_timeout is not set.
const DefaultConnectTimeout = 10 * time.Second

// httpClient is the HTTP side every provider adapter shares: the
// connection pool, the per-call timeout and idle timeout, and the ending of
// a call whose caller went away.
type httpClient struct {
	client  *fasthttp.HostClient
	base    string // scheme://host/path without a trailing slash
	host    string
	timeout time.Duration
	// firstByte bounds the wait for a reply's first byte; 0: timeout alone.
	firstByte time.Duration
	// forward names the caller headers passed on; fixed are set on every
	// call (values never logged).
	forward []string
	fixed   [][2]string
}

// dialer dials an upstream's connections as idleConns; dial is the
// network's dialer (fasthttp.Dial, or an in-memory listener's for the
// built-in provider mocks).
func dialer(dial fasthttp.DialFunc, idle time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := dial(addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, idle: idle}, nil
	}
}

// newHTTPClient returns a client for the upstream u at baseURL, dialing
// with dial (nil: the network).
func newHTTPClient(u config.Upstream, baseURL string, dial fasthttp.DialFunc) (*httpClient, error) {
	parsed, err := url.Parse(baseURL)
	if err != nil || parsed.Host == "" {
		return nil, fmt.Errorf("base_url %q is not a URL", baseURL)
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
	if dial == nil {
		connect := u.ConnectTimeout.D()
		if connect <= 0 {
			connect = DefaultConnectTimeout
		}
		dial = func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, connect) }
	}
	return &httpClient{
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
			// A path segment such as a Bedrock model id escapes ':' and
			// '/': sent as given, it is the path that was signed.
			DisablePathNormalizing:        true,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: false,
			MaxResponseBodySize:           64 << 20,
			// No ReadTimeout: it would cap a whole stream. The per-call
			// timeout bounds the reply instead, and the idle timeout a
			// reply that stalls once begun.
			Dial:      dialer(dial, u.IdleTimeout.D()),
			Transport: transport{},
		},
		base:      strings.TrimRight(baseURL, "/"),
		host:      parsed.Host,
		timeout:   u.Timeout.D(),
		firstByte: u.FirstByteTimeout.D(),
		forward:   forwardList(u),
		fixed:     fixedHeaders(u),
	}, nil
}

// authorizer sets a request's credentials: a key header, or a signature
// of the whole request, once every other header is set.
type authorizer interface {
	authorize(ctx context.Context, req *fasthttp.Request, stream bool) error
}

// httpReply is an upstream's HTTP answer: its status, and either its whole
// body or, for a successful stream, the open body.
type httpReply struct {
	status int
	body   []byte
	stream *httpBody
	// headers are the reply headers passed on to the caller.
	headers []Header
	// awsError is the error an AWS service names in its reply's
	// X-Amzn-ErrorType header, such as ThrottlingException.
	awsError string
}

// post sends a POST of body to the URI base+path, authorized by auth
// (whose error fails the call as ErrUnavailable). The upstream's timeout bounds the whole reply, a
// stream included; its idle timeout, a silence once the reply has begun.
// When ctx is cancelled before the reply's headers, the call is ended and
// its connection closed, and post returns ErrCancelled.
func (h *httpClient) post(ctx context.Context, c *Call, path string, body []byte, auth authorizer) (httpReply, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()

	req.SetRequestURI(h.base + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetHost(h.host)
	req.Header.SetContentType("application/json")
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
	req.SetBodyRaw(body)
	setCallHeaders(req, c.CallerHeaders, h.forward, h.fixed)
	if err := auth.authorize(ctx, req, c.Stream); err != nil {
		fasthttp.ReleaseResponse(resp)
		return httpReply{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}

	timeout, firstByte := h.timeout, h.firstByte
	if c.Timeout > 0 && c.Timeout < timeout {
		timeout = c.Timeout
	}
	if c.FirstByteTimeout > 0 && (firstByte == 0 || c.FirstByteTimeout < firstByte) {
		firstByte = c.FirstByteTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	call := &callState{deadline: time.Now().Add(timeout)}
	if firstByte > 0 {
		call.firstByte = time.Now().Add(firstByte)
	}
	req.SetUserValue(callKey{}, call)
	stop := func() bool { return false }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, call.cancel)
	}
	err := h.client.DoTimeout(req, resp, timeout)
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
			return httpReply{}, fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
		case errors.Is(err, fasthttp.ErrTimeout):
			return httpReply{}, fmt.Errorf("%w after %s", ErrTimeout, timeout)
		}
		return httpReply{}, fmt.Errorf("%w: %s", ErrUnavailable, err)
	}
	status := resp.StatusCode()
	headers := replyHeaders(resp)
	b := &httpBody{resp: resp, release: call.release, call: call}
	if !c.Stream || status != fasthttp.StatusOK {
		awsError, _, _ := strings.Cut(string(resp.Header.Peek("X-Amzn-Errortype")), ":")
		whole, err := readBody(b)
		if err != nil {
			return httpReply{}, classify(err)
		}
		return httpReply{status: status, body: whole, headers: headers, awsError: awsError}, nil
	}
	return httpReply{status: status, stream: b, headers: headers}, nil
}

// readBody reads a whole reply (an error a stream was asked for, at most
// 1 MiB of it) and releases it.
func readBody(b *httpBody) ([]byte, error) {
	defer b.Close()
	if b.resp.StreamBody && b.resp.BodyStream() != nil {
		return io.ReadAll(io.LimitReader(b, 1<<20))
	}
	return append([]byte(nil), b.resp.Body()...), nil
}

func classify(err error) error {
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %s", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, err)
}

// Close releases idle connections.
func (h *httpClient) Close() { h.client.CloseIdleConnections() }

// httpBody is a streamed reply's body and the connection it holds until
// Close. Each provider reads its own framing from it: Server-Sent Events or
// AWS event-stream messages.
type httpBody struct {
	once    sync.Once
	resp    *fasthttp.Response
	release func(reuse bool) // nil when the body was read whole
	// ended is set when the body was read to its end without error: only
	// then may the connection carry another call.
	ended bool
	// call is the call the stream belongs to; Abort cancels it, which
	// closes its connection under a read in progress.
	call    *callState
	aborted atomic.Bool
}

func (b *httpBody) Abort() {
	b.aborted.Store(true)
	if b.call != nil {
		b.call.cancel()
	}
}

// Read reads the body stream.
func (b *httpBody) Read(p []byte) (int, error) {
	n, err := b.resp.BodyStream().Read(p)
	if err == io.EOF {
		b.ended = true
	}
	return n, err
}

// fail is the error a read of the body failed with, as Events.Next words it.
func (b *httpBody) fail(err error) error {
	if b.aborted.Load() {
		return ErrAborted
	}
	return classify(err)
}

func (b *httpBody) Close() {
	b.once.Do(func() {
		b.resp.CloseBodyStream()
		if b.release != nil {
			b.release(b.ended)
		}
		fasthttp.ReleaseResponse(b.resp)
	})
}

// sseEvents is a Server-Sent Events stream read from an httpBody.
type sseEvents struct {
	*httpBody
	sse *sseReader
}

func newSSEEvents(b *httpBody) *sseEvents { return &sseEvents{httpBody: b, sse: newSSEReader(b)} }

func (e *sseEvents) Next() ([]byte, error) {
	if e.aborted.Load() {
		return nil, ErrAborted
	}
	data, err := e.sse.next()
	if err != nil && err != io.EOF {
		return nil, e.fail(err)
	}
	return data, err
}

// translatedEvents is a provider's stream read as chat chunks: read
// returns the chunks of the next provider event or events (and io.EOF with
// the last ones).
type translatedEvents struct {
	body    *httpBody
	read    func() ([][]byte, error)
	pending [][]byte
	done    bool
}

func (e *translatedEvents) Next() ([]byte, error) {
	for len(e.pending) == 0 {
		if e.done {
			return nil, io.EOF
		}
		if e.body.aborted.Load() {
			return nil, ErrAborted
		}
		batch, err := e.read()
		if err == io.EOF {
			e.done = true
		} else if err != nil {
			return nil, err
		}
		e.pending = batch
	}
	data := e.pending[0]
	e.pending = e.pending[1:]
	return data, nil
}

func (e *translatedEvents) Abort() { e.body.Abort() }

func (e *translatedEvents) Close() { e.body.Close() }

var (
	_ authorizer = (*OpenAI)(nil)
	_ authorizer = (*Azure)(nil)
	_ authorizer = (*Bedrock)(nil)
	_ authorizer = (*Gemini)(nil)
)
