package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/host/builtin"
	"github.com/sluicehq/sluice/host/tags"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a configuration problem, located by file, line and key.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the YAML file at path over the defaults. An empty path gives the
// embedded default configuration.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		return c, c.validate("")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(raw, path)
}

// Parse reads a YAML document; name is used in errors and relative paths
// resolve against its folder.
func Parse(raw []byte, name string) (*Config, error) {
	expanded, err := expandEnv(raw, name)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(expanded, &root); err != nil {
		return nil, &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	c := Default()
	c.Upstreams, c.Models, c.Plugins, c.Tiers = nil, nil, nil, nil
	if len(root.Content) == 0 {
		return nil, &Error{File: name, Msg: "the file is empty"}
	}
	doc := root.Content[0]
	if err := checkKeys(doc, reflect.TypeOf(*c), "", name); err != nil {
		return nil, err
	}
	if err := doc.Decode(c); err != nil {
		return nil, decodeError(err, name)
	}
	def := Default()
	// A file that lists none of these keeps the defaults; one that lists any
	// replaces that list whole, so nothing is merged behind the reader's back.
	if !hasKey(doc, "upstreams") {
		c.Upstreams = def.Upstreams
	}
	if !hasKey(doc, "models") {
		c.Models = def.Models
	}
	if !hasKey(doc, "plugins") {
		c.Plugins = def.Plugins
	}
	if !hasKey(doc, "tiers") {
		c.Tiers = def.Tiers
	}
	c.dir = filepath.Dir(name)
	return c, c.validate(name)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default}. An unset variable without a
// default is an error, so a forgotten secret does not become an empty string.
func expandEnv(raw []byte, name string) ([]byte, error) {
	var firstErr error
	lines := bytes.Split(raw, []byte("\n"))
	for i, line := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		lines[i] = envRef.ReplaceAllFunc(line, func(m []byte) []byte {
			sub := envRef.FindSubmatch(m)
			v, ok := os.LookupEnv(string(sub[1]))
			if ok && v != "" {
				return []byte(v)
			}
			if sub[2] != nil {
				return sub[3]
			}
			if firstErr == nil {
				firstErr = &Error{File: name, Line: i + 1, Msg: fmt.Sprintf(
					"environment variable %s is not set (write ${%s:-} to allow it to be empty)", sub[1], sub[1])}
			}
			return nil
		})
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return bytes.Join(lines, []byte("\n")), nil
}

// checkKeys walks the YAML tree beside the Go type and reports the first key
// the type does not have, with its line and the keys that would be accepted.
func checkKeys(n *yaml.Node, t reflect.Type, path, file string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if t == reflect.TypeOf(Duration(0)) {
				return nil
			}
			return &Error{File: file, Line: n.Line, Key: orRoot(path), Msg: "expected a mapping of keys to values"}
		}
		fields := map[string]reflect.Type{}
		var names []string
		yamlFields(t, fields, &names)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			key := join(path, k.Value)
			if !ok {
				return &Error{File: file, Line: k.Line, Key: key, Msg: fmt.Sprintf(
					"unknown key (expected one of: %s)", strings.Join(names, ", "))}
			}
			if err := checkKeys(v, ft, key, file); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return &Error{File: file, Line: n.Line, Key: orRoot(path), Msg: "expected a list"}
		}
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), file); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &Error{File: file, Line: n.Line, Key: orRoot(path), Msg: "expected a mapping"}
		}
		if t.Elem().Kind() == reflect.Interface {
			return nil // free-form, e.g. a plugin's own configuration
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), file); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlFields collects the YAML keys of a struct type, including those of
// structs embedded with ",inline".
func yamlFields(t reflect.Type, fields map[string]reflect.Type, names *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			yamlFields(f.Type, fields, names)
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields[tag] = f.Type
		*names = append(*names, tag)
	}
}

var lineRef = regexp.MustCompile(`line (\d+): (.*)`)

// decodeError turns yaml.v3's type errors into located config errors.
func decodeError(err error, file string) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		m := lineRef.FindStringSubmatch(te.Errors[0])
		if m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			return &Error{File: file, Line: line, Msg: friendlyType(m[2])}
		}
		return &Error{File: file, Msg: te.Errors[0]}
	}
	var le *lineError
	if errors.As(err, &le) {
		return &Error{File: file, Line: le.line, Msg: le.msg}
	}
	return &Error{File: file, Msg: err.Error()}
}

func friendlyType(msg string) string {
	// "cannot unmarshal !!str `abc` into int64" → "expected an integer, got "abc""
	r := regexp.MustCompile("cannot unmarshal !!(\\w+) `([^`]*)` into (.+)")
	m := r.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := m[3]
	switch {
	case strings.HasPrefix(want, "int"):
		want = "an integer"
	case strings.HasPrefix(want, "float"):
		want = "a number"
	case want == "bool":
		want = "true or false"
	case want == "string":
		want = "a string"
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	case strings.HasPrefix(want, "map"):
		want = "a mapping"
	}
	return fmt.Sprintf("expected %s, got %q", want, m[2])
}

type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

// UnmarshalYAML reads "250ms", "30s", "1m30s" or 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &lineError{line: n.Line, msg: fmt.Sprintf("expected a duration such as 250ms, 30s or 1m, got %q", n.Value)}
	}
	*d = Duration(v)
	return nil
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// validate checks values that YAML types cannot, and fills derived defaults.
func (c *Config) validate(file string) error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: file, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.DataDir == "" {
		return bad("data_dir", "must not be empty")
	}
	if c.Server.Listen == "" {
		return bad("server.listen", "expected an address such as 127.0.0.1:8080")
	}
	if c.Server.AdminListen == "" {
		return bad("server.admin_listen", "expected an address such as 127.0.0.1:8081")
	}
	if c.Server.AdminListen == c.Server.Listen {
		return bad("server.admin_listen", "must differ from server.listen: the admin API has its own listener")
	}
	for name, values := range c.Attribution.Tags {
		for _, v := range values {
			if v == tags.Any {
				v = "x"
			}
			if err := tags.Check(name, v); err != nil {
				return bad("attribution.tags."+name, "%v", err)
			}
		}
		if len(values) == 0 {
			return bad("attribution.tags."+name, "list the values allowed, or \"*\" for any")
		}
	}
	issuers := map[string]bool{}
	for i, o := range c.Auth.OIDC {
		key := fmt.Sprintf("auth.oidc[%d]", i)
		u, err := url.Parse(o.Issuer)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			return bad(key+".issuer", "expected the provider's issuer URL, such as https://login.example.com/")
		case issuers[o.Issuer]:
			return bad(key+".issuer", "%q is listed twice", o.Issuer)
		case o.Audience == "":
			return bad(key+".audience", "must not be empty: tokens meant for another application must not pass")
		case o.ClockSkew.D() < 0 || o.ClockSkew.D() > 5*time.Minute:
			return bad(key+".clock_skew", "expected 0s to 5m")
		}
		issuers[o.Issuer] = true
		for j, g := range o.GroupTiers {
			if _, ok := c.Tiers[g.Tier]; !ok || g.Group == "" {
				return bad(fmt.Sprintf("%s.group_tiers[%d]", key, j), "expected a group and a configured tier, got %q → %q", g.Group, g.Tier)
			}
		}
		if _, ok := c.Tiers[o.DefaultTier]; o.DefaultTier != "" && !ok {
			return bad(key+".default_tier", "%q is not a configured tier", o.DefaultTier)
		}
	}
	names := map[string]bool{"admin": c.Server.AdminToken != ""}
	for i, t := range c.Server.AdminTokens {
		key := fmt.Sprintf("server.admin_tokens[%d]", i)
		switch {
		case t.Name == "" || len(t.Name) > 64 || strings.ContainsAny(t.Name, " \t\r\n"):
			return bad(key+".name", "expected a name of 1 to 64 characters without spaces")
		case names[t.Name]:
			return bad(key+".name", "%q is taken (the admin_token is named admin)", t.Name)
		case t.Role != RoleViewer && t.Role != RoleOperator && t.Role != RoleAdmin:
			return bad(key+".role", "expected viewer, operator or admin, got %q", t.Role)
		case len(t.TokenSHA256) != 64 || strings.Trim(strings.ToLower(t.TokenSHA256), "0123456789abcdef") != "":
			return bad(key+".token_sha256", "expected the token's SHA-256 as 64 hex digits (sluice admin-token makes a token and its hash)")
		}
		names[t.Name] = true
	}
	if o := c.Server.AdminOIDC; o != nil {
		if key, msg := o.problem(); key != "" {
			return bad("server.admin_oidc"+key, "%s", msg)
		}
	}
	switch c.Server.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("server.log_level", "expected debug, info, warn or error, got %q", c.Server.LogLevel)
	}
	if c.Server.MaxBodyBytes < 1024 {
		return bad("server.max_body_bytes", "expected at least 1024, got %d", c.Server.MaxBodyBytes)
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if !strings.HasPrefix(c.Store.DSN, "postgres://") && !strings.HasPrefix(c.Store.DSN, "postgresql://") {
			return bad("store.dsn", "expected a postgres:// connection URL for store.driver postgres")
		}
	default:
		return bad("store.driver", "expected sqlite or postgres, got %q", c.Store.Driver)
	}
	if err := c.validatePolicy(bad); err != nil {
		return err
	}
	if err := c.validateCache(bad); err != nil {
		return err
	}
	if c.Limits.DefaultMaxTokens <= 0 || c.Limits.DefaultMaxTokens > 1<<24 {
		return bad("limits.default_max_tokens", "expected an integer from 1 to %d, got %d", 1<<24, c.Limits.DefaultMaxTokens)
	}
	switch c.Limits.Backend {
	case "memory":
	case "redis":
		if !strings.HasPrefix(c.Limits.Redis.URL, "redis://") && !strings.HasPrefix(c.Limits.Redis.URL, "rediss://") {
			return bad("limits.redis.url", "expected a redis:// URL for limits.backend redis")
		}
	default:
		return bad("limits.backend", "expected memory or redis, got %q", c.Limits.Backend)
	}
	switch c.Limits.Redis.FailMode {
	case "deny", "local":
	default:
		return bad("limits.redis.fail_mode", "expected deny or local, got %q", c.Limits.Redis.FailMode)
	}
	if c.Limits.Redis.Timeout <= 0 {
		return bad("limits.redis.timeout", "expected a positive duration such as 100ms")
	}
	upstreams := map[string]bool{}
	var upNames []string
	for i, u := range c.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		if err := uniqueName(upstreams, u.Name, "upstream", key, bad); err != nil {
			return err
		}
		upNames = append(upNames, u.Name)
		switch u.Type {
		case TypeAnthropic:
			if u.BaseURL == "" {
				c.Upstreams[i].BaseURL = "https://api.anthropic.com"
			} else if !strings.HasPrefix(u.BaseURL, "http://") && !strings.HasPrefix(u.BaseURL, "https://") {
				return bad(key+".base_url", "expected an http:// or https:// URL, got %q", u.BaseURL)
			}
		case "openai":
			if !strings.HasPrefix(u.BaseURL, "http://") && !strings.HasPrefix(u.BaseURL, "https://") {
				return bad(key+".base_url", "expected an http:// or https:// URL, got %q", u.BaseURL)
			}
		case TypeMock, TypeAzureOpenAI, TypeBedrock, TypeGemini:
			if err := checkProvider(u, key, bad); err != nil {
				return err
			}
		default:
			return bad(key+".type", "expected openai, anthropic, azure_openai, bedrock, gemini or mock, got %q", u.Type)
		}
		if c.Upstreams[i].Timeout == 0 {
			c.Upstreams[i].Timeout = Duration(120 * time.Second)
		}
		if c.Upstreams[i].IdleTimeout == 0 {
			c.Upstreams[i].IdleTimeout = Duration(60 * time.Second)
		}
		if c.Upstreams[i].IdleTimeout < 0 {
			return bad(key+".idle_timeout", "expected a duration of 0 or more")
		}
		if u.ConnectTimeout < 0 || u.FirstByteTimeout < 0 {
			return bad(key, "connect_timeout and first_byte_timeout must not be negative")
		}
		if c.Upstreams[i].MaxConns == 0 {
			c.Upstreams[i].MaxConns = 512
		}
		if err := c.Upstreams[i].validateHeaders(key, bad); err != nil {
			return err
		}
	}
	models := map[string]bool{}
	for i, m := range c.Models {
		key := fmt.Sprintf("models[%d]", i)
		if err := uniqueName(models, m.Name, "model", key, bad); err != nil {
			return err
		}
		if m.InputPerMillion < 0 || m.OutputPerMillion < 0 {
			return bad(key, "prices must not be negative")
		}
	}
	if err := c.checkRouting(upstreams, upNames, bad); err != nil {
		return err
	}
	if c.Limits.Redis.Lease < 0 {
		return bad("limits.redis.lease", "must not be negative (0 takes the longest a request may take)")
	}
	if c.Server.DrainDelay < 0 {
		return bad("server.drain_delay", "must not be negative")
	}
	if c.Server.IPLimit.Rate < 0 || c.Server.IPLimit.Burst < 0 || c.Server.IPLimit.Rate > 0 && c.Server.IPLimit.Burst < 1 {
		return bad("server.ip_limit", "expected a rate of 0 (off) or more a second and a burst of at least 1")
	}
	if k := c.Server.KeyLimit; k.Rate < 0 || k.Burst < 0 || k.Rate > 0 && k.Burst < 1 {
		return bad("server.key_limit", "expected a rate of 0 (off) or more a second and a burst of at least 1")
	}
	if len(c.Tiers) == 0 {
		return bad("tiers", "define at least one tier")
	}
	if _, ok := c.Tiers[c.DefaultTier]; !ok {
		return bad("default_tier", "unknown tier %q (expected one of: %s)", c.DefaultTier, strings.Join(c.TierNames(), ", "))
	}
	for name, t := range c.Tiers {
		if t.negative() {
			return bad("tiers."+name, "limits must not be negative (0 means unlimited, or the default for max_prompt_bytes)")
		}
	}
	for name, d := range c.Departments {
		if d.negative() {
			return bad("departments."+name, "limits must not be negative (0 means unlimited)")
		}
	}
	plugins := map[string]bool{}
	for i, p := range c.Plugins {
		key := fmt.Sprintf("plugins[%d]", i)
		if err := uniqueName(plugins, p.Name, "plugin", key, bad); err != nil {
			return err
		}
		if p.Path == "" {
			return bad(key+".path", "expected the path of a .wasm file, or builtin:NAME")
		}
		if name, ok := p.Builtin(); ok && !builtin.Known(name) {
			return bad(key+".path", "%s is not a built-in plugin; expected builtin:%s", p.Path, strings.Join(builtin.Names, ", builtin:"))
		}
		switch p.FailMode {
		case "":
			c.Plugins[i].FailMode = "closed"
		case "closed", "open":
		default:
			return bad(key+".fail_mode", "expected closed or open, got %q", p.FailMode)
		}
		if p.Timeout == 0 {
			c.Plugins[i].Timeout = Duration(100 * time.Millisecond)
		}
		if p.SHA256 != "" && !isSHA256Hex(p.SHA256) {
			return bad(key+".sha256", "expected 64 hexadecimal digits (sha256sum of the .wasm file), got %q", p.SHA256)
		}
		if p.MemoryLimitMB < 0 || p.MemoryLimitMB > 4096 {
			return bad(key+".memory_limit_mb", "expected 1 to 4096 (0 means the default, 32), got %d", p.MemoryLimitMB)
		}
		if p.MaxQueue < 0 {
			return bad(key+".max_queue", "expected 0 (16 × pool_size) or more, got %d", p.MaxQueue)
		}
		if h := p.Health; h.Window < 0 || h.MinCalls < 0 || h.MaxFailureRatio < 0 || h.MaxFailureRatio > 1 {
			switch {
			case h.Window < 0:
				return bad(key+".health.window", "expected a positive duration such as 1m (0 means the default, 1m), got %v", h.Window.D())
			case h.MinCalls < 0:
				return bad(key+".health.min_calls", "expected 1 or more (0 means the default, 10), got %d", h.MinCalls)
			default:
				return bad(key+".health.max_failure_ratio", "expected a share between 0 and 1 such as 0.5 (0 means the default, 0.5), got %g", h.MaxFailureRatio)
			}
		}
		h := &c.Plugins[i].Health
		if h.Window == 0 {
			h.Window = Duration(time.Minute)
		}
		if h.MinCalls == 0 {
			h.MinCalls = 10
		}
		if h.MaxFailureRatio == 0 {
			h.MaxFailureRatio = 0.5
		}
		if mb := p.InstanceMemoryMB(); mb > c.PluginMemoryMB() {
			return bad(key+".memory_limit_mb", "one instance of %d MiB does not fit plugin_memory_limit_mb (%d)", mb, c.PluginMemoryMB())
		}
	}
	if c.PluginMemoryLimitMB < 0 {
		return bad("plugin_memory_limit_mb", "expected 1 or more MiB (0 means the default, 1024), got %d", c.PluginMemoryLimitMB)
	}
	c.PluginMemoryLimitMB = c.PluginMemoryMB()
	return nil
}

func (c *Config) validatePolicy(bad func(key, format string, args ...any) error) error {
	if c.Policy.TimeZone == "" {
		c.Policy.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(c.Policy.TimeZone); err != nil {
		return bad("policy.time_zone", "unknown time zone %q (expected an IANA name such as Europe/Berlin)", c.Policy.TimeZone)
	}
	if t := c.Telemetry; t.TraceSampleRatio <= 0 || t.TraceSampleRatio > 1 {
		return bad("telemetry.trace_sample_ratio", "expected a share above 0 and at most 1, got %v", t.TraceSampleRatio)
	}
	if c.Telemetry.OTLPEndpoint != "" && !strings.HasPrefix(c.Telemetry.OTLPEndpoint, "http://") && !strings.HasPrefix(c.Telemetry.OTLPEndpoint, "https://") {
		return bad("telemetry.otlp_endpoint", "expected an http:// or https:// URL such as http://collector:4318")
	}
	if c.Telemetry.MetricsMaxClients < 1 {
		return bad("telemetry.metrics_max_clients", "expected at least 1, got %d", c.Telemetry.MetricsMaxClients)
	}
	if c.Policy.DecisionCache < 0 {
		return bad("policy.decision_cache", "expected a number of decisions, 0 for none, got %d", c.Policy.DecisionCache)
	}
	if c.Policy.ShadowQueue < 0 {
		return bad("policy.shadow_queue", "expected a number of decisions, got %d", c.Policy.ShadowQueue)
	}
	if c.Policy.DecisionLogSample < 0 || c.Policy.DecisionLogSample > 1 {
		return bad("policy.decision_log_sample", "expected a share from 0 to 1, got %v", c.Policy.DecisionLogSample)
	}
	if c.Policy.ShadowDir != "" && c.Policy.ShadowDir == c.Policy.Dir {
		return bad("policy.shadow_dir", "must differ from policy.dir")
	}
	b := &c.Policy.Bundle
	switch {
	case b.File != "" && b.URL != "":
		return bad("policy.bundle.url", "give a bundle file or a bundle URL, not both")
	case (b.File != "" || b.URL != "") && c.Policy.Dir != "":
		return bad("policy.bundle", "give policy.dir or a bundle, not both")
	case b.File == "" && b.URL == "" && (b.PublicKey != "" || b.KeyID != "" || b.Algorithm != ""):
		return bad("policy.bundle.file", "a bundle's key settings need a bundle file or URL")
	case b.URL != "" && !strings.HasPrefix(b.URL, "http://") && !strings.HasPrefix(b.URL, "https://"):
		return bad("policy.bundle.url", "expected an http:// or https:// URL such as https://bundles.example.com/sluice.tar.gz")
	case b.Poll < 0:
		return bad("policy.bundle.poll", "expected a positive duration such as 30s")
	}
	if b.Poll == 0 {
		b.Poll = Duration(30 * time.Second)
	}
	if d := c.Policy.EvalTimeout.D(); d < 0 || d > time.Second {
		return bad("policy.eval_timeout", "expected a duration above 0 and at most 1s such as 5ms, got %s", d)
	}
	for i, h := range c.Policy.Headers {
		name := strings.ToLower(strings.TrimSpace(h))
		switch {
		case name == "" || strings.ContainsAny(name, " \t:"):
			return bad("policy.headers", "expected header names such as x-ticket-id, got %q", h)
		case slices.Contains(credentialHeaders, name):
			return bad("policy.headers", "%q carries a credential and can never be shown to a policy (the decision log writes the input)", h)
		}
		c.Policy.Headers[i] = name
	}
	return nil
}

// credentialHeaders are the request headers policy.headers may never list.
var credentialHeaders = []string{"authorization", "proxy-authorization", "x-api-key", "cookie"}

// TimeZone is the location of policy.time_zone.
func (c *Config) TimeZone() *time.Location {
	loc, err := time.LoadLocation(c.Policy.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// DecisionLogPath is the decision log file, or "" when it is off.
func (c *Config) DecisionLogPath() string {
	switch c.Policy.DecisionLog {
	case "off":
		return ""
	case "":
		return filepath.Join(c.Resolve(c.DataDir), "decisions.jsonl")
	}
	return c.Resolve(c.Policy.DecisionLog)
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// uniqueName checks that a list item's name is set and not taken by an
// earlier item, and records it in seen.
func uniqueName(seen map[string]bool, name, what, key string, bad func(key, format string, args ...any) error) error {
	if name == "" {
		return bad(key+".name", "must not be empty")
	}
	if seen[name] {
		return bad(key+".name", "%s %q is defined twice", what, name)
	}
	seen[name] = true
	return nil
}

// TierNames lists the tiers in sorted order.
func (c *Config) TierNames() []string {
	names := make([]string, 0, len(c.Tiers))
	for n := range c.Tiers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Resolve makes a path from the config relative to the config file's folder.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// PluginCache is the folder of the plugins' compilation cache.
// DefaultPluginMemoryMB is the default of plugin_memory_limit_mb.
const DefaultPluginMemoryMB = 1024

// PluginMemoryMB is the ceiling on all plugin instances' memory, in MiB.
func (c *Config) PluginMemoryMB() int {
	if c.PluginMemoryLimitMB > 0 {
		return c.PluginMemoryLimitMB
	}
	return DefaultPluginMemoryMB
}

// InstanceMemoryMB is the memory one instance of the plugin may grow to, in MiB.
func (p Plugin) InstanceMemoryMB() int {
	if p.MemoryLimitMB > 0 {
		return p.MemoryLimitMB
	}
	return 32
}

func (c *Config) PluginCache() string {
	if c.PluginCacheDir != "" {
		return c.Resolve(c.PluginCacheDir)
	}
	return filepath.Join(c.Resolve(c.DataDir), "wasm-cache")
}

// StorePath is the SQLite file.
func (c *Config) StorePath() string {
	if c.Store.Path != "" {
		return c.Resolve(c.Store.Path)
	}
	return filepath.Join(c.Resolve(c.DataDir), "sluice.db")
}
