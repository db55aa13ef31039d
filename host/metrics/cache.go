package metrics

import "github.com/prometheus/client_golang/prometheus"

// Names of the reply cache's metrics.
const (
	NameCacheRequests = "sluice_cache_requests_total"
	NameCacheSaved    = "sluice_cache_saved_usd_total"
)

// cacheMetrics count what the reply cache did.
type cacheMetrics struct {
	results *prometheus.CounterVec
	saved   prometheus.Counter
}

func newCacheMetrics(reg *prometheus.Registry) cacheMetrics {
	c := cacheMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameCacheRequests,
			Help: "Requests of tiers whose replies are cached, by result: hit, miss, or bypass (the caller's Cache-Control).",
		}, []string{"result"}),
		saved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameCacheSaved,
			Help: "What the replies served from the cache would have cost, in US dollars at the configured prices.",
		}),
	}
	reg.MustRegister(c.results, c.saved)
	return c
}

// CacheResult counts one request the reply cache looked at: result is
// hit, miss or bypass, savedNanos what a hit would have cost.
func (m *Metrics) CacheResult(result string, savedNanos int64) {
	if m == nil {
		return
	}
	m.cache.results.WithLabelValues(result).Inc()
	if savedNanos > 0 {
		m.cache.saved.Add(float64(savedNanos) / 1e9)
	}
}
