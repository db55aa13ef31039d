// Package config loads Sluice's YAML configuration: one file, ${ENV} substitution,
// strict keys, and an embedded default that serves without any file at all.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Config is the whole configuration of a Sluice process.
type Config struct {
	// DataDir holds the SQLite store, the plugin compilation cache and the
	// generated admin token. Relative paths in the file resolve against the
	// file's folder; the default is ./data.
	DataDir string   `yaml:"data_dir"`
	Server  Server   `yaml:"server"`
	Store   Store    `yaml:"store"`
	Auth    Auth     `yaml:"auth"`
	Policy  Policy   `yaml:"policy"`
	Plugins []Plugin `yaml:"plugins"`
	// PluginCacheDir keeps plugins compiled to machine code between starts
	// (a cold compile takes about a second per plugin). Default <data_dir>/wasm-cache.
	PluginCacheDir string          `yaml:"plugin_cache_dir"`
	Limits         Limits          `yaml:"limits"`
	Upstreams      []Upstream      `yaml:"upstreams"`
	Models         []Model         `yaml:"models"`
	Tiers          map[string]Tier `yaml:"tiers"`
	DefaultTier    string          `yaml:"default_tier"`
	Demo           Demo            `yaml:"demo"`

	// dir is the folder relative paths resolve against.
	dir string
}

// Server is the two listeners and the limits on what they accept.
type Server struct {
	Listen       string `yaml:"listen"`
	AdminListen  string `yaml:"admin_listen"`
	AdminToken   string `yaml:"admin_token"`
	MaxBodyBytes int    `yaml:"max_body_bytes"`
	// ReadTimeout bounds reading one request; it does not bound a stream.
	ReadTimeout Duration `yaml:"read_timeout"`
	// ShutdownTimeout bounds how long a stopping server waits for in-flight requests.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// AccessLog writes one structured log line per request: ids, client,
	// model, status, tokens, cost, latency. Never prompt text or keys.
	AccessLog bool `yaml:"access_log"`
}

// Store says where clients, keys and the usage ledger live.
type Store struct {
	Driver string `yaml:"driver"` // sqlite
	Path   string `yaml:"path"`   // default <data_dir>/sluice.db
}

// Auth tunes key checking.
type Auth struct {
	// CacheTTL is how long a key's client context is cached. A key revoked on
	// another replica keeps working for at most this long; on the replica that
	// revoked it, it stops at once.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// Policy says which Rego policies decide.
type Policy struct {
	// Dir is a folder of .rego files; empty means the policies built into the binary.
	Dir string `yaml:"dir"`
}

// Plugin is one WASM filter plugin.
type Plugin struct {
	Name     string         `yaml:"name"`
	Path     string         `yaml:"path"`
	Config   map[string]any `yaml:"config"`
	Timeout  Duration       `yaml:"timeout"`
	PoolSize int            `yaml:"pool_size"`
	// FailMode is what a request gets when the plugin cannot scan: "closed"
	// (503 guardrail_unavailable) or "open" (allowed, logged).
	FailMode string `yaml:"fail_mode"`
	// MemoryLimitMB caps each instance's linear memory; default 32.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// SHA256 pins the module: when set, a file whose SHA-256 (hex) differs
	// is refused at start.
	SHA256 string `yaml:"sha256"`
}

// Limits tunes the limiter.
type Limits struct {
	// DefaultMaxTokens is reserved for the reply of a request that sets no max_tokens.
	DefaultMaxTokens int64 `yaml:"default_max_tokens"`
}

// Upstream is a model provider.
type Upstream struct {
	Name string `yaml:"name"`
	// Type is "openai" (any OpenAI-compatible server) or "mock" (built in).
	Type    string   `yaml:"type"`
	BaseURL string   `yaml:"base_url"`
	APIKey  string   `yaml:"api_key"`
	Timeout Duration `yaml:"timeout"`
	// MaxConns bounds the connections Sluice opens to this upstream.
	MaxConns int `yaml:"max_conns"`
	// Latency delays every mock reply, and each streamed chunk by a tenth of it.
	Latency Duration `yaml:"latency"`
}

// Model maps a public model name to an upstream.
type Model struct {
	Name          string `yaml:"name"`
	Upstream      string `yaml:"upstream"`
	UpstreamModel string `yaml:"upstream_model"`
	// Prices in US dollars per million tokens.
	InputPerMillion  float64 `yaml:"input_per_million"`
	OutputPerMillion float64 `yaml:"output_per_million"`
}

// Tier is the policy data a client runs under; the Rego policies read it as
// data.sluice.tiers[name].
type Tier struct {
	RPM           int64    `yaml:"rpm" json:"rpm"`
	DailyTokens   int64    `yaml:"daily_tokens" json:"daily_tokens"`
	Models        []string `yaml:"models" json:"models"`
	PIIDetection  bool     `yaml:"pii_detection" json:"pii_detection"`
	ContentFilter bool     `yaml:"content_filter" json:"content_filter"`
	Redact        []string `yaml:"redact" json:"redact"`
}

// Demo is the client and key created on first start so that a newcomer has
// something to curl with.
type Demo struct {
	Enabled    bool   `yaml:"enabled"`
	Client     string `yaml:"client"`
	Department string `yaml:"department"`
}

// Duration is a time.Duration written as "250ms", "30s" or "1m" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d back in the form it is read.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// TiersData is the tiers as the JSON-like document the policy engine stores.
func (c *Config) TiersData() (map[string]any, error) {
	b, err := json.Marshal(c.Tiers)
	if err != nil {
		return nil, err
	}
	// json.Number keeps 1000000 an integer; float64 would make it 1e+06,
	// which the policy engine would no longer read as an integer.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	for name, t := range out {
		tier := t.(map[string]any)
		for _, k := range []string{"models", "redact"} {
			if tier[k] == nil {
				tier[k] = []any{}
			}
		}
		out[name] = tier
	}
	return out, nil
}

// Model returns the model named name.
func (c *Config) Model(name string) (Model, bool) {
	for _, m := range c.Models {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

// CostMicros is the price in millionths of a dollar of the given token counts.
func (m Model) CostMicros(prompt, completion int64) int64 {
	// Prices are dollars per million tokens, so tokens × price is micro-dollars.
	return int64(float64(prompt)*m.InputPerMillion + float64(completion)*m.OutputPerMillion + 0.5)
}

func (c *Config) String() string { return fmt.Sprintf("config(%s)", c.dir) }
