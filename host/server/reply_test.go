package server

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/upstream"
)

// recordingUpstream is the mock upstream served over HTTP, keeping every
// request body it received, so a test can tell what left the gateway.
type recordingUpstream struct {
	mu     sync.Mutex
	bodies []string
	addr   string
}

func startRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingUpstream{addr: ln.Addr().String()}
	mock := upstream.MockHandler(upstream.NewMock(0), []string{"gpt-4o-mini"})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r.mu.Lock()
		r.bodies = append(r.bodies, string(ctx.PostBody()))
		r.mu.Unlock()
		mock(ctx)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return r
}

// serve routes cfg's gpt-4o-mini to the recorder.
func (r *recordingUpstream) serve(cfg *config.Config) {
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "recorder", Type: "openai", BaseURL: "http://" + r.addr + "/v1",
		Timeout: config.Duration(10 * time.Second), MaxConns: 8})
	for i := range cfg.Models {
		if cfg.Models[i].Name == "gpt-4o-mini" {
			cfg.Models[i].Upstream = "recorder"
		}
	}
}

func (r *recordingUpstream) seen() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}

// startBehindRecorder starts Sluice with gpt-4o-mini served by a recording upstream.
func startBehindRecorder(t *testing.T, tier config.Tier) (*harness, *recordingUpstream) {
	t.Helper()
	rec := startRecordingUpstream(t)
	cfg := testConfig(t, t.TempDir(), tier)
	rec.serve(cfg)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	return h, rec
}

// streamText collects a streamed reply's content as the SDK delivers it.
func streamText(t *testing.T, c openai.Client, model, prompt string) (string, error) {
	t.Helper()
	s := c.Chat.Completions.NewStreaming(context.Background(), chat(model, prompt))
	var b strings.Builder
	for s.Next() {
		for _, ch := range s.Current().Choices {
			b.WriteString(ch.Delta.Content)
		}
	}
	return b.String(), s.Err()
}

func TestRedactedValuesAreRestoredInReplies(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"EMAIL", "PHONE"}, Restore: true})
	c := h.client(h.key)
	prompt := "Write to ann.lee@example.com and call +1 415 555 0132, then ann.lee@example.com again"
	want := "Mock reply. You said: " + prompt

	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", prompt))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != want {
		t.Errorf("non-streamed reply = %q, want the caller's values back: %q", got, want)
	}
	got, err := streamText(t, c, "gpt-4o-mini", prompt)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("streamed reply = %q, want %q", got, want)
	}
	// The model never saw the values, only their placeholders.
	seen := rec.seen()
	if strings.Contains(seen, "ann.lee@example.com") || strings.Contains(seen, "555 0132") {
		t.Fatalf("a redacted value reached the upstream: %s", seen)
	}
	if !strings.Contains(seen, "[EMAIL_1]") || !strings.Contains(seen, "[PHONE_1]") {
		t.Fatalf("the upstream did not get placeholders: %s", seen)
	}
}

func TestWithoutRestoreRepliesKeepPlaceholders(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"EMAIL"}})
	got, err := streamText(t, h.client(h.key), "gpt-4o-mini", "mail ann.lee@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got != "Mock reply. You said: mail [EMAIL_1]" {
		t.Fatalf("streamed reply = %q", got)
	}
}
