// Command sluice-bench measures, in one run, what Sluice costs in latency and
// throughput against the same upstream called directly and behind a bare
// fasthttp reverse proxy. It starts each server as its own process on
// loopback, sends the same chat completion to each with a closed-loop load
// generator, and prints a table and Sluice's ratios to the proxy. Sluice is
// measured twice: the whole path to the upstream (sluice), and the same
// request answered from the reply cache (sluice-cache-hit).
//
//	make build && go run ./host/cmd/sluice-bench            # about 2 minutes
//	go run ./host/cmd/sluice-bench -variants -json > bench.json
//	go run ./host/cmd/sluice-bench -only plugins            # the plugin host alone
//	go run ./host/cmd/sluice-bench -only limits,policy      # the limiter and the policy alone
//
// After the end-to-end runs it measures, in its own process, the plugin host
// (the call overhead of plugins that find nothing, the shipped scanners'
// throughput in WebAssembly against the same Go packages run natively, and
// module load times with and without the compilation cache), the limiter
// (a reservation and its commit in memory, and in Redis with the round trips
// each costs against a bare PING), and one admission decision of the shipped
// policy against OPA's floor.
//
// `sluice-bench proxy -listen ADDR -upstream ADDR` serves the bare proxy on
// its own; the benchmark starts it that way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/bench"
	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		err = runProxy(os.Args[2:])
	} else {
		err = runBench(os.Args[1:])
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "sluice-bench: interrupted; servers stopped")
		os.Exit(130)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sluice-bench:", err)
		os.Exit(1)
	}
}

// options are the benchmark's flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	mockLatency time.Duration
	timeout     time.Duration
	variants    bool
	json        bool
	keep        bool
	sluiceBin   string
	pluginDir   string
	sections    map[string]bool // the sections -only names; all when empty
	pluginRound time.Duration   // one round of one plugin figure
	limitRound  time.Duration   // one round of one limiter figure
	policyCalls int             // timed decisions per policy case and round
	redisURL    string
	profileDir  string // -profile: profile one loaded Sluice into this folder instead
	checkFile   string // -check: compare the ratios with those recorded in this file
}

// The sections of a run, in the order they run.
var sectionNames = []string{"e2e", "plugins", "limits", "policy", "texts", "decisions"}

// runs reports whether the run includes section.
func (o *options) runs(section string) bool { return len(o.sections) == 0 || o.sections[section] }

func parseFlags(args []string) (options, error) {
	var o options
	var conc, only string
	fs := flag.NewFlagSet("sluice-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: sluice-bench [flags]
       sluice-bench proxy -listen ADDR -upstream ADDR

Measures Sluice against the mock upstream called directly and a bare fasthttp
proxy, all on loopback. Run from the repository root after make build.

`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.rounds, "rounds", 5, "rounds per target and concurrency; figures are medians of rounds")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "recorded time of one round")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unrecorded time before each round")
	fs.StringVar(&conc, "concurrency", "1,32", "comma-separated numbers of closed-loop workers")
	fs.DurationVar(&o.mockLatency, "latency", 0, "delay of the mock upstream before each reply")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of one request")
	fs.StringVar(&o.profileDir, "profile", "", "instead of measuring, load one Sluice (everything on) at the highest -concurrency for -duration "+
		"and write its CPU and allocation profiles, and the top of each, to this folder")
	fs.StringVar(&o.checkFile, "check", "", "compare this run's ratios against the bare proxy with those recorded in this file (BENCHMARKS.md), "+
		"and exit 1 when one is worse in every round")
	fs.BoolVar(&o.variants, "variants", false, "also measure Sluice without plugins, and without plugins with an allow-all policy")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&o.keep, "keep", false, "keep the generated configurations, data and server logs")
	fs.StringVar(&o.sluiceBin, "sluice", "bin/sluice", "the sluice binary")
	fs.StringVar(&o.pluginDir, "plugins", "bin/plugins", "folder of the built plugins pii.wasm and contentfilter.wasm")
	fs.StringVar(&only, "only", "", "run only these sections, comma-separated: e2e (servers under load), plugins (the plugin host), limits (the limiter), policy (one decision), texts (what the gateway does to a request's texts before plugins), decisions (the policy decision in running gateways, from their decision logs)")
	fs.DurationVar(&o.pluginRound, "plugin-round", 300*time.Millisecond, "time of one round of one plugin figure")
	fs.DurationVar(&o.limitRound, "limit-round", 300*time.Millisecond, "time of one round of one limiter figure")
	fs.IntVar(&o.policyCalls, "policy-calls", 3000, "decisions timed one by one per policy case and round")
	fs.StringVar(&o.redisURL, "redis", os.Getenv("SLUICE_TEST_REDIS"), "Redis server for the limiter's Redis figures, by default $SLUICE_TEST_REDIS (keys under a random prefix, removed after); empty skips them")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	var err error
	if o.sections, err = parseSections(only); err != nil {
		return o, fmt.Errorf("-only: %w", err)
	}
	if o.concurrency, err = parseInts(conc); err != nil {
		return o, fmt.Errorf("-concurrency: %w", err)
	}
	for _, c := range o.concurrency {
		if c < 1 || c > bench.MaxConcurrency {
			return o, fmt.Errorf("-concurrency %d: want 1 to %d", c, bench.MaxConcurrency)
		}
	}
	switch {
	case o.rounds < 1 || o.rounds > 50:
		return o, fmt.Errorf("-rounds %d: want 1 to 50", o.rounds)
	case o.duration <= 0 || o.warmup < 0 || o.duration+o.warmup > time.Minute:
		return o, fmt.Errorf("-duration %s, -warmup %s: want a positive round of a minute at most", o.duration, o.warmup)
	case o.timeout <= 0:
		return o, fmt.Errorf("-timeout %s: want a positive duration", o.timeout)
	case o.pluginRound <= 0 || o.pluginRound > 10*time.Second:
		return o, fmt.Errorf("-plugin-round %s: want a positive duration of 10s at most", o.pluginRound)
	case o.limitRound <= 0 || o.limitRound > 10*time.Second:
		return o, fmt.Errorf("-limit-round %s: want a positive duration of 10s at most", o.limitRound)
	case o.policyCalls < 100 || o.policyCalls > 1_000_000:
		return o, fmt.Errorf("-policy-calls %d: want 100 to 1000000, enough for a 99th percentile", o.policyCalls)
	}
	return o, nil
}

// parseSections reads -only: section names separated by commas; none means
// every section.
func parseSections(s string) (map[string]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(sectionNames, f) {
			return nil, fmt.Errorf("unknown section %q: want %s", f, strings.Join(sectionNames, ", "))
		}
		out[f] = true
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(args []string) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := checkBuilt(&o); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.profileDir != "" {
		return runProfile(ctx, o)
	}
	r := &report{
		Time:    time.Now().UTC(),
		Machine: thisMachine(),
		Settings: settings{Rounds: o.rounds, Duration: o.duration, Warmup: o.warmup, Concurrency: o.concurrency,
			MockLatency: o.mockLatency, RequestMaxTok: 64},
	}
	if o.runs("e2e") {
		if err := runEndToEnd(ctx, o, r); err != nil {
			return err
		}
	}
	if o.runs("plugins") {
		if r.Plugins, err = measurePlugins(ctx, o); err != nil {
			return err
		}
	}
	if o.runs("limits") {
		if r.Limits, err = bench.MeasureLimits(ctx, bench.LimitSettings{
			RedisURL: o.redisURL, Rounds: o.rounds, Duration: o.limitRound, Progress: progress,
		}); err != nil {
			return err
		}
	}
	if o.runs("policy") {
		if r.Policy, err = bench.MeasurePolicy(ctx, bench.PolicySettings{
			Rounds: o.rounds, Calls: o.policyCalls, Progress: progress,
		}); err != nil {
			return err
		}
	}
	if o.runs("texts") {
		cases, err := textCases()
		if err != nil {
			return err
		}
		if r.Texts, err = bench.MeasureTexts(ctx, bench.TextSettings{Rounds: o.rounds, Cases: cases, Progress: progress}); err != nil {
			return err
		}
	}
	if o.runs("decisions") {
		if r.Decisions, err = measureDecisions(ctx, o); err != nil {
			return err
		}
	}
	if o.json {
		err = writeJSON(os.Stdout, r)
	} else {
		err = writeTable(os.Stdout, r)
	}
	if err != nil || o.checkFile == "" {
		return err
	}
	return checkRecorded(os.Stdout, o.checkFile, r.Comparisons)
}

// runEndToEnd starts the servers, loads each in turn, and fills in r's
// results and comparisons.
func runEndToEnd(ctx context.Context, o options, r *report) (err error) {
	body, err := chatRequest()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating this program to start the proxy: %w", err)
	}

	variants := []variant{fullSluice, cacheHit}
	if o.variants {
		variants = append(variants, extraVariants...)
	}
	progress("starting the mock upstream, the bare proxy and %d Sluice process(es)", len(variants))
	st, err := startStack(ctx, stackOptions{
		sluiceBin: o.sluiceBin, pluginDir: o.pluginDir, benchBin: self,
		mockLatency: o.mockLatency, variants: variants, keep: o.keep,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, t := range st.targets {
		if err := preflight(t, body, o.timeout); err != nil {
			return err
		}
	}

	rows, err := measure(ctx, o, st.targets, body)
	if err != nil {
		return err
	}
	r.Settings.RequestBytes = len(body)
	r.Results, r.Comparisons = rows, compare(rows)
	return nil
}

// measurePlugins runs the plugin section in this process.
func measurePlugins(ctx context.Context, o options) (*bench.PluginReport, error) {
	empty, err := wasmbuild.TestdataPath("empty")
	if err != nil {
		return nil, fmt.Errorf("building the empty test plugin (run from the repository root): %w", err)
	}
	minimal, err := wasmbuild.MinimalPath()
	if err != nil {
		return nil, err
	}
	progress("measuring the plugin host: %d rounds of %s per figure, then module loads", o.rounds, o.pluginRound)
	return bench.MeasurePlugins(ctx, bench.PluginSettings{
		PII: filepath.Join(o.pluginDir, "pii.wasm"), ContentFilter: filepath.Join(o.pluginDir, "contentfilter.wasm"),
		Empty: empty, Minimal: minimal, Rounds: o.rounds, Duration: o.pluginRound, Progress: progress,
	})
}

// checkBuilt says what to do when the binaries the benchmark runs are
// missing, and makes the plugin folder absolute for the generated configurations.
func checkBuilt(o *options) error {
	var paths []string
	if o.runs("e2e") || o.runs("plugins") || o.runs("decisions") {
		paths = append(paths, filepath.Join(o.pluginDir, "pii.wasm"), filepath.Join(o.pluginDir, "contentfilter.wasm"))
	}
	if o.runs("e2e") || o.runs("decisions") {
		paths = append(paths, o.sluiceBin)
	}
	for _, path := range paths {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s not found: run `make build` first, from the repository root (or point -sluice and -plugins at the built files)", path)
		}
	}
	var err error
	o.pluginDir, err = filepath.Abs(o.pluginDir)
	return err
}

// preflight sends one request to t and fails unless it gets a chat
// completion back, so that a broken setup is reported before any load.
func preflight(t target, body []byte, timeout time.Duration) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + t.addr + "/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for _, h := range t.header {
		req.Header.Set(h[0], h[1])
	}
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, timeout); err != nil {
		return fmt.Errorf("%s: the first request failed: %w", t.name, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK || !strings.Contains(string(resp.Body()), `"choices"`) {
		b := string(resp.Body())
		if len(b) > 300 {
			b = b[:300] + "…"
		}
		return fmt.Errorf("%s: the first request got status %d, not a chat completion: %s", t.name, resp.StatusCode(), b)
	}
	return nil
}

// measure runs every round. Within a round each concurrency runs every
// target back to back, starting with a different target each round, so that
// drift on the shared machine falls on all targets alike.
func measure(ctx context.Context, o options, targets []target, body []byte) ([]resultRow, error) {
	type key struct {
		target string
		conc   int
	}
	results := map[key][]bench.Result{}
	total := o.rounds * len(o.concurrency) * len(targets)
	progress("measuring: %d runs of %s, about %s in all", total, o.warmup+o.duration,
		(time.Duration(total) * (o.warmup + o.duration)).Round(time.Second))
	n := 0
	for round := range o.rounds {
		for _, c := range o.concurrency {
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				n++
				res, err := bench.Run(ctx, bench.Load{
					Addr: t.addr, Path: "/v1/chat/completions", Header: t.header, Body: body,
					Concurrency: c, Warmup: o.warmup, Duration: o.duration, Timeout: o.timeout,
				})
				if err != nil {
					return nil, fmt.Errorf("%s at concurrency %d: %w", t.name, c, err)
				}
				progress("[%*d/%d] round %d  c=%-3d %-18s p50 %s ms  %6.0f req/s  %d errors", len(strconv.Itoa(total)), n, total,
					round+1, c, t.name, millis(res.Percentile(0.5)), res.Throughput(), res.Errors)
				k := key{t.name, c}
				results[k] = append(results[k], res)
			}
		}
	}
	var rows []resultRow
	for _, c := range o.concurrency {
		for _, t := range targets {
			rounds := results[key{t.name, c}]
			row := resultRow{Target: t.name, Concurrency: c, Summary: bench.Summarize(rounds)}
			for _, res := range rounds {
				row.rounds = append(row.rounds, roundFigures{p50: res.Percentile(0.5), throughput: res.Throughput()})
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sluice-bench: "+format+"\n", args...)
}

// runProxy serves the bare proxy until interrupted.
func runProxy(args []string) error {
	fs := flag.NewFlagSet("sluice-bench proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9091", "address to serve on")
	upstream := fs.String("upstream", "127.0.0.1:9090", "host:port of the upstream, on loopback")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := bench.CheckLoopback(*upstream); err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := bench.NewProxy(*upstream)
	fmt.Printf("bare proxy serving on http://%s, forwarding to http://%s\n", ln.Addr(), *upstream)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Shutdown()
	}()
	return srv.Serve(ln)
}
