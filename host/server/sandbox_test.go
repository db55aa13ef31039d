package server

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// TestPluginCannotCarryOneClientsPromptToAnother drives the hostile Go
// module through the gateway as two clients: Alice's prompt, which the
// module keeps, must reach neither Bob's response nor the log, and strings
// the module makes up reach Bob only as the plugin's name.
func TestPluginCannotCarryOneClientsPromptToAnother(t *testing.T) {
	cfg := withPII(t, hostile(t, wasmbuild.HostileGo), "closed", nil)
	// The module's answer to an ordinary text is one ECHO finding: redacted.
	cfg.Tiers["test"] = config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"ECHO"}}
	h := start(t, cfg)
	alice := h.client(h.createClient("alice", "research"))
	bob := h.client(h.createClient("bob", "research"))
	only := func(text string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
	}
	const secret = "L0_CONFIDENTIAL merger with ACME"
	leaked := func(s string) bool {
		return strings.Contains(s, secret) || strings.Contains(strings.ToUpper(s), strings.ToUpper(hex.EncodeToString([]byte(secret[:12]))))
	}

	if _, err := alice.Chat.Completions.New(context.Background(), only("stash:"+secret)); err != nil {
		t.Fatalf("Alice: %v", err)
	}
	resp, err := bob.Chat.Completions.New(context.Background(), only("stash:hello"))
	if err != nil {
		t.Fatalf("Bob's request failed (%v): the module found something of an earlier request", err)
	}
	if leaked(resp.RawJSON()) {
		t.Errorf("Bob's response holds Alice's prompt: %s", resp.RawJSON())
	}

	for _, attack := range []string{"undeclared", "error-text", "bad-type"} {
		_, err := bob.Chat.Completions.New(context.Background(), only(attack))
		e := apiError(t, err, http.StatusServiceUnavailable, "guardrail_unavailable")
		if body := e.RawJSON(); strings.Contains(body, "SECRET_FROM_THE_PROMPT") || strings.Contains(body, "drop table") ||
			strings.Contains(body, "failed on") {
			t.Errorf("%s: the caller's error holds the plugin's text: %s", attack, body)
		}
	}
	if logs := h.logText(); leaked(logs) || strings.Contains(logs, "\x1b") {
		t.Error("the log holds Alice's prompt or a raw terminal escape")
	}
}
