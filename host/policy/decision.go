package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decision is the policy's answer for one request.
type Decision struct {
	Allowed bool `json:"allowed"`
	// HTTPStatus is 200 when allowed, otherwise the status to answer with
	// (always 4xx or 5xx).
	HTTPStatus int `json:"http_status"`
	// Code, Type and Message fill the OpenAI-shaped error body of a denial;
	// all three are "" when allowed.
	Code    string `json:"code"`
	Type    string `json:"type"`
	Message string `json:"message"`
	// Headers are added to the response.
	Headers map[string]string `json:"headers"`
	// Limits apply to the client, DepartmentLimits to its department as a
	// whole.
	Limits           Limits `json:"limits"`
	DepartmentLimits Limits `json:"department_limits"`
	// Redact lists the finding types to mask before forwarding.
	Redact []string `json:"redact"`
	// Plugins lists the request-phase plugins to run.
	Plugins []string `json:"plugins"`
	// ResponsePlugins lists the plugins to run over the model's reply; the
	// policy may leave it out.
	ResponsePlugins []string `json:"response_plugins"`
	// Restore asks for redacted values to be put back into the reply; the
	// policy may leave it out (false).
	Restore bool `json:"restore"`
	// MaxTokens, when above 0, is the most the upstream may be asked for
	// per reply: the gateway lowers the request's max_tokens to it (never
	// raises it), and reserves accordingly. The policy may leave it out (0).
	MaxTokens int64 `json:"max_tokens"`
	// Reason, for a denial, says why in the caller's terms; the caller sees
	// it after Message. The policy may leave it out ("").
	Reason string `json:"reason"`
	// Regions, when not empty, are the only regions the request may be
	// served from: deployments labelled with another region, or none, are
	// not tried (data residency). The policy may leave it out.
	Regions []string `json:"regions"`
	// Fallbacks, when not nil, replaces the requested model's configured
	// fallbacks for this request: the models tried, in order, once the
	// model's own deployments have failed. An empty list means none; nil
	// (the policy left it out, or wrote null) keeps the configured ones.
	// Models the gateway does not serve are skipped.
	Fallbacks []string `json:"fallbacks"`
	// Cache lets identical requests be answered from the reply cache; the
	// policy may leave it out (no caching).
	Cache Cache `json:"cache"`
}

// Cache says whether and how a request's reply may be cached.
type Cache struct {
	// TTL is how long a reply is kept; 0 turns caching off.
	TTL time.Duration
	// Scope is who may be served a kept reply: CacheScopeClient (the
	// default), CacheScopeDepartment or CacheScopeShared.
	Scope string
}

// Cache scopes.
const (
	CacheScopeClient     = "client"
	CacheScopeDepartment = "department"
	CacheScopeShared     = "shared"
)

// UnmarshalJSON reads c as MarshalJSON writes it, for decisions read back
// from the decision log.
func (c *Cache) UnmarshalJSON(b []byte) error {
	var v struct{ TTL, Scope string }
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	out := Cache{Scope: v.Scope}
	if v.TTL != "" {
		ttl, err := time.ParseDuration(v.TTL)
		if err != nil {
			return fmt.Errorf("cache.ttl: %w", err)
		}
		out.TTL = ttl
	}
	*c = out
	return nil
}

// MarshalJSON writes c as the policy writes it: {"ttl": "10m0s", "scope": "client"}.
func (c Cache) MarshalJSON() ([]byte, error) {
	ttl := ""
	if c.TTL > 0 {
		ttl = c.TTL.String()
	}
	return json.Marshal(map[string]string{"ttl": ttl, "scope": c.Scope})
}

// Limits are the rate and budget limits the policy assigns; 0 means
// unlimited.
type Limits struct {
	RPM           int64 `json:"rpm"`
	TPM           int64 `json:"tpm"`
	DailyTokens   int64 `json:"daily_tokens"`
	MonthlyTokens int64 `json:"monthly_tokens"`
	// MonthlySpendMicros is the policy's monthly_spend_usd in millionths of
	// a dollar, rounded down: money is counted exactly, never in floats.
	MonthlySpendMicros int64 `json:"-"`
}

// limitsJSON is Limits as the policy writes it, with the spend in dollars.
type limitsJSON struct {
	RPM             int64       `json:"rpm"`
	TPM             int64       `json:"tpm"`
	DailyTokens     int64       `json:"daily_tokens"`
	MonthlyTokens   int64       `json:"monthly_tokens"`
	MonthlySpendUSD json.Number `json:"monthly_spend_usd"`
}

// MarshalJSON writes d in the shape of the policy's decision object: empty
// lists and headers as [] and {}, never null, as the policy wrote them;
// fallbacks left out when the policy did not replace them, so that a
// decision read back keeps the configured ones.
func (d Decision) MarshalJSON() ([]byte, error) {
	type plain Decision // without this method
	p := plain(d)
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	for _, l := range []*[]string{&p.Redact, &p.Plugins, &p.ResponsePlugins, &p.Regions} {
		if *l == nil {
			*l = []string{}
		}
	}
	var fallbacks *[]string
	if d.Fallbacks != nil {
		fallbacks = &d.Fallbacks
	}
	return json.Marshal(struct {
		plain
		Fallbacks *[]string `json:"fallbacks,omitempty"`
	}{p, fallbacks})
}

// MarshalJSON writes l in the shape of the policy's limits object, the
// spend as an exact decimal number of dollars.
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitsJSON{
		RPM: l.RPM, TPM: l.TPM, DailyTokens: l.DailyTokens, MonthlyTokens: l.MonthlyTokens,
		MonthlySpendUSD: json.Number(formatMicros(l.MonthlySpendMicros)),
	})
}

// UnmarshalJSON reads the policy's limits object, with the same checks as a
// decision: absent keys are 0, negative or fractional counts are errors.
func (l *Limits) UnmarshalJSON(b []byte) error {
	v, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return fmt.Errorf("limits are %s, want object", ast.ValueName(v))
	}
	for _, k := range []*ast.Term{keyRPM, keyTPM, keyDailyTokens, keyMonthlyTokens, keyMonthlySpendUSD} {
		if obj.Get(k) == nil {
			obj.Insert(k, ast.InternedTerm(0))
		}
	}
	out, err := decodeLimits(obj)
	if err != nil {
		return err
	}
	*l = out
	return nil
}

var (
	keyAllowed           = ast.StringTerm("allowed")
	keyHTTPStatus        = ast.StringTerm("http_status")
	keyMessage           = ast.StringTerm("message")
	keyCode              = ast.StringTerm("code")
	keyHeaders           = ast.StringTerm("headers")
	keyLimits            = ast.StringTerm("limits")
	keyDepartmentLimits  = ast.StringTerm("department_limits")
	keyRedact            = ast.StringTerm("redact")
	keyPlugins           = ast.StringTerm("plugins")
	keyResponsePlugins   = ast.StringTerm("response_plugins")
	keyRestore           = ast.StringTerm("restore")
	keyDecisionMaxTokens = ast.StringTerm("max_tokens")
	keyReason            = ast.StringTerm("reason")
	keyRegions           = ast.StringTerm("regions")
	keyFallbacks         = ast.StringTerm("fallbacks")
	keyCache             = ast.StringTerm("cache")
	keyTTL               = ast.StringTerm("ttl")
	keyScope             = ast.StringTerm("scope")
	keyRPM               = ast.StringTerm("rpm")
	keyTPM               = ast.StringTerm("tpm")
	keyDailyTokens       = ast.StringTerm("daily_tokens")
	keyMonthlyTokens     = ast.StringTerm("monthly_tokens")
	keyMonthlySpendUSD   = ast.StringTerm("monthly_spend_usd")
)

// decodeDecision reads the decision object field by field. A missing or
// mistyped field is an error rather than a zero value: a zero Decision would
// read as "denied with status 0", or worse, a policy bug could read as
// "unlimited".
func decodeDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want object", ast.ValueName(v))
	}
	var (
		d   Decision
		err error
	)
	if d.Allowed, err = boolField(obj, keyAllowed); err != nil {
		return Decision{}, err
	}
	status, err := intField(obj, keyHTTPStatus)
	if err != nil {
		return Decision{}, err
	}
	d.HTTPStatus = int(status)
	if !d.Allowed && (d.HTTPStatus < 400 || d.HTTPStatus > 599) {
		return Decision{}, fmt.Errorf("denial with http_status %d, want 4xx or 5xx", d.HTTPStatus)
	}
	if d.Code, err = stringField(obj, keyCode); err != nil {
		return Decision{}, err
	}
	if d.Type, err = stringField(obj, keyType); err != nil {
		return Decision{}, err
	}
	if d.Message, err = stringField(obj, keyMessage); err != nil {
		return Decision{}, err
	}
	if d.Headers, err = headersField(obj); err != nil {
		return Decision{}, err
	}
	if d.Limits, err = limitsField(obj, keyLimits); err != nil {
		return Decision{}, err
	}
	if d.DepartmentLimits, err = limitsField(obj, keyDepartmentLimits); err != nil {
		return Decision{}, err
	}
	if d.Redact, err = stringsField(obj, keyRedact); err != nil {
		return Decision{}, err
	}
	if d.Plugins, err = stringsField(obj, keyPlugins); err != nil {
		return Decision{}, err
	}
	// The two response fields are optional: policies written before they
	// existed keep working, and leaving them out means "nothing to do".
	if obj.Get(keyResponsePlugins) != nil {
		if d.ResponsePlugins, err = stringsField(obj, keyResponsePlugins); err != nil {
			return Decision{}, err
		}
	}
	if obj.Get(keyRestore) != nil {
		if d.Restore, err = boolField(obj, keyRestore); err != nil {
			return Decision{}, err
		}
	}
	if obj.Get(keyDecisionMaxTokens) != nil {
		if d.MaxTokens, err = intField(obj, keyDecisionMaxTokens); err != nil {
			return Decision{}, err
		}
	}
	if obj.Get(keyReason) != nil {
		if d.Reason, err = stringField(obj, keyReason); err != nil {
			return Decision{}, err
		}
	}
	if obj.Get(keyRegions) != nil {
		if d.Regions, err = stringsField(obj, keyRegions); err != nil {
			return Decision{}, err
		}
	}
	if d.Fallbacks, err = fallbacksField(obj); err != nil {
		return Decision{}, err
	}
	if t := obj.Get(keyCache); t != nil {
		if d.Cache, err = decodeCache(t.Value); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

// decodeCache reads the decision's cache object: a ttl of "" or "0s" is
// off; a scope of "" is the client's. Anything else malformed is an error,
// so that a typo never shares a reply wider than its author meant.
func decodeCache(v ast.Value) (Cache, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Cache{}, fmt.Errorf("field %s is %s, want object", keyCache, ast.ValueName(v))
	}
	var c Cache
	if obj.Get(keyTTL) != nil {
		ttl, err := stringField(obj, keyTTL)
		if err != nil {
			return Cache{}, fmt.Errorf("cache: %w", err)
		}
		if ttl != "" {
			if c.TTL, err = time.ParseDuration(ttl); err != nil || c.TTL < 0 {
				return Cache{}, fmt.Errorf("field cache.ttl is %q, want a duration such as \"10m\"", ttl)
			}
		}
	}
	if obj.Get(keyScope) != nil {
		scope, err := stringField(obj, keyScope)
		if err != nil {
			return Cache{}, fmt.Errorf("cache: %w", err)
		}
		c.Scope = scope
	}
	switch c.Scope {
	case "":
		c.Scope = CacheScopeClient
	case CacheScopeClient, CacheScopeDepartment, CacheScopeShared:
	default:
		return Cache{}, fmt.Errorf("field cache.scope is %q, want %q, %q or %q", c.Scope, CacheScopeClient, CacheScopeDepartment, CacheScopeShared)
	}
	return c, nil
}

func field(obj ast.Object, key *ast.Term) (ast.Value, error) {
	t := obj.Get(key)
	if t == nil {
		return nil, fmt.Errorf("field %s is missing", key)
	}
	return t.Value, nil
}

func boolField(obj ast.Object, key *ast.Term) (bool, error) {
	v, err := field(obj, key)
	if err != nil {
		return false, err
	}
	b, ok := v.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("field %s is %s, want boolean", key, ast.ValueName(v))
	}
	return bool(b), nil
}

func stringField(obj ast.Object, key *ast.Term) (string, error) {
	v, err := field(obj, key)
	if err != nil {
		return "", err
	}
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf("field %s is %s, want string", key, ast.ValueName(v))
	}
	return string(s), nil
}

// numberField reads a number.
func numberField(obj ast.Object, key *ast.Term) (ast.Number, error) {
	v, err := field(obj, key)
	if err != nil {
		return "", err
	}
	n, ok := v.(ast.Number)
	if !ok {
		return "", fmt.Errorf("field %s is %s, want number", key, ast.ValueName(v))
	}
	return n, nil
}

// intField reads a non-negative integer.
func intField(obj ast.Object, key *ast.Term) (int64, error) {
	n, err := numberField(obj, key)
	if err != nil {
		return 0, err
	}
	i, ok := n.Int64()
	if !ok {
		// 1e3 and 60.0 are integers too, in a form Int64 does not read.
		r, rok := new(big.Rat).SetString(string(n))
		if ok = rok && r.IsInt() && r.Num().IsInt64(); ok {
			i = r.Num().Int64()
		}
	}
	if !ok || i < 0 {
		return 0, fmt.Errorf("field %s is %s, want a non-negative integer", key, n)
	}
	return i, nil
}

// stringsField reads an array of strings; an empty array gives nil.
func stringsField(obj ast.Object, key *ast.Term) ([]string, error) {
	v, err := field(obj, key)
	if err != nil {
		return nil, err
	}
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("field %s is %s, want array", key, ast.ValueName(v))
	}
	if arr.Len() == 0 {
		return nil, nil
	}
	out := make([]string, arr.Len())
	for i := range arr.Len() {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("field %s[%d] is %s, want string", key, i, ast.ValueName(arr.Elem(i).Value))
		}
		out[i] = string(s)
	}
	return out, nil
}

// fallbacksField reads the optional fallbacks list: nil when left out or
// null, so that the configured fallbacks apply; a list, even an empty one,
// is not nil, so that [] can take every fallback away.
func fallbacksField(obj ast.Object) ([]string, error) {
	t := obj.Get(keyFallbacks)
	if t == nil {
		return nil, nil
	}
	if _, null := t.Value.(ast.Null); null {
		return nil, nil
	}
	out, err := stringsField(obj, keyFallbacks)
	if out == nil && err == nil {
		out = []string{}
	}
	return out, err
}

// headersField reads an object of string values; an empty object gives nil.
func headersField(obj ast.Object) (map[string]string, error) {
	v, err := field(obj, keyHeaders)
	if err != nil {
		return nil, err
	}
	h, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("field %s is %s, want object", keyHeaders, ast.ValueName(v))
	}
	if h.Len() == 0 {
		return nil, nil
	}
	out := make(map[string]string, h.Len())
	err = h.Iter(func(k, v *ast.Term) error {
		ks, kok := k.Value.(ast.String)
		vs, vok := v.Value.(ast.String)
		if !kok || !vok {
			return fmt.Errorf("field %s has entry %s: %s, want string: string", keyHeaders, k, v)
		}
		out[string(ks)] = string(vs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func limitsField(obj ast.Object, key *ast.Term) (Limits, error) {
	v, err := field(obj, key)
	if err != nil {
		return Limits{}, err
	}
	l, ok := v.(ast.Object)
	if !ok {
		return Limits{}, fmt.Errorf("field %s is %s, want object", key, ast.ValueName(v))
	}
	out, err := decodeLimits(l)
	if err != nil {
		return Limits{}, fmt.Errorf("%s: %w", string(key.Value.(ast.String)), err)
	}
	return out, nil
}

// decodeLimits reads every limit of l; each is required.
func decodeLimits(l ast.Object) (Limits, error) {
	var (
		out Limits
		err error
	)
	if out.RPM, err = intField(l, keyRPM); err != nil {
		return Limits{}, err
	}
	if out.TPM, err = intField(l, keyTPM); err != nil {
		return Limits{}, err
	}
	if out.DailyTokens, err = intField(l, keyDailyTokens); err != nil {
		return Limits{}, err
	}
	if out.MonthlyTokens, err = intField(l, keyMonthlyTokens); err != nil {
		return Limits{}, err
	}
	if out.MonthlySpendMicros, err = microsField(l, keyMonthlySpendUSD); err != nil {
		return Limits{}, err
	}
	return out, nil
}

// microsPerUSD is how many micro-dollars make a dollar.
const microsPerUSD = 1_000_000

// microsField reads a non-negative number of dollars as micro-dollars,
// rounded down. The number is read from its decimal text, never through a
// float, so that 0.1 dollars is exactly 100000 micro-dollars.
func microsField(obj ast.Object, key *ast.Term) (int64, error) {
	n, err := numberField(obj, key)
	if err != nil {
		return 0, err
	}
	if m, ok := parseMicros(string(n)); ok {
		return m, nil
	}
	// Exponents, signs and amounts too large end up here.
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return 0, fmt.Errorf("field %s is %s, want a number", key, n)
	}
	if r.Sign() < 0 {
		return 0, fmt.Errorf("field %s is %s, want a non-negative amount", key, n)
	}
	r.Mul(r, big.NewRat(microsPerUSD, 1))
	// Non-negative, so truncating is rounding down.
	micros := new(big.Int).Quo(r.Num(), r.Denom())
	if !micros.IsInt64() {
		return 0, fmt.Errorf("field %s is %s, want a non-negative amount below %d", key, n, math.MaxInt64/microsPerUSD)
	}
	return micros.Int64(), nil
}

// parseMicros reads a plain decimal number of dollars ("500", "12.5") as
// micro-dollars, dropping digits below a micro-dollar. It reports false for
// anything else (a sign, an exponent, more than it can hold), which
// microsField reads the slow way: this is the common case, and it
// allocates nothing.
func parseMicros(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 12 { // 12 digits of dollars fit in int64 micro-dollars
		return 0, false
	}
	var m int64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		m = m*10 + int64(c-'0')
	}
	var scale int64 = microsPerUSD
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if scale > 1 {
			scale /= 10
			m = m*10 + int64(c-'0')
		}
	}
	return m * scale, true
}

// formatMicros writes micro-dollars as an exact decimal number of dollars
// with no trailing zeros: 12500000 is "12.5".
func formatMicros(m int64) string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u/microsPerUSD, 10)
	if frac := u % microsPerUSD; frac != 0 {
		f := strconv.FormatUint(frac+microsPerUSD, 10)[1:] // six digits, leading zeros kept
		s += "." + strings.TrimRight(f, "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}
