package policy

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/profiler"
	"github.com/open-policy-agent/opa/v1/rego"
)

// BenchReport is what Bench measured.
type BenchReport struct {
	// Inputs and Evaluations are how many inputs were decided, and how
	// many times each.
	Inputs, Evaluations int
	// Decision is the whole evaluation, input building included, as the
	// gateway's decision log reports it without the decision cache.
	Decision BenchFigure
	// Files are the policy's files in lexical order: the time each
	// evaluation spent in the file's expressions, profiled.
	Files []BenchFile
}

// BenchFigure is the spread of one duration over every evaluation.
type BenchFigure struct {
	P50, P99 time.Duration
}

// BenchFile is one rule file's share of the evaluations.
type BenchFile struct {
	Name string
	BenchFigure
	// Share is the file's part of the time profiled in all files.
	Share float64
}

// BenchInput is an input to Bench: either an Input as the gateway builds
// it, or a document in the shape of input (policies/README.md).
type BenchInput struct {
	Input    *Input
	Document map[string]any
}

// Bench decides each of inputs n times with the policy in fsys, loaded
// as Load loads it, and reports the spread of the whole decision and of
// the time each rule file's expressions took. The per-file times come from
// OPA's profiler, which adds its own cost to every expression: they
// compare files with each other, not with the decision. An input whose
// decision fails is an error, since timing a failure would mislead.
func Bench(ctx context.Context, fsys fs.FS, data map[string]any, inputs []BenchInput, n int, opts ...Option) (BenchReport, error) {
	if len(inputs) == 0 || n < 1 {
		return BenchReport{}, fmt.Errorf("policy: bench: want inputs and at least one evaluation each")
	}
	e, err := Load(ctx, fsys, data, opts...)
	if err != nil {
		return BenchReport{}, err
	}
	values := make([]ast.Value, len(inputs))
	for i, in := range inputs {
		if in.Input != nil {
			values[i] = e.input(in.Input)
			continue
		}
		if values[i], err = ast.InterfaceToValue(in.Document); err != nil {
			return BenchReport{}, fmt.Errorf("policy: bench: input %d: %w", i+1, err)
		}
	}
	for i, v := range values {
		if _, err := e.decide(ctx, v); err != nil {
			return BenchReport{}, fmt.Errorf("policy: bench: input %d: %w", i+1, err)
		}
	}

	// The whole decision, unprofiled; inputs take turns so that a burst of
	// the machine falls on all of them.
	whole := make([]time.Duration, 0, n*len(values))
	for range n {
		for _, v := range values {
			start := time.Now()
			_, _ = e.decide(ctx, v) // succeeded above; the policy is deterministic
			whole = append(whole, time.Since(start))
		}
	}

	perFile := map[string][]time.Duration{}
	for _, f := range e.files {
		if !isTestFile(f) && !isDataFile(f) {
			perFile[f] = make([]time.Duration, 0, n*len(values))
		}
	}
	var total float64
	totals := map[string]float64{}
	for range n {
		for _, v := range values {
			p := profiler.New()
			if _, err := e.decide(ctx, v, rego.EvalQueryTracer(p)); err != nil {
				return BenchReport{}, fmt.Errorf("policy: bench: %w", err)
			}
			spent := map[string]time.Duration{}
			for name, fr := range p.ReportByFile().Files {
				for _, st := range fr.Result {
					spent[name] += time.Duration(st.ExprTimeNs)
				}
			}
			for name := range perFile {
				d := spent[name]
				perFile[name] = append(perFile[name], d)
				totals[name] += float64(d)
				total += float64(d)
			}
		}
	}

	r := BenchReport{Inputs: len(values), Evaluations: n, Decision: spread(whole)}
	for _, name := range slices.Sorted(maps.Keys(perFile)) {
		f := BenchFile{Name: name, BenchFigure: spread(perFile[name])}
		if total > 0 {
			f.Share = totals[name] / total
		}
		r.Files = append(r.Files, f)
	}
	return r, nil
}

// spread returns the nearest-rank p50 and p99 of ds, which it sorts.
func spread(ds []time.Duration) BenchFigure {
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		rank := int(q*float64(len(ds))+0.999999999) - 1
		return ds[min(max(rank, 0), len(ds)-1)]
	}
	return BenchFigure{P50: at(0.5), P99: at(0.99)}
}

// BenchInputs is the representative input set Bench decides when given
// none: for every tier of tiers (the data.sluice.tiers document), the
// first pass of a chat request for each of the tier's models (a pattern
// stands for a model it matches) and for a model it does not allow, the
// second pass with personal data found and with a content filter finding,
// an embeddings request, and the models list, from a client of the first
// department of departments, with two labels and an SDK's headers.
func BenchInputs(tiers, departments map[string]any, at time.Time) []BenchInput {
	department := "engineering"
	if names := slices.Sorted(maps.Keys(departments)); len(names) > 0 {
		department = names[0]
	}
	var out []BenchInput
	for _, tier := range slices.Sorted(maps.Keys(tiers)) {
		client := Client{ID: "bench-client", Department: department, Tier: tier,
			Labels: map[string]string{"env": "prod", "team": "platform"}}
		chat := func(model string, findings ...Finding) BenchInput {
			return BenchInput{Input: &Input{Client: client, Time: at, Findings: findings, Request: Request{
				Method: "POST", Path: "/v1/chat/completions", Model: model, MaxTokens: 256, PromptTokens: 310, MessageCount: 2,
				Headers: map[string]string{"user-agent": "OpenAI/Python 1.54.0", "content-type": "application/json"},
			}}}
		}
		models := []string{"gpt-4o-mini"}
		if t, ok := tiers[tier].(map[string]any); ok {
			if ms, ok := t["models"].([]any); ok && len(ms) > 0 {
				models = models[:0]
				for _, m := range ms {
					if s, ok := m.(string); ok {
						models = append(models, modelFor(s))
					}
				}
			}
		}
		for _, m := range models {
			out = append(out, chat(m))
		}
		out = append(out,
			chat("not-a-model-of-this-tier"),
			chat(models[0], Finding{Plugin: "pii", Type: "EMAIL", Count: 1, Score: 0.9, Messages: []int{1}, Locations: []string{"content"}}),
			chat(models[0], Finding{Plugin: "content_filter", Type: "violence", Count: 1, Score: 0.8, Messages: []int{1}, Locations: []string{"content"}}),
			BenchInput{Input: &Input{Client: client, Time: at, Request: Request{Method: "POST", Path: "/v1/embeddings", Model: models[0], PromptTokens: 12}}},
			BenchInput{Input: &Input{Client: client, Time: at, Request: Request{Method: "GET", Path: "/v1/models"}}},
		)
	}
	return out
}

// modelFor gives a model name that pattern matches: the pattern itself
// when it is a plain name, else the pattern with its wildcards filled in.
func modelFor(pattern string) string {
	out := make([]byte, 0, len(pattern))
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			out = append(out, "model"...)
		case '?':
			out = append(out, 'x')
		case '[', '{':
			// A class or a choice: take its first character or option.
			end := byte(']')
			if c == '{' {
				end = '}'
			}
			j := i + 1
			for j < len(pattern) && pattern[j] != end && pattern[j] != ',' {
				if pattern[j] != '\\' && pattern[j] != '!' {
					out = append(out, pattern[j])
					if c == '[' {
						break
					}
				}
				j++
			}
			for j < len(pattern) && pattern[j] != end {
				j++
			}
			i = j
		case '\\':
			if i+1 < len(pattern) {
				i++
				out = append(out, pattern[i])
			}
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
