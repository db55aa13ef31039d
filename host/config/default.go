package config

import (
	_ "embed"
	"os"
	"time"
)

// Example is the commented example configuration shipped with Sluice
// (`sluice config example` prints it).
//
//go:embed example.yaml
var Example []byte

// Default is the configuration `sluice serve` runs with when no file is given:
// SQLite under ./data, in-process counters, the policies built into the binary,
// two of the plugins built into it, and the built-in mock upstream. When OPENAI_API_KEY
// is set, the models are served by OpenAI instead of the mock.
func Default() *Config {
	c := &Config{
		DataDir: "data",
		Server: Server{
			Listen:          "127.0.0.1:8080",
			AdminListen:     "127.0.0.1:8081",
			MaxBodyBytes:    4 << 20,
			ReadTimeout:     Duration(30 * time.Second),
			ShutdownTimeout: Duration(30 * time.Second),
			AccessLog:       true,
			LogLevel:        "info",
			IPLimit:         IPLimit{Rate: 10, Burst: 50},
			KeyLimit:        IPLimit{Rate: 2, Burst: 20},
		},
		Store: Store{Driver: "sqlite"},
		Auth:  Auth{CacheTTL: Duration(30 * time.Second)},
		Policy: Policy{TimeZone: "UTC", DecisionLogSample: 0.1, EvalTimeout: Duration(5 * time.Millisecond),
			DecisionCache: 10_000, ShadowQueue: 1024,
			// The engine's own default list, written here so that the
			// effective configuration shows it: an empty list shows none.
			Headers: []string{"user-agent", "content-type", "openai-organization", "openai-project",
				"x-request-id", "x-sluice-tags", "x-sluice-purpose"}},
		Limits: Limits{DefaultMaxTokens: 1024, Backend: "memory",
			Redis: Redis{Timeout: Duration(200 * time.Millisecond), FailMode: "deny"}},
		Reload:    Reload{Watch: true},
		Telemetry: Telemetry{TraceSampleRatio: 0.1, MetricsMaxClients: 1000},
		Upstreams: []Upstream{
			{Name: "mock", Type: "mock"},
		},
		Plugins: []Plugin{
			{Name: "pii", Path: "builtin:pii", FailMode: "closed", Timeout: Duration(100 * time.Millisecond)},
			{Name: "content_filter", Path: "builtin:contentfilter", FailMode: "closed", Timeout: Duration(100 * time.Millisecond)},
		},
		Tiers: map[string]Tier{
			"standard": {
				Budget:       Budget{RPM: 60, DailyTokens: 1_000_000},
				Models:       []string{"gpt-4o-mini", "text-embedding-3-small"},
				PIIDetection: true, ContentFilter: true,
			},
			"premium": {
				Budget:       Budget{RPM: 600, DailyTokens: 20_000_000},
				Models:       []string{"*"},
				PIIDetection: true, ContentFilter: true,
			},
		},
		DefaultTier: "standard",
		Demo:        Demo{Enabled: true, Client: "demo", Department: "engineering"},
	}
	upstream := "mock"
	if os.Getenv("OPENAI_API_KEY") != "" {
		upstream = "openai"
		c.Upstreams = append(c.Upstreams, Upstream{
			Name: "openai", Type: "openai", BaseURL: "https://api.openai.com/v1", APIKey: os.Getenv("OPENAI_API_KEY"),
		})
	}
	c.Models = []Model{
		{Name: "gpt-4o-mini", Upstream: upstream, InputPerMillion: 0.15, OutputPerMillion: 0.60},
		{Name: "gpt-4o", Upstream: upstream, InputPerMillion: 2.50, OutputPerMillion: 10.00},
		{Name: "text-embedding-3-small", Upstream: upstream, InputPerMillion: 0.02},
	}
	return c
}
