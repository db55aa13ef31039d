package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/translate"
)

// EndpointMessages is Anthropic's Messages endpoint, relative to its base URL
// (https://api.anthropic.com).
const EndpointMessages = "/v1/messages"

// Anthropic is an upstream that speaks Anthropic's Messages API. It takes
// the gateway's chat completions, sends them as Messages requests
// (x-api-key, anthropic-version), and turns the Messages, whole or
// streamed, back into chat completions whose usage is the provider's: what
// Sluice bills.
type Anthropic struct {
	http *httpClient
	key  string
	now  func() time.Time
	// stop releases what serves the upstream in process (the mock); nil
	// for a provider.
	stop func()
}

// NewAnthropic returns a client for the Anthropic upstream u.
func NewAnthropic(u config.Upstream) (*Anthropic, error) { return newAnthropic(u, nil) }

// newAnthropic is NewAnthropic dialing with dial (nil: the network).
func newAnthropic(u config.Upstream, dial fasthttp.DialFunc) (*Anthropic, error) {
	h, err := newHTTPClient(u, u.BaseURL, dial)
	if err != nil {
		return nil, err
	}
	return &Anthropic{http: h, key: u.APIKey, now: time.Now}, nil
}

// authorize sends the key as x-api-key, and the version of the Messages
// API the translation speaks (whatever version a caller asked for).
func (a *Anthropic) authorize(_ context.Context, req *fasthttp.Request, _ bool) error {
	req.Header.Set("x-api-key", a.key)
	req.Header.Set("anthropic-version", translate.AnthropicVersion)
	return nil
}

// Send translates c, a chat completion, into a Messages request and its
// reply back. A chat completion the Messages API cannot carry is answered
// with the 400 that names the parameter, as an upstream's refusal.
func (a *Anthropic) Send(ctx context.Context, c *Call) (*Reply, error) {
	if c.Endpoint != EndpointChat {
		return mockError(http.StatusNotFound, "an Anthropic upstream serves chat completions only"), nil
	}
	body, aerr := translate.ChatToMessages(c.Body)
	if aerr != nil {
		return &Reply{Status: aerr.Status, Body: aerr.Body()}, nil
	}
	reply, err := sendOpenAI(ctx, a.http, &Call{Endpoint: EndpointMessages, Body: body, Stream: c.Stream, RequestID: c.RequestID,
		Trace: c.Trace, CallerHeaders: c.CallerHeaders, Timeout: c.Timeout, FirstByteTimeout: c.FirstByteTimeout}, EndpointMessages, a)
	if err != nil {
		return nil, err
	}
	if reply.Status != http.StatusOK {
		if reply.Events != nil {
			reply.Events.Close()
		}
		return &Reply{Status: reply.Status, Body: translate.ChatError(reply.Status, reply.Body), Headers: reply.Headers}, nil
	}
	if reply.Events != nil {
		return &Reply{Status: reply.Status, Events: &anthropicEvents{in: reply.Events, out: translate.NewChatStream(a.now().Unix())}, Headers: reply.Headers}, nil
	}
	chat, err := translate.MessageToChat(reply.Body, a.now().Unix())
	if err != nil {
		return &Reply{Status: http.StatusBadGateway, Body: mockError(http.StatusBadGateway, "the Anthropic upstream's reply could not be read").Body}, nil
	}
	return &Reply{Status: reply.Status, Body: chat, Headers: reply.Headers}, nil
}

// Close releases idle connections, and the in-process server of a mock.
func (a *Anthropic) Close() {
	a.http.Close()
	if a.stop != nil {
		a.stop()
	}
}

// anthropicEvents reads a streamed Message as the chunks of a chat
// completion.
type anthropicEvents struct {
	in    Events
	out   *translate.ChatStream
	queue [][]byte
}

func (e *anthropicEvents) Next() ([]byte, error) {
	for len(e.queue) == 0 {
		if e.out.Done() {
			return nil, io.EOF
		}
		data, err := e.in.Next()
		if err == io.EOF {
			// Anthropic ends every stream with message_stop: without it the
			// reply was cut, and its usage never came.
			return nil, fmt.Errorf("%w: the stream ended before message_stop", ErrUnavailable)
		}
		if err != nil {
			return nil, err
		}
		chunks, err := e.out.Event(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrUnavailable, err)
		}
		e.queue = chunks
	}
	next := e.queue[0]
	e.queue = e.queue[1:]
	return next, nil
}

func (e *anthropicEvents) Close() { e.in.Close() }

func (e *anthropicEvents) Abort() { e.in.Abort() }
