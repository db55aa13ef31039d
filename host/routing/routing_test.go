package routing

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/upstream"
)

// table builds a Table over mock upstreams from models.
func table(t *testing.T, models ...config.Model) *Table {
	t.Helper()
	cfg := &config.Config{Upstreams: []config.Upstream{{Name: "a", Type: "mock"}, {Name: "b", Type: "mock"}, {Name: "c", Type: "mock"}}}
	for i := range models {
		if models[i].Upstream == "" && len(models[i].Deployments) > 0 {
			models[i].Upstream = models[i].Deployments[0].Upstream
		}
	}
	cfg.Models = models
	r, err := upstream.NewRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	tb, err := NewTable(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func deployments(weights ...int) []config.Deployment {
	var out []config.Deployment
	for i, w := range weights {
		up := string(rune('a' + i))
		out = append(out, config.Deployment{Name: up, Upstream: up, UpstreamModel: "m-" + up, Weight: w})
	}
	return out
}

func names(ds []*Deployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

// TestWeightedOrderFollowsWeights draws 10,000 plans over weights 6:3:1 and
// checks how often each deployment comes first, within five standard
// deviations of a binomial draw.
func TestWeightedOrderFollowsWeights(t *testing.T) {
	tb := table(t, config.Model{Name: "m", Deployments: deployments(6, 3, 1)})
	const n = 10000
	first := map[string]int{}
	for range n {
		plan := tb.Plan("m", time.Now())
		if len(plan) != 3 {
			t.Fatalf("plan %v, want all three deployments", names(plan))
		}
		first[plan[0].Name]++
	}
	for name, p := range map[string]float64{"a": 0.6, "b": 0.3, "c": 0.1} {
		sd := math.Sqrt(n * p * (1 - p))
		if got := float64(first[name]); math.Abs(got-n*p) > 5*sd {
			t.Errorf("%s first in %v of %d plans, want %v ± %.0f", name, got, n, n*p, 5*sd)
		}
	}
}

func TestLeastBusyAndLowestLatency(t *testing.T) {
	tb := table(t,
		config.Model{Name: "busy", Strategy: config.StrategyLeastBusy, Deployments: deployments(1, 1, 1)},
		config.Model{Name: "fast", Strategy: config.StrategyLowestLatency, Deployments: deployments(1, 1, 1)})
	r, _ := tb.Route("busy")
	a, b, c := r.Deployments[0], r.Deployments[1], r.Deployments[2]
	a.Start()
	a.Start()
	b.Start()
	for range 20 {
		if got := names(tb.Plan("busy", time.Now())); got[0] != "c" || got[1] != "b" || got[2] != "a" {
			t.Fatalf("least busy plan %v, want [c b a] (0, 1 and 2 calls in flight)", got)
		}
	}
	r, _ = tb.Route("fast")
	a, b, c = r.Deployments[0], r.Deployments[1], r.Deployments[2]
	now := time.Now()
	for _, d := range []struct {
		d    *Deployment
		took time.Duration
	}{{a, 300 * time.Millisecond}, {b, 100 * time.Millisecond}, {c, 200 * time.Millisecond}} {
		d.d.Start()
		d.d.End(now, false, d.took)
	}
	if got := names(tb.Plan("fast", now)); got[0] != "b" || got[1] != "c" || got[2] != "a" {
		t.Errorf("lowest latency plan %v, want [b c a]", got)
	}
}

// TestBreakerEjectsAndRecovers walks one deployment through its breaker:
// ejected after its failures, left out of plans while the other serves,
// probed once after the cool-down, and back in rotation when the probe
// succeeds.
func TestBreakerEjectsAndRecovers(t *testing.T) {
	circuit := config.Circuit{Failures: 3, Window: config.Duration(time.Minute), Cooldown: config.Duration(10 * time.Second)}
	tb := table(t, config.Model{Name: "m", Deployments: deployments(1, 1), Circuit: circuit})
	r, _ := tb.Route("m")
	a := r.Deployments[0]
	now := time.Now()
	for i := range 3 {
		if st := a.State(now); st != StateClosed {
			t.Fatalf("after %d failures state %s, want closed", i, st)
		}
		a.Start()
		a.End(now, true, time.Millisecond)
	}
	if st := a.State(now); st != StateOpen {
		t.Fatalf("after 3 failures state %s, want open", st)
	}
	for range 50 {
		if got := names(tb.Plan("m", now.Add(5*time.Second))); len(got) != 1 || got[0] != "b" {
			t.Fatalf("plan while ejected %v, want [b]", got)
		}
	}
	later := now.Add(11 * time.Second)
	if st := a.State(later); st != StateHalfOpen {
		t.Fatalf("after the cool-down state %s, want half_open", st)
	}
	probes := 0
	for range 20 {
		for _, d := range tb.Plan("m", later) {
			if d == a {
				probes++
			}
		}
	}
	if probes != 1 {
		t.Fatalf("a half-open deployment was planned %d times, want one probe", probes)
	}
	a.Start()
	a.End(later, false, time.Millisecond)
	if st := a.State(later); st != StateClosed {
		t.Fatalf("after a good probe state %s, want closed", st)
	}
}

func TestFailedProbeEjectsAgain(t *testing.T) {
	circuit := config.Circuit{Failures: 1, Window: config.Duration(time.Minute), Cooldown: config.Duration(10 * time.Second)}
	tb := table(t, config.Model{Name: "m", Deployments: deployments(1, 1), Circuit: circuit})
	r, _ := tb.Route("m")
	a := r.Deployments[0]
	now := time.Now()
	a.Start()
	a.End(now, true, 0)
	probeAt := now.Add(11 * time.Second)
	tb.Plan("m", probeAt)
	a.Start()
	a.End(probeAt, true, 0)
	if st := a.State(probeAt.Add(5 * time.Second)); st != StateOpen {
		t.Errorf("after a failed probe state %s, want open for another cool-down", st)
	}
}

// TestFailuresOutsideTheWindowDoNotEject spaces failures further apart than
// the window: none ejects.
func TestFailuresOutsideTheWindowDoNotEject(t *testing.T) {
	circuit := config.Circuit{Failures: 2, Window: config.Duration(time.Second), Cooldown: config.Duration(time.Minute)}
	tb := table(t, config.Model{Name: "m", Deployments: deployments(1), Circuit: circuit})
	r, _ := tb.Route("m")
	a := r.Deployments[0]
	now := time.Now()
	for i := range 5 {
		a.Start()
		a.End(now.Add(time.Duration(i)*2*time.Second), true, 0)
	}
	if st := a.State(now.Add(9 * time.Second)); st != StateClosed {
		t.Errorf("state %s, want closed: no two failures within a second", st)
	}
}

func TestPlanAddsFallbacksAndKeepsEjectedAsLastResort(t *testing.T) {
	circuit := config.Circuit{Failures: 1, Window: config.Duration(time.Minute), Cooldown: config.Duration(time.Minute)}
	tb := table(t,
		config.Model{Name: "primary", Deployments: deployments(1), Fallbacks: []string{"spare"}, Circuit: circuit},
		config.Model{Name: "spare", Deployments: []config.Deployment{{Name: "spare-c", Upstream: "c", UpstreamModel: "x", Weight: 1}}, Circuit: circuit})
	now := time.Now()
	if got := names(tb.Plan("primary", now)); len(got) != 2 || got[0] != "a" || got[1] != "spare-c" {
		t.Fatalf("plan %v, want [a spare-c]", got)
	}
	p, _ := tb.Route("primary")
	s, _ := tb.Route("spare")
	p.Deployments[0].Start()
	p.Deployments[0].End(now, true, 0)
	if got := names(tb.Plan("primary", now)); len(got) != 1 || got[0] != "spare-c" {
		t.Fatalf("plan with the primary ejected %v, want [spare-c]", got)
	}
	s.Deployments[0].Start()
	s.Deployments[0].End(now, true, 0)
	if got := names(tb.Plan("primary", now)); len(got) != 2 {
		t.Fatalf("plan with everything ejected %v, want both as a last resort", got)
	}
	if got := s.Deployments[0].Target.Model; got.Name != "spare" || got.UpstreamModel != "x" {
		t.Errorf("fallback target model %q/%q, want spare/x: it bills at its own prices", got.Name, got.UpstreamModel)
	}
}

func TestBackoffIsFullJitterUnderTheCeiling(t *testing.T) {
	tb := table(t, config.Model{Name: "m", Deployments: deployments(1)})
	r := config.Retry{Backoff: config.Duration(100 * time.Millisecond), MaxBackoff: config.Duration(time.Second)}
	for n, ceiling := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		var sum time.Duration
		for range 2000 {
			w := tb.Backoff(r, n)
			if w < 0 || w > ceiling {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, w, ceiling)
			}
			sum += w
		}
		if mean := sum / 2000; mean < ceiling*4/10 || mean > ceiling*6/10 {
			t.Errorf("backoff(%d) mean %v, want about half of %v (a uniform draw)", n, mean, ceiling)
		}
	}
	if w := tb.Backoff(r, 1000); w > time.Second {
		t.Errorf("backoff(1000) = %v, want at most the 1 s ceiling", w)
	}
}

// latencyCircuit ejects a deployment three times slower than its peers'
// median, judged over 5 calls each, for 10 s.
var latencyCircuit = config.Circuit{Failures: 5, Window: config.Duration(time.Minute), Cooldown: config.Duration(10 * time.Second),
	LatencyFactor: 3, LatencySamples: 5, LatencyMin: config.Duration(50 * time.Millisecond)}

// answer records n successful calls of d, each taking took.
func answer(d *Deployment, now time.Time, n int, took time.Duration) {
	for range n {
		d.Start()
		d.End(now, false, took)
	}
}

// TestSlowDeploymentIsEjectedThenProbedBack: one deployment of three turns
// slow (1 s against 100 ms); once it has enough samples it is ejected for
// latency, left out of plans for the cool-down, and probed after it: a
// probe as slow ejects it again, a quick one puts it back in rotation.
func TestSlowDeploymentIsEjectedThenProbedBack(t *testing.T) {
	tb := table(t, config.Model{Name: "m", Deployments: deployments(1, 1, 1), Circuit: latencyCircuit})
	r, _ := tb.Route("m")
	a, b, c := r.Deployments[0], r.Deployments[1], r.Deployments[2]
	now := time.Now()
	answer(b, now, 5, 100*time.Millisecond)
	answer(c, now, 5, 120*time.Millisecond)
	answer(a, now, 4, time.Second)
	if st := a.State(now); st != StateClosed {
		t.Fatalf("after 4 slow calls state %s, want closed: too few samples to judge", st)
	}
	answer(a, now, 1, time.Second)
	if st, why := a.State(now), a.Reason(now); st != StateOpen || why != ReasonLatency {
		t.Fatalf("after 5 slow calls state %s (%s), want open (latency)", st, why)
	}
	for range 20 {
		if got := names(tb.Plan("m", now.Add(5*time.Second))); len(got) != 2 || slices.Contains(got, "a") {
			t.Fatalf("plan while ejected %v, want b and c only", got)
		}
	}
	if st := b.State(now); st != StateClosed {
		t.Errorf("b state %s: the quick deployments stay in rotation", st)
	}

	later := now.Add(11 * time.Second)
	if got := tb.Plan("m", later); got[0] != a {
		t.Fatalf("plan after the cool-down %v, want the probe of a first", names(got))
	}
	a.Start()
	a.End(later, false, 900*time.Millisecond)
	if st, why := a.State(later), a.Reason(later); st != StateOpen || why != ReasonLatency {
		t.Fatalf("after a slow probe state %s (%s), want open (latency) again", st, why)
	}

	again := later.Add(11 * time.Second)
	tb.Plan("m", again)
	a.Start()
	a.End(again, false, 110*time.Millisecond)
	if st := a.State(again); st != StateClosed {
		t.Fatalf("after a quick probe state %s, want closed", st)
	}
	if got := a.Latency(); got != 110*time.Millisecond {
		t.Errorf("latency after the probe %v, want the probe's 110ms, not an average of the slow calls", got)
	}
	answer(a, again, 10, 130*time.Millisecond)
	if st := a.State(again); st != StateClosed {
		t.Errorf("state %s after quick calls, want closed", st)
	}
}

// TestLatencyIsNotJudgedWithoutPeersOrBelowTheFloor: a model's only
// deployment is never an outlier, however slow; nor is one slower than its
// peers by the factor but under latency_min; nor any when the factor is off.
func TestLatencyIsNotJudgedWithoutPeersOrBelowTheFloor(t *testing.T) {
	off := latencyCircuit
	off.LatencyFactor = 0
	tb := table(t,
		config.Model{Name: "alone", Deployments: deployments(1), Circuit: latencyCircuit},
		config.Model{Name: "quick", Deployments: deployments(1, 1), Circuit: latencyCircuit},
		config.Model{Name: "off", Deployments: deployments(1, 1), Circuit: off})
	now := time.Now()
	alone, _ := tb.Route("alone")
	answer(alone.Deployments[0], now, 20, 10*time.Second)
	quick, _ := tb.Route("quick")
	answer(quick.Deployments[1], now, 20, time.Millisecond)
	answer(quick.Deployments[0], now, 20, 40*time.Millisecond)
	o, _ := tb.Route("off")
	answer(o.Deployments[1], now, 20, 100*time.Millisecond)
	answer(o.Deployments[0], now, 20, 10*time.Second)
	for _, d := range []*Deployment{alone.Deployments[0], quick.Deployments[0], o.Deployments[0]} {
		if st := d.State(now); st != StateClosed {
			t.Errorf("%s of %s is %s, want closed", d.Name, d.model, st)
		}
	}
}

// TestBreakerReasonSaysFailures: a deployment ejected for its failures says
// so, and the status lists the reason only while it is out.
func TestBreakerReasonSaysFailures(t *testing.T) {
	circuit := latencyCircuit
	circuit.Failures = 2
	tb := table(t, config.Model{Name: "m", Deployments: deployments(1, 1), Circuit: circuit})
	r, _ := tb.Route("m")
	a := r.Deployments[0]
	now := time.Now()
	for range 2 {
		a.Start()
		a.End(now, true, 0)
	}
	st := tb.Status(context.Background(), now, nil)
	if st[0].State != StateOpen || st[0].Reason != ReasonFailures || st[1].Reason != "" {
		t.Fatalf("status %+v, want a open for failures and b with no reason", st)
	}
}

// TestPlanWithReplacesTheFallbacks: the policy's fallbacks take the place
// of the configured ones, in their order; an empty list leaves none; a
// model the table does not serve, the model itself and a repeat are
// skipped.
func TestPlanWithReplacesTheFallbacks(t *testing.T) {
	tb := table(t,
		config.Model{Name: "primary", Deployments: deployments(1), Fallbacks: []string{"spare"}},
		config.Model{Name: "spare", Deployments: []config.Deployment{{Name: "spare-b", Upstream: "b", UpstreamModel: "x"}}},
		config.Model{Name: "cheap", Deployments: []config.Deployment{{Name: "cheap-c", Upstream: "c", UpstreamModel: "y"}}})
	now := time.Now()
	for _, tt := range []struct {
		fallbacks []string
		want      []string
	}{
		{[]string{"cheap"}, []string{"a", "cheap-c"}},
		{[]string{"cheap", "spare"}, []string{"a", "cheap-c", "spare-b"}},
		{[]string{}, []string{"a"}},
		{[]string{"nope", "primary", "cheap", "cheap"}, []string{"a", "cheap-c"}},
	} {
		if got := names(tb.PlanWith("primary", tt.fallbacks, now)); !slices.Equal(got, tt.want) {
			t.Errorf("PlanWith(%q) = %v, want %v", tt.fallbacks, got, tt.want)
		}
	}
	if got := names(tb.Plan("primary", now)); !slices.Equal(got, []string{"a", "spare-b"}) {
		t.Errorf("Plan = %v, want the configured fallback", got)
	}
	if n := tb.Unknown([]string{"nope", "cheap", "also-nope"}); n != 2 {
		t.Errorf("Unknown = %d, want 2", n)
	}
}
