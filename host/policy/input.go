package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the document the policy sees as input. It mirrors the JSON shape
// in policies/README.md field for field.
type Input struct {
	Client  Client  `json:"client"`
	Request Request `json:"request"`
	// Usage is the client's and its department's current usage. The gateway
	// fills it only when the policy reads input.usage (Engine.UsesUsage);
	// nil gives the policy an empty object.
	Usage *Usage `json:"usage"`
	// Findings are the plugins' findings aggregated by (plugin, type). Empty
	// on the first evaluation of a request, before any plugin has run.
	Findings []Finding `json:"findings"`
	// Identity is how the caller authenticated; nil gives the policy an
	// empty object.
	Identity *Identity `json:"-"`
	// Time is when the request arrived; the zero value means now. The policy
	// sees it in the engine's time zone (WithTimeZone).
	Time time.Time `json:"-"`
	// RequestID names the request in what SetConfig.ShadowDone receives;
	// the policy never sees it.
	RequestID string `json:"-"`

	// pin is set by Set.Pin.
	pin *pin
}

// Usage is what a client and its department have used so far in each
// window the limits count.
type Usage struct {
	Client     Counters `json:"client"`
	Department Counters `json:"department"`
}

// Counters are the usage counts of one client or department.
type Counters struct {
	RequestsMinute int64 `json:"requests_minute"`
	TokensMinute   int64 `json:"tokens_minute"`
	TokensToday    int64 `json:"tokens_today"`
	TokensMonth    int64 `json:"tokens_month"`
	// SpendMonthMicros is the month's spend in millionths of a dollar; the
	// policy sees it as spend_month_usd, an exact decimal number of dollars.
	SpendMonthMicros int64 `json:"-"`
}

// UnmarshalJSON reads counters in the shape of input.usage.client, with
// spend_month_usd an exact decimal number of dollars: what POST
// /admin/decide takes to try a rule on usage.
func (c *Counters) UnmarshalJSON(b []byte) error {
	var aux struct {
		RequestsMinute int64       `json:"requests_minute"`
		TokensMinute   int64       `json:"tokens_minute"`
		TokensToday    int64       `json:"tokens_today"`
		TokensMonth    int64       `json:"tokens_month"`
		SpendMonthUSD  json.Number `json:"spend_month_usd"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*c = Counters{RequestsMinute: aux.RequestsMinute, TokensMinute: aux.TokensMinute,
		TokensToday: aux.TokensToday, TokensMonth: aux.TokensMonth}
	if aux.SpendMonthUSD != "" {
		m, ok := parseMicros(string(aux.SpendMonthUSD))
		if !ok {
			return fmt.Errorf("spend_month_usd %s: want a non-negative decimal number of dollars", aux.SpendMonthUSD)
		}
		c.SpendMonthMicros = m
	}
	return nil
}

// Probe is what a dry run may set of a request beyond its body, to try a
// rule on headers, time or usage (POST /admin/decide).
type Probe struct {
	// Headers are the request's headers as the application would send
	// them; the policy sees those it is configured to.
	Headers map[string]string `json:"headers"`
	// Time is when the request arrives; now when zero.
	Time time.Time `json:"time"`
	// Usage replaces the counters the gateway would read, in the shape of
	// input.usage.
	Usage *Usage `json:"usage"`
	// Identity is how the caller would authenticate, in the shape of
	// input.identity: a token's claims, to try a rule on groups.
	Identity *Identity `json:"identity"`
}

// Client is the authenticated caller.
type Client struct {
	ID         string            `json:"id"`
	Department string            `json:"department"`
	Tier       string            `json:"tier"`
	Labels     map[string]string `json:"labels"`
	// PluginFailures counts the scans of the client's requests that failed
	// through a plugin's fault (a trap, a timeout, an invalid result) in the
	// last five minutes: a client whose prompts keep breaking plugins.
	PluginFailures int `json:"plugin_failures"`
}

// Request is what the caller asked for. Model is "" for requests that name
// no model.
type Request struct {
	Method       string `json:"method"`
	Path         string `json:"path"`
	Model        string `json:"model"`
	Stream       bool   `json:"stream"`
	MaxTokens    int    `json:"max_tokens"`
	PromptTokens int    `json:"prompt_tokens"`
	MessageCount int    `json:"message_count"`
	// TokenArrays counts the embeddings inputs sent as token ids rather than
	// text; they are decoded and scanned, and a policy may refuse them.
	TokenArrays int `json:"token_arrays"`
	// API names the API called, whatever its path: chat, completions,
	// responses, messages, count_tokens, embeddings or models.
	API string `json:"api"`
	// UpstreamType is the type of the upstream (openai, azure_openai,
	// anthropic, bedrock, gemini, mock) of the model's first deployment as
	// configured; UpstreamTypes are the types of every deployment a request
	// for the model may be sent to, its fallbacks' included, each once, that
	// one first. Routing picks the deployment after the policy has decided,
	// so a rule that must hold wherever the request goes reads
	// UpstreamTypes. Both are empty when the model is none the gateway
	// serves.
	UpstreamType  string   `json:"upstream_type"`
	UpstreamTypes []string `json:"upstream_types"`
	// Headers are request headers by name. Only the names the engine was
	// given (WithHeaders, else DefaultHeaders) reach the policy,
	// lower-cased; the others are dropped whatever the caller passes, and
	// credentials can never be listed.
	Headers map[string]string `json:"headers"`
}

// defaultHeaders are the request headers a policy sees unless
// WithHeaders says otherwise: none of them carries a credential.
var defaultHeaders = []string{
	"user-agent", "content-type", "openai-organization", "openai-project",
	"x-request-id", "x-sluice-tags", "x-sluice-purpose",
}

// credentialHeaders carry keys and sessions: no policy may see them,
// whatever the configuration lists, since the decision log writes the
// input.
var credentialHeaders = []string{"authorization", "proxy-authorization", "x-api-key", "cookie"}

// DefaultHeaders returns the names of the request headers that reach the
// policy as input.request.headers when the configuration's policy.headers
// is not set, lower-case.
func DefaultHeaders() []string { return slices.Clone(defaultHeaders) }

// WithHeaders sets the request headers the policy sees as
// input.request.headers, e.g. the configuration's policy.headers:
// []string{"user-agent", "x-ticket-id"}. Names are compared without case
// and given to the policy lower-cased. The default is DefaultHeaders; nil
// keeps it, an empty list shows none.
//
// Notes: CheckHeaders refuses credentials (authorization, x-api-key,
// cookie, proxy-authorization); NewSet and Load return its error.
func WithHeaders(names []string) Option {
	return func(o *options) {
		if names != nil {
			o.headerList = slices.Clone(names)
			o.headers = headerTerms(names)
		}
	}
}

// CheckHeaders reports the first name of names that no policy may see, or
// that is no header name at all.
func CheckHeaders(names []string) error {
	for _, n := range names {
		l := strings.ToLower(n)
		if slices.Contains(credentialHeaders, l) {
			return fmt.Errorf("policy.headers: %q carries a credential and can never be shown to a policy", n)
		}
		if l == "" || strings.ContainsAny(l, " \t:\r\n") {
			return fmt.Errorf("policy.headers: %q is not a header name", n)
		}
	}
	return nil
}

// headerTerms maps each lower-cased name to its term. Credentials are left
// out whatever the caller passes: CheckHeaders reports them, and this is
// the line no configuration crosses.
func headerTerms(names []string) map[string]*ast.Term {
	m := make(map[string]*ast.Term, len(names))
	for _, h := range names {
		h = strings.ToLower(h)
		if slices.Contains(credentialHeaders, h) {
			continue
		}
		m[h] = ast.StringTerm(h)
	}
	return m
}

// headerNames lists the names of headerTerms' map, sorted.
func headerNames(m map[string]*ast.Term) []string {
	return slices.Sorted(maps.Keys(m))
}

// Finding is what one plugin found of one type across the request's
// messages. It never carries the matched text.
type Finding struct {
	Plugin string  `json:"plugin"`
	Type   string  `json:"type"`
	Count  int     `json:"count"`
	Score  float64 `json:"score"`
	// Messages are the indexes of the messages the type was found in.
	Messages []int `json:"messages"`
	// Locations are the kinds of place the type was found in (content,
	// name, tool_arguments, tool_definition, url, metadata…), sorted.
	Locations []string `json:"locations"`
}

// Keys of the input document, built once: every request shares them.
var (
	keyClient       = ast.StringTerm("client")
	keyRequest      = ast.StringTerm("request")
	keyFindings     = ast.StringTerm("findings")
	keyUsage        = ast.StringTerm("usage")
	keyTime         = ast.StringTerm("time")
	keyUnix         = ast.StringTerm("unix")
	keyRFC3339      = ast.StringTerm("rfc3339")
	keyZone         = ast.StringTerm("zone")
	keyWeekday      = ast.StringTerm("weekday")
	keyHour         = ast.StringTerm("hour")
	keyMinute       = ast.StringTerm("minute")
	keyReqMinute    = ast.StringTerm("requests_minute")
	keyTokMinute    = ast.StringTerm("tokens_minute")
	keyTokToday     = ast.StringTerm("tokens_today")
	keyTokMonth     = ast.StringTerm("tokens_month")
	keySpendMonth   = ast.StringTerm("spend_month_usd")
	keyID           = ast.StringTerm("id")
	keyDepartment   = ast.StringTerm("department")
	keyTier         = ast.StringTerm("tier")
	keyLabels       = ast.StringTerm("labels")
	keyPluginFails  = ast.StringTerm("plugin_failures")
	keyMethod       = ast.StringTerm("method")
	keyPath         = ast.StringTerm("path")
	keyModel        = ast.StringTerm("model")
	keyStream       = ast.StringTerm("stream")
	keyMaxTokens    = ast.StringTerm("max_tokens")
	keyPromptTokens = ast.StringTerm("prompt_tokens")
	keyMessageCount = ast.StringTerm("message_count")
	keyTokenArrays  = ast.StringTerm("token_arrays")
	keyAPI          = ast.StringTerm("api")
	keyUpType       = ast.StringTerm("upstream_type")
	keyUpTypes      = ast.StringTerm("upstream_types")
	keyReqHeaders   = ast.StringTerm("headers")
	keyPlugin       = ast.StringTerm("plugin")
	keyType         = ast.StringTerm("type")
	keyCount        = ast.StringTerm("count")
	keyScore        = ast.StringTerm("score")
	keyMessages     = ast.StringTerm("messages")
	keyLocations    = ast.StringTerm("locations")
)

// vocabulary holds the terms of strings that most inputs repeat (methods,
// paths, plugin names, finding types), built once: building the input is a
// large share of the cost of a decision, and a shared term costs nothing.
var vocabulary = func() map[string]*ast.Term {
	words := []string{
		"GET", "POST", "DELETE",
		"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
		"/v1/responses", "/v1/messages", "/v1/messages/count_tokens", "/v1/models/{id}",
		"chat", "completions", "responses", "messages", "count_tokens", "embeddings", "models",
		"openai", "azure_openai", "anthropic", "bedrock", "gemini", "mock",
		"pii", "content_filter",
		"EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "AWS_ACCESS_KEY",
		"GITHUB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "OPENAI_KEY",
		"PRIVATE_KEY", "JWT",
	}
	m := make(map[string]*ast.Term, len(words))
	for _, w := range words {
		m[w] = ast.StringTerm(w)
	}
	return m
}()

func stringTerm(s string) *ast.Term {
	if t, ok := vocabulary[s]; ok {
		return t
	}
	return ast.InternedTerm(s)
}

// weekdays are the terms of time.Weekday's names.
var weekdays = func() [7]*ast.Term {
	var out [7]*ast.Term
	for d := range out {
		out[d] = ast.StringTerm(time.Weekday(d).String())
	}
	return out
}()

// timeTerm is the time object of the input for one second.
type timeTerm struct {
	unix int64
	term *ast.Term
}

// clock builds the time object of the input in one time zone. It keeps the
// object built last: requests in the same second share it. Terms are never
// modified once built, so sharing is safe.
type clock struct {
	loc  *time.Location
	zone *ast.Term
	last atomic.Pointer[timeTerm]
}

func newClock(loc *time.Location) *clock {
	return &clock{loc: loc, zone: ast.StringTerm(loc.String())}
}

func (c *clock) term(at time.Time) *ast.Term {
	unix := at.Unix()
	if t := c.last.Load(); t != nil && t.unix == unix {
		return t.term
	}
	local := time.Unix(unix, 0).In(c.loc)
	t := &timeTerm{unix: unix, term: ast.ObjectTerm(
		ast.Item(keyUnix, ast.InternedTerm(unix)),
		ast.Item(keyRFC3339, ast.StringTerm(local.Format(time.RFC3339))),
		ast.Item(keyZone, c.zone),
		ast.Item(keyWeekday, weekdays[local.Weekday()]),
		ast.Item(keyHour, ast.InternedTerm(local.Hour())),
		ast.Item(keyMinute, ast.InternedTerm(local.Minute())),
	)}
	c.last.Store(t)
	return t.term
}

// value builds the input document as an AST value directly: going through
// map[string]any and JSON would cost more than the policy evaluation itself.
// client is the term of in.Client.
func (in *Input) value(client *ast.Term, clk *clock, headers map[string]*ast.Term) ast.Value {
	at := in.Time
	if at.IsZero() {
		at = time.Now()
	}
	return ast.NewObject(
		ast.Item(keyClient, client),
		ast.Item(keyRequest, in.Request.term(headers)),
		ast.Item(keyUsage, in.Usage.term()),
		ast.Item(keyFindings, findingsTerm(in.Findings)),
		ast.Item(keyTime, clk.term(at)),
		ast.Item(keyIdentity, in.Identity.term()),
	)
}

// term is never null: a policy that reads input.usage.client of a set that
// was not given usage finds it undefined, not an error.
func (u *Usage) term() *ast.Term {
	if u == nil {
		return ast.InternedEmptyObject
	}
	return ast.ObjectTerm(
		ast.Item(keyClient, u.Client.term()),
		ast.Item(keyDepartment, u.Department.term()),
	)
}

func (c Counters) term() *ast.Term {
	return ast.ObjectTerm(
		ast.Item(keyReqMinute, ast.InternedTerm(c.RequestsMinute)),
		ast.Item(keyTokMinute, ast.InternedTerm(c.TokensMinute)),
		ast.Item(keyTokToday, ast.InternedTerm(c.TokensToday)),
		ast.Item(keyTokMonth, ast.InternedTerm(c.TokensMonth)),
		ast.Item(keySpendMonth, microsTerm(c.SpendMonthMicros)),
	)
}

// microsTerm is micro-dollars as an exact number of dollars.
func microsTerm(m int64) *ast.Term {
	if m%microsPerUSD == 0 {
		return ast.InternedTerm(m / microsPerUSD)
	}
	return ast.NumberTerm(json.Number(formatMicros(m)))
}

// maxCachedClients bounds the memory clientCache may hold. Client ids come
// from the operator's client table, so a gateway rarely has more.
const maxCachedClients = 4096

// clientCache keeps the client object of the input per client id: a client
// sends many requests, and its object is the larger part of the input. An
// entry is used only when every field still matches, so that a client whose
// tier or labels changed gets a new object.
type clientCache struct {
	entries sync.Map // client id -> *clientEntry
	size    atomic.Int64
}

type clientEntry struct {
	client Client
	term   *ast.Term
}

func (cc *clientCache) term(c Client) *ast.Term {
	if v, ok := cc.entries.Load(c.ID); ok {
		e := v.(*clientEntry)
		if e.client.Department == c.Department && e.client.Tier == c.Tier && e.client.PluginFailures == c.PluginFailures &&
			maps.Equal(e.client.Labels, c.Labels) {
			return e.term
		}
	}
	t := c.term()
	if cc.size.Load() < maxCachedClients {
		// The labels are copied: the caller may reuse its map.
		e := &clientEntry{client: c, term: t}
		e.client.Labels = maps.Clone(c.Labels)
		if _, replaced := cc.entries.Swap(c.ID, e); !replaced {
			cc.size.Add(1)
		}
	}
	return t
}

func (c Client) term() *ast.Term {
	labels := ast.InternedEmptyObject
	if len(c.Labels) > 0 {
		obj := ast.NewObjectWithCapacity(len(c.Labels))
		for k, v := range c.Labels {
			obj.Insert(stringTerm(k), stringTerm(v))
		}
		labels = ast.NewTerm(obj)
	}
	return ast.ObjectTerm(
		ast.Item(keyID, stringTerm(c.ID)),
		ast.Item(keyDepartment, stringTerm(c.Department)),
		ast.Item(keyTier, stringTerm(c.Tier)),
		ast.Item(keyLabels, labels),
		ast.Item(keyPluginFails, ast.InternedTerm(c.PluginFailures)),
	)
}

func (r *Request) term(headers map[string]*ast.Term) *ast.Term {
	return ast.ObjectTerm(
		ast.Item(keyMethod, stringTerm(r.Method)),
		ast.Item(keyPath, stringTerm(r.Path)),
		ast.Item(keyModel, stringTerm(r.Model)),
		ast.Item(keyStream, ast.InternedTerm(r.Stream)),
		ast.Item(keyMaxTokens, ast.InternedTerm(r.MaxTokens)),
		ast.Item(keyPromptTokens, ast.InternedTerm(r.PromptTokens)),
		ast.Item(keyMessageCount, ast.InternedTerm(r.MessageCount)),
		ast.Item(keyTokenArrays, ast.InternedTerm(r.TokenArrays)),
		ast.Item(keyAPI, stringTerm(r.API)),
		ast.Item(keyUpType, stringTerm(r.UpstreamType)),
		ast.Item(keyUpTypes, stringsTerm(r.UpstreamTypes)),
		ast.Item(keyReqHeaders, headersTerm(r.Headers, headers)),
	)
}

// singletons are the arrays of one vocabulary word, built once: most
// models are served by one kind of upstream, and their upstream_types
// then cost nothing per request. Terms are never modified once built.
var singletons = func() map[string]*ast.Term {
	m := make(map[string]*ast.Term, len(vocabulary))
	for w, t := range vocabulary {
		m[w] = ast.ArrayTerm(t)
	}
	return m
}()

// stringsTerm is never null: the policy may iterate it without checking.
func stringsTerm(ss []string) *ast.Term {
	switch len(ss) {
	case 0:
		return ast.InternedEmptyArray
	case 1:
		if t, ok := singletons[ss[0]]; ok {
			return t
		}
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = stringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}

// headersTerm keeps the headers named in keys, whatever the case of their
// names, and drops the others.
func headersTerm(h map[string]string, headerKeys map[string]*ast.Term) *ast.Term {
	if len(h) == 0 {
		return ast.InternedEmptyObject
	}
	var obj ast.Object
	for name, value := range h {
		key, ok := headerKeys[name]
		if !ok {
			// Lower-casing allocates, so only names that miss pay for it.
			if key, ok = headerKeys[strings.ToLower(name)]; !ok {
				continue
			}
		}
		if obj == nil {
			obj = ast.NewObjectWithCapacity(len(h))
		}
		obj.Insert(key, ast.InternedTerm(value))
	}
	if obj == nil {
		return ast.InternedEmptyObject
	}
	return ast.NewTerm(obj)
}

// findingsTerm is never null: the policy may iterate it without checking.
func findingsTerm(fs []Finding) *ast.Term {
	if len(fs) == 0 {
		return ast.InternedEmptyArray
	}
	terms := make([]*ast.Term, len(fs))
	for i, f := range fs {
		msgs := make([]*ast.Term, len(f.Messages))
		for j, m := range f.Messages {
			msgs[j] = ast.InternedTerm(m)
		}
		locs := make([]*ast.Term, len(f.Locations))
		for j, l := range f.Locations {
			locs[j] = stringTerm(l)
		}
		terms[i] = ast.ObjectTerm(
			ast.Item(keyPlugin, stringTerm(f.Plugin)),
			ast.Item(keyType, stringTerm(f.Type)),
			ast.Item(keyCount, ast.InternedTerm(f.Count)),
			ast.Item(keyScore, ast.FloatNumberTerm(f.Score)),
			ast.Item(keyMessages, ast.ArrayTerm(msgs...)),
			ast.Item(keyLocations, ast.ArrayTerm(locs...)),
		)
	}
	return ast.ArrayTerm(terms...)
}
