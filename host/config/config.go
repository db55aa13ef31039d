// Package config loads Sluice's YAML configuration: one file, ${ENV} substitution,
// strict keys, and an embedded default that serves without any file at all.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Config is the whole configuration of a Sluice process.
type Config struct {
	// DataDir holds the SQLite store, the plugin compilation cache and the
	// generated admin token. Relative paths in the file resolve against the
	// file's folder; the default is ./data.
	DataDir string `yaml:"data_dir"`
	Server  Server `yaml:"server"`
	Store   Store  `yaml:"store"`
	Auth    Auth   `yaml:"auth"`
	// Attribution lists the tags requests may carry.
	Attribution Attribution `yaml:"attribution"`
	Policy      Policy      `yaml:"policy"`
	Plugins     []Plugin    `yaml:"plugins"`
	// PluginCacheDir keeps plugins compiled to machine code between starts
	// (a cold compile takes about a second per plugin). Default <data_dir>/wasm-cache.
	PluginCacheDir string `yaml:"plugin_cache_dir"`
	// PluginMemoryLimitMB caps the linear memory of every plugin instance
	// together, each counted at its memory_limit_mb: past it no instance is
	// made (idle ones of other plugins are closed to make room first), and
	// a scan that needs one waits up to its queue_timeout and then fails as
	// the plugin's fail_mode says. Default 1024; it must hold at least one
	// instance of every plugin.
	PluginMemoryLimitMB int    `yaml:"plugin_memory_limit_mb"`
	Limits              Limits `yaml:"limits"`
	// Cache is where the reply cache keeps replies.
	Cache       Cache           `yaml:"cache"`
	Upstreams   []Upstream      `yaml:"upstreams"`
	Models      []Model         `yaml:"models"`
	Tiers       map[string]Tier `yaml:"tiers"`
	DefaultTier string          `yaml:"default_tier"`
	// Departments are budgets shared by all clients of a department; the
	// policies read them as data.sluice.departments[name].
	Departments map[string]Budget `yaml:"departments"`
	Reload      Reload            `yaml:"reload"`
	Telemetry   Telemetry         `yaml:"telemetry"`
	Demo        Demo              `yaml:"demo"`

	// dir is the folder relative paths resolve against.
	dir string
}

// Server is the two listeners and the limits on what they accept.
type Server struct {
	Listen      string `yaml:"listen"`
	AdminListen string `yaml:"admin_listen"`
	AdminToken  string `yaml:"admin_token"`
	// AdminTokens are named tokens of the admin API, each with a role,
	// beside AdminToken (which is an admin token named "admin").
	AdminTokens  []AdminToken `yaml:"admin_tokens"`
	MaxBodyBytes int          `yaml:"max_body_bytes"`
	// AdminOIDC accepts the identity tokens of a provider on the admin API
	// beside the admin tokens, their role given by a claim.
	AdminOIDC *AdminOIDC `yaml:"admin_oidc,omitempty"`
	// ReadTimeout bounds reading one request; it does not bound a stream.
	ReadTimeout Duration `yaml:"read_timeout"`
	// ShutdownTimeout bounds how long a stopping server waits for in-flight requests.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long a stopping server keeps accepting requests
	// after its readiness turned false, so that a load balancer that polls
	// readiness stops sending before the listener closes. Default 0 (for
	// one machine); behind a load balancer, a little more than its readiness
	// interval. It is part of ShutdownTimeout.
	DrainDelay Duration `yaml:"drain_delay"`
	// AccessLog writes one structured log line per request: ids, client,
	// model, status, tokens, cost, latency. Never prompt text or keys.
	AccessLog bool `yaml:"access_log"`
	// LogLevel is the least severe level logged: debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// IPLimit bounds the requests one client IP address may have refused
	// before it is known who is calling (a bad key, an unknown path, a
	// malformed request): past it, the address's requests get 429
	// ip_rate_limited before authentication, until the bucket refills.
	// Requests that authenticate do not draw on it.
	IPLimit IPLimit `yaml:"ip_limit"`
	// KeyLimit bounds the failed authentications (invalid_api_key) of keys
	// that share a prefix (sk-sluice- and four characters, what key
	// listings show), whatever address they come from: past it, requests
	// with such a key get 429 auth_rate_limited before the key is looked
	// up, until the bucket refills. A key known to be good is never held
	// back. Default 2 a second, bursts of 20; a rate of 0 turns it off.
	KeyLimit IPLimit `yaml:"key_limit"`
}

// IPLimit is a token bucket per client IP address: Rate refusals a second,
// up to Burst at once. A Rate of 0 turns the limit off. Default 10 a second,
// bursts of 50.
//
// Notes: behind a load balancer every caller shares the balancer's address,
// and one client with a bad key can hold the others' keys back until the
// bucket refills: raise the limit there or turn it off, and limit at the
// balancer.
type IPLimit struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// Store says where clients, keys and the usage ledger live.
type Store struct {
	// Driver is sqlite (one machine) or postgres (several replicas).
	Driver string `yaml:"driver"`
	Path   string `yaml:"path"` // sqlite: default <data_dir>/sluice.db
	DSN    string `yaml:"dsn"`  // postgres: postgres://user:pass@host:5432/db
}

// Auth tunes key checking.
type Auth struct {
	// CacheTTL is how long a key's client context is cached. A key revoked on
	// another replica keeps working for at most this long; on the replica that
	// revoked it, it stops at once.
	CacheTTL Duration `yaml:"cache_ttl"`
	// OIDC lists the identity providers whose tokens are accepted in place
	// of a key: `Authorization: Bearer <JWT>`.
	OIDC []OIDC `yaml:"oidc"`
}

// OIDC is an identity provider whose signed tokens (JWTs) authenticate
// callers, and how a token's claims map to a client.
type OIDC struct {
	// Issuer is the provider's issuer URL, exactly as tokens' iss says.
	Issuer string `yaml:"issuer"`
	// Audience is what a token's aud must hold: this gateway's client id or
	// API identifier at the provider.
	Audience string `yaml:"audience"`
	// JWKSURL is the provider's signing keys; empty discovers it from
	// <issuer>/.well-known/openid-configuration.
	JWKSURL string `yaml:"jwks_url"`
	// ClientClaim names the client: "sub" (default), "azp", "client_id",
	// "oid"... Prefer a claim that names an application or an opaque id
	// over one that holds a person's e-mail: it is stored in the ledger.
	ClientClaim string `yaml:"client_claim"`
	// ClientPrefix starts every client id made from a token ("sso-" by
	// default), so that they never collide with clients created by hand.
	ClientPrefix string `yaml:"client_prefix"`
	// DepartmentClaim names the claim that holds the department; when it is
	// empty or the token lacks it, DefaultDepartment applies.
	DepartmentClaim   string `yaml:"department_claim"`
	DefaultDepartment string `yaml:"default_department"`
	// GroupsClaim names the claim that lists the caller's groups;
	// GroupTiers maps them to tiers, the first listed group the token has
	// winning; DefaultTier applies otherwise (the default_tier when empty).
	GroupsClaim string      `yaml:"groups_claim"`
	GroupTiers  []GroupTier `yaml:"group_tiers"`
	DefaultTier string      `yaml:"default_tier"`
	// ClockSkew is how long past its expiry a token is still accepted,
	// for clocks that disagree (default 30s, at most 5m).
	ClockSkew Duration `yaml:"clock_skew"`
	// LogClaims are the claims whose values the decision log writes as
	// they are; it writes the others' values hashed.
	LogClaims []string `yaml:"log_claims"`
}

// GroupTier maps an identity provider's group to a tier.
type GroupTier struct {
	Group string `yaml:"group"`
	Tier  string `yaml:"tier"`
}

// Policy says which Rego policies decide, and how decisions are recorded.
type Policy struct {
	// Dir is a folder of .rego files; empty means the policies built into the binary.
	Dir string `yaml:"dir"`
	// ShadowDir is a second folder evaluated beside Dir on live traffic and
	// never enforced; disagreements are counted and logged.
	ShadowDir string `yaml:"shadow_dir"`
	// TimeZone is the zone of input.time's weekday and hour (IANA name).
	TimeZone string `yaml:"time_zone"`
	// DecisionLog is a JSON-lines file of decisions; "off" disables it.
	// Default <data_dir>/decisions.jsonl.
	DecisionLog string `yaml:"decision_log"`
	// DecisionLogSample is the share of allowed decisions logged, 0 to 1;
	// denials and errors are always logged.
	DecisionLogSample float64 `yaml:"decision_log_sample"`
	// EvalTimeout bounds one evaluation of the policy; past it the request
	// is denied with policy_error. Default 5ms.
	EvalTimeout Duration `yaml:"eval_timeout"`
	// AllowBuiltins lets policies call builtins refused by default, by
	// name or pattern: http.send, net.*, rand.*, uuid.rfc4122, time.now_ns,
	// opa.runtime.
	AllowBuiltins []string `yaml:"allow_builtins"`
	// DecisionCache is how many decisions are kept to answer a request
	// whose parts the rules read repeat an earlier one's, with the same
	// policy and data, without evaluating; 0 keeps none. Default 10000.
	DecisionCache int `yaml:"decision_cache"`
	// ShadowQueue bounds the shadow decisions waiting to be evaluated off
	// the request path; past it decisions go unshadowed and are counted
	// (sluice_policy_shadow_dropped_total). Default 1024.
	ShadowQueue int `yaml:"shadow_queue"`
	// Bundle reads the policy set from an OPA bundle instead of Dir.
	Bundle Bundle `yaml:"bundle"`
	// Headers are the request headers the policy sees in
	// input.request.headers, lower-cased; by default user-agent,
	// content-type, openai-organization, openai-project, x-request-id,
	// x-sluice-tags and x-sluice-purpose, and [] gives none. Credentials
	// (authorization, proxy-authorization, x-api-key, cookie) cannot be
	// listed.
	Headers []string `yaml:"headers"`
}

// Bundle is an OPA bundle (.tar.gz, as opa build writes it) holding the
// policy set and its data.
type Bundle struct {
	// File is the bundle; it replaces policy.dir, and is watched like it.
	File string `yaml:"file"`
	// URL is a bundle served over HTTP instead of File: downloaded at
	// start, then every Poll with its ETag.
	URL string `yaml:"url"`
	// Poll is how often URL is asked for a new bundle; default 30s.
	Poll Duration `yaml:"poll"`
	// PublicKey is a file holding the PEM public key the bundle must be
	// signed with (opa build --signing-key); empty accepts unsigned bundles.
	PublicKey string `yaml:"public_key"`
	// KeyID is the key's id in the signature; default "default", as opa's.
	KeyID string `yaml:"key_id"`
	// Algorithm is the signature's JWT algorithm; default RS256.
	Algorithm string `yaml:"algorithm"`
}

// Telemetry configures traces and metrics. Prometheus metrics are always
// served at GET /metrics on the admin listener.
type Telemetry struct {
	// OTLPEndpoint receives traces over OTLP/HTTP, e.g. http://collector:4318;
	// empty sends none (and tracing costs nothing).
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// TraceSampleRatio is the share of new traces sampled, 0 to 1; a caller's
	// traceparent decision is followed.
	TraceSampleRatio float64 `yaml:"trace_sample_ratio"`
	// MetricsMaxClients caps the distinct client label values; later
	// clients are counted as "other".
	MetricsMaxClients int `yaml:"metrics_max_clients"`
}

// Reload says whether Sluice watches its policy folder and plugin files and
// reloads them when they change. SIGHUP and POST /admin/reload always work.
type Reload struct {
	Watch bool `yaml:"watch"`
}

// Plugin is one WASM filter plugin.
type Plugin struct {
	Name     string         `yaml:"name"`
	Path     string         `yaml:"path"`
	Config   map[string]any `yaml:"config"`
	Timeout  Duration       `yaml:"timeout"`
	PoolSize int            `yaml:"pool_size"`
	// MaxQueue bounds the scans waiting for a free instance (default 16 ×
	// pool_size) and QueueTimeout their wait (default 1s): a scan past
	// either fails as the plugin's fail_mode says, so a slow plugin cannot
	// pile up requests without bound.
	MaxQueue     int      `yaml:"max_queue"`
	QueueTimeout Duration `yaml:"queue_timeout"`
	// FailMode is what a request gets when the plugin cannot scan: "closed"
	// (503 guardrail_unavailable) or "open" (allowed, logged).
	FailMode string `yaml:"fail_mode"`
	// MemoryLimitMB caps each instance's linear memory; default 32.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// SHA256 pins the module: when set, a file whose SHA-256 (hex) differs
	// is refused at start.
	SHA256 string `yaml:"sha256"`
	// Health says when the plugin's recent calls make it unhealthy, which
	// /readyz and /admin/plugins report.
	Health PluginHealth `yaml:"health"`
}

// PluginHealth is the threshold past which a plugin is unhealthy: at least
// MinCalls calls in the last Window, of which more than MaxFailureRatio failed
// through the plugin's fault (a trap, a timeout, an invalid result, an error
// status). Cancelled and refused scans do not count.
type PluginHealth struct {
	// Window is how far back calls count; default 1m.
	Window Duration `yaml:"window"`
	// MinCalls is the fewest calls judged; default 10.
	MinCalls int `yaml:"min_calls"`
	// MaxFailureRatio is the share of failed calls, 0 to 1; default 0.5.
	MaxFailureRatio float64 `yaml:"max_failure_ratio"`
}

// Limits tunes the limiter.
type Limits struct {
	// DefaultMaxTokens is reserved for the reply of a request that sets no max_tokens.
	DefaultMaxTokens int64 `yaml:"default_max_tokens"`
	// Backend is memory (exact, in process, rebuilt from the ledger at start)
	// or redis (shared by every replica).
	Backend string `yaml:"backend"`
	Redis   Redis  `yaml:"redis"`
}

// Redis is the counter store of limits.backend redis.
type Redis struct {
	URL string `yaml:"url"` // redis://host:6379/0
	// Timeout bounds one round trip; the request path waits at most this long.
	Timeout Duration `yaml:"timeout"`
	// FailMode is what requests get while Redis is unreachable: deny (503
	// limits_unavailable) or local (in-process limits per replica).
	FailMode string `yaml:"fail_mode"`
	// Lease bounds how long a reservation holds its estimate in Redis
	// without a commit: past it (its replica was killed), another replica
	// refunds it. 0 means the longest a request may take (the longest
	// upstream timeout, and a minute).
	Lease Duration `yaml:"lease"`
}

// Upstream is a model provider.
type Upstream struct {
	Name string `yaml:"name"`
	// Type is "openai" (any OpenAI-compatible server), "anthropic"
	// (Anthropic's Messages API), "azure_openai", "bedrock", "gemini" or
	// "mock" (built in).
	Type    string `yaml:"type"`
	BaseURL string `yaml:"base_url"`
	APIKey  string `yaml:"api_key"`
	// Timeout bounds a whole call, from sending the request to the end of
	// the reply (a stream included).
	Timeout Duration `yaml:"timeout"`
	// IdleTimeout bounds the silence of an upstream once its reply has
	// begun: a body or a stream that stalls longer fails with
	// upstream_timeout. The wait for the first byte is bounded by Timeout
	// alone, since a model may think for a long time before it answers.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ConnectTimeout bounds opening a connection (default 10s);
	// FirstByteTimeout, the wait for a reply's first byte (0: Timeout
	// alone). A call that runs out of either fails as a timeout, which a
	// model with several deployments tries elsewhere.
	ConnectTimeout   Duration `yaml:"connect_timeout"`
	FirstByteTimeout Duration `yaml:"first_byte_timeout"`
	// MaxConns bounds the connections Sluice opens to this upstream.
	MaxConns int `yaml:"max_conns"`
	// Latency delays every mock reply, and each streamed chunk by a tenth of it.
	Latency  Duration `yaml:"latency"`
	Provider `yaml:",inline"`
	// ForwardHeaders are the caller's request headers passed on to this
	// upstream; when not set, DefaultForwardHeaders, and [] passes none.
	// Credentials, cookies, hop-by-hop headers and x-sluice-* are refused
	// (see ForwardRefused).
	ForwardHeaders []string `yaml:"forward_headers"`
	// Headers are sent on every call to this upstream, such as a
	// provider's project header. Their values are never printed or logged.
	Headers map[string]string `yaml:"headers"`
}

// Model maps a public model name to an upstream.
type Model struct {
	Name          string `yaml:"name"`
	Upstream      string `yaml:"upstream"`
	UpstreamModel string `yaml:"upstream_model"`
	// Prices in US dollars per million tokens.
	InputPerMillion  float64 `yaml:"input_per_million"`
	OutputPerMillion float64 `yaml:"output_per_million"`
	// Deployments serve the model in place of Upstream and UpstreamModel,
	// which stand for one deployment when Deployments is empty (and name
	// the first one after loading). See routing.go.
	Deployments []Deployment `yaml:"deployments"`
	// Strategy orders the deployments a request tries: weighted (the
	// default), least_busy or lowest_latency.
	Strategy string `yaml:"strategy"`
	// Fallbacks are models tried, in order, once every deployment of this
	// one has failed; a fallback bills at its own prices.
	Fallbacks []string `yaml:"fallbacks"`
	// FallbackOnRefusal tries the next deployment, or fallback, when a
	// provider's content filter refuses the request (a 400 with the code
	// content_filter or content_policy_violation, or a reply that finished
	// with content_filter before any of it reached the caller), instead of
	// passing the refusal on. Off by default: a refusal is usually the
	// answer the caller should see.
	FallbackOnRefusal bool    `yaml:"fallback_on_refusal"`
	Retry             Retry   `yaml:"retry"`
	Circuit           Circuit `yaml:"circuit"`
	// Timeout and FirstByteTimeout bound each upstream call of this model
	// when shorter than its upstream's own (0: the upstream's).
	Timeout          Duration `yaml:"timeout"`
	FirstByteTimeout Duration `yaml:"first_byte_timeout"`
}

// Tier is the policy data a client runs under; the Rego policies read it as
// data.sluice.tiers[name].
type Tier struct {
	Budget        `yaml:",inline"`
	Models        []string `yaml:"models" json:"models"`
	PIIDetection  bool     `yaml:"pii_detection" json:"pii_detection"`
	ContentFilter bool     `yaml:"content_filter" json:"content_filter"`
	// Redact lists the finding types replaced by placeholders instead of blocked.
	Redact []string `yaml:"redact" json:"redact"`
	// ResponsePlugins scan the model's replies, streams included.
	ResponsePlugins []string `yaml:"response_plugins" json:"response_plugins"`
	// Restore puts redacted values back into the model's replies.
	Restore bool `yaml:"restore" json:"restore"`
	// Regions, when set, are the only deployment regions this tier's
	// requests may be served from (models[].deployments[].region).
	Regions []string `yaml:"regions" json:"regions"`
	// Fallbacks, when set, replaces the fallbacks of every model this
	// tier's clients request (models[].fallbacks): [] takes them away,
	// leaving it out keeps each model's own.
	Fallbacks []string `yaml:"fallbacks" json:"fallbacks"`
	// RefuseTokenInput refuses embeddings input sent as token ids (400
	// token_input_not_allowed) instead of decoding and scanning it.
	RefuseTokenInput bool `yaml:"refuse_token_input" json:"refuse_token_input"`
	// MaxPromptBytes bounds a request body of this tier's clients: a larger
	// one is refused with 413 prompt_too_large before it is parsed or
	// scanned, so a client cannot spend the guardrails' time on prompts
	// that no model it may use would take. 0 means DefaultMaxPromptBytes;
	// server.max_body_bytes bounds every request whatever the tier.
	MaxPromptBytes int64 `yaml:"max_prompt_bytes" json:"max_prompt_bytes"`
	// CacheTTL turns the reply cache on for the tier's clients: how long a
	// reply is kept ("10m"); "" is off. CacheScope is who may be served it:
	// client (default), department or shared.
	CacheTTL   string `yaml:"cache_ttl" json:"cache_ttl"`
	CacheScope string `yaml:"cache_scope" json:"cache_scope"`
}

// DefaultMaxPromptBytes is a tier's MaxPromptBytes when it sets none: 1 MiB,
// room for a 128k-token context (about 4 bytes a token) and its JSON.
const DefaultMaxPromptBytes = 1 << 20

// PromptLimit is the tier's MaxPromptBytes, or the default.
func (t Tier) PromptLimit() int64 {
	if t.MaxPromptBytes > 0 {
		return t.MaxPromptBytes
	}
	return DefaultMaxPromptBytes
}

// Budget is a set of limits; 0 means unlimited.
type Budget struct {
	RPM             int64   `yaml:"rpm" json:"rpm"`
	TPM             int64   `yaml:"tpm" json:"tpm"`
	DailyTokens     int64   `yaml:"daily_tokens" json:"daily_tokens"`
	MonthlyTokens   int64   `yaml:"monthly_tokens" json:"monthly_tokens"`
	MonthlySpendUSD float64 `yaml:"monthly_spend_usd" json:"monthly_spend_usd"`
}

func (t Tier) negative() bool { return t.Budget.negative() || t.MaxPromptBytes < 0 }

func (b Budget) negative() bool {
	return b.RPM < 0 || b.TPM < 0 || b.DailyTokens < 0 || b.MonthlyTokens < 0 || b.MonthlySpendUSD < 0
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

// TiersData is the tiers as the JSON-like document the policy engine stores
// at data.sluice.tiers.
func (c *Config) TiersData() (map[string]any, error) {
	out, err := jsonDocument(c.Tiers)
	if err != nil {
		return nil, err
	}
	for name, t := range out {
		tier := t.(map[string]any)
		for _, k := range []string{"models", "redact", "response_plugins", "regions"} {
			if tier[k] == nil {
				tier[k] = []any{}
			}
		}
		out[name] = tier
	}
	return out, nil
}

// DepartmentsData is the departments' budgets as the document the policy
// engine stores at data.sluice.departments.
func (c *Config) DepartmentsData() (map[string]any, error) {
	if len(c.Departments) == 0 {
		return map[string]any{}, nil
	}
	return jsonDocument(c.Departments)
}

func jsonDocument(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
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

// CostNanos is the price in billionths of a dollar (nano-dollars) of the
// given token counts. A price of dollars per million tokens with up to three
// decimals (every published price so far) is a whole number of nano-dollars
// per token, so the cost is exact whatever the request's size: 10,000
// requests of 16 tokens cost what one of 160,000 does. A finer price is
// rounded to the nearest nano-dollar per request, half a nano-dollar at most.
// Token counts are clamped at 0; a cost beyond an int64 saturates.
func (m Model) CostNanos(prompt, completion int64) int64 {
	in, out := NanosPerMillion(m.InputPerMillion), NanosPerMillion(m.OutputPerMillion)
	// tokens × nano-dollars per million tokens is in millionths of a
	// nano-dollar: 128 bits hold it for any int64 operands.
	hiA, loA := bits.Mul64(uint64(max(prompt, 0)), in)
	hiB, loB := bits.Mul64(uint64(max(completion, 0)), out)
	lo, carry := bits.Add64(loA, loB, 0)
	hi, over := bits.Add64(hiA, hiB, carry)
	lo, carry = bits.Add64(lo, 500_000, 0) // round half up
	hi, over2 := bits.Add64(hi, 0, carry)
	if over != 0 || over2 != 0 || hi >= 1_000_000 {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// NanosPerMillion is a price in dollars per million tokens as nano-dollars
// per million tokens, rounded to the nearest: exact for any price written
// with up to nine decimals.
func NanosPerMillion(usd float64) uint64 {
	if usd <= 0 || math.IsNaN(usd) {
		return 0
	}
	n := math.Round(usd * 1e9)
	if n >= math.MaxUint64/2 {
		return math.MaxUint64 / 2
	}
	return uint64(n)
}

func (c *Config) String() string { return fmt.Sprintf("config(%s)", c.dir) }

// Attribution says which tags requests may carry in x-sluice-tags.
type Attribution struct {
	// Tags lists each tag name a request may send with its allowed values;
	// "*" allows any value of the narrow shape of package tags. Empty
	// refuses every request that sends tags. Keys' own tags need no entry.
	Tags map[string][]string `yaml:"tags"`
}

// AdminToken is a named token of the admin API and what it may do. Only the
// token's SHA-256 is configured, so the configuration holds no secret
// (`sluice admin-token` makes one).
type AdminToken struct {
	Name        string `yaml:"name"`
	Role        string `yaml:"role"`
	TokenSHA256 string `yaml:"token_sha256"`
}

// The roles of admin tokens, each allowed what the one before it is.
const (
	RoleViewer   = "viewer"   // usage reports, the dashboard, status
	RoleOperator = "operator" // and reloads, policy data, dry-run decisions
	RoleAdmin    = "admin"    // and clients, keys and the audit log
)
