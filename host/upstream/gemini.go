package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/translate"
)

// GeminiBaseURL is where the Gemini API is served when base_url is unset.
const GeminiBaseURL = "https://generativelanguage.googleapis.com"

// Gemini is Google's Gemini API (generateContent and
// streamGenerateContent), authenticated by the x-goog-api-key header. Chat
// requests are translated to contents and parts, and replies back.
type Gemini struct {
	http *httpClient
	key  string
	now  func() time.Time
}

// NewGemini returns a client for the gemini upstream u, dialing with dial
// (nil: the network).
func NewGemini(u config.Upstream, dial fasthttp.DialFunc) (*Gemini, error) {
	base := u.BaseURL
	if base == "" {
		base = GeminiBaseURL
	}
	h, err := newHTTPClient(u, base, dial)
	if err != nil {
		return nil, err
	}
	return &Gemini{http: h, key: u.APIKey, now: time.Now}, nil
}

// Close releases idle connections.
func (g *Gemini) Close() { g.http.Close() }

// Send has the chat call c translated to generateContent, or to
// streamGenerateContent for a stream, and its reply back; it sends the
// request and reads the event stream.
func (g *Gemini) Send(ctx context.Context, c *Call) (*Reply, error) {
	if c.Endpoint != EndpointChat {
		return openAIErrorReply(404, "invalid_request_error", "unsupported_endpoint", "", "a gemini upstream serves chat completions only"), nil
	}
	greq, aerr := translate.ChatToGemini(c.Body)
	if aerr != nil {
		return &Reply{Status: aerr.Status, Body: aerr.Body()}, nil
	}
	path := "/v1beta/models/" + url.PathEscape(greq.Model) + ":generateContent"
	if c.Stream {
		path = "/v1beta/models/" + url.PathEscape(greq.Model) + ":streamGenerateContent?alt=sse"
	}
	r, err := g.http.post(ctx, c, path, greq.Body, g)
	if err != nil {
		return nil, err
	}
	if r.status != fasthttp.StatusOK {
		reply := geminiErrorReply(r.status, r.body)
		reply.Headers = r.headers // a Retry-After among them
		return reply, nil
	}
	meta := translate.ChatMeta{ID: "chatcmpl-gemini-" + shortHash(c.Body), Created: g.now().Unix(), Model: greq.Model}
	if r.stream == nil {
		chat, err := translate.GeminiToChatCompletion(r.body, meta)
		if err != nil {
			return openAIErrorReply(502, "server_error", "upstream_error", "", "the Gemini API sent a reply that is not JSON"), nil
		}
		return &Reply{Status: 200, Body: chat, Headers: r.headers}, nil
	}
	s := &geminiStream{sse: newSSEEvents(r.stream), out: translate.NewGeminiStream(meta, greq.IncludeUsage)}
	return &Reply{Status: 200, Events: &translatedEvents{body: r.stream, read: s.read}, Headers: r.headers}, nil
}

func (g *Gemini) authorize(_ context.Context, req *fasthttp.Request, _ bool) error {
	req.Header.Set("x-goog-api-key", g.key)
	return nil
}

// geminiErrorReply is the gateway's form of a Gemini API error: its status
// and status name (as the code) are kept; its message, which can quote the
// request, is not.
func geminiErrorReply(status int, body []byte) *Reply {
	var e geminiError
	code := "upstream_error"
	if json.Unmarshal(body, &e) == nil && e.Error.Status != "" {
		code = snakeCase(e.Error.Status)
	}
	return openAIErrorReply(status, errorTypeFor(status), code, "", "the Gemini API refused the request")
}

// geminiStream reads streamGenerateContent's Server-Sent Events, and has
// them translated to chat chunks.
type geminiStream struct {
	sse *sseEvents
	out *translate.GeminiStream
}

func (s *geminiStream) read() ([][]byte, error) {
	data, err := s.sse.Next()
	if err == io.EOF {
		batch, err := s.out.End()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return batch, io.EOF
	}
	if err != nil {
		return nil, err
	}
	batch, err := s.out.Event(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return batch, nil
}

var _ Upstream = (*Gemini)(nil)
