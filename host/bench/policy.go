package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// MaxDecisionP50 is the aim for one decision of the shipped policy.
const MaxDecisionP50 = 20 * time.Microsecond

// PolicySettings say what MeasurePolicy measures.
type PolicySettings struct {
	// Rounds is how many times each figure is measured; figures are medians.
	Rounds int
	// Calls is how many decisions are timed, one by one, per case and round.
	// Default 3000.
	Calls int
	// Progress, if set, is called with a line per figure.
	Progress func(format string, args ...any)
}

// PolicyReport is what MeasurePolicy measured: one admission decision of
// the shipped policy in each case, and OPA's floor.
type PolicyReport struct {
	Decisions []DecisionFigure `json:"decisions"`
	// Floor is a policy whose decision is a literal: what OPA's evaluator
	// costs for any policy, through the same Set.
	Floor DecisionFigure `json:"floor"`
}

// DecisionFigure is one case's decision latency, each figure the median of
// the rounds' own.
type DecisionFigure struct {
	Case string `json:"case"`
	What string `json:"what"`
	// Outcome is "allowed", or the denial's status and code.
	Outcome string `json:"outcome"`
	// P50 and P99 are percentiles of the calls' times, PerOp their mean.
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	PerOp       time.Duration `json:"per_op_ns"`
	AllocsPerOp float64       `json:"allocs_per_op"`
	// P50Ratio and PerOpRatio are P50 and PerOp over the floor's, measured
	// in the same rounds.
	P50Ratio   float64 `json:"p50_ratio"`
	PerOpRatio float64 `json:"per_op_ratio"`
	AimMet     bool    `json:"aim_met"`
}

// floorPolicy decides the shipped policy's allowed first pass as a literal.
const floorPolicy = `package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "", "headers": {},
	"limits": {"rpm": 60, "tpm": 0, "daily_tokens": 1000000, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": ["content_filter", "pii"], "response_plugins": [], "restore": false,
}
`

// decisionCase is one input decided by one policy set.
type decisionCase struct {
	name, what string
	set        *policy.Set
	in         policy.Input
}

// MeasurePolicy measures admission decisions in this process, through a
// policy.Set as the gateway calls it: the shipped policy (policies.FS) with
// the default configuration's tiers and departments as data, on a chat
// request's first pass, the same for a model only a tier's pattern admits,
// and a second pass with personal data found; and a literal decision, the
// floor.
func MeasurePolicy(ctx context.Context, s PolicySettings) (*PolicyReport, error) {
	if s.Rounds < 1 {
		s.Rounds = 1
	}
	if s.Calls < 1 {
		s.Calls = 3000
	}
	if s.Progress == nil {
		s.Progress = func(string, ...any) {}
	}
	cfg := config.Default()
	tiers, err := cfg.TiersData()
	if err != nil {
		return nil, fmt.Errorf("policy benchmark: %w", err)
	}
	departments, err := cfg.DepartmentsData()
	if err != nil {
		return nil, fmt.Errorf("policy benchmark: %w", err)
	}
	data := map[string]any{"sluice": map[string]any{"tiers": tiers, "departments": departments}}
	// Every case but "cached" measures an evaluation: the decision cache
	// would answer the repeated input of all of them.
	shipped, err := policy.NewSet(ctx, policy.SetConfig{Policies: policy.Source{FS: policies.FS}, Data: data, DecisionCache: -1})
	if err != nil {
		return nil, fmt.Errorf("policy benchmark: the shipped policy: %w", err)
	}
	defer shipped.Close()
	cached, err := policy.NewSet(ctx, policy.SetConfig{Policies: policy.Source{FS: policies.FS}, Data: data})
	if err != nil {
		return nil, fmt.Errorf("policy benchmark: the shipped policy: %w", err)
	}
	defer cached.Close()
	floor, err := policy.NewSet(ctx, policy.SetConfig{
		Policies: policy.Source{FS: fstest.MapFS{"authz.rego": {Data: []byte(floorPolicy)}}}, Data: data, DecisionCache: -1})
	if err != nil {
		return nil, fmt.Errorf("policy benchmark: the floor policy: %w", err)
	}
	defer floor.Close()
	first := chatInput(cfg.DefaultTier, "gpt-4o-mini")
	second := first
	second.Findings = []policy.Finding{
		{Plugin: "pii", Type: "EMAIL", Count: 1, Score: 0.95, Messages: []int{1}},
		{Plugin: "pii", Type: "PHONE", Count: 1, Score: 0.9, Messages: []int{1}},
	}
	cases := []decisionCase{
		{"first", "first pass, a model the tier names", shipped, first},
		{"first-pattern", "first pass, a model only the tier's pattern admits", shipped, chatInput("premium", "gpt-4o")},
		{"findings", "second pass, an email and a phone number found", shipped, second},
		{"cached", "first pass, answered by the decision cache", cached, first},
		{"floor", "a literal decision: OPA's floor", floor, first},
	}
	s.Progress("measuring policy decisions: %d rounds of %d timed decisions per case", s.Rounds, s.Calls)
	figs, err := measureDecisions(ctx, s, cases)
	if err != nil {
		return nil, err
	}
	r := &PolicyReport{Decisions: figs[:len(figs)-1], Floor: figs[len(figs)-1]}
	r.Floor.P50Ratio, r.Floor.PerOpRatio, r.Floor.AimMet = 1, 1, r.Floor.P50 < MaxDecisionP50
	for i := range r.Decisions {
		d := &r.Decisions[i]
		d.AimMet = d.P50 < MaxDecisionP50
		if r.Floor.P50 > 0 && r.Floor.PerOp > 0 {
			d.P50Ratio = float64(d.P50) / float64(r.Floor.P50)
			d.PerOpRatio = float64(d.PerOp) / float64(r.Floor.PerOp)
		}
		s.Progress("policy, %s: p50 %s, p99 %s, %.0f allocs (%.1f× the floor's p50 of %s)",
			d.Case, d.P50, d.P99, d.AllocsPerOp, d.P50Ratio, r.Floor.P50)
	}
	return r, nil
}

// chatInput is what the gateway builds for a non-streaming chat completion
// with a system and a user message from an SDK client.
func chatInput(tier, model string) policy.Input {
	return policy.Input{
		Client: policy.Client{ID: "billing-bot", Department: "engineering", Tier: tier,
			Labels: map[string]string{"team": "payments", "env": "prod"}},
		Request: policy.Request{
			Method: "POST", Path: "/v1/chat/completions", Model: model,
			MaxTokens: 256, PromptTokens: 310, MessageCount: 2,
			Headers: map[string]string{
				"user-agent": "OpenAI/Python 1.54.0", "content-type": "application/json",
				"x-request-id": "req_7f3c2a91d4e5",
			},
		},
	}
}

// decisionBlock is how many decisions of one case are timed before the next
// case takes its turn: the cases alternate in short blocks, so that a
// neighbour's burst on the shared machine falls on all of them alike.
const decisionBlock = 100

// measureDecisions times every decision of every case, the cases taking
// turns in blocks, and returns the median figures of the rounds.
func measureDecisions(ctx context.Context, s PolicySettings, cases []decisionCase) ([]DecisionFigure, error) {
	type sample struct {
		p50, p99, perOp []time.Duration
		allocs          []float64
	}
	samples := make([]sample, len(cases))
	outcomes := make([]string, len(cases))
	times := make([][]time.Duration, len(cases))
	mallocs := make([]uint64, len(cases))
	var ms runtime.MemStats
	for range s.Rounds {
		for i := range cases {
			c := &cases[i]
			for range 200 { // warm: OPA's caches, the input's client term
				r, err := c.set.Decide(ctx, c.in)
				if err != nil {
					return nil, fmt.Errorf("policy benchmark: %s: %w", c.name, err)
				}
				outcomes[i] = outcome(r.Decision)
			}
			times[i], mallocs[i] = times[i][:0], 0
		}
		runtime.GC()
		for done := 0; done < s.Calls; done += decisionBlock {
			n := min(decisionBlock, s.Calls-done)
			for i := range cases {
				c := &cases[i]
				runtime.ReadMemStats(&ms)
				before := ms.Mallocs
				for range n {
					t0 := time.Now()
					_, err := c.set.Decide(ctx, c.in)
					times[i] = append(times[i], time.Since(t0))
					if err != nil {
						return nil, fmt.Errorf("policy benchmark: %s: %w", c.name, err)
					}
				}
				runtime.ReadMemStats(&ms)
				mallocs[i] += ms.Mallocs - before
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for i, ts := range times {
			var sum time.Duration
			for _, t := range ts {
				sum += t
			}
			slices.Sort(ts)
			sm := &samples[i]
			sm.p50 = append(sm.p50, percentile(ts, 0.50))
			sm.p99 = append(sm.p99, percentile(ts, 0.99))
			sm.perOp = append(sm.perOp, sum/time.Duration(len(ts)))
			sm.allocs = append(sm.allocs, float64(mallocs[i])/float64(len(ts)))
		}
	}
	out := make([]DecisionFigure, len(cases))
	for i, sm := range samples {
		out[i] = DecisionFigure{Case: cases[i].name, What: cases[i].what, Outcome: outcomes[i],
			P50: Median(sm.p50), P99: Median(sm.p99), PerOp: Median(sm.perOp), AllocsPerOp: Median(sm.allocs)}
	}
	return out, nil
}

func outcome(d policy.Decision) string {
	if d.Allowed {
		return "allowed"
	}
	return "denied " + strconv.Itoa(d.HTTPStatus) + " " + d.Code
}
