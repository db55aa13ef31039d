package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// only is a chat request of one user message, which the hostile modules
// read their orders from.
func only(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

// slowPlugin is a gateway whose pii plugin is the hostile Go module on one
// instance with a long queue: each "sleep" scan holds the instance for 200 ms.
func slowPlugin(t *testing.T) *harness {
	cfg := withPII(t, hostile(t, wasmbuild.HostileGo), "closed", nil)
	cfg.Tiers["test"] = config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"ECHO"}}
	cfg.Plugins[0].Timeout = config.Duration(time.Second)
	cfg.Plugins[0].PoolSize, cfg.Plugins[0].MaxQueue = 1, 64
	cfg.Plugins[0].QueueTimeout = config.Duration(20 * time.Second)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	return h
}

func (h *harness) piiHealth() plugin.Health {
	return h.srv.PluginStatus()[0].Health
}

// Callers that give up do not leave their scans behind: 20 callers of a
// plugin that takes 200 ms a scan on one instance disconnect after 100 ms,
// and their scans end with them (cancelled, denied, not the plugin's
// failure) instead of running one after another for four seconds.
func TestScansOfDisconnectedCallersAreCancelled(t *testing.T) {
	h := slowPlugin(t)
	c := h.client(h.key)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if _, err := c.Chat.Completions.New(ctx, only("sleep")); err == nil {
				t.Error("a caller that gave up after 100 ms got an answer")
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { h := h.piiHealth(); return h.ScansCancelled+uint64(h.Calls) == 20 })
	hl := h.piiHealth()
	if hl.Calls > 2 || hl.Failures != 0 {
		t.Errorf("health %+v: the scans of callers that left ran (%d) or counted as failures (%d)", hl, hl.Calls, hl.Failures)
	}
	fams := h.scrape()
	if n := sum(fams, "sluice_plugin_scans_cancelled_total", map[string]string{"plugin": "pii"}); n < 18 {
		t.Errorf("sluice_plugin_scans_cancelled_total = %v, want the 18 or more scans cancelled", n)
	}
	if n := sum(fams, "sluice_plugin_failures_total", map[string]string{"plugin": "pii"}); n != 0 {
		t.Errorf("sluice_plugin_failures_total = %v: a cancelled scan is not the plugin's failure", n)
	}
	if line := h.usageLine("app"); line["code"] != "client_disconnected" {
		t.Errorf("access line %v: want code client_disconnected", line)
	}
	// The plugin serves the next caller at once.
	if _, err := c.Chat.Completions.New(context.Background(), only("hello")); err != nil {
		t.Fatal(err)
	}
}

// A request whose caller said how long it waits (OpenAI's SDKs send
// X-Stainless-Timeout) is denied when that time passes while its scan still
// waits, with an OpenAI-shaped 504, rather than scanned for no one.
func TestScansPastTheRequestsDeadlineAreCancelled(t *testing.T) {
	h := slowPlugin(t)
	c := h.client(h.key)
	type answer struct {
		err error
	}
	answers := make(chan answer, 8)
	for range 8 {
		go func() {
			// The SDK's own timeout is longer: the gateway must give up first.
			_, err := c.Chat.Completions.New(context.Background(), only("sleep"),
				option.WithHeader("X-Stainless-Timeout", "0.5"), option.WithRequestTimeout(10*time.Second))
			answers <- answer{err}
		}()
	}
	timedOut := 0
	for range 8 {
		a := <-answers
		if a.err == nil {
			continue
		}
		e := apiError(t, a.err, http.StatusGatewayTimeout, "request_timeout")
		if e.Type != "server_error" || !strings.Contains(e.Message, "pii guardrail") {
			t.Errorf("error %q %q", e.Type, e.Message)
		}
		timedOut++
	}
	if timedOut < 4 {
		t.Errorf("%d of 8 requests timed out; at most 3 scans of 200 ms fit in their 500 ms", timedOut)
	}
	if hl := h.piiHealth(); hl.Failures != 0 || hl.ScansCancelled == 0 {
		t.Errorf("health %+v: want cancelled scans and no failure", hl)
	}
}

// A plugin that fails most of its calls makes the gateway not ready, and
// says which plugin and why, on /readyz, /admin/plugins and /metrics; it is
// ready again once the plugin's calls succeed.
func TestFailingPluginMakesTheGatewayNotReady(t *testing.T) {
	cfg := withPII(t, hostile(t, wasmbuild.HostileRaw), "closed", nil)
	cfg.Plugins[0].Health = config.PluginHealth{Window: config.Duration(time.Minute), MinCalls: 4, MaxFailureRatio: 0.5}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	ready := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Get("http://" + h.srv.AdminAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, body := ready(); status != http.StatusOK {
		t.Fatalf("before: /readyz %d %v", status, body)
	}
	for _, attack := range []string{"!trap", "!json", "!spin", "!trap"} {
		_, err := c.Chat.Completions.New(context.Background(), only(attack))
		apiError(t, err, http.StatusServiceUnavailable, "guardrail_unavailable")
	}
	status, body := ready()
	reason, _ := body["reason"].(string)
	if status != http.StatusServiceUnavailable || body["status"] != "not_ready" {
		t.Fatalf("after 4 failed calls: /readyz %d %v", status, body)
	}
	for _, want := range []string{"plugin pii unhealthy", "4 of its last 4 calls", "2 trap", "1 timeout", "1 invalid_output"} {
		if !strings.Contains(reason, want) {
			t.Errorf("/readyz reason %q does not say %q", reason, want)
		}
	}
	code, list := h.admin("GET", "/admin/plugins", "")
	var plugins struct{ Data []plugin.Status }
	json.Unmarshal(list, &plugins)
	if code != http.StatusOK || len(plugins.Data) == 0 || plugins.Data[0].Name != "pii" || plugins.Data[0].Health.Healthy ||
		plugins.Data[0].Health.Faults["trap"] != 2 || !strings.Contains(plugins.Data[0].Health.Reason, "4 of its last 4") {
		t.Errorf("/admin/plugins %d %s", code, list)
	}
	fams := h.scrape()
	if v := sum(fams, "sluice_plugin_healthy", map[string]string{"plugin": "pii"}); v != 0 {
		t.Errorf("sluice_plugin_healthy{plugin=pii} = %v, want 0", v)
	}
	if v := sum(fams, "sluice_plugin_healthy", map[string]string{"plugin": "content_filter"}); v != 1 {
		t.Errorf("sluice_plugin_healthy{plugin=content_filter} = %v, want 1", v)
	}
	if v := sum(fams, "sluice_plugin_unhealthy_total", map[string]string{"plugin": "pii"}); v != 1 {
		t.Errorf("sluice_plugin_unhealthy_total{plugin=pii} = %v, want 1", v)
	}

	for i := range 4 {
		if _, err := c.Chat.Completions.New(context.Background(), only("fine "+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := ready(); status != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("after 4 good calls of 8: /readyz %d %v", status, body)
	}
	if v := sum(h.scrape(), "sluice_plugin_healthy", map[string]string{"plugin": "pii"}); v != 1 {
		t.Errorf("sluice_plugin_healthy{plugin=pii} = %v after recovery, want 1", v)
	}
}

// probingRule denies a client whose recent requests keep breaking plugins.
const probingRule = `package sluice.authz

deny contains {
	"http_status": 403,
	"code": "plugin_probing",
	"type": "permission_error",
	"message": "too many of your recent requests broke a guardrail",
} if {
	input.client.plugin_failures >= 3
}
`

// A client whose prompts keep crashing a plugin is seen by the policy
// (input.client.plugin_failures), which can refuse it; its plugin time is
// counted under its own name in /metrics; other clients are not affected.
func TestPolicySeesAClientsPluginFailures(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "probing.rego", probingRule)
	cfg := policyConfig(t, piiTier, dir, false)
	cfg.Plugins[0].Path = hostile(t, wasmbuild.HostileRaw)
	h := start(t, cfg)
	mallory := h.client(h.createClient("mallory", "research"))
	alice := h.client(h.createClient("alice", "research"))

	for range 3 {
		_, err := mallory.Chat.Completions.New(context.Background(), only("!trap"))
		apiError(t, err, http.StatusServiceUnavailable, "guardrail_unavailable")
	}
	if got := jsonAt(h.decideInput("mallory", only("hello")), "client", "plugin_failures"); got != float64(3) {
		t.Errorf("input.client.plugin_failures of mallory = %v, want 3", got)
	}
	_, err := mallory.Chat.Completions.New(context.Background(), only("hello"))
	apiError(t, err, http.StatusForbidden, "plugin_probing")
	if _, err := alice.Chat.Completions.New(context.Background(), only("hello")); err != nil {
		t.Fatalf("another client is refused: %v", err)
	}
	if got := jsonAt(h.decideInput("alice", only("hello")), "client", "plugin_failures"); got != float64(0) {
		t.Errorf("input.client.plugin_failures of alice = %v, want 0", got)
	}
	fams := h.scrape()
	for _, client := range []string{"mallory", "alice"} {
		if v := sum(fams, "sluice_plugin_guest_seconds_total", map[string]string{"plugin": "pii", "client": client}); v <= 0 {
			t.Errorf("sluice_plugin_guest_seconds_total{plugin=pii,client=%s} = %v, want the time its scans took", client, v)
		}
	}
}

// A plugin that grows its memory to its limit and traps on every call,
// driven by many callers at once, holds no more memory than
// plugin_memory_limit_mb allows, by the host's own account: every request
// fails closed, and the gateway keeps serving.
func TestPluginMemoryStaysUnderTheCeiling(t *testing.T) {
	cfg := withPII(t, hostile(t, wasmbuild.HostileRaw), "closed", nil) // 16 MiB an instance
	cfg.Plugins[0].PoolSize, cfg.Plugins[0].MaxQueue = 4, 64
	cfg.Plugins[0].QueueTimeout = config.Duration(5 * time.Second)
	cfg.PluginMemoryLimitMB = 48
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				_, err := c.Chat.Completions.New(context.Background(), only("!grow"))
				apiError(t, err, http.StatusServiceUnavailable, "guardrail_unavailable")
			}
		}()
	}
	wg.Wait()
	st := h.srv.plugins.MemoryStats()
	if st.Limit != 48<<20 || st.Peak > st.Limit || st.Reserved > st.Limit {
		t.Errorf("plugin memory %+v: over the 48 MiB ceiling", st)
	}
	if _, err := c.Chat.Completions.New(context.Background(), only("hello after the attack")); err != nil {
		t.Fatal(err)
	}
	fams := h.scrape()
	if v := sum(fams, "sluice_plugin_memory_limit_bytes", nil); v != 48<<20 {
		t.Errorf("sluice_plugin_memory_limit_bytes = %v", v)
	}
	if v := sum(fams, "sluice_plugin_memory_reserved_bytes", nil); v <= 0 || v > 48<<20 {
		t.Errorf("sluice_plugin_memory_reserved_bytes = %v", v)
	}
	if hl := h.piiHealth(); hl.Faults["trap"] != 24 {
		t.Errorf("health %+v: want the 24 traps counted", hl)
	}
}
