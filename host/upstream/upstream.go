// Package upstream sends requests to the model providers: any OpenAI-compatible
// server over HTTP, Azure OpenAI, Amazon Bedrock, Google Gemini, or the
// built-in mock (which can speak each provider's wire protocol). The router maps Sluice's public model
// names to an upstream and the model name it knows.
package upstream

import (
	"time"

	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/host/config"
)

// Endpoints an upstream serves, relative to its base URL.
const (
	EndpointChat       = "/chat/completions"
	EndpointEmbeddings = "/embeddings"
)

// Call is one request to an upstream.
type Call struct {
	Endpoint  string // EndpointChat or EndpointEmbeddings
	Body      []byte // the JSON body, model already renamed for the upstream
	Stream    bool
	RequestID string
	// Timeout and FirstByteTimeout, when above 0 and shorter than the
	// upstream's own, bound this call (the model's timeouts).
	Timeout, FirstByteTimeout time.Duration
	// Trace, when set, writes the trace context headers (traceparent,
	// tracestate) of the upstream call through set.
	Trace func(set func(name, value string))
	// CallerHeaders are the caller's request headers, of which an HTTP
	// upstream forwards those its forward_headers list; nil: none. They
	// are read only during Send.
	CallerHeaders HeaderSource
}

// HeaderSource looks up a request header by name; *fasthttp.RequestHeader
// is one.
type HeaderSource interface {
	Peek(name string) []byte
}

// Header is one response header the caller gets from an upstream's reply,
// under the name the caller sees.
type Header struct{ Name, Value string }

// Reply is an upstream's answer. For a successful stream, Events is set and
// Body is empty; otherwise Body holds the whole reply (or the upstream's error).
type Reply struct {
	Status int
	Body   []byte
	Events Events
	// Headers are what the caller gets of the reply's headers (see
	// replyHeaders): the provider's request id, its processing time, and
	// the wait it asks for when it refuses for load.
	Headers []Header
}

// Events reads a Server-Sent Events stream one event at a time.
type Events interface {
	// Next returns the data of the next event. It returns io.EOF after the
	// final "[DONE]" event or at the end of the stream.
	Next() ([]byte, error)
	// Close releases the connection; it is safe to call more than once.
	Close()
	// Abort ends the stream from another goroutine: a Next in progress
	// returns ErrAborted at once, and so does every later one. The reader
	// still calls Close. Sluice aborts the streams still open at the
	// shutdown deadline, to record them before it exits.
	Abort()
}

// Upstream is one model provider.
type Upstream interface {
	// Send performs the call. A non-nil error means no reply was had: the
	// connection failed (ErrUnavailable), the upstream was too slow
	// (ErrTimeout), or ctx was cancelled first (ErrCancelled).
	Send(ctx context.Context, c *Call) (*Reply, error)
	// Close releases idle connections.
	Close()
}

// Errors Send may wrap.
var (
	ErrTimeout     = errors.New("upstream timed out")
	ErrUnavailable = errors.New("upstream unavailable")
	// ErrCancelled: the context was cancelled (the caller went away) before
	// the upstream answered; the call was ended.
	ErrCancelled = errors.New("upstream call cancelled")
	// ErrAborted: Events.Abort ended the stream.
	ErrAborted = errors.New("upstream stream aborted")
)

// Target is where one public model is served.
type Target struct {
	Model    config.Model
	Upstream Upstream
}

// Router maps public model names to targets.
type Router struct {
	targets   map[string]Target
	upstreams []Upstream
	byName    map[string]Upstream
	models    []string
}

// NewRouter builds the upstreams and model routes of a configuration.
func NewRouter(cfg *config.Config) (*Router, error) {
	byName := map[string]Upstream{}
	r := &Router{targets: map[string]Target{}}
	for _, u := range cfg.Upstreams {
		var up Upstream
		var err error
		switch u.Type {
		case config.TypeMock:
			up, err = newMock(u)
		case config.TypeOpenAI:
			up, err = NewOpenAI(u)
		case config.TypeAzureOpenAI:
			up, err = NewAzure(u, nil)
		case config.TypeBedrock:
			up, err = NewBedrock(u, nil)
		case config.TypeGemini:
			up, err = NewGemini(u, nil)
		case config.TypeAnthropic:
			up, err = NewAnthropic(u)
		default:
			err = fmt.Errorf("unknown type %q", u.Type)
		}
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		byName[u.Name] = up
		r.upstreams = append(r.upstreams, up)
	}
	r.byName = byName
	for _, m := range cfg.Models {
		up, ok := byName[m.Upstream]
		if !ok {
			r.Close()
			return nil, fmt.Errorf("model %q: unknown upstream %q", m.Name, m.Upstream)
		}
		r.targets[m.Name] = Target{Model: m, Upstream: up}
		r.models = append(r.models, m.Name)
	}
	return r, nil
}

// Route returns the target serving a public model name.
func (r *Router) Route(model string) (Target, bool) {
	t, ok := r.targets[model]
	return t, ok
}

// Upstream returns the upstream of a name.
func (r *Router) Upstream(name string) (Upstream, bool) {
	u, ok := r.byName[name]
	return u, ok
}

// Models lists the public model names in configuration order.
func (r *Router) Models() []string { return r.models }

// Close releases every upstream.
func (r *Router) Close() {
	for _, u := range r.upstreams {
		u.Close()
	}
}
