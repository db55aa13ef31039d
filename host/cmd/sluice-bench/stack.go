package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/host/config"
)

// variant is one way of running Sluice.
type variant struct {
	name string
	// scan runs the PII scanner and the content filter on every request.
	scan bool
	// allowAll replaces the shipped policy with one that admits everything
	// without looking at the request: the floor of a policy evaluation.
	allowAll bool
	// decisionLog logs every decision (the decisions section reads it).
	decisionLog bool
	// noDecisionCache sets policy.decision_cache to 0.
	noDecisionCache bool
	// extraRules are folders of policies/examples whose rule files join
	// the shipped policy's in a policy folder.
	extraRules []string
	// clients is how many more clients the store holds, and so
	// data.sluice.clients.
	clients int
	// routed serves the model from three deployments (on the same mock),
	// each with a provider quota, for the cost of routing.
	routed bool
	// cacheTTL turns the reply cache on: every request after the first is
	// answered from it, which measures the path of a cache hit.
	cacheTTL string
}

var (
	fullSluice = variant{name: "sluice", scan: true}
	// cacheHit is the full path answered from the reply cache.
	cacheHit = variant{name: "sluice-cache-hit", scan: true, cacheTTL: "1h"}
	// extraVariants split Sluice's cost: without plugins, then also without
	// the shipped policy's logic.
	extraVariants = []variant{
		{name: "sluice-no-plugins"},
		{name: "sluice-allow-all", allowAll: true},
		{name: "sluice-routed", scan: true, routed: true},
	}
)

// filterCategories configure the content filter: a small list like the
// example configuration's, so that the filter does real matching work.
var filterCategories = map[string]any{
	"violence":  []any{"build a bomb", "make a pipe bomb", "kill them all"},
	"weapons":   []any{"ghost gun", "untraceable firearm"},
	"self_harm": []any{"end my life", "hurt myself"},
}

// allowAllPolicy admits every request, with no limits and no plugins. OPA
// still evaluates it, so it measures what Sluice costs around the policy.
const allowAllPolicy = `package sluice.authz

# decision admits every request: no limits, no plugins, nothing to redact.
decision := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [],
	"plugins": [],
}
`

// target is a server under load.
type target struct {
	name   string
	addr   string
	header [][2]string
	// admin is a Sluice's admin listener, called with benchAdminToken;
	// empty for the other targets.
	admin string
}

// benchAdminToken is the admin token of the Sluice processes.
const benchAdminToken = "sluice-bench-admin-token"

// stack is the mock upstream, the bare proxy and the Sluice variants,
// each its own process, and the temporary folder they work in.
type stack struct {
	dir     string
	keep    bool
	procs   []*process
	targets []target
}

// stackOptions say what to start and where the binaries are.
type stackOptions struct {
	sluiceBin   string // bin/sluice
	pluginDir   string // bin/plugins
	benchBin    string // this program, which also serves the bare proxy
	mockLatency time.Duration
	variants    []variant
	keep        bool
}

// startStack starts everything, or returns an error after stopping what it started.
func startStack(ctx context.Context, o stackOptions) (*stack, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	s := &stack{dir: dir, keep: o.keep}
	if err := s.start(ctx, o); err != nil {
		if cerr := s.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return s, nil
}

func (s *stack) start(ctx context.Context, o stackOptions) error {
	mockAddr, err := s.serve(ctx, "mock", "/v1/models", o.sluiceBin,
		"mock", "--listen", "{addr}", "--latency", o.mockLatency.String())
	if err != nil {
		return err
	}
	s.targets = append(s.targets, target{name: "direct", addr: mockAddr})

	proxyAddr, err := s.serve(ctx, "proxy", "/v1/models", o.benchBin,
		"proxy", "-listen", "{addr}", "-upstream", mockAddr)
	if err != nil {
		return err
	}
	s.targets = append(s.targets, target{name: "proxy", addr: proxyAddr})

	for _, v := range o.variants {
		t, err := s.startSluice(ctx, o, v, "http://"+mockAddr+"/v1")
		if err != nil {
			return err
		}
		s.targets = append(s.targets, t)
	}
	return nil
}

// serve starts a server on a free loopback port ("{addr}" in args) and waits
// until GET readyPath answers 200.
func (s *stack) serve(ctx context.Context, name, readyPath, bin string, args ...string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{addr}", addr)
	}
	p, err := startProcess(name, filepath.Join(s.dir, name+".log"), bin, args...)
	if err != nil {
		return "", err
	}
	s.procs = append(s.procs, p)
	// Sluice compiles its plugins on a cold start: about a second each.
	if err := p.waitReady(ctx, "http://"+addr+readyPath, 60*time.Second); err != nil {
		return "", err
	}
	return addr, nil
}

// startSluice writes the variant's configuration, creates a client and a
// key with the CLI as an operator would, and starts `sluice serve`.
func (s *stack) startSluice(ctx context.Context, o stackOptions, v variant, mockURL string) (target, error) {
	dir := filepath.Join(s.dir, v.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return target{}, err
	}
	var policyDir string
	if len(v.extraRules) > 0 {
		policyDir = filepath.Join(dir, "policy")
		if err := copyRules(policyDir, v.extraRules); err != nil {
			return target{}, fmt.Errorf("%s: %w", v.name, err)
		}
	}
	if v.allowAll {
		policyDir = filepath.Join(dir, "policy")
		if err := os.MkdirAll(policyDir, 0o700); err != nil {
			return target{}, err
		}
		if err := os.WriteFile(filepath.Join(policyDir, "allow.rego"), []byte(allowAllPolicy), 0o600); err != nil {
			return target{}, err
		}
	}
	listen, err := freeAddr()
	if err != nil {
		return target{}, err
	}
	admin, err := freeAddr()
	if err != nil {
		return target{}, err
	}
	dataDir := filepath.Join(dir, "data")
	raw, err := sluiceConfig(v, sluiceSettings{
		dataDir: dataDir, listen: listen, adminListen: admin, mockURL: mockURL,
		pluginDir: o.pluginDir, pluginCache: filepath.Join(s.dir, "wasm-cache"), policyDir: policyDir,
	})
	if err != nil {
		return target{}, err
	}
	cfgPath := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return target{}, err
	}
	common := []string{"--config", cfgPath, "--data-dir", dataDir}
	if v.clients > 0 {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return target{}, err
		}
		if err := addClients(ctx, filepath.Join(dataDir, "sluice.db"), v.clients, "bench"); err != nil {
			return target{}, fmt.Errorf("%s: %w", v.name, err)
		}
	}
	if _, err := runCLI(ctx, o.sluiceBin, append([]string{"clients", "create", "--id", "bench", "--department", "benchmarks"}, common...)...); err != nil {
		return target{}, fmt.Errorf("%s: %w", v.name, err)
	}
	out, err := runCLI(ctx, o.sluiceBin, append([]string{"keys", "create", "--client", "bench"}, common...)...)
	if err != nil {
		return target{}, fmt.Errorf("%s: %w", v.name, err)
	}
	key := lastLine(out)
	if key == "" {
		return target{}, fmt.Errorf("%s: `sluice keys create` printed no key", v.name)
	}

	p, err := startProcess(v.name, filepath.Join(s.dir, v.name+".log"), o.sluiceBin, append([]string{"serve"}, common...)...)
	if err != nil {
		return target{}, err
	}
	s.procs = append(s.procs, p)
	if err := p.waitReady(ctx, "http://"+listen+"/healthz", 60*time.Second); err != nil {
		return target{}, err
	}
	return target{name: v.name, addr: listen, header: [][2]string{{"Authorization", "Bearer " + key}}, admin: admin}, nil
}

// sluiceSettings are the paths and addresses of one Sluice process.
type sluiceSettings struct {
	dataDir, listen, adminListen, mockURL string
	pluginDir, pluginCache, policyDir     string
}

// sluiceConfig is the YAML configuration of a variant: the whole request
// path on, with limits far above what the benchmark sends, so that every
// request goes through the limiter and none is denied.
func sluiceConfig(v variant, s sluiceSettings) ([]byte, error) {
	cfg := config.Default()
	cfg.DataDir = s.dataDir
	cfg.Server.Listen, cfg.Server.AdminListen = s.listen, s.adminListen
	cfg.Server.AdminToken = benchAdminToken
	cfg.PluginCacheDir = s.pluginCache
	cfg.Policy.Dir = s.policyDir
	cfg.Demo.Enabled = false
	cfg.Upstreams = []config.Upstream{{
		Name: "mock-http", Type: "openai", BaseURL: s.mockURL,
		Timeout: config.Duration(30 * time.Second), MaxConns: 512,
	}}
	cfg.Models = []config.Model{{
		Name: benchModel, Upstream: "mock-http", UpstreamModel: benchModel,
		InputPerMillion: 0.15, OutputPerMillion: 0.60,
	}}
	if v.routed {
		m := &cfg.Models[0]
		m.Upstream, m.UpstreamModel = "", ""
		for _, name := range []string{"east", "west", "north"} {
			m.Deployments = append(m.Deployments, config.Deployment{Name: name, Upstream: "mock-http", UpstreamModel: benchModel,
				Weight: 1, RPM: 1_000_000_000, TPM: 1_000_000_000_000})
		}
	}
	cfg.Plugins = nil
	if v.scan {
		cfg.Plugins = []config.Plugin{
			{Name: "pii", Path: filepath.Join(s.pluginDir, "pii.wasm"), FailMode: "closed",
				Timeout: config.Duration(100 * time.Millisecond)},
			{Name: "content_filter", Path: filepath.Join(s.pluginDir, "contentfilter.wasm"), FailMode: "closed",
				Timeout: config.Duration(100 * time.Millisecond),
				Config:  map[string]any{"categories": filterCategories}},
		}
	}
	cfg.Tiers = map[string]config.Tier{"bench": {
		Budget: config.Budget{RPM: 1_000_000_000, DailyTokens: 1_000_000_000_000}, Models: []string{"*"},
		PIIDetection: v.scan, ContentFilter: v.scan, CacheTTL: v.cacheTTL,
	}}
	cfg.DefaultTier = "bench"
	if v.decisionLog {
		cfg.Policy.DecisionLog = filepath.Join(s.dataDir, "decisions.jsonl")
		cfg.Policy.DecisionLogSample = 1
	}
	if v.noDecisionCache {
		cfg.Policy.DecisionCache = 0
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: writing the configuration: %w", v.name, err)
	}
	return append([]byte("# Generated by sluice-bench for the "+v.name+" variant.\n"), raw...), nil
}

// runCLI runs a one-shot sluice command and returns its standard output.
func runCLI(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("sluice %s: %w: %s", strings.Join(args[:2], " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// close stops every process, Sluice first so that nothing it still sends
// meets a stopped upstream, and removes the temporary folder unless kept.
func (s *stack) close() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].signal()
		errs = append(errs, s.procs[i].wait(10*time.Second))
	}
	if s.keep {
		fmt.Fprintf(os.Stderr, "sluice-bench: configurations and logs kept in %s\n", s.dir)
	} else if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// copyRules writes the shipped policy's rule files (policies/*.rego, tests
// left out) and those of the named example folders into dir. It runs from
// the repository root, as the whole benchmark does.
func copyRules(dir string, examples []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	globs := []string{filepath.Join("policies", "*.rego")}
	for _, e := range examples {
		globs = append(globs, filepath.Join("policies", "examples", e, "*.rego"))
	}
	for _, g := range globs {
		files, err := filepath.Glob(g)
		if err != nil || len(files) == 0 {
			return fmt.Errorf("no rule files at %s (run from the repository root)", g)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.rego") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), src, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}
