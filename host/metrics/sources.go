package metrics

import "github.com/prometheus/client_golang/prometheus"

// Sources are values that other packages count, read when /metrics is
// scraped, so that those packages need not import this one. Each function
// must be safe to call from any goroutine and return a cumulative count
// (gauges aside). A nil field's metric is not registered: a dashboard then
// shows "no data" rather than a zero that was never measured.
type Sources struct {
	// PolicyReloads counts reloads of the enforced policy set that took
	// effect and that failed (policy.Set's status: ReloadsOK, ReloadsFailed).
	PolicyReloads func() (ok, failed uint64)
	// ShadowDisagreements counts decisions where the shadow policy set
	// decided otherwise than the enforced one; ShadowErrors, shadow
	// evaluations that failed.
	ShadowDisagreements func() uint64
	ShadowErrors        func() uint64
	// ShadowReloads counts reloads of the shadow policy set, as
	// PolicyReloads does for the enforced one.
	ShadowReloads func() (ok, failed uint64)
	// ShadowDropped counts decisions the shadow set did not evaluate
	// because its queue was full.
	ShadowDropped func() uint64
	// DecisionCache counts enforced decisions answered by the decision
	// cache (hits) and those evaluated after a miss.
	DecisionCache func() (hits, misses uint64)
	// DecisionLogDropped counts decisions the decision log lost because its
	// buffer was full or a write failed.
	DecisionLogDropped func() uint64
	// AuthCache counts key lookups answered by the client-context cache
	// (hits) and those that went to the store (misses).
	AuthCache func() (hits, misses uint64)
	// ClaimsDropped counts the claims of verified identity tokens left out
	// of the policy's input for their size.
	ClaimsDropped func() uint64
	// ExhaustedCache counts reservations answered from the limiter's cache
	// of exhausted scopes (hits) and those that asked the backend (misses).
	ExhaustedCache func() (hits, misses uint64)
	// LimitsBackendErrors counts calls to the limits backend (Redis) that
	// failed.
	LimitsBackendErrors func() uint64
	// LedgerQueueDepth is the number of usage events recorded and not yet
	// written.
	LedgerQueueDepth func() int
	// KeysExpiringSoon is the number of active keys that expire within
	// seven days.
	KeysExpiringSoon func() int
	// Ready reports whether the server takes traffic: false while it drains
	// or while a backend it needs is down.
	Ready func() bool
	// PluginHealth reports whether the named plugin is healthy (its recent
	// calls fail below its threshold) and how many times it became
	// unhealthy; it is asked for each plugin of Options.Plugins.
	PluginHealth func(plugin string) (healthy bool, timesUnhealthy uint64)
	// PluginMemory reports the memory plugin instances may grow to
	// together, the ceiling on it, and the scans refused at the ceiling.
	PluginMemory func() (reserved, limit, refused uint64)
}

func (s Sources) register(reg prometheus.Registerer, plugins []string) {
	counter := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	// pair registers a hits/misses or ok/failed pair as one metric with a
	// label, which is how a ratio is computed in PromQL.
	pair := func(name, help, label, first, second string, f func() (uint64, uint64)) {
		counter(name, help, prometheus.Labels{label: first}, func() float64 { a, _ := f(); return float64(a) })
		counter(name, help, prometheus.Labels{label: second}, func() float64 { _, b := f(); return float64(b) })
	}
	if f := s.PolicyReloads; f != nil {
		pair(NamePolicyReloads, "Policy reloads, by result (ok or failed); the first load is not one.", "result", "ok", "failed", f)
	}
	if f := s.ShadowDisagreements; f != nil {
		counter(NameShadowDisagreements, "Decisions where the shadow policy set decided otherwise than the enforced one.", nil,
			func() float64 { return float64(f()) })
	}
	if f := s.ShadowErrors; f != nil {
		counter(NameShadowErrors, "Shadow policy evaluations that failed.", nil, func() float64 { return float64(f()) })
	}
	if f := s.ShadowReloads; f != nil {
		pair(NameShadowReloads, "Shadow policy reloads, by result (ok or failed); the first load is not one.", "result", "ok", "failed", f)
	}
	if f := s.ShadowDropped; f != nil {
		counter(NameShadowDropped, "Decisions left unshadowed: the shadow policy set could not keep up and its queue was full.", nil,
			func() float64 { return float64(f()) })
	}
	if f := s.DecisionCache; f != nil {
		pair(NameDecisionCache, "Enforced policy decisions, by result: hit (answered by the decision cache) or miss (evaluated).",
			"result", "hit", "miss", f)
	}
	if f := s.DecisionLogDropped; f != nil {
		counter(NameDecisionLogDropped, "Decisions the decision log dropped: its buffer was full, or a write failed.", nil,
			func() float64 { return float64(f()) })
	}
	if f := s.AuthCache; f != nil {
		pair(NameAuthCache, "Key lookups, by result: hit (answered by the client-context cache) or miss (read from the store).",
			"result", "hit", "miss", f)
	}
	if f := s.ClaimsDropped; f != nil {
		counter(NameClaimsDropped, "Claims of verified identity tokens left out of the policy's input: too long a name or value, or past the count or size a token may bring.", nil,
			func() float64 { return float64(f()) })
	}
	if f := s.ExhaustedCache; f != nil {
		pair(NameExhaustedCache, "Reservations, by result: hit (denied from the cache of exhausted scopes) or miss (sent to the backend).",
			"result", "hit", "miss", f)
	}
	if f := s.LimitsBackendErrors; f != nil {
		counter(NameLimitsBackendErrors, "Calls to the limits backend that failed.", nil, func() float64 { return float64(f()) })
	}
	if f := s.KeysExpiringSoon; f != nil {
		gauge(NameKeysExpiringSoon, "Active API keys that expire within seven days.", func() float64 { return float64(f()) })
	}
	if f := s.LedgerQueueDepth; f != nil {
		gauge(NameLedgerQueueDepth, "Usage events recorded and not yet written to the ledger.", func() float64 { return float64(f()) })
	}
	if f := s.PluginHealth; f != nil {
		for _, p := range plugins {
			labels := prometheus.Labels{"plugin": p}
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: NamePluginHealthy, ConstLabels: labels,
				Help: "1 while the plugin's recent calls fail below its health threshold, 0 while it is unhealthy (and /readyz says why)."},
				func() float64 {
					if ok, _ := f(p); ok {
						return 1
					}
					return 0
				}))
			counter(NamePluginUnhealthy, "Times the plugin became unhealthy: its recent calls failed above its threshold.", labels,
				func() float64 { _, n := f(p); return float64(n) })
		}
	}
	if f := s.PluginMemory; f != nil {
		gauge(NamePluginMemory, "Linear memory the live plugin instances may grow to, together: each counted at its memory_limit_mb.",
			func() float64 { r, _, _ := f(); return float64(r) })
		gauge(NamePluginMemoryLimit, "The ceiling on plugin instances' memory (plugin_memory_limit_mb).",
			func() float64 { _, l, _ := f(); return float64(l) })
		counter(NamePluginMemoryRefused, "Plugin scans refused because instances held the memory ceiling and none came free in time.", nil,
			func() float64 { _, _, n := f(); return float64(n) })
	}
	if f := s.Ready; f != nil {
		gauge(NameReady, "1 while Sluice takes traffic, 0 while it drains or a backend it needs is down.", func() float64 {
			if f() {
				return 1
			}
			return 0
		})
	}
}
