package server

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// prompt is about 1 KB of ordinary business text without personal data.
var prompt = strings.Repeat("Please summarise the quarterly planning notes for the platform team and list the open risks. ", 11)

// BenchmarkRequestPath measures Sluice's whole request path in process, without
// the network: auth, parse, policy, plugins, limits, the mock upstream, the ledger.
func BenchmarkRequestPath(b *testing.B) {
	variants := []struct {
		name   string
		tier   config.Tier
		routed bool // gpt-4o-mini on three deployments, each with a provider quota
	}{
		{"all-guards", config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true}, false},
		{"no-plugins", config.Tier{Models: []string{"*"}}, false},
		{"no-plugins-routed", config.Tier{Models: []string{"*"}}, true},
	}
	body := []byte(`{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"` + prompt + `"}]}`)
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir(), v.tier)
			if v.routed {
				for i := range cfg.Models {
					if m := &cfg.Models[i]; m.Name == "gpt-4o-mini" {
						for _, name := range []string{"east", "west", "north"} {
							m.Deployments = append(m.Deployments, config.Deployment{Name: name, Upstream: m.Upstream,
								UpstreamModel: m.UpstreamModel, Weight: 1, RPM: 1 << 40, TPM: 1 << 50})
						}
					}
				}
			}
			h := start(b, cfg)
			h.key = h.createClient("app", "research")
			handler := h.srv.public.Handler
			var ctx fasthttp.RequestCtx
			// Init attaches the context to a server, as fasthttp does for a
			// real connection; a bare RequestCtx is not a usable context.Context.
			ctx.Init(&fasthttp.Request{}, nil, nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI("/v1/chat/completions")
				ctx.Request.Header.Set("Authorization", "Bearer "+h.key)
				ctx.Request.Header.SetContentType("application/json")
				ctx.Request.SetBody(body)
				handler(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
