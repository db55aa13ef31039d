// Package routing decides which deployments serve a request, and in which
// order: a public model is served by one or more deployments (an upstream
// and the model name it knows), ordered per request by the model's strategy,
// followed by the deployments of its fallback models. A deployment that keeps
// failing is ejected for a cool-down by its circuit breaker, then probed by
// one request at a time until it answers again.
//
// The package keeps the state the strategies read (requests in flight,
// recent latency, breaker) and nothing of requests themselves: the proxy
// makes the attempts and reports each outcome back.
//
// A deployment is also ejected, when its model's circuit sets a
// latency_factor, for being much slower than its peers: its recent latency
// above that many times the median of the other deployments of the model
// still in rotation. It is probed after the cool-down like a failing one,
// and the probe's own latency says whether it is back.
package routing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/upstream"
)

// Deployment is one place a model is served, with the state the strategies
// and the breaker keep of it.
type Deployment struct {
	Name   string
	Region string
	// Target is the public model's configuration with this deployment's
	// upstream model, and the upstream to send to.
	Target upstream.Target
	model  string // the public model it serves
	weight int
	// Quota is the provider's quota of the deployment as a limits scope,
	// keyed by upstream and upstream model so that the public models served
	// by one provider deployment share it; its Limits are zero when none is
	// configured.
	Quota limits.Scope

	inFlight atomic.Int64
	latency  atomic.Int64 // moving average of successful calls, nanoseconds; 0 before the first
	samples  atomic.Int64 // successful calls in the average since it was last restarted
	breaker  breaker
	// peers are the other deployments of the same model, against which
	// its latency is judged.
	peers []*Deployment
}

// InFlight is the number of calls to the deployment not yet finished.
func (d *Deployment) InFlight() int64 { return d.inFlight.Load() }

// Latency is the moving average of the deployment's successful calls, 0
// before the first.
func (d *Deployment) Latency() time.Duration { return time.Duration(d.latency.Load()) }

// States of a deployment's circuit breaker.
const (
	StateClosed   = "closed"    // in rotation
	StateOpen     = "open"      // ejected until its cool-down passes
	StateHalfOpen = "half_open" // cooled down: one probe at a time may go
)

// Reasons a deployment is out of rotation.
const (
	ReasonFailures = "failures" // its calls failed
	ReasonLatency  = "latency"  // its calls were much slower than its peers'
)

// State is the deployment's breaker state.
func (d *Deployment) State(now time.Time) string { return d.breaker.state(now) }

// Reason is why the deployment's breaker is open or half open, "" while
// closed.
func (d *Deployment) Reason(now time.Time) string {
	if d.State(now) == StateClosed {
		return ""
	}
	return d.breaker.reasonOf()
}

// Start counts a call to the deployment as in flight; the caller must pass
// its outcome to End.
func (d *Deployment) Start() { d.inFlight.Add(1) }

// End records a call's outcome: failed is a connection error, timeout, 429
// or 5xx; took is the time to the upstream's answer.
func (d *Deployment) End(now time.Time, failed bool, took time.Duration) {
	d.inFlight.Add(-1)
	if failed {
		d.breaker.failure(now)
		return
	}
	if d.breaker.state(now) != StateClosed {
		// The probe (or a call that started before the ejection): its
		// latency alone says whether the deployment is back, not an
		// average that still holds the slow calls that ejected it.
		if d.outlier(now, took) {
			d.breaker.eject(now, ReasonLatency)
			return
		}
		d.latency.Store(int64(took))
		d.samples.Store(1)
		d.breaker.success()
		return
	}
	d.breaker.success()
	d.addLatency(took)
	if d.samples.Load() >= int64(d.breaker.limits.LatencySamples) && d.outlier(now, d.Latency()) {
		d.breaker.eject(now, ReasonLatency)
	}
}

// addLatency adds a successful call to the moving average, an exponentially
// weighted one with weight 1/8 for the new sample.
func (d *Deployment) addLatency(took time.Duration) {
	d.samples.Add(1)
	for {
		old := d.latency.Load()
		next := int64(took)
		if old != 0 {
			next = old + (int64(took)-old)/8
		}
		if d.latency.CompareAndSwap(old, next) {
			return
		}
	}
}

// outlier reports whether latency is slow enough, against d's peers, to
// take d out of rotation: above the circuit's latency_min, and above
// latency_factor times the median of the peers in rotation that have
// enough samples to judge by. With no such peer there is nothing to judge
// against, and no deployment is an outlier.
func (d *Deployment) outlier(now time.Time, latency time.Duration) bool {
	c := d.breaker.limits
	if c.LatencyFactor <= 0 || latency < c.LatencyMin.D() {
		return false
	}
	var others []time.Duration
	for _, p := range d.peers {
		if p.samples.Load() >= int64(c.LatencySamples) && p.State(now) == StateClosed {
			others = append(others, p.Latency())
		}
	}
	if len(others) == 0 {
		return false
	}
	slices.Sort(others)
	median := others[len(others)/2]
	if len(others)%2 == 0 {
		median = (others[len(others)/2-1] + median) / 2
	}
	return float64(latency) > c.LatencyFactor*float64(median)
}

// Status is a deployment as /admin/upstreams shows it.
type Status struct {
	Model         string `json:"model"`
	Deployment    string `json:"deployment"`
	Upstream      string `json:"upstream"`
	UpstreamModel string `json:"upstream_model"`
	Region        string `json:"region,omitempty"`
	Weight        int    `json:"weight"`
	State         string `json:"state"`
	// Reason is why a deployment not closed was ejected: failures or
	// latency.
	Reason    string  `json:"reason,omitempty"`
	InFlight  int64   `json:"in_flight"`
	LatencyMS float64 `json:"latency_ms"` // moving average of successful calls; 0 before the first
	// Quota is the provider quota of the deployment and its use over the
	// last minute; nil when none is configured.
	Quota *QuotaUse `json:"quota,omitempty"`
}

// QuotaUse is a deployment's provider quota (0: none of that kind) and what
// the gateway sent there over the last minute, as the limiter counts it
// (across replicas when the limits are in Redis).
type QuotaUse struct {
	RPM      int64 `json:"rpm"`
	TPM      int64 `json:"tpm"`
	Requests int64 `json:"requests"`
	Tokens   int64 `json:"tokens"`
}

// Peek reads the limiter's counters of keys; limits.Backend.Peek is one.
type Peek func(ctx context.Context, keys ...string) ([]limits.Usage, error)

// Status reports every deployment, in configuration order, with the use of
// its provider quota as peek reads it (nil: left out). A quota whose
// counters cannot be read shows its limits with no use.
func (t *Table) Status(ctx context.Context, now time.Time, peek Peek) []Status {
	var out []Status
	for _, d := range t.all {
		out = append(out, Status{Model: d.model, Deployment: d.Name, Upstream: d.Target.Model.Upstream,
			UpstreamModel: d.Target.Model.UpstreamModel, Region: d.Region, Weight: d.weight, State: d.State(now),
			Reason: d.Reason(now), InFlight: d.InFlight(), LatencyMS: float64(d.Latency().Microseconds()) / 1000, Quota: d.quotaUse(ctx, peek)})
	}
	return out
}

func (d *Deployment) quotaUse(ctx context.Context, peek Peek) *QuotaUse {
	if d.Quota.Limits == (limits.Limits{}) {
		return nil
	}
	q := &QuotaUse{RPM: d.Quota.Limits.RPM, TPM: d.Quota.Limits.TPM}
	if peek != nil {
		if use, err := peek(ctx, d.Quota.Key); err == nil && len(use) == 1 {
			q.Requests, q.Tokens = use[0].MinuteRequests, use[0].MinuteTokens
		}
	}
	return q
}

// Route is how one public model is served.
type Route struct {
	Model       config.Model
	Deployments []*Deployment
	fallbacks   []string
}

// Table holds the routes of every public model.
type Table struct {
	routes map[string]*Route
	all    []*Deployment
	mu     sync.Mutex // guards rnd
	rnd    *rand.Rand
}

// NewTable builds the routes of cfg's models on the upstreams r built.
func NewTable(cfg *config.Config, r *upstream.Router) (*Table, error) {
	t := &Table{routes: map[string]*Route{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	for _, m := range cfg.Models {
		m.Retry, m.Circuit = m.Retry.OrDefaults(), m.Circuit.OrDefaults()
		rt := &Route{Model: m, fallbacks: m.Fallbacks}
		for _, d := range m.Serving() {
			up, ok := r.Upstream(d.Upstream)
			if !ok {
				return nil, fmt.Errorf("model %q: unknown upstream %q", m.Name, d.Upstream)
			}
			model := m
			model.Upstream, model.UpstreamModel = d.Upstream, d.UpstreamModel
			dep := &Deployment{Name: d.Name, Region: d.Region, model: m.Name, weight: max(d.Weight, 1),
				Quota: limits.Scope{Name: "deployment", Key: "deployment:" + d.Upstream + "/" + d.UpstreamModel, Limits: limits.Limits{RPM: d.RPM, TPM: d.TPM}}, Target: upstream.Target{Model: model, Upstream: up}}
			dep.breaker.limits = m.Circuit
			rt.Deployments = append(rt.Deployments, dep)
			t.all = append(t.all, dep)
		}
		for _, d := range rt.Deployments {
			d.peers = slices.DeleteFunc(slices.Clone(rt.Deployments), func(p *Deployment) bool { return p == d })
		}
		t.routes[m.Name] = rt
	}
	return t, nil
}

// Route returns the route of a public model.
func (t *Table) Route(model string) (*Route, bool) {
	r, ok := t.routes[model]
	return r, ok
}

// Deployments lists every deployment of every model, in configuration order.
func (t *Table) Deployments() []*Deployment { return t.all }

// Plan returns the deployments a request for model tries, in order: the
// model's own in rotation, ordered by its strategy, then each fallback
// model's the same way. A deployment whose breaker is open is left out; if
// that leaves nothing, every deployment of the plan is tried as if in
// rotation (a request is better sent to a failing provider than refused by
// the gateway alone).
func (t *Table) Plan(model string, now time.Time) []*Deployment {
	r, ok := t.routes[model]
	if !ok {
		return nil
	}
	return t.plan(r, r.fallbacks, now)
}

// PlanWith is Plan with fallbacks in place of the model's configured ones
// (the policy's choice for one request). A fallback the table does not
// serve, the model itself or one already listed is skipped.
func (t *Table) PlanWith(model string, fallbacks []string, now time.Time) []*Deployment {
	r, ok := t.routes[model]
	if !ok {
		return nil
	}
	return t.plan(r, fallbacks, now)
}

// Unknown counts the models of names the table does not serve.
func (t *Table) Unknown(names []string) int {
	n := 0
	for _, m := range names {
		if _, ok := t.routes[m]; !ok {
			n++
		}
	}
	return n
}

func (t *Table) plan(r *Route, fallbacks []string, now time.Time) []*Deployment {
	var plan, ejected []*Deployment
	add := func(r *Route) {
		start := len(plan)
		var probes []*Deployment
		for _, d := range r.Deployments {
			switch d.breaker.allow(now) {
			case admitted:
				plan = append(plan, d)
			case probe:
				probes = append(probes, d)
			default:
				ejected = append(ejected, d)
			}
		}
		t.order(r.Model.Strategy, plan[start:])
		// A probe goes first: planned behind a healthy deployment, it
		// would seldom be sent, and the deployment would stay out.
		plan = slices.Insert(plan, start, probes...)
	}
	add(r)
	seen := map[*Route]bool{r: true}
	for _, f := range fallbacks {
		if fr, ok := t.routes[f]; ok && !seen[fr] {
			seen[fr] = true
			add(fr)
		}
	}
	if len(plan) == 0 {
		t.order(r.Model.Strategy, ejected)
		return ejected
	}
	return plan
}

// order sorts ds, in place, in the order strategy tries them.
func (t *Table) order(strategy string, ds []*Deployment) {
	if len(ds) < 2 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch strategy {
	case config.StrategyLeastBusy, config.StrategyLowestLatency:
		// A random order first, so that ties are broken at random.
		t.rnd.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		key := func(d *Deployment) int64 { return d.inFlight.Load() }
		if strategy == config.StrategyLowestLatency {
			key = func(d *Deployment) int64 { return d.latency.Load() }
		}
		slices.SortStableFunc(ds, func(a, b *Deployment) int {
			ka, kb := key(a), key(b)
			switch {
			case ka < kb:
				return -1
			case ka > kb:
				return 1
			}
			return 0
		})
	default:
		// Weighted random order: each place drawn among the deployments not
		// yet placed, in proportion to their weights.
		for i := range ds {
			total := 0
			for _, d := range ds[i:] {
				total += d.weight
			}
			pick := t.rnd.IntN(total)
			for j := i; j < len(ds); j++ {
				if pick < ds[j].weight {
					ds[i], ds[j] = ds[j], ds[i]
					break
				}
				pick -= ds[j].weight
			}
		}
	}
}

// Backoff is the wait before the n-th retry of a deployment (n from 0): full
// jitter, a uniform draw up to base × 2^n, at most max.
func (t *Table) Backoff(r config.Retry, n int) time.Duration {
	ceiling := r.MaxBackoff.D()
	if n < 32 {
		if b := r.Backoff.D() << n; b > 0 && b < ceiling {
			ceiling = b
		}
	}
	if ceiling <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Duration(t.rnd.Int64N(int64(ceiling) + 1))
}

// breaker is a deployment's circuit breaker.
type breaker struct {
	limits config.Circuit

	mu          sync.Mutex
	reason      string    // why it was last opened
	failures    int       // in the current window
	windowStart time.Time // of the current window
	openUntil   time.Time // zero when closed
	// probeSince is when the half-open probe in flight was let through;
	// zero when none is. A probe that never reports (its plan was answered
	// by an earlier deployment) stops counting after a cool-down.
	probeSince time.Time
}

func (b *breaker) state(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return StateClosed
	case now.Before(b.openUntil):
		return StateOpen
	}
	return StateHalfOpen
}

// admission is what a breaker lets a request do.
type admission int

const (
	refused  admission = iota // ejected, or a probe is already out
	admitted                  // closed: in rotation
	probe                     // half open: this request is the probe
)

// allow says whether a request may be sent: always while closed; once the
// cool-down has passed, as the probe, one at a time.
func (b *breaker) allow(now time.Time) admission {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return admitted
	}
	if now.Before(b.openUntil) || !b.probeSince.IsZero() && now.Sub(b.probeSince) < b.limits.Cooldown.D() {
		return refused
	}
	b.probeSince = now
	return probe
}

func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.openUntil.IsZero() {
		// A failed probe (or a call that started before the ejection):
		// another cool-down.
		b.openUntil, b.probeSince, b.reason = now.Add(b.limits.Cooldown.D()), time.Time{}, ReasonFailures
		return
	}
	if now.Sub(b.windowStart) > b.limits.Window.D() {
		b.windowStart, b.failures = now, 0
	}
	if b.failures++; b.failures >= b.limits.Failures {
		b.openUntil, b.failures, b.reason = now.Add(b.limits.Cooldown.D()), 0, ReasonFailures
	}
}

// eject opens the breaker for a cool-down, for reason.
func (b *breaker) eject(now time.Time, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.openUntil, b.probeSince, b.failures, b.reason = now.Add(b.limits.Cooldown.D()), time.Time{}, 0, reason
}

func (b *breaker) reasonOf() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reason
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.openUntil, b.probeSince, b.failures = time.Time{}, time.Time{}, 0
}
