package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stage is a step of the request path whose latency is measured.
type Stage uint8

// The stages, in the order a request meets them. Plugins have their own
// observation, Metrics.ObservePlugin.
const (
	StageAuth     Stage = iota // key lookup
	StageParse                 // reading the OpenAI request
	StagePolicy                // every policy evaluation of the request, summed
	StageLimits                // the reservation
	StageUpstream              // from sending to the upstream to its first byte (TTFB)
	StageTotal                 // from arrival to the last byte answered
	numStages
)

var stageNames = [numStages]string{"auth", "parse", "policy", "limits", "upstream_ttfb", "total"}

// String is the stage's label value.
func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return Other
}

// Stages holds a request's time in each stage, indexed by Stage. A zero
// duration means the stage did not run and is not observed.
type Stages [numStages]time.Duration

// Request is what one request contributes to the metrics, filled in along
// the path and recorded once, when the request is answered (for a stream,
// when it ends).
type Request struct {
	Endpoint   string // URL path; only Sluice's endpoints keep their value
	Department string // "" when the caller was not authenticated
	Client     string // client id, never a key id
	Model      string // public model name, "" before the request was parsed
	Status     int    // HTTP status answered
	Code       string // decision or error code, "" when none

	PromptTokens, CompletionTokens int64
	CostNanos                      int64 // billionths of a US dollar

	Stages Stages
}

// seriesKey is a request's labels once bounded.
type seriesKey struct {
	department, client, model, endpoint, status, code string
}

// series are the children one label combination records into.
type series struct {
	requests, prompt, completion, cost prometheus.Counter
	// The GenAI metrics are for model calls only; nil otherwise.
	duration, input, output prometheus.Observer
}

// Record adds one answered request. It allocates nothing once the request's
// label combination has been seen.
func (m *Metrics) Record(r *Request) {
	if m == nil {
		return
	}
	k := seriesKey{
		department: m.departments.label(r.Department),
		client:     m.clients.label(r.Client),
		model:      allowed(m.models, r.Model),
		endpoint:   endpointLabel(r.Endpoint),
		status:     statusLabel(r.Status),
		code:       codeLabel(m.codes, r.Code),
	}
	s := m.seriesFor(k)
	s.requests.Inc()
	if r.PromptTokens > 0 {
		s.prompt.Add(float64(r.PromptTokens))
	}
	if r.CompletionTokens > 0 {
		s.completion.Add(float64(r.CompletionTokens))
	}
	if r.CostNanos > 0 {
		s.cost.Add(float64(r.CostNanos) / 1e9)
	}
	for st, d := range r.Stages {
		if d > 0 {
			m.stages[st].Observe(d.Seconds())
		}
	}
	if s.duration != nil {
		if d := r.Stages[StageTotal]; d > 0 {
			s.duration.Observe(d.Seconds())
		}
		// Token usage is per request that used tokens: a denial used none,
		// and zeros would drag the distribution down.
		if r.PromptTokens > 0 {
			s.input.Observe(float64(r.PromptTokens))
		}
		if r.CompletionTokens > 0 {
			s.output.Observe(float64(r.CompletionTokens))
		}
	}
}

func (m *Metrics) seriesFor(k seriesKey) *series {
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.series[k]; s != nil {
		return s
	}
	s = &series{
		requests:   m.requests.WithLabelValues(k.department, k.client, k.model, k.endpoint, k.status, k.code),
		prompt:     m.tokens.WithLabelValues(k.department, k.client, k.model, "prompt"),
		completion: m.tokens.WithLabelValues(k.department, k.client, k.model, "completion"),
		cost:       m.cost.WithLabelValues(k.department, k.client, k.model),
	}
	if op := operation(k.endpoint); op != "" {
		// error.type is set on failures only, as the conventions ask: to
		// the bounded code (a code is only ever set on a failure, a stream
		// that broke after its 200 included), else to the status.
		errType := k.code
		if st, _ := strconv.Atoi(k.status); errType == "" && st >= 400 {
			errType = k.status
		}
		s.duration = m.genaiDur.WithLabelValues(op, k.model, errType)
		s.input = m.genaiTokens.WithLabelValues(op, k.model, "input")
		s.output = m.genaiTokens.WithLabelValues(op, k.model, "output")
	}
	m.series[k] = s
	return s
}

// ObservePlugin records the time one plugin took to scan a request.
func (m *Metrics) ObservePlugin(plugin string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.pluginStage[plugin]
	if !ok {
		o = m.pluginStage[Other]
	}
	o.Observe(d.Seconds())
}

// FailureReason is why a plugin did not scan a request.
type FailureReason string

// The reasons of plugin failures.
const (
	FailureTimeout     FailureReason = "timeout"     // it did not finish within its timeout
	FailureError       FailureReason = "error"       // it trapped, ran out of memory or answered nonsense
	FailureUnavailable FailureReason = "unavailable" // the policy named a plugin that is not loaded
	FailureBusy        FailureReason = "busy"        // every instance was busy and the queue full or its wait too long
)

// PluginCancelled counts a scan cancelled because its caller disconnected
// or its request's deadline passed.
func (m *Metrics) PluginCancelled(plugin string) {
	if m == nil {
		return
	}
	c, ok := m.cancelled[plugin]
	if !ok {
		c = m.cancelled[Other]
	}
	c.Inc()
}

// PluginGuestTime adds the time a plugin's instance spent on a scan of
// client's request. Clients beyond the cap count as Other, as in every
// per-client metric.
func (m *Metrics) PluginGuestTime(plugin, client string, d time.Duration) {
	if m == nil || d <= 0 {
		return
	}
	k := [2]string{allowed(m.plugins, plugin), m.clients.label(client)}
	m.mu.RLock()
	c := m.guestSeries[k]
	m.mu.RUnlock()
	if c == nil {
		m.mu.Lock()
		if c = m.guestSeries[k]; c == nil {
			c = m.guest.WithLabelValues(k[0], k[1])
			m.guestSeries[k] = c
		}
		m.mu.Unlock()
	}
	c.Add(d.Seconds())
}

// PluginFailed counts a plugin scan that failed, whether the request was then
// let through (fail open) or refused (fail closed).
func (m *Metrics) PluginFailed(plugin string, reason FailureReason) {
	if m == nil {
		return
	}
	if _, ok := m.pluginStage[plugin]; !ok {
		plugin = Other
	}
	c, ok := m.failures[pluginReason{plugin, string(reason)}]
	if !ok {
		c = m.failures[pluginReason{plugin, string(FailureError)}]
	}
	c.Inc()
}

// Unauthenticated counts a request refused before a client was known, by
// its error code; codes outside the known ones count as Other.
func (m *Metrics) Unauthenticated(code string) {
	if m == nil {
		return
	}
	m.unauth.WithLabelValues(codeLabel(m.codes, code)).Inc()
}

// PolicyError counts a policy evaluation that failed.
func (m *Metrics) PolicyError() {
	if m == nil {
		return
	}
	m.policyErrs.Inc()
}
