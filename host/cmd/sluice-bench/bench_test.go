package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/bench"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/plugins/contentfilter"
	"github.com/sluicehq/sluice/plugins/pii"
	"github.com/sluicehq/sluice/policies"
)

// loadVariant writes a variant's configuration as the benchmark does and
// reads it back as Sluice would.
func loadVariant(t *testing.T, v variant) (*config.Config, sluiceSettings) {
	t.Helper()
	dir := t.TempDir()
	s := sluiceSettings{
		dataDir: filepath.Join(dir, "data"), listen: "127.0.0.1:40001", adminListen: "127.0.0.1:40002",
		mockURL: "http://127.0.0.1:40003/v1", pluginDir: "/opt/sluice/plugins", pluginCache: filepath.Join(dir, "cache"),
	}
	if v.allowAll {
		s.policyDir = filepath.Join(dir, "policy")
	}
	raw, err := sluiceConfig(v, s)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("Sluice rejects the generated configuration: %v\n%s", err, raw)
	}
	return cfg, s
}

func TestSluiceConfigOfEachVariant(t *testing.T) {
	for _, v := range append([]variant{fullSluice, cacheHit}, extraVariants...) {
		t.Run(v.name, func(t *testing.T) {
			cfg, s := loadVariant(t, v)
			if got := cfg.Tiers[cfg.DefaultTier].CacheTTL; got != v.cacheTTL {
				t.Errorf("cache_ttl %q, want %q", got, v.cacheTTL)
			}
			if cfg.Server.Listen != s.listen || cfg.Server.AdminListen != s.adminListen || cfg.DataDir != s.dataDir {
				t.Errorf("listeners %s, %s and data dir %s not as chosen", cfg.Server.Listen, cfg.Server.AdminListen, cfg.DataDir)
			}
			if cfg.Demo.Enabled {
				t.Error("the demo client is on; the benchmark creates its own")
			}
			m, ok := cfg.Model(benchModel)
			if !ok || len(cfg.Upstreams) != 1 || cfg.Upstreams[0].Name != m.Upstream ||
				cfg.Upstreams[0].Type != "openai" || cfg.Upstreams[0].BaseURL != s.mockURL {
				t.Errorf("%s is not routed to the mock over HTTP: model %+v, upstreams %+v", benchModel, m, cfg.Upstreams)
			}
			tier := cfg.Tiers[cfg.DefaultTier]
			if tier.PIIDetection != v.scan || tier.ContentFilter != v.scan || len(cfg.Plugins) != map[bool]int{true: 2, false: 0}[v.scan] {
				t.Errorf("scan %v: tier %+v with %d plugins", v.scan, tier, len(cfg.Plugins))
			}
			if tier.RPM < 1_000_000 || tier.DailyTokens < 1_000_000_000 || !slices.Contains(tier.Models, "*") {
				t.Errorf("tier %+v could deny benchmark traffic, or is unlimited and skips the limiter", tier)
			}
			for _, p := range cfg.Plugins {
				if !filepath.IsAbs(p.Path) {
					t.Errorf("plugin path %s is relative; Sluice would resolve it against the temporary folder", p.Path)
				}
			}
			if (cfg.Policy.Dir != "") != v.allowAll {
				t.Errorf("policy dir %q for allowAll %v", cfg.Policy.Dir, v.allowAll)
			}
		})
	}
}

// TestVariantsRunThePluginsTheyClaim checks that the shipped policy, given
// each variant's tiers, runs both plugins for the full variant and none for
// the others, so that the split of Sluice's cost is what the table says.
func TestVariantsRunThePluginsTheyClaim(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		v    variant
		want []string
	}{
		{fullSluice, []string{"content_filter", "pii"}},
		{extraVariants[0], nil},
	}
	for _, tt := range tests {
		t.Run(tt.v.name, func(t *testing.T) {
			cfg, _ := loadVariant(t, tt.v)
			tiers, err := cfg.TiersData()
			if err != nil {
				t.Fatal(err)
			}
			engine, err := policy.Load(ctx, policies.FS, map[string]any{"sluice": map[string]any{"tiers": tiers}})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := engine.Decide(ctx, benchInput(cfg.DefaultTier))
			if err != nil {
				t.Fatal(err)
			}
			if !dec.Allowed || !slices.Equal(dec.Plugins, tt.want) {
				t.Errorf("decision allowed %v, plugins %v; want allowed with %v", dec.Allowed, dec.Plugins, tt.want)
			}
		})
	}
}

func TestAllowAllPolicyAdmitsWithoutPlugins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "allow.rego"), []byte(allowAllPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	engine, err := policy.Load(ctx, os.DirFS(dir), nil)
	if err != nil {
		t.Fatalf("Sluice rejects the allow-all policy: %v", err)
	}
	dec, err := engine.Decide(ctx, benchInput("any"))
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Allowed || len(dec.Plugins) != 0 || dec.Limits.RPM != 0 {
		t.Errorf("decision %+v; want allowed, no plugins, no limits", dec)
	}
}

func benchInput(tier string) policy.Input {
	return policy.Input{
		Client: policy.Client{ID: "bench", Department: "benchmarks", Tier: tier},
		Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: benchModel,
			MaxTokens: 64, PromptTokens: 250, MessageCount: 2},
	}
}

// TestRequestPassesTheScanners holds the workload to what it claims: text
// the scanners read in full and find nothing in. A finding would turn the
// benchmark's requests into 400s.
func TestRequestPassesTheScanners(t *testing.T) {
	body, err := chatRequest()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(userPrompt); n < 900 || n > 1400 {
		t.Errorf("user message is %d bytes, want about 1 KB", n)
	}
	var req struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		Stream    bool   `json:"stream"`
		Messages  []struct{ Role, Content string }
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if req.Model != benchModel || req.MaxTokens != 64 || req.Stream || len(req.Messages) != 2 ||
		req.Messages[0].Role != "system" || req.Messages[1].Role != "user" {
		t.Errorf("request %+v is not a non-streaming chat with a system and a user message, max_tokens 64", req)
	}

	scanner, err := pii.New([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	terms, err := json.Marshal(map[string]any{"categories": filterCategories})
	if err != nil {
		t.Fatal(err)
	}
	filter, err := contentfilter.New(terms)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range req.Messages {
		if found := scanner.Scan(nil, []byte(m.Content)); len(found) > 0 {
			t.Errorf("the PII scanner finds %d item(s) in the %s message, first of type %s", len(found), m.Role, found[0].Type)
		}
		if found := filter.Scan(nil, []byte(m.Content)); len(found) > 0 {
			t.Errorf("the content filter finds %d item(s) in the %s message", len(found), m.Role)
		}
	}
}

func TestCompare(t *testing.T) {
	row := func(name string, c int, p50 time.Duration, rps float64) resultRow {
		return resultRow{Target: name, Concurrency: c, Summary: bench.Summary{P50: p50, Throughput: rps}}
	}
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	rows := []resultRow{
		row("direct", 1, us(100), 9000), row("proxy", 1, us(150), 6000), row("sluice", 1, us(190), 3600),
		row("sluice-slow", 1, us(400), 2000),
		row("direct", 32, us(900), 30000), row("proxy", 32, us(880), 20000), row("sluice", 32, us(2000), 12000),
	}
	got := compare(rows)
	if len(got) != 3 {
		t.Fatalf("%d comparisons, want one per Sluice row: %+v", len(got), got)
	}
	tests := []struct {
		i               int
		ratio           float64 // 0: none
		latMet, tputMet bool
		fraction        float64
	}{
		{i: 0, ratio: 1.8, latMet: true, tputMet: true, fraction: 0.6},
		{i: 1, ratio: 6, latMet: false, tputMet: false, fraction: 2000.0 / 6000},
		{i: 2, ratio: 0, tputMet: true, fraction: 0.6}, // the proxy was faster than direct: no ratio
	}
	for _, tt := range tests {
		c := got[tt.i]
		if tt.ratio == 0 {
			if c.LatencyRatio != nil || c.LatencyAimMet != nil {
				t.Errorf("%s c=%d: a ratio was given although the proxy adds nothing", c.Target, c.Concurrency)
			}
		} else if c.LatencyRatio == nil || c.LatencyAimMet == nil {
			t.Errorf("%s c=%d: no ratio, want %v", c.Target, c.Concurrency, tt.ratio)
		} else if abs(*c.LatencyRatio-tt.ratio) > 1e-9 || *c.LatencyAimMet != tt.latMet {
			t.Errorf("%s c=%d: ratio %v met %v, want %v met %v", c.Target, c.Concurrency, *c.LatencyRatio, *c.LatencyAimMet, tt.ratio, tt.latMet)
		}
		if abs(c.ThroughputFraction-tt.fraction) > 1e-9 || c.ThroughputAimMet != tt.tputMet {
			t.Errorf("%s c=%d: throughput fraction %v met %v, want %v met %v", c.Target, c.Concurrency,
				c.ThroughputFraction, c.ThroughputAimMet, tt.fraction, tt.tputMet)
		}
	}
}

func abs(x float64) float64 { return max(x, -x) }

func TestWriteTableShowsVerdictsAndErrors(t *testing.T) {
	rows := []resultRow{
		{Target: "direct", Concurrency: 1, Summary: bench.Summary{P50: 100 * time.Microsecond, Throughput: 9000}},
		{Target: "proxy", Concurrency: 1, Summary: bench.Summary{P50: 150 * time.Microsecond, Throughput: 6000}},
		{Target: "sluice", Concurrency: 1, Summary: bench.Summary{P50: 600 * time.Microsecond, Throughput: 2000,
			Errors: 3, Failures: map[string]int{"status 503": 3}, FailureSample: `{"error":{"code":"guardrail_unavailable"}}`}},
	}
	var out bytes.Buffer
	if err := writeTable(&out, &report{Machine: thisMachine(), Results: rows, Comparisons: compare(rows)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.600", "10.0×", "not met", "33%", "sluice at concurrency 1: 3 (status 503: 3)", "guardrail_unavailable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.concurrency, []int{1, 32}) || o.variants || o.json {
		t.Errorf("defaults %+v; want concurrency 1 and 32, no variants, tables", o)
	}
	// The default run is bounded to about a minute and a half of load.
	if d := time.Duration(o.rounds*len(o.concurrency)*3) * (o.duration + o.warmup); d > 2*time.Minute {
		t.Errorf("the default run sends load for %s", d)
	}
	for _, args := range [][]string{
		{"-concurrency", "1,x"}, {"-concurrency", "0"}, {"-concurrency", "5000"},
		{"-rounds", "0"}, {"-duration", "0s"}, {"-duration", "2m"}, {"-timeout", "0s"}, {"extra"},
		{"-only", "everything"}, {"-only", "limits,everything"}, {"-plugin-round", "0s"}, {"-limit-round", "0s"},
		{"-policy-calls", "10"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}
}

func TestWriteTableShowsPluginSection(t *testing.T) {
	r := &report{Machine: thisMachine(), Plugins: &bench.PluginReport{
		Calls: []bench.CallFigure{{Module: "empty", What: "Go guest SDK", PerCall: 1500 * time.Nanosecond, Spaced: 2250 * time.Nanosecond, AimMet: true}},
		Throughput: []bench.ThroughputFigure{{Plugin: "pii", Input: "prose 64KB", Bytes: 64 << 10,
			WASM: 500 * time.Microsecond, Native: 100 * time.Microsecond, WASMMBps: 131.1, NativeMBps: 655.4, Ratio: 5, AimMet: true}},
		Loads: []bench.LoadFigure{{Plugin: "pii", Bytes: 2 << 20, Cold: 900 * time.Millisecond, Cached: 45 * time.Millisecond, Speedup: 20}},
	}}
	var out bytes.Buffer
	if err := writeTable(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.50 µs", "2.25 µs", "131.1", "655.4", "5.0×", "900.000", "45.000", "20×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "End to end") {
		t.Errorf("a plugins-only report prints the end-to-end section:\n%s", out.String())
	}
}

func TestOnlySelectsSections(t *testing.T) {
	tests := []struct {
		only string
		want []string
	}{
		{"", sectionNames},
		{"limits", []string{"limits"}},
		{"policy", []string{"policy"}},
		{"limits, policy", []string{"limits", "policy"}},
		{"e2e,plugins", []string{"e2e", "plugins"}},
	}
	for _, tt := range tests {
		o, err := parseFlags([]string{"-only", tt.only})
		if err != nil {
			t.Fatalf("-only %q: %v", tt.only, err)
		}
		var got []string
		for _, s := range sectionNames {
			if o.runs(s) {
				got = append(got, s)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("-only %q runs %v, want %v", tt.only, got, tt.want)
		}
	}
}

// TestLimitsAndPolicyNeedNoBuild lets the in-process sections run before
// make build: they load nothing from bin/.
func TestLimitsAndPolicyNeedNoBuild(t *testing.T) {
	o, err := parseFlags([]string{"-only", "limits,policy", "-sluice", "/nonexistent/sluice", "-plugins", "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBuilt(&o); err != nil {
		t.Errorf("checkBuilt: %v", err)
	}
	o.sections = map[string]bool{"plugins": true}
	if err := checkBuilt(&o); err == nil {
		t.Error("the plugins section ran without the built plugins")
	}
}

func TestWriteTableShowsLimitsAndPolicy(t *testing.T) {
	us := func(f float64) time.Duration { return time.Duration(f * float64(time.Microsecond)) }
	met := true
	r := &report{Machine: thisMachine(),
		Limits: &bench.LimitReport{
			Memory: bench.LimitFigure{What: "memory", PerOp: us(0.72), Reserve: us(0.5), Commit: us(0.2)},
			Ping:   &bench.LimitFigure{What: "ping", PerOp: us(40), ReserveRoundTrips: 1, PingRatio: 1},
			Redis: &bench.LimitFigure{What: "redis", PerOp: us(130), Reserve: us(70), Commit: us(60), AllocsPerOp: 52,
				ReserveRoundTrips: 1, CommitRoundTrips: 1, PingRatio: 3.25, AimMet: &met},
			Flood: &bench.LimitFigure{What: "flood", PerOp: us(0.9), ReserveRoundTrips: 0.00002, PingRatio: 0.0225, AimMet: &met},
		},
		Policy: &bench.PolicyReport{
			Decisions: []bench.DecisionFigure{{Case: "first", Outcome: "allowed", P50: us(31), P99: us(95), PerOp: us(36),
				AllocsPerOp: 90, P50Ratio: 1.82, AimMet: false}},
			Floor: bench.DecisionFigure{Case: "floor", Outcome: "allowed", P50: us(17), P99: us(40), PerOp: us(19), P50Ratio: 1, AimMet: true},
		},
	}
	var out bytes.Buffer
	if err := writeTable(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.72 µs", "130.00 µs", "3.25×", "1/50000", "31.00 µs", "95.00 µs", "1.82×", "not met", "20µs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	r.Limits.Redis, r.Limits.Ping, r.Limits.Flood, r.Limits.RedisSkipped = nil, nil, nil, "no Redis server given"
	out.Reset()
	if err := writeTable(&out, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Redis skipped: no Redis server given") {
		t.Errorf("a run without Redis does not say so:\n%s", out.String())
	}
}
