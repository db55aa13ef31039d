package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/bench"
)

// The product's aim for Sluice against a bare proxy hop.
const (
	maxLatencyRatio       = 2.0 // Sluice's added p50 at most twice the proxy's
	minThroughputFraction = 0.5 // Sluice's throughput at least half the proxy's
)

// report is everything one run measured; -json prints it as is.
type report struct {
	Time        time.Time    `json:"time"`
	Machine     machine      `json:"machine"`
	Settings    settings     `json:"settings"`
	Results     []resultRow  `json:"results"`
	Comparisons []comparison `json:"comparisons"`
	// Plugins is the plugin host section, measured in this process.
	Plugins *bench.PluginReport `json:"plugins,omitempty"`
	// Limits is the limiter section, measured in this process.
	Limits *bench.LimitReport `json:"limits,omitempty"`
	// Policy is the policy decision section, measured in this process.
	Policy *bench.PolicyReport `json:"policy,omitempty"`
	// Texts is the guardrails' input section, measured in this process.
	Texts *bench.TextReport `json:"texts,omitempty"`
	// Decisions is the policy decision in running gateways.
	Decisions []DecisionRow `json:"decisions,omitempty"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPU       string `json:"cpu,omitempty"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
}

type settings struct {
	Rounds        int           `json:"rounds"`
	Duration      time.Duration `json:"round_duration_ns"`
	Warmup        time.Duration `json:"warmup_ns"`
	Concurrency   []int         `json:"concurrency"`
	MockLatency   time.Duration `json:"mock_latency_ns"`
	RequestBytes  int           `json:"request_bytes"`
	RequestMaxTok int           `json:"request_max_tokens"`
}

// resultRow is one target at one concurrency, medians over the rounds.
type resultRow struct {
	Target      string `json:"target"`
	Concurrency int    `json:"concurrency"`
	bench.Summary
	// rounds are each round's figures, in the order of the rounds: in a
	// round every target is measured once, so round i of two targets were
	// measured minutes apart at most.
	rounds []roundFigures
}

type roundFigures struct {
	p50        time.Duration
	throughput float64
}

// comparison is one Sluice variant against the bare proxy at one concurrency.
type comparison struct {
	Target      string `json:"target"`
	Concurrency int    `json:"concurrency"`
	// AddedP50 is the target's p50 minus the direct p50; ProxyAddedP50 the
	// same for the bare proxy.
	AddedP50      time.Duration `json:"added_p50_ns"`
	ProxyAddedP50 time.Duration `json:"proxy_added_p50_ns"`
	// LatencyRatio is AddedP50 / ProxyAddedP50; absent when the proxy added
	// nothing measurable, since a ratio to noise means nothing.
	LatencyRatio *float64 `json:"latency_ratio,omitempty"`
	// ThroughputFraction is the target's req/s over the proxy's.
	ThroughputFraction float64 `json:"throughput_fraction"`
	LatencyAimMet      *bool   `json:"latency_aim_met,omitempty"`
	ThroughputAimMet   bool    `json:"throughput_aim_met"`
	// The lowest and highest of the same figures computed round by round:
	// how far the rounds spread. Absent for a round without a ratio.
	LatencyRatioRange       *[2]float64 `json:"latency_ratio_range,omitempty"`
	ThroughputFractionRange *[2]float64 `json:"throughput_fraction_range,omitempty"`
}

// compare sets every Sluice variant against the proxy and the direct
// upstream at the same concurrency.
func compare(rows []resultRow) []comparison {
	find := func(name string, c int) (resultRow, bool) {
		for _, r := range rows {
			if r.Target == name && r.Concurrency == c {
				return r, true
			}
		}
		return resultRow{}, false
	}
	var out []comparison
	for _, r := range rows {
		if r.Target == "direct" || r.Target == "proxy" {
			continue
		}
		direct, ok1 := find("direct", r.Concurrency)
		proxy, ok2 := find("proxy", r.Concurrency)
		if !ok1 || !ok2 {
			continue
		}
		c := comparison{
			Target: r.Target, Concurrency: r.Concurrency,
			AddedP50:      r.P50 - direct.P50,
			ProxyAddedP50: proxy.P50 - direct.P50,
		}
		if c.ProxyAddedP50 > 0 {
			ratio := float64(c.AddedP50) / float64(c.ProxyAddedP50)
			met := ratio <= maxLatencyRatio
			c.LatencyRatio, c.LatencyAimMet = &ratio, &met
		}
		if proxy.Throughput > 0 {
			c.ThroughputFraction = r.Throughput / proxy.Throughput
		}
		c.ThroughputAimMet = c.ThroughputFraction >= minThroughputFraction
		c.LatencyRatioRange, c.ThroughputFractionRange = roundSpread(r, direct, proxy)
		out = append(out, c)
	}
	return out
}

// roundSpread computes a target's ratios against the proxy round by round
// and returns the lowest and highest of each; nil when the rounds do not
// line up or no round gives the figure.
func roundSpread(r, direct, proxy resultRow) (latency, throughput *[2]float64) {
	n := len(r.rounds)
	if n == 0 || len(direct.rounds) != n || len(proxy.rounds) != n {
		return nil, nil
	}
	widen := func(rg **[2]float64, v float64) {
		if *rg == nil {
			*rg = &[2]float64{v, v}
			return
		}
		(*rg)[0], (*rg)[1] = min((*rg)[0], v), max((*rg)[1], v)
	}
	for i := range n {
		if added := proxy.rounds[i].p50 - direct.rounds[i].p50; added > 0 {
			widen(&latency, float64(r.rounds[i].p50-direct.rounds[i].p50)/float64(added))
		}
		if proxy.rounds[i].throughput > 0 {
			widen(&throughput, r.rounds[i].throughput/proxy.rounds[i].throughput)
		}
	}
	return latency, throughput
}

// writeTable prints the report for a reader.
func writeTable(w io.Writer, r *report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "\nSluice benchmark: %d CPUs (%s), %s/%s, %s\n", r.Machine.CPUs, orUnknown(r.Machine.CPU),
		r.Machine.OS, r.Machine.Arch, r.Machine.GoVersion)
	if len(r.Results) > 0 {
		writeEndToEnd(bw, r)
	}
	if r.Plugins != nil {
		writePlugins(bw, r.Plugins)
	}
	if r.Limits != nil {
		writeLimits(bw, r.Limits)
	}
	if r.Policy != nil {
		writePolicy(bw, r.Policy)
	}
	if r.Decisions != nil {
		writeDecisions(bw, r.Decisions)
	}
	if r.Texts != nil {
		writeTexts(bw, r.Texts)
	}
	return bw.Flush()
}

// writeEndToEnd prints the servers under load and their comparison with the proxy.
func writeEndToEnd(bw *bufio.Writer, r *report) {
	fmt.Fprintln(bw, "\nEnd to end")
	fmt.Fprintf(bw, "Closed loop; per target and concurrency %d round(s) of %s after %s of warm-up; figures are medians of rounds.\n",
		r.Settings.Rounds, r.Settings.Duration, r.Settings.Warmup)
	fmt.Fprintf(bw, "Request: non-streaming chat completion, %d bytes, max_tokens %d; mock upstream latency %s.\n\n",
		r.Settings.RequestBytes, r.Settings.RequestMaxTok, r.Settings.MockLatency)

	const rowFormat = "%-18s %5s %9s %9s %9s %8s %13s %7s\n"
	fmt.Fprintf(bw, rowFormat, "target", "conc", "p50 ms", "p90 ms", "p99 ms", "req/s", "req/s range", "errors")
	for _, row := range r.Results {
		fmt.Fprintf(bw, rowFormat, row.Target, strconv.Itoa(row.Concurrency), millis(row.P50), millis(row.P90), millis(row.P99),
			fmt.Sprintf("%.0f", row.Throughput), fmt.Sprintf("%.0f–%.0f", row.ThroughputMin, row.ThroughputMax), strconv.Itoa(row.Errors))
	}

	fmt.Fprintf(bw, "\nAgainst the bare proxy. Aim: added p50 at most %.0f× the proxy's; throughput at least %.0f%% of the proxy's.\n\n",
		maxLatencyRatio, minThroughputFraction*100)
	const cmpFormat = "%-18s %5s %13s %13s %7s %12s %11s %15s\n"
	fmt.Fprintf(bw, cmpFormat, "target", "conc", "added p50 ms", "proxy adds ms", "ratio", "latency aim", "of proxy/s", "throughput aim")
	var noRatio bool
	for _, c := range r.Comparisons {
		ratio, latAim := "n/a", "n/a*"
		if c.LatencyRatio != nil {
			ratio, latAim = fmt.Sprintf("%.1f×", *c.LatencyRatio), metWord(*c.LatencyAimMet)
		} else {
			noRatio = true
		}
		fmt.Fprintf(bw, cmpFormat, c.Target, strconv.Itoa(c.Concurrency), millis(c.AddedP50), millis(c.ProxyAddedP50),
			ratio, latAim, fmt.Sprintf("%.0f%%", c.ThroughputFraction*100), metWord(c.ThroughputAimMet))
	}
	if noRatio {
		fmt.Fprintln(bw, "* the proxy's p50 was not above the direct p50 here, so a latency ratio would divide by noise.")
	}

	var failed bool
	for _, row := range r.Results {
		if row.Errors == 0 {
			continue
		}
		if !failed {
			fmt.Fprintln(bw, "\nErrors (non-2xx replies and failed requests):")
			failed = true
		}
		var reasons []string
		for _, k := range row.FailureReasons() {
			reasons = append(reasons, fmt.Sprintf("%s: %d", k, row.Failures[k]))
		}
		fmt.Fprintf(bw, "  %s at concurrency %d: %d (%s)\n", row.Target, row.Concurrency, row.Errors, strings.Join(reasons, ", "))
		if row.FailureSample != "" {
			fmt.Fprintf(bw, "    first reply: %s\n", row.FailureSample)
		}
	}
	if !failed {
		fmt.Fprintln(bw, "\nNo errors: every recorded request of every target was answered 2xx.")
	}
}

// writePlugins prints the plugin host section.
func writePlugins(bw *bufio.Writer, p *bench.PluginReport) {
	fmt.Fprintf(bw, "\nPlugin host, in process (medians of rounds)\n\nCall overhead: one scan of a 2-byte text on a pooled instance, back to back, and apart (a pause before each, as requests come). Aim: under %s back to back.\n\n", bench.MaxCallOverhead)
	const callFormat = "%-10s %10s %10s %8s  %s\n"
	fmt.Fprintf(bw, callFormat, "module", "per call", "apart", "aim", "what")
	for _, c := range p.Calls {
		fmt.Fprintf(bw, callFormat, c.Module, micros(c.PerCall), micros(c.Spaced), metWord(c.AimMet), c.What)
	}

	fmt.Fprintf(bw, "\nScanner throughput: through the host in WebAssembly, and the same Go package natively. Aim: %.0f MB/s or more in WebAssembly.\n\n", bench.MinWASMMBPerSec)
	const tpFormat = "%-14s %-16s %12s %12s %10s %12s %9s %8s\n"
	fmt.Fprintf(bw, tpFormat, "plugin", "input", "wasm", "native", "wasm MB/s", "native MB/s", "ratio*", "aim")
	for _, f := range p.Throughput {
		fmt.Fprintf(bw, tpFormat, f.Plugin, f.Input, micros(f.WASM), micros(f.Native),
			fmt.Sprintf("%.1f", f.WASMMBps), fmt.Sprintf("%.1f", f.NativeMBps), fmt.Sprintf("%.1f×", f.Ratio), metWord(f.AimMet))
	}
	fmt.Fprintln(bw, "* ratio: time in WebAssembly over time natively, in the same rounds.")
	fmt.Fprintln(bw, "\nModule load (compile, instrument, instantiate, configure one instance), cold and with the on-disk compilation cache:")
	fmt.Fprintln(bw)
	const loadFormat = "%-14s %9s %10s %10s %8s\n"
	fmt.Fprintf(bw, loadFormat, "plugin", "size KB", "cold ms", "cached ms", "speedup")
	for _, l := range p.Loads {
		fmt.Fprintf(bw, loadFormat, l.Plugin, strconv.Itoa(l.Bytes>>10), millis(l.Cold), millis(l.Cached), fmt.Sprintf("%.0f×", l.Speedup))
	}
}

// writeLimits prints the limiter section.
func writeLimits(bw *bufio.Writer, l *bench.LimitReport) {
	fmt.Fprintln(bw, "\nLimiter, in process (medians of rounds)")
	fmt.Fprintf(bw, "\nOne request: a reservation against a client and its department, then its commit. "+
		"Aim with Redis: at most %.0f round trip per call, and none for a flood against a spent budget.\n\n", bench.MaxRoundTripsPerCall)
	const format = "%-10s %11s %11s %11s %8s %12s %12s %9s %8s  %s\n"
	fmt.Fprintf(bw, format, "backend", "per request", "reserve", "commit", "allocs", "reserve RTs", "commit RTs", "× PING", "aim", "what")
	row := func(name string, f *bench.LimitFigure, redis bool) {
		reserve, commit, rtR, rtC, ratio, aim := "", "", "", "", "", "–"
		if f.AimMet != nil {
			aim = metWord(*f.AimMet)
		}
		if f.Reserve > 0 {
			reserve = micros(f.Reserve)
		}
		if f.Commit > 0 {
			commit = micros(f.Commit)
		}
		if redis {
			rtR, rtC, ratio = roundTrips(f.ReserveRoundTrips), roundTrips(f.CommitRoundTrips), fmt.Sprintf("%.2f×", f.PingRatio)
			if f.Commit == 0 {
				rtC = ""
			}
		}
		fmt.Fprintf(bw, format, name, micros(f.PerOp), reserve, commit, fmt.Sprintf("%.1f", f.AllocsPerOp), rtR, rtC, ratio, aim, f.What)
	}
	row("memory", &l.Memory, false)
	if l.Redis == nil {
		fmt.Fprintf(bw, "Redis skipped: %s.\n", l.RedisSkipped)
		return
	}
	row("ping", l.Ping, true)
	row("redis", l.Redis, true)
	row("flood", l.Flood, true)
	fmt.Fprintln(bw, "RTs: Redis commands per call, counted by a hook on the client. × PING: time per request over a bare PING's, in the same rounds.")
}

// roundTrips prints a count per call: exact when whole, one in so many
// calls when rare (a flood's cache entry lapsing), else two decimals.
func roundTrips(n float64) string {
	switch {
	case n == float64(int64(n)):
		return strconv.FormatInt(int64(n), 10)
	case n < 0.01:
		return fmt.Sprintf("1/%.0f", 1/n)
	}
	return strconv.FormatFloat(n, 'f', 2, 64)
}

// writePolicy prints the policy decision section.
func writePolicy(bw *bufio.Writer, p *bench.PolicyReport) {
	fmt.Fprintf(bw, "\nPolicy decision, in process (medians of rounds)\n\nOne admission decision through the policy set, "+
		"each call timed; the shipped policy with the default configuration's data. Aim: p50 under %s.\n\n", bench.MaxDecisionP50)
	const format = "%-14s %-24s %11s %12s %11s %7s %10s %8s  %s\n"
	fmt.Fprintf(bw, format, "case", "outcome", "p50", "p99", "per call", "allocs", "p50/floor", "aim", "what")
	row := func(d *bench.DecisionFigure) {
		fmt.Fprintf(bw, format, d.Case, d.Outcome, micros(d.P50), micros(d.P99), micros(d.PerOp),
			fmt.Sprintf("%.0f", d.AllocsPerOp), fmt.Sprintf("%.2f×", d.P50Ratio), metWord(d.AimMet), d.What)
	}
	for i := range p.Decisions {
		row(&p.Decisions[i])
	}
	row(&p.Floor)
}

func writeTexts(bw *bufio.Writer, t *bench.TextReport) {
	fmt.Fprintf(bw, "\nA request's texts before the plugins, in process (medians of rounds)\n\n"+
		"parse: read and validate the body, collect every text with its location; view: normalise each text and add the seams.\n"+
		"Against json.Unmarshal of the same body into an any, measured in the same rounds.\n\n")
	const format = "%-22s %7s %6s  %-6s %11s %9s %9s %8s\n"
	fmt.Fprintf(bw, format, "case", "bytes", "texts", "stage", "per request", "allocs", "bytes", "vs json")
	for _, c := range t.Cases {
		for _, st := range []struct {
			name string
			f    bench.StageFigure
		}{{"parse", c.Parse}, {"view", c.View}, {"json", c.Baseline}} {
			fmt.Fprintf(bw, format, c.Case, strconv.Itoa(c.Bytes), strconv.Itoa(c.Texts), st.name, micros(st.f.PerOp),
				strconv.FormatInt(st.f.AllocsPerOp, 10), strconv.FormatInt(st.f.BytesPerOp, 10), fmt.Sprintf("%.2f×", st.f.Ratio))
		}
	}
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.2f µs", float64(d)/float64(time.Microsecond))
}

func writeJSON(w io.Writer, r *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func millis(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

func thisMachine() machine {
	return machine{CPUs: runtime.NumCPU(), CPU: cpuModel(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
}

// cpuModel is the processor's name where Linux tells it, else "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
