package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Explanation is a decision together with what it was made from, for
// POST /admin/decide and for policy authors.
type Explanation struct {
	// Revision is the policy revision that decided.
	Revision string `json:"revision"`
	// Decision is zero when the evaluation failed.
	Decision Decision `json:"decision"`
	// Input is the input document as the policy saw it, as JSON values.
	Input any `json:"input"`
	// DurationUS is how long the decision took in microseconds, input
	// building included, as the gateway would make it: evaluated once more
	// without the tracer, which costs many times the evaluation.
	DurationUS int64 `json:"duration_us"`
	// Rules are the rule bodies that held on the way to the decision, in the
	// order they first held: the branch of an else chain that answered, the
	// helper rules and functions it used. Rules answered from data (such as
	// data.sluice.derived, computed when data was written) do not appear.
	Rules []RuleHit `json:"rules"`
}

// RuleHit is one rule whose body held.
type RuleHit struct {
	// Rule is the rule's name within its package, e.g. "decision".
	Rule string `json:"rule"`
	// Package is e.g. "data.sluice.authz".
	Package string `json:"package"`
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// Explain evaluates the policy for in like Decide, with OPA's tracer on, and
// reports which rules decided. It costs many times a Decide: it is meant for
// the admin API, not for every request. On an evaluation error the
// explanation still holds the input and the rules that held before it.
func (e *Engine) Explain(ctx context.Context, in Input) (Explanation, error) {
	start := time.Now()
	input := e.input(&in)
	_, _ = e.decide(ctx, input) // timed only; the traced evaluation below answers
	x := Explanation{Revision: e.revision, Rules: []RuleHit{}, DurationUS: time.Since(start).Microseconds()}
	var err error
	if x.Input, err = ast.JSON(input); err != nil {
		return x, fmt.Errorf("policy: explain: input: %w", err)
	}
	tracer := topdown.NewBufferTracer()
	x.Decision, err = e.decide(ctx, input, rego.EvalQueryTracer(tracer))
	x.Rules = ruleHits(*tracer)
	return x, err
}

// ruleHits lists, once each, the rules whose body exited (held) in events.
// A rule evaluated again for more values is traced as Redo after its
// first Exit, so Exit alone finds every rule that held.
func ruleHits(events []*topdown.Event) []RuleHit {
	hits := []RuleHit{}
	seen := map[*ast.Rule]bool{}
	for _, ev := range events {
		if ev.Op != topdown.ExitOp {
			continue
		}
		r, ok := ev.Node.(*ast.Rule)
		if !ok || seen[r] || r.Location == nil {
			continue
		}
		seen[r] = true
		h := RuleHit{Rule: r.Head.Ref().String(), File: r.Location.File, Line: r.Location.Row}
		if r.Module != nil {
			h.Package = r.Module.Package.Path.String()
		}
		hits = append(hits, h)
	}
	return hits
}
