// Package metrics is Sluice's Prometheus instrumentation: what the request
// path measures (requests, tokens, spend, stage latencies, plugin failures),
// what other packages count (policy reloads, caches, the ledger queue), and
// the /metrics handler that exposes it.
//
// Label values are bounded by construction: models and plugins must be
// configured, codes and endpoints come from known sets, clients and
// departments are capped, and nothing that looks like a key or a request id
// is ever a label value. Everything else is reported as Other.
//
// Metric names follow the OpenTelemetry GenAI semantic conventions where they
// exist (gen_ai_client_token_usage, gen_ai_server_request_duration_seconds);
// the rest are sluice_*. See the README beside the Grafana dashboard for the
// full table.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// DefaultMaxClients is the default of Options.MaxClients.
const DefaultMaxClients = 1000

// DefaultMaxDepartments is the default of Options.MaxDepartments.
const DefaultMaxDepartments = 200

// Options say which label values are allowed.
type Options struct {
	// Models are the public model names configured; a request for any other
	// model is labelled Other.
	Models []string
	// Plugins are the names of the plugins loaded; any other is Other.
	Plugins []string
	// Codes are decision codes a policy may return beyond DefaultCodes; any
	// code in neither is Other.
	Codes []string
	// MaxClients caps the client label: the first MaxClients distinct
	// clients seen keep their id, later ones are Other. Default 1000.
	MaxClients int
	// MaxDepartments caps the department label the same way. Default 200.
	MaxDepartments int
	// Sources are the values other packages count, read at each scrape.
	Sources Sources
	// NoRuntime leaves out the Go runtime and process collectors.
	NoRuntime bool
}

// Metrics holds Sluice's collectors in a registry of its own. The methods
// that record are safe for concurrent use and, on a nil *Metrics, do
// nothing: a gateway built without metrics needs no checks.
type Metrics struct {
	reg *prometheus.Registry

	models, plugins, codes map[string]string
	clients, departments   *capped

	requests    *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	cost        *prometheus.CounterVec
	stages      [numStages]prometheus.Observer
	pluginStage map[string]prometheus.Observer // plugin → its latency; Other included
	failures    map[pluginReason]prometheus.Counter
	cancelled   map[string]prometheus.Counter // plugin → its scans cancelled; Other included
	guest       *prometheus.CounterVec
	policyErrs  prometheus.Counter
	unauth      *prometheus.CounterVec
	genaiDur    *prometheus.HistogramVec
	genaiTokens *prometheus.HistogramVec

	// series caches the children of one label combination, so that a
	// request costs one map lookup instead of one per metric.
	mu     sync.RWMutex
	series map[seriesKey]*series
	// guestSeries caches the guest-time child of each (plugin, client).
	guestSeries map[[2]string]prometheus.Counter
	// attempts counts upstream calls by deployment and outcome (route.go).
	attempts *prometheus.CounterVec
	cache    cacheMetrics
}

type pluginReason struct{ plugin, reason string }

// New returns Metrics registered in a new registry.
func New(o Options) *Metrics {
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxDepartments <= 0 {
		o.MaxDepartments = DefaultMaxDepartments
	}
	m := &Metrics{
		reg:         prometheus.NewRegistry(),
		models:      allowlist(o.Models),
		plugins:     allowlist(o.Plugins),
		codes:       allowlist(append(append([]string(nil), DefaultCodes...), o.Codes...)),
		clients:     &capped{max: o.MaxClients},
		departments: &capped{max: o.MaxDepartments},
		series:      map[seriesKey]*series{},
		guestSeries: map[[2]string]prometheus.Counter{},
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameRequests,
		Help: "Requests answered, by department, client, model, endpoint, HTTP status and decision or error code (empty when none).",
	}, []string{"department", "client", "model", "endpoint", "status", "code"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameTokens,
		Help: "Tokens billed, by department, client, model and type (prompt or completion).",
	}, []string{"department", "client", "model", "type"})
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameCost,
		Help: "Spend in US dollars at the configured prices, by department, client and model.",
	}, []string{"department", "client", "model"})
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    NameStageDuration,
		Help:    "Time spent in each stage of the request path; stage=plugin has the plugin's name in the plugin label.",
		Buckets: StageBuckets,
	}, []string{"stage", "plugin"})
	for st := range numStages {
		m.stages[st] = stages.WithLabelValues(st.String(), "")
	}
	m.pluginStage = map[string]prometheus.Observer{}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NamePluginFailures,
		Help: "Plugin scans that failed, by plugin and reason (timeout, error, busy, unavailable); cancelled scans are not counted.",
	}, []string{"plugin", "reason"})
	cancelled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NamePluginCancelled,
		Help: "Plugin scans cancelled because their caller disconnected or their request's deadline passed, by plugin; each denied its request, and none is the plugin's failure.",
	}, []string{"plugin"})
	m.guest = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NamePluginGuestSeconds,
		Help: "Time plugin instances spent scanning, by plugin and by the client whose request it was.",
	}, []string{"plugin", "client"})
	m.failures = map[pluginReason]prometheus.Counter{}
	m.cancelled = map[string]prometheus.Counter{}
	for _, p := range append(keys(m.plugins), Other) {
		m.pluginStage[p] = stages.WithLabelValues("plugin", p)
		for _, r := range []FailureReason{FailureTimeout, FailureError, FailureBusy, FailureUnavailable} {
			m.failures[pluginReason{p, string(r)}] = failures.WithLabelValues(p, string(r))
		}
		m.cancelled[p] = cancelled.WithLabelValues(p)
	}
	m.policyErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: NamePolicyErrors,
		Help: "Policy evaluations that failed; each denied its request with policy_error.",
	})
	m.unauth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameUnauthenticated,
		Help: "Requests refused before a client was known (bad key, unknown path, malformed, or the per-IP limit), by reason; they are not ledger rows.",
	}, []string{"reason"})
	m.genaiDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    NameGenAIRequestDuration,
		Help:    "GenAI server request duration (OpenTelemetry gen_ai.server.request.duration), from the request's arrival to its last byte.",
		Buckets: GenAIDurationBuckets,
	}, []string{"gen_ai_operation_name", "gen_ai_request_model", "error_type"})
	m.genaiTokens = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    NameGenAITokenUsage,
		Help:    "Tokens used per request (OpenTelemetry gen_ai.client.token.usage), by token type input or output.",
		Buckets: GenAITokenBuckets,
	}, []string{"gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"})
	m.reg.MustRegister(m.requests, m.tokens, m.cost, stages, failures, cancelled, m.guest, m.policyErrs, m.unauth, m.genaiDur, m.genaiTokens)
	m.cache = newCacheMetrics(m.reg)
	o.Sources.register(m.reg, keys(m.plugins))
	if !o.NoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Registry is the registry the metrics are in, for a collector of one's own
// or for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format (gzip when the
// scraper accepts it) on a fasthttp server, for GET /metrics.
func (m *Metrics) Handler() fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing callback must not hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are cheap but not free; a storm of them must not compete
		// with the request path.
		MaxRequestsInFlight: 4,
	}))
}
