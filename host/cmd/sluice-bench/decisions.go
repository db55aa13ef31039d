package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/bench"
	"github.com/sluicehq/sluice/host/store"
)

// The decisions section measures the policy decision where the issue asks
// for it: in a running gateway, from its own decision log (duration_us,
// every decision logged), under light load (one request at a time). Each
// case is its own `sluice serve` with the whole request path on.

// decisionCase is one gateway whose decisions are measured.
type decisionCase struct {
	variant
	what string
}

// decisionClients is how many clients the 10k-clients case puts in data.
const decisionClients = 10_000

// exampleRules are the example rule files of policies/examples that the
// six-rules case adds beside the shipped policy.
var exampleRules = []string{
	"budget_guard", "business_hours", "department_models", "long_prompts", "model_token_cap", "secrets_and_emails",
}

var decisionCases = []decisionCase{
	{variant{name: "default", scan: true, decisionLog: true}, "the shipped policy, decision cache on (the default)"},
	{variant{name: "default-uncached", scan: true, decisionLog: true, noDecisionCache: true}, "the shipped policy, policy.decision_cache: 0"},
	{variant{name: "six-rules", scan: true, decisionLog: true, extraRules: exampleRules}, "the shipped policy and the six rule files of policies/examples"},
	{variant{name: "six-rules-uncached", scan: true, decisionLog: true, extraRules: exampleRules, noDecisionCache: true}, "the same, policy.decision_cache: 0"},
	{variant{name: "10k-clients", scan: true, decisionLog: true, clients: decisionClients}, "the shipped policy, 10,000 clients in data.sluice.clients"},
	{variant{name: "10k-clients-uncached", scan: true, decisionLog: true, clients: decisionClients, noDecisionCache: true}, "the same, policy.decision_cache: 0"},
}

// DecisionRow is one case's figures, medians over the rounds.
type DecisionRow struct {
	Case string `json:"case"`
	What string `json:"what"`
	// Decisions is the number of first-pass decisions measured per round
	// (median); P50 and P99 are of their duration_us.
	Decisions int           `json:"decisions"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	// CachedShare is the share of those decisions the cache answered.
	CachedShare float64 `json:"cached_share"`
}

// measureDecisions starts the cases' gateways, loads each in turn for
// every round, and reads their decision logs.
func measureDecisions(ctx context.Context, o options) (_ []DecisionRow, err error) {
	body, err := chatRequest()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var variants []variant
	for _, c := range decisionCases {
		variants = append(variants, c.variant)
	}
	progress("decisions: starting the mock upstream and %d Sluice processes", len(variants))
	st, err := startStack(ctx, stackOptions{
		sluiceBin: o.sluiceBin, pluginDir: o.pluginDir, benchBin: self, variants: variants, keep: o.keep,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := st.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	type figures struct {
		n           []int
		p50, p99    []time.Duration
		cachedShare []float64
	}
	got := make([]figures, len(decisionCases))
	offsets := make([]int64, len(decisionCases))
	targets := st.targets[2:] // after the mock and the proxy, in the order of decisionCases
	for round := range o.rounds {
		for i := range decisionCases {
			i = (i + round) % len(decisionCases)
			t := targets[i]
			res, err := bench.Run(ctx, bench.Load{
				Addr: t.addr, Path: "/v1/chat/completions", Header: t.header, Body: body,
				Concurrency: 1, Warmup: o.warmup, Duration: o.duration, Timeout: o.timeout,
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			if res.Errors > 0 {
				return nil, fmt.Errorf("%s: %d requests failed (%v): %s", t.name, res.Errors, res.Failures, res.FailureSample)
			}
			// The log is written off the request path: let it catch up.
			time.Sleep(300 * time.Millisecond)
			durations, cached, next, err := readDecisions(filepath.Join(st.dir, t.name, "data", "decisions.jsonl"), offsets[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			offsets[i] = next
			if len(durations) == 0 {
				return nil, fmt.Errorf("%s: no first-pass decision in the decision log", t.name)
			}
			slices.Sort(durations)
			f := &got[i]
			f.n = append(f.n, len(durations))
			f.p50 = append(f.p50, percentileOf(durations, 0.5))
			f.p99 = append(f.p99, percentileOf(durations, 0.99))
			f.cachedShare = append(f.cachedShare, float64(cached)/float64(len(durations)))
			progress("decisions: round %d %-22s %6d decisions  p50 %s  p99 %s  cached %.0f%%", round+1, t.name,
				len(durations), micros(f.p50[len(f.p50)-1]), micros(f.p99[len(f.p99)-1]), 100*f.cachedShare[len(f.cachedShare)-1])
		}
	}
	rows := make([]DecisionRow, len(decisionCases))
	for i, c := range decisionCases {
		f := got[i]
		rows[i] = DecisionRow{Case: c.name, What: c.what, Decisions: median(f.n), P50: median(f.p50), P99: median(f.p99),
			CachedShare: median(f.cachedShare)}
	}
	return rows, nil
}

// readDecisions reads the decision log from offset and returns the
// durations of the allowed first passes (no findings) it holds, how many
// of them the cache answered, and the offset after the last whole line.
func readDecisions(path string, offset int64) (durations []time.Duration, cached int, next int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, offset, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, offset, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	next = offset
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return durations, cached, next, nil // a partial line waits for the next read
		}
		if err != nil {
			return nil, 0, offset, err
		}
		next += int64(len(line))
		var e struct {
			DurationUS int64 `json:"duration_us"`
			Cached     bool  `json:"cached"`
			Input      struct {
				Findings []json.RawMessage `json:"findings"`
			} `json:"input"`
			Result *struct {
				Allowed bool `json:"allowed"`
			} `json:"result"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(line), &e); err != nil {
			return nil, 0, offset, fmt.Errorf("decision log line %q: %w", strings.TrimSpace(string(line)), err)
		}
		if e.Result == nil || !e.Result.Allowed || len(e.Input.Findings) > 0 {
			continue
		}
		durations = append(durations, time.Duration(e.DurationUS)*time.Microsecond)
		if e.Cached {
			cached++
		}
	}
}

// percentileOf is the nearest-rank q-quantile of sorted.
func percentileOf(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// median is the middle value of xs (the upper one of an even count).
func median[T int | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// addClients puts n clients in the store at path, spread over 100
// departments, as an operator's import would.
func addClients(ctx context.Context, path string, n int, tier string) error {
	st, err := store.Open(ctx, store.DriverSQLite, path)
	if err != nil {
		return err
	}
	defer st.Close()
	for i := range n {
		c := store.Client{ID: fmt.Sprintf("app-%05d", i), Department: fmt.Sprintf("dept-%02d", i%100), Tier: tier,
			Labels: map[string]string{"env": "prod", "team": fmt.Sprintf("team-%03d", i%300)}}
		if err := st.CreateClient(ctx, c); err != nil {
			return fmt.Errorf("creating client %s: %w", c.ID, err)
		}
	}
	return nil
}

// writeDecisions prints the decisions section.
func writeDecisions(bw *bufio.Writer, rows []DecisionRow) {
	fmt.Fprintf(bw, "\nPolicy decision in the running gateway (medians of rounds)\n\n"+
		"duration_us of the allowed first passes in each gateway's decision log (decision_log_sample 1), one request at a time.\n\n")
	const format = "%-22s %9s %9s %9s %7s  %s\n"
	fmt.Fprintf(bw, format, "case", "decisions", "p50", "p99", "cached", "what")
	for _, r := range rows {
		fmt.Fprintf(bw, format, r.Case, fmt.Sprint(r.Decisions), micros(r.P50), micros(r.P99),
			fmt.Sprintf("%.0f%%", 100*r.CachedShare), r.What)
	}
}
