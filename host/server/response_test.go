package server

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/config"
)

// The mock echoes the prompt, so a prompt that the request phase lets through
// makes a reply that holds the same text: a response plugin must catch it.
func TestResponsePluginsBlockOrMaskReplies(t *testing.T) {
	// The request phase runs no plugin; the reply phase runs pii and masks
	// e-mail addresses but blocks anything else it finds.
	h := newHarness(t, config.Tier{Models: []string{"*"}, ResponsePlugins: []string{"pii"}, Redact: []string{"EMAIL"}})
	c := h.client(h.key)

	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "say ann.lee@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Mock reply. You said: say [EMAIL_1]" {
		t.Errorf("masked reply = %q", got)
	}
	// An address split across stream chunks is masked all the same.
	got, err := streamText(t, c, "gpt-4o-mini", "say ann.lee@example.com and more words after it to stream")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "ann.lee") || !strings.Contains(got, "[EMAIL_1]") {
		t.Errorf("masked stream = %q", got)
	}

	secret := "AKIAIOSFODNN7EXAMPLF"
	_, err = c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "the key is "+secret))
	e := apiError(t, err, 400, "pii_detected")
	if strings.Contains(e.Message, secret) || !strings.Contains(e.Message, "AWS_ACCESS_KEY") {
		t.Errorf("block message %q must name the type and never the value", e.Message)
	}
	got, err = streamText(t, c, "gpt-4o-mini", "the key is "+secret+" so keep it safe please")
	if err == nil {
		t.Errorf("a streamed reply holding a secret ended without an error: %q", got)
	}
	if strings.Contains(got, secret) {
		t.Errorf("the secret reached the caller in the stream: %q", got)
	}
	// Blocked replies still cost their tokens: the ledger has them.
	if err := h.srv.Ledger().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}
