package config

import (
	"fmt"
	"strings"
	"time"
)

// Deployment is one place a public model is served: an upstream and the
// name the upstream knows the model by.
type Deployment struct {
	// Name labels the deployment in metrics, the ledger and /admin/upstreams;
	// the default is "<upstream>/<upstream_model>".
	Name          string `yaml:"name"`
	Upstream      string `yaml:"upstream"`
	UpstreamModel string `yaml:"upstream_model"`
	// Weight is the deployment's share of requests under the weighted
	// strategy; default 1.
	Weight int `yaml:"weight"`
	// Region labels where the deployment runs (for example eu or us).
	Region string `yaml:"region"`
	// RPM and TPM are the quota the provider grants this deployment
	// (requests and tokens a minute, 0: none known). Sluice counts what it
	// sends there, in Redis across replicas when the limits are, and stops
	// sending before the provider would answer 429.
	RPM int64 `yaml:"rpm"`
	TPM int64 `yaml:"tpm"`
}

// Routing strategies: the order in which a request tries a model's
// deployments.
const (
	StrategyWeighted      = "weighted"
	StrategyLeastBusy     = "least_busy"
	StrategyLowestLatency = "lowest_latency"
)

// Retry bounds the attempts of one request across deployments and fallbacks.
type Retry struct {
	// Attempts is the most upstream calls one request makes, the first
	// included. The default tries each deployment of the model and of its
	// fallbacks once; more than that retries them in turn, with backoff.
	Attempts int `yaml:"attempts"`
	// Backoff is the base of the exponential backoff before a deployment is
	// tried again (full jitter: a random wait up to Backoff × 2^n, at most
	// MaxBackoff). A different deployment is tried at once.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// Deadline bounds all attempts together, waits included: no attempt
	// starts, and no Retry-After is waited for, past it.
	Deadline Duration `yaml:"deadline"`
}

// Circuit ejects a deployment that keeps failing: Failures failed calls
// (connection errors, timeouts, 429 and 5xx) within Window take it out of
// rotation for Cooldown, after which one request probes it.
//
// With LatencyFactor set it also ejects a deployment much slower than its
// peers: one whose moving average of answer times, over at least
// LatencySamples successful calls, is above LatencyMin and above
// LatencyFactor times the median of the model's other deployments in
// rotation. A provider that has slowed down to a crawl fails no call, yet
// holds every request it gets.
type Circuit struct {
	Failures int      `yaml:"failures"`
	Window   Duration `yaml:"window"`
	Cooldown Duration `yaml:"cooldown"`
	// LatencyFactor is how many times slower than the median of its peers
	// a deployment may be before it is ejected; 0 (the default) never
	// ejects for latency. Above 1 when set.
	LatencyFactor float64 `yaml:"latency_factor"`
	// LatencySamples is how many successful calls a deployment (and each
	// peer it is judged against) needs before its latency counts; default 10.
	LatencySamples int `yaml:"latency_samples"`
	// LatencyMin is a latency never judged slow, whatever the peers';
	// default 200ms, so that a few milliseconds against one is not an
	// outlier.
	LatencyMin Duration `yaml:"latency_min"`
}

// checkRouting fills a model's routing defaults and checks its deployments
// and fallbacks; upstreams holds the names of the configured upstreams.
func (c *Config) checkRouting(upstreams map[string]bool, upNames []string, bad func(key, format string, args ...any) error) error {
	models := map[string]bool{}
	for _, m := range c.Models {
		models[m.Name] = true
	}
	for i := range c.Models {
		m := &c.Models[i]
		key := fmt.Sprintf("models[%d]", i)
		if len(m.Deployments) == 0 {
			if !upstreams[m.Upstream] {
				return bad(key+".upstream", "unknown upstream %q (expected one of: %s)", m.Upstream, strings.Join(upNames, ", "))
			}
			if m.UpstreamModel == "" {
				m.UpstreamModel = m.Name
			}
		} else if m.Upstream != "" || m.UpstreamModel != "" {
			return bad(key, "set upstream and upstream_model, or deployments, not both")
		}
		names := map[string]bool{}
		for j := range m.Deployments {
			d := &m.Deployments[j]
			dkey := fmt.Sprintf("%s.deployments[%d]", key, j)
			if !upstreams[d.Upstream] {
				return bad(dkey+".upstream", "unknown upstream %q (expected one of: %s)", d.Upstream, strings.Join(upNames, ", "))
			}
			if d.UpstreamModel == "" {
				d.UpstreamModel = m.Name
			}
			if d.Name == "" {
				d.Name = d.Upstream + "/" + d.UpstreamModel
			}
			if names[d.Name] {
				return bad(dkey+".name", "deployment %q is listed twice", d.Name)
			}
			names[d.Name] = true
			if d.RPM < 0 || d.TPM < 0 {
				return bad(dkey, "rpm and tpm must not be negative")
			}
			switch {
			case d.Weight < 0:
				return bad(dkey+".weight", "must not be negative")
			case d.Weight == 0:
				d.Weight = 1
			}
		}
		if len(m.Deployments) > 0 {
			// The first deployment's upstream model names the model for
			// token counting, as upstream_model does.
			m.Upstream, m.UpstreamModel = m.Deployments[0].Upstream, m.Deployments[0].UpstreamModel
		}
		switch m.Strategy {
		case "":
			m.Strategy = StrategyWeighted
		case StrategyWeighted, StrategyLeastBusy, StrategyLowestLatency:
		default:
			return bad(key+".strategy", "expected %s, %s or %s, got %q", StrategyWeighted, StrategyLeastBusy, StrategyLowestLatency, m.Strategy)
		}
		for j, f := range m.Fallbacks {
			if !models[f] {
				return bad(fmt.Sprintf("%s.fallbacks[%d]", key, j), "unknown model %q", f)
			}
			if f == m.Name {
				return bad(fmt.Sprintf("%s.fallbacks[%d]", key, j), "a model cannot fall back to itself")
			}
		}
		if m.Timeout < 0 || m.FirstByteTimeout < 0 {
			return bad(key, "timeout and first_byte_timeout must not be negative")
		}
		if r := m.Retry; r.Attempts < 0 || r.Backoff < 0 || r.MaxBackoff < 0 || r.Deadline < 0 {
			return bad(key+".retry", "must not be negative")
		}
		m.Retry = m.Retry.OrDefaults()
		if b := m.Circuit; b.Failures < 0 || b.Window < 0 || b.Cooldown < 0 || b.LatencySamples < 0 || b.LatencyMin < 0 {
			return bad(key+".circuit", "must not be negative")
		}
		if f := m.Circuit.LatencyFactor; f != 0 && !(f > 1) {
			return bad(key+".circuit.latency_factor", "must be above 1 (or 0: off), got %v", f)
		}
		m.Circuit = m.Circuit.OrDefaults()
	}
	// A tier's fallbacks reach requests through the policy, which skips a
	// model it does not know; in the configuration, that is a typo.
	for _, name := range c.TierNames() {
		for j, f := range c.Tiers[name].Fallbacks {
			if !models[f] {
				return bad(fmt.Sprintf("tiers.%s.fallbacks[%d]", name, j), "unknown model %q", f)
			}
		}
	}
	return nil
}

// Serving lists the deployments that serve the model: its deployments, or
// the one its upstream and upstream_model name.
func (m Model) Serving() []Deployment {
	if len(m.Deployments) > 0 {
		return m.Deployments
	}
	model := m.UpstreamModel
	if model == "" {
		model = m.Name
	}
	return []Deployment{{Name: m.Upstream + "/" + model, Upstream: m.Upstream, UpstreamModel: model, Weight: 1}}
}

// OrDefaults fills what r leaves at zero: a backoff of 200 ms up to 5 s,
// a deadline of 5 minutes.
func (r Retry) OrDefaults() Retry {
	if r.Backoff == 0 {
		r.Backoff = Duration(200 * time.Millisecond)
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = Duration(5 * time.Second)
	}
	if r.Deadline == 0 {
		r.Deadline = Duration(5 * time.Minute)
	}
	return r
}

// OrDefaults fills what c leaves at zero: 5 failures within 30 s eject a
// deployment for 30 s; its latency is judged over 10 calls at least, and
// only above 200 ms.
func (c Circuit) OrDefaults() Circuit {
	if c.LatencySamples == 0 {
		c.LatencySamples = 10
	}
	if c.LatencyMin == 0 {
		c.LatencyMin = Duration(200 * time.Millisecond)
	}
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.Window == 0 {
		c.Window = Duration(30 * time.Second)
	}
	if c.Cooldown == 0 {
		c.Cooldown = Duration(30 * time.Second)
	}
	return c
}
