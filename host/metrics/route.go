package metrics

import "github.com/prometheus/client_golang/prometheus"

// Names of the routing metrics.
const (
	NameUpstreamAttempts = "sluice_upstream_attempts_total"
	NameDeploymentState  = "sluice_deployment_state"
	NameDeploymentBusy   = "sluice_deployment_in_flight"
	NameDeploymentOut    = "sluice_deployment_ejected"
)

// EjectionReasons are the reason label of NameDeploymentOut: why a
// deployment is out of rotation.
var EjectionReasons = []string{"failures", "latency"}

// Outcomes of an upstream call, the outcome label of NameUpstreamAttempts.
const (
	AttemptOK          = "ok"           // answered, whatever the status, except below
	AttemptRateLimited = "rate_limited" // 429
	AttemptServerError = "server_error" // 5xx
	AttemptRefused     = "refused"      // 401 or 403: the provider refused the gateway's credentials
	AttemptTimeout     = "timeout"      // no answer in time
	AttemptUnavailable = "unavailable"  // no connection
	AttemptCancelled   = "cancelled"    // the caller left or the gateway shut down first
	AttemptQuota       = "quota"        // not sent: the deployment's provider quota was used up
	// AttemptContentRefused: the provider's content filter refused, and
	// the model falls back on refusal (models[].fallback_on_refusal).
	AttemptContentRefused = "content_refused"
)

// Deployment is what the metrics read of one deployment at each scrape.
type Deployment struct {
	Name string
	// State is 0 when the deployment is in rotation, 1 when a probe may
	// go (half open), 2 when it is ejected.
	State    func() float64
	InFlight func() float64
	// Reason is why it is ejected or half open (one of EjectionReasons),
	// "" in rotation.
	Reason func() string
}

// WatchDeployments registers the deployments' state and calls in flight,
// read at each scrape, and the counter of upstream attempts by deployment
// and outcome. Deployment names come from the configuration, so the label
// is bounded.
func (m *Metrics) WatchDeployments(ds []Deployment) {
	if m == nil {
		return
	}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NameUpstreamAttempts,
		Help: "Upstream calls, by deployment and outcome (ok, rate_limited, server_error, refused, timeout, unavailable, cancelled, content_refused for a content-filter refusal passed over, and quota for a call not made because the provider quota was used up); a request that fell back or retried makes several.",
	}, []string{"deployment", "outcome"})
	m.reg.MustRegister(m.attempts)
	for _, d := range ds {
		labels := prometheus.Labels{"deployment": d.Name}
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        NameDeploymentState,
			Help:        "Circuit breaker state of a deployment: 0 in rotation, 1 half open (a probe may go), 2 ejected.",
			ConstLabels: labels,
		}, d.State))
		for _, reason := range EjectionReasons {
			if d.Reason == nil {
				break
			}
			reason, why := reason, d.Reason
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        NameDeploymentOut,
				Help:        "1 while a deployment is out of rotation (ejected or half open) for this reason: failures, or latency far above its peers'; else 0.",
				ConstLabels: prometheus.Labels{"deployment": d.Name, "reason": reason},
			}, func() float64 {
				if why() == reason {
					return 1
				}
				return 0
			}))
		}
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        NameDeploymentBusy,
			Help:        "Upstream calls to a deployment not yet answered.",
			ConstLabels: labels,
		}, d.InFlight))
	}
}

// UpstreamAttempt counts one upstream call of a deployment.
func (m *Metrics) UpstreamAttempt(deployment, outcome string) {
	if m == nil || m.attempts == nil {
		return
	}
	m.attempts.WithLabelValues(deployment, outcome).Inc()
}
