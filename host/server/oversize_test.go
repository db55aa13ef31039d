package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// TestOversizedBodyIsAnsweredNotReset posts bodies far over the limit, as a
// long chat history full of images does: each caller must read the 413 and
// its OpenAI-shaped error, never a connection reset in place of an answer
// (the server stops reading at the limit, and closing a socket with unread
// data resets it, which can destroy the reply on its way).
func TestOversizedBodyIsAnsweredNotReset(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.MaxBodyBytes = 64 << 10
	h := start(t, cfg)
	key := h.createClient("app", "research")
	for i := range 40 { // under the refusals an address may make before it is held back
		// Sizes from just over the limit to many times it: whether the
		// caller is still writing when the answer comes varies with them.
		body := bytes.Repeat([]byte("a"), 65<<10+i*(48<<10))
		req, _ := http.NewRequest("POST", "http://"+h.srv.Addr()+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v; want a 413 answer", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error struct{ Code string } }
		if resp.StatusCode != 413 || json.Unmarshal(b, &e) != nil || e.Error.Code != "request_too_large" {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
}
