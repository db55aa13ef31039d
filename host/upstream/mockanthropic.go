package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/translate"
)

// MockAnthropicKey is the x-api-key the Anthropic-protocol mock expects
// when its upstream configures no api_key.
const MockAnthropicKey = "mock-anthropic-key"

// MockStatusMarker, followed by a status (mock-status:429), in a request
// to the Anthropic-protocol mock makes it answer with that status and
// Anthropic's error for it: how a test meets a provider's 429 or 529.
const MockStatusMarker = "mock-status:"

// NewAnthropicMock is the mock upstream speaking Anthropic's protocol: an
// Anthropic Messages server (MockAnthropicHandler) served in process, on an
// in-memory listener, behind the real Anthropic adapter, so that the
// adapter and its translation are what a request goes through.
func NewAnthropicMock(u config.Upstream) *Anthropic {
	key := u.APIKey
	if key == "" {
		key = MockAnthropicKey
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: MockAnthropicHandler(NewMock(u.Latency.D()), key), NoDefaultServerHeader: true}
	go srv.Serve(ln)
	u.BaseURL, u.APIKey = "http://anthropic.mock", key
	a, err := newAnthropic(u, func(string) (net.Conn, error) { return ln.Dial() })
	if err != nil {
		panic("upstream: the mock's own base URL does not parse: " + err.Error())
	}
	a.stop = func() {
		ln.Close()
		srv.Shutdown()
	}
	return a
}

// MockAnthropicHandler serves the mock upstream as Anthropic's Messages API
// (POST /v1/messages): it checks the key (x-api-key, or a bearer token as
// Anthropic's SDK sends it) and
// anthropic-version, and answers as the OpenAI-protocol mock does (tool
// calls, tool results, exact usage), in Anthropic's shapes and events.
func MockAnthropicHandler(m *Mock, key string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != EndpointMessages || !ctx.IsPost() {
			anthropicError(ctx, http.StatusNotFound, "not_found_error", "no route for "+string(ctx.Method())+" "+string(ctx.Path()))
			return
		}
		got := string(ctx.Request.Header.Peek("x-api-key"))
		if got == "" {
			got, _ = strings.CutPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")
		}
		if got != key {
			anthropicError(ctx, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
		if v := string(ctx.Request.Header.Peek("anthropic-version")); v != translate.AnthropicVersion {
			anthropicError(ctx, http.StatusBadRequest, "invalid_request_error", "anthropic-version: unknown or missing version")
			return
		}
		body := ctx.PostBody()
		if status, ok := mockStatus(body); ok {
			anthropicError(ctx, status, anthropicErrorType(status), "the mock was asked for status "+strconv.Itoa(status))
			return
		}
		var probe struct {
			Model     string `json:"model"`
			MaxTokens int64  `json:"max_tokens"`
			Stream    bool   `json:"stream"`
		}
		if err := json.Unmarshal(body, &probe); err != nil || probe.MaxTokens < 1 {
			anthropicError(ctx, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
			return
		}
		chat, aerr := translate.MessagesToChat(body, probe.Model, probe.MaxTokens)
		if aerr != nil {
			anthropicError(ctx, http.StatusBadRequest, "invalid_request_error", aerr.Message)
			return
		}
		reply, err := m.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: chat, Stream: probe.Stream})
		if err != nil || reply.Status != http.StatusOK {
			anthropicError(ctx, http.StatusInternalServerError, "api_error", "the mock failed")
			return
		}
		meta := translate.MessagesMeta{ID: "msg_mock_" + shortHash(body), Model: probe.Model}
		if reply.Events == nil {
			msg, err := translate.ChatToMessage(reply.Body, meta)
			if err != nil {
				anthropicError(ctx, http.StatusInternalServerError, "api_error", "the mock failed")
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBody(msg)
			return
		}
		ctx.SetContentType("text/event-stream")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		events := reply.Events
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer events.Close()
			s := translate.NewMessagesStream(meta)
			write := func(evs []translate.Event) bool {
				for _, ev := range evs {
					w.WriteString("event: ")
					w.WriteString(ev.Name)
					w.WriteString("\ndata: ")
					w.Write(ev.Data)
					w.WriteString("\n\n")
				}
				return w.Flush() == nil
			}
			for {
				data, err := events.Next()
				if err != nil {
					break
				}
				evs, err := s.Chunk(data)
				if err != nil || !write(evs) {
					return
				}
			}
			write(s.End())
		})
	}
}

// mockStatus is the status a request asks the mock for, if any.
func mockStatus(body []byte) (int, bool) {
	i := bytes.Index(body, []byte(MockStatusMarker))
	if i < 0 || len(body) < i+len(MockStatusMarker)+3 {
		return 0, false
	}
	n, err := strconv.Atoi(string(body[i+len(MockStatusMarker) : i+len(MockStatusMarker)+3]))
	if err != nil || n < 400 || n > 599 {
		return 0, false
	}
	return n, true
}

func anthropicErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

func anthropicError(ctx *fasthttp.RequestCtx, status int, typ, msg string) {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
