package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// piiTier runs only the plugin configured under the name "pii".
var piiTier = config.Tier{Models: []string{"*"}, PIIDetection: true}

// withPII returns a test configuration whose "pii" plugin is the module at path.
func withPII(t *testing.T, path, failMode string, conf map[string]any) *config.Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), piiTier)
	cfg.Plugins[0].Path, cfg.Plugins[0].FailMode, cfg.Plugins[0].Config = path, failMode, conf
	cfg.Plugins[0].Timeout = config.Duration(200 * time.Millisecond)
	cfg.Plugins[0].MemoryLimitMB = 16
	return cfg
}

func hostile(t *testing.T, name string) string {
	t.Helper()
	path, err := wasmbuild.HostilePath(name)
	if err != nil {
		t.Fatalf("hostile module %s: %v", name, err)
	}
	return path
}

// A module that cannot be a plugin is refused when Sluice starts, with a
// message naming the plugin and the problem.
func TestHostileModulesAreRefusedAtStart(t *testing.T) {
	cases := []struct{ module, want string }{
		{wasmbuild.HostileABIv2, "ABI v2"},
		{wasmbuild.HostileMissingExports, "sluice_scan"},
		{wasmbuild.HostileForbiddenImport, "env.system"},
		{wasmbuild.HostileSpinInit, "pii"},
	}
	for _, tc := range cases {
		t.Run(tc.module, func(t *testing.T) {
			srv, err := Start(context.Background(), withPII(t, hostile(t, tc.module), "closed", nil), nil)
			if err == nil {
				srv.Close(context.Background())
				t.Fatal("Sluice started with a hostile module")
			}
			if !strings.Contains(err.Error(), "plugins[0] (pii)") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q should name plugins[0] (pii) and %q", err, tc.want)
			}
		})
	}
}

// A module that misbehaves in a call fails that request as its fail mode
// says, and the gateway, the plugin and other requests go on. (A module that
// misbehaves on every call never gets this far: the smoke test at load
// refuses it.)
func TestHostileCallsHonourTheFailMode(t *testing.T) {
	h := start(t, withPII(t, hostile(t, wasmbuild.HostileRaw), "closed", nil))
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	// The raw module reads its orders from the first text it scans: send
	// the attack as the only message.
	only := func(text string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
	}
	for _, attack := range []string{"!oob", "!big", "!trap", "!grow", "!spin", "!json"} {
		_, err := c.Chat.Completions.New(context.Background(), only(attack))
		e := apiError(t, err, http.StatusServiceUnavailable, "guardrail_unavailable")
		if e.Type != "service_unavailable_error" {
			t.Errorf("%s: type %q", attack, e.Type)
		}
		// The instance that failed is gone; a fresh one serves the next call.
		if _, err := c.Chat.Completions.New(context.Background(), only("hello after "+attack)); err != nil {
			t.Fatalf("after %s the plugin should serve again: %v", attack, err)
		}
	}

	// The Go hostile plugin, built with the stock toolchain, takes its
	// orders the same way.
	// Its answer to an ordinary text is one ECHO finding, which this tier
	// redacts.
	goCfg := withPII(t, hostile(t, wasmbuild.HostileGo), "closed", nil)
	goCfg.Tiers["test"] = config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"ECHO"}}
	goHostile := start(t, goCfg)
	goHostile.key = goHostile.createClient("app", "research")
	gc := goHostile.client(goHostile.key)
	for _, attack := range []string{"panic", "loop", "grow", "bad-offsets", "bad-type"} {
		_, err := gc.Chat.Completions.New(context.Background(), only(attack))
		apiError(t, err, http.StatusServiceUnavailable, "guardrail_unavailable")
		if _, err := gc.Chat.Completions.New(context.Background(), only("fine after "+attack)); err != nil {
			t.Fatalf("after %s the plugin should serve again: %v", attack, err)
		}
	}
	if logs := goHostile.logText(); !strings.Contains(logs, "fail_mode closed") || !strings.Contains(logs, `"plugin":"pii"`) {
		t.Error("a plugin failing closed must be logged with its name")
	}

	open := start(t, withPII(t, hostile(t, wasmbuild.HostileRaw), "open", nil))
	open.key = open.createClient("app", "research")
	oc := open.client(open.key)
	resp, err := oc.Chat.Completions.New(context.Background(), only("!trap"))
	if err != nil {
		t.Fatalf("fail_mode open must let the request through: %v", err)
	}
	if !strings.Contains(resp.Choices[0].Message.Content, "!trap") {
		t.Fatalf("reply %q", resp.Choices[0].Message.Content)
	}
	if !strings.Contains(open.logText(), "fail_mode open") {
		t.Error("a plugin failing open must be logged")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// Write then rename, as deployment tools and editors do.
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// A changed module file is swapped in while requests are in flight, none of
// which fails; a broken one leaves the old module in force and is reported.
func TestPluginHotReload(t *testing.T) {
	pii, err := wasmbuild.Path("pii")
	if err != nil {
		t.Fatal(err)
	}
	filter, err := wasmbuild.Path("contentfilter")
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(t.TempDir(), "scanner.wasm")
	copyFile(t, pii, module)
	h := start(t, withPII(t, module, "closed", nil))
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	_, err = c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "mail ann.lee@example.com"))
	apiError(t, err, 400, "pii_detected")

	// Load runs while the module is replaced.
	stop := make(chan struct{})
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "nothing personal here")); err != nil {
					failed.Add(1)
					t.Errorf("request during reload: %v", err)
				}
			}
		}()
	}
	copyFile(t, filter, module)
	waitFor(t, func() bool {
		_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "mail ann.lee@example.com"))
		return err == nil // the content filter has no objection to an address
	})
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed during the reload", failed.Load())
	}

	// A broken module is refused; the content filter stays in service.
	if err := os.WriteFile(module, []byte("\x00asm but not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st := h.srv.PluginStatus()
		return st[0].FailedReloads > 0 && st[0].LastError != ""
	})
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "mail ann.lee@example.com")); err != nil {
		t.Fatalf("the last good module must stay in service: %v", err)
	}
	st, _ := json.Marshal(h.srv.PluginStatus())
	if !strings.Contains(string(st), "pii") {
		t.Errorf("status %s", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
