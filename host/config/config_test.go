package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValidAndUsesMock(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	m, ok := c.Model("gpt-4o-mini")
	if !ok || m.Upstream != "mock" || m.UpstreamModel != "gpt-4o-mini" {
		t.Fatalf("gpt-4o-mini = %+v, %v; want served by mock", m, ok)
	}
	tier := c.Tiers[c.DefaultTier]
	if !tier.PIIDetection || !tier.ContentFilter {
		t.Fatalf("default tier %q must have PII detection and content filtering on: %+v", c.DefaultTier, tier)
	}
}

func TestDefaultUsesOpenAIWhenKeySet(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-test")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Model("gpt-4o"); m.Upstream != "openai" {
		t.Fatalf("gpt-4o upstream = %q, want openai", m.Upstream)
	}
}

func TestExampleParses(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	c, err := Parse(Example, "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 || c.Plugins[1].Config["categories"] == nil || c.Plugins[2].Name != "promptguard" {
		t.Fatalf("plugins = %+v", c.Plugins)
	}
	if c.Auth.CacheTTL.D() != 30*time.Second {
		t.Fatalf("cache_ttl = %v", c.Auth.CacheTTL)
	}
}

func TestEnvSubstitution(t *testing.T) {
	t.Setenv("SLUICE_TEST_TOKEN", "s3cret")
	c, err := Parse([]byte("server:\n  admin_token: ${SLUICE_TEST_TOKEN}\n  listen: ${SLUICE_UNSET_X:-127.0.0.1:9999}\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.AdminToken != "s3cret" || c.Server.Listen != "127.0.0.1:9999" {
		t.Fatalf("server = %+v", c.Server)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "servr:\n  listen: x\n", []string{"x.yaml:1", "servr", "unknown key", "server"}},
		{"admin_oidc role unknown", "server:\n  admin_oidc:\n    issuer: https://login.example.com/\n    audience: sluice-admin\n    roles: [{value: admins, role: root}]\n",
			[]string{"server.admin_oidc.roles[0]", "root"}},
		{"admin_oidc without audience", "server:\n  admin_oidc:\n    issuer: https://login.example.com/\n    roles: [{value: admins, role: admin}]\n",
			[]string{"server.admin_oidc.audience", "must not be empty"}},
		{"admin_oidc without roles", "server:\n  admin_oidc:\n    issuer: https://login.example.com/\n    audience: sluice-admin\n",
			[]string{"server.admin_oidc.roles", "at least one"}},
		{"unknown nested key", "server:\n  listen: 127.0.0.1:1\n  lisen: x\n", []string{"x.yaml:3", "server.lisen", "admin_listen"}},
		{"unknown key in list item", "upstreams:\n  - name: a\n    type: mock\n    urll: x\n", []string{"x.yaml:4", "upstreams[0].urll", "base_url"}},
		{"wrong type", "server:\n  max_body_bytes: lots\n", []string{"x.yaml:2", "expected an integer", "lots"}},
		{"bad duration", "auth:\n  cache_ttl: soon\n", []string{"x.yaml:2", "duration", "soon"}},
		{"unset env", "server:\n  admin_token: ${SLUICE_SURELY_UNSET}\n", []string{"x.yaml:2", "SLUICE_SURELY_UNSET", "not set"}},
		{"unknown upstream", "upstreams:\n  - {name: a, type: mock}\nmodels:\n  - {name: m, upstream: b}\n", []string{"models[0].upstream", `"b"`, "a"}},
		{"bad upstream type", "upstreams:\n  - {name: a, type: grpc}\n", []string{"upstreams[0].type", "gemini or mock"}},
		{"bad mock protocol", "upstreams:\n  - {name: a, type: mock, protocol: smtp}\n", []string{"upstreams[0].protocol", "smtp"}},
		{"anthropic base_url not a URL", "upstreams:\n  - {name: a, type: anthropic, base_url: api.anthropic.com}\n", []string{"upstreams[0].base_url", "http"}},
		{"bad fail mode", "plugins:\n  - {name: p, path: p.wasm, fail_mode: maybe}\n", []string{"plugins[0].fail_mode", "closed or open"}},
		{"negative plugin queue", "plugins:\n  - {name: p, path: p.wasm, max_queue: -1}\n", []string{"plugins[0].max_queue", "16 × pool_size"}},
		{"plugin health ratio over 1", "plugins:\n  - {name: p, path: p.wasm, health: {max_failure_ratio: 2}}\n", []string{"plugins[0].health.max_failure_ratio", "between 0 and 1"}},
		{"instance over the memory ceiling", "plugin_memory_limit_mb: 16\nplugins:\n  - {name: p, path: p.wasm}\n", []string{"plugins[0].memory_limit_mb", "32 MiB does not fit plugin_memory_limit_mb (16)"}},
		{"negative memory ceiling", "plugin_memory_limit_mb: -1\n", []string{"plugin_memory_limit_mb", "1024"}},
		{"unknown default tier", "default_tier: gold\n", []string{"default_tier", "gold", "premium, standard"}},
		{"duplicate model", "models:\n  - {name: m, upstream: mock}\n  - {name: m, upstream: mock}\n", []string{"models[1].name", `model "m" is defined twice`}},
		{"unnamed plugin", "plugins:\n  - {path: p.wasm}\n", []string{"plugins[0].name", "must not be empty"}},
		{"not yaml", "server: [\n", []string{"x.yaml"}},
		{"postgres without dsn", "store:\n  driver: postgres\n", []string{"store.dsn", "postgres://"}},
		{"unknown store driver", "store:\n  driver: mysql\n", []string{"store.driver", "sqlite or postgres"}},
		{"redis without url", "limits:\n  backend: redis\n", []string{"limits.redis.url", "redis://"}},
		{"bad redis fail mode", "limits:\n  redis:\n    fail_mode: maybe\n", []string{"limits.redis.fail_mode", "deny or local"}},
		{"unknown time zone", "policy:\n  time_zone: Mars/Olympus\n", []string{"policy.time_zone", "Mars/Olympus"}},
		{"bad sample", "policy:\n  decision_log_sample: 2\n", []string{"policy.decision_log_sample"}},
		{"bad cache ttl", "tiers:\n  t: {cache_ttl: often}\ndefault_tier: t\n", []string{"tiers.t.cache_ttl", "10m", "often"}},
		{"unknown cache scope", "tiers:\n  t: {cache_ttl: 1m, cache_scope: everyone}\ndefault_tier: t\n", []string{"tiers.t.cache_scope", "client, department or shared"}},
		{"cache redis not a url", "cache:\n  redis: cache:6379\n", []string{"cache.redis", "redis://"}},
		{"negative cache size", "cache:\n  max_bytes: -1\n", []string{"cache.max_bytes"}},
		{"tier falls back to an unknown model", "tiers:\n  t: {fallbacks: [gpt-4o, gpt-9]}\ndefault_tier: t\n", []string{"tiers.t.fallbacks[1]", "unknown model", "gpt-9"}},
		{"latency factor not above 1", "upstreams:\n  - {name: u, type: mock}\nmodels:\n  - {name: m, upstream: u, circuit: {latency_factor: 0.5}}\n", []string{"models[0].circuit.latency_factor", "above 1"}},
		{"negative department budget", "departments:\n  research: {monthly_spend_usd: -5}\n", []string{"departments.research", "negative"}},
		{"unknown tier key", "tiers:\n  t: {rpm: 1, tmp: 5}\ndefault_tier: t\n", []string{"x.yaml:2", "tiers.t.tmp", "tpm"}},
		{"attribution tag value out of shape", "attribution:\n  tags:\n    owner: [Jane.Doe]\n", []string{"attribution.tags.owner", "lower-case"}},
		{"oidc without audience", "auth:\n  oidc:\n    - {issuer: https://login.example.com/}\n", []string{"auth.oidc[0].audience", "must not be empty"}},
		{"oidc bad issuer", "auth:\n  oidc:\n    - {issuer: login.example.com, audience: s}\n", []string{"auth.oidc[0].issuer", "issuer URL"}},
		{"oidc unknown tier", "auth:\n  oidc:\n    - {issuer: https://l.example/, audience: s, group_tiers: [{group: g, tier: gold}]}\n", []string{"auth.oidc[0].group_tiers[0]", "gold"}},
		{"admin token in the clear", "server:\n  admin_tokens:\n    - {name: alice, role: viewer, token_sha256: hunter2}\n", []string{"server.admin_tokens[0].token_sha256", "64 hex"}},
		{"unknown admin role", "server:\n  admin_tokens:\n    - {name: alice, role: root, token_sha256: " + strings.Repeat("ab", 32) + "}\n", []string{"server.admin_tokens[0].role", "viewer, operator or admin"}},
		{"admin token name taken", "server:\n  admin_token: x\n  admin_tokens:\n    - {name: admin, role: viewer, token_sha256: " + strings.Repeat("ab", 32) + "}\n", []string{"server.admin_tokens[0].name", "taken"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "x.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestListsReplaceDefaultsWhole(t *testing.T) {
	c, err := Parse([]byte("upstreams:\n  - {name: local, type: openai, base_url: 'http://127.0.0.1:11434/v1'}\nmodels:\n  - {name: llama, upstream: local}\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Models) != 1 || c.Models[0].UpstreamModel != "llama" {
		t.Fatalf("models = %+v", c.Models)
	}
	if len(c.Tiers) != 2 || len(c.Plugins) != 2 {
		t.Fatalf("tiers and plugins not listed must keep their defaults: %d tiers, %d plugins", len(c.Tiers), len(c.Plugins))
	}
}

func TestAnthropicUpstreamDefaultsToAnthropic(t *testing.T) {
	c, err := Parse([]byte("upstreams:\n  - {name: claude, type: anthropic, api_key: k}\nmodels:\n  - {name: c, upstream: claude}\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if u := c.Upstreams[0]; u.BaseURL != "https://api.anthropic.com" || u.Timeout == 0 || u.MaxConns == 0 {
		t.Fatalf("upstream %+v", u)
	}
}

func TestCostNanos(t *testing.T) {
	cases := []struct {
		name               string
		in, out            float64
		prompt, completion int64
		want               int64
	}{
		{"chat", 0.15, 0.60, 1000, 500, 450_000},
		// 16 tokens at $0.02 per million are $0.00000032: a micro-dollar
		// ledger billed this $0.
		{"tiny embedding", 0.02, 0, 16, 0, 320},
		{"a price finer than a nano-dollar a token rounds half up", 0.0375, 0, 1, 0, 38},
		{"negative counts are none", 1, 1, -5, -5, 0},
		{"large", 60, 120, 1 << 40, 1 << 40, 1<<40*60_000 + 1<<40*120_000},
		{"beyond an int64 saturates", 1e6, 1e6, math.MaxInt64, math.MaxInt64, math.MaxInt64},
	}
	for _, tc := range cases {
		m := Model{InputPerMillion: tc.in, OutputPerMillion: tc.out}
		if got := m.CostNanos(tc.prompt, tc.completion); got != tc.want {
			t.Errorf("%s: cost = %d nano-dollars, want %d", tc.name, got, tc.want)
		}
	}
}

func TestBudgetsReachPolicyData(t *testing.T) {
	c, err := Parse([]byte(`
tiers:
  gold: {rpm: 10, tpm: 5000, daily_tokens: 100000, monthly_spend_usd: 12.5, models: ["*"], response_plugins: [pii], restore: true}
default_tier: gold
departments:
  research: {monthly_spend_usd: 500, daily_tokens: 2000000}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tiers, err := c.TiersData()
	if err != nil {
		t.Fatal(err)
	}
	gold := tiers["gold"].(map[string]any)
	for k, want := range map[string]string{"rpm": "10", "tpm": "5000", "daily_tokens": "100000", "monthly_tokens": "0", "monthly_spend_usd": "12.5"} {
		if got := fmt.Sprint(gold[k]); got != want {
			t.Errorf("tiers.gold.%s = %s, want %s", k, got, want)
		}
	}
	if fmt.Sprint(gold["response_plugins"]) != "[pii]" || gold["restore"] != true {
		t.Errorf("tiers.gold = %v, want response_plugins [pii] and restore true", gold)
	}
	deps, err := c.DepartmentsData()
	if err != nil {
		t.Fatal(err)
	}
	research := deps["research"].(map[string]any)
	if fmt.Sprint(research["monthly_spend_usd"]) != "500" || fmt.Sprint(research["daily_tokens"]) != "2000000" {
		t.Errorf("departments.research = %v", research)
	}
}

func TestMaskedHidesEverySecret(t *testing.T) {
	t.Setenv("T_KEY", "sk-upstream-secret")
	c, err := Parse([]byte(`
server: {admin_token: admin-secret}
store: {driver: postgres, dsn: "postgres://sluice:pg-secret@db:5432/sluice?sslmode=disable"}
limits: {backend: redis, redis: {url: "redis://:redis-secret@cache:6379/0"}}
cache: {redis: "redis://:cache-secret@cache:6379/1"}
upstreams:
  - {name: up, type: openai, base_url: "https://api.example.com/v1", api_key: "${T_KEY}"}
models:
  - {name: m, upstream: up}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Masked().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"admin-secret", "pg-secret", "redis-secret", "cache-secret", "sk-upstream-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("effective config shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"postgres://sluice:xxxxx@db:5432/sluice", "redis://:xxxxx@cache:6379/0", "api_key: '********'", "default_max_tokens: 1024"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
	if c.Server.AdminToken != "admin-secret" {
		t.Error("Masked changed the original configuration")
	}
}

// policy.headers defaults to the engine's seven, which the effective
// configuration shows; a credential is refused with its key.
func TestPolicyHeaders(t *testing.T) {
	c, err := Parse([]byte("policy:\n  eval_timeout: 2ms\n"), "sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Policy.Headers) != 7 || c.Policy.EvalTimeout.D() != 2*time.Millisecond {
		t.Errorf("policy %+v, want the seven default headers and 2ms", c.Policy)
	}
	c, err = Parse([]byte("policy:\n  headers: [X-Ticket-Id]\n"), "sluice.yaml")
	if err != nil || !slices.Equal(c.Policy.Headers, []string{"x-ticket-id"}) {
		t.Errorf("headers %v, %v; want [x-ticket-id]", c.Policy.Headers, err)
	}
	for _, bad := range []string{"policy:\n  headers: [Authorization]\n", "policy:\n  headers: [cookie]\n", "policy:\n  eval_timeout: 2s\n"} {
		if _, err := Parse([]byte(bad), "sluice.yaml"); err == nil || !strings.Contains(err.Error(), "policy.") {
			t.Errorf("%q: %v, want an error naming the key", bad, err)
		}
	}
}

// The attacker's test of header forwarding: a configuration that names a
// credential, a cookie, a hop-by-hop header or one of Sluice's own among
// the caller's headers to forward does not load, and says which one.
func TestForwardHeadersRefuseCredentials(t *testing.T) {
	for _, h := range []string{"Authorization", "x-api-key", "Cookie", "Connection", "Transfer-Encoding", "Proxy-Authorization",
		"X-Sluice-Client", "Host", "api-key", "bad name:"} {
		yaml := fmt.Sprintf("upstreams:\n  - {name: up, type: openai, base_url: \"https://x.example/v1\", forward_headers: [OpenAI-Beta, %q]}\n", h)
		_, err := Parse([]byte(yaml), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), "upstreams[0].forward_headers[1]") {
			t.Errorf("forward_headers naming %q: %v", h, err)
		}
	}
	for _, h := range []string{"Authorization", "Connection", "x-sluice-decision-id", "Content-Length"} {
		yaml := fmt.Sprintf("upstreams:\n  - {name: up, type: openai, base_url: \"https://x.example/v1\", headers: {%q: v}}\n", h)
		if _, err := Parse([]byte(yaml), "x.yaml"); err == nil || !strings.Contains(err.Error(), "upstreams[0].headers") {
			t.Errorf("headers naming %q: %v", h, err)
		}
	}
	c, err := Parse([]byte(`
upstreams:
  - {name: a, type: openai, base_url: "https://a.example/v1", headers: {OpenAI-Project: proj-secret-1}}
  - {name: b, type: openai, base_url: "https://b.example/v1", forward_headers: []}
models:
  - {name: m, upstream: a}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Upstreams[0].ForwardHeaders, DefaultForwardHeaders) || len(c.Upstreams[1].ForwardHeaders) != 0 {
		t.Fatalf("forward_headers %v and %v; want the default, then none", c.Upstreams[0].ForwardHeaders, c.Upstreams[1].ForwardHeaders)
	}
	out, err := c.Masked().YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "proj-secret-1") || !strings.Contains(string(out), "OpenAI-Project") {
		t.Fatalf("effective config shows a fixed header's value, or not its name:\n%s", out)
	}
}

// TestWrittenConfigurationLoads: what YAML writes of a loaded configuration
// (the effective configuration, and what tests hand to a gateway process)
// loads again to the same thing; an optional section left out must not be
// written as a null the loader refuses.
func TestWrittenConfigurationLoads(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path)
	if err != nil {
		t.Fatalf("the written configuration does not load: %v\n%s", err, raw)
	}
	if again.Server.Listen != cfg.Server.Listen || len(again.Models) != len(cfg.Models) || len(again.Plugins) != len(cfg.Plugins) {
		t.Errorf("loaded again: listen %q, %d models, %d plugins; want %q, %d, %d",
			again.Server.Listen, len(again.Models), len(again.Plugins), cfg.Server.Listen, len(cfg.Models), len(cfg.Plugins))
	}
}
