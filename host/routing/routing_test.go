package routing

import (
	"math"
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
