package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// A stage is a step of the request path, named by the functions that do its
// work. A profile sample is charged to the stage of the innermost frame of
// its stack that belongs to one, so work a stage delegates (OPA under the
// policy, wazero under a plugin, encoding/json under the parser) is charged
// to it. The HTTP server's stage is the outermost of all (every handler runs
// under it, and the upstream client is fasthttp too): it is charged only
// for stacks no other stage claims.
type stage struct {
	name     string
	prefixes []string // function name prefixes, after the module path is cut
	outer    bool     // claims a stack only when no other stage does
}

const modulePrefix = "github.com/sluicehq/sluice/host/"

var requestStages = []stage{
	{name: "auth (key lookup)", prefixes: []string{"auth.", "proxy.(*Gateway).authenticate", "accounts."}},
	{name: "parse and encode (api, translate)", prefixes: []string{"api.", "translate."}},
	{name: "token count", prefixes: []string{"tokens."}},
	{name: "policy (input, OPA, decision log)", prefixes: []string{"policy.", "proxy.(*Gateway).policyInput", "proxy.clientInput"}},
	{name: "plugins (wazero, scan views)", prefixes: []string{"plugin.", "scanview.", "textnorm.", "redact."}},
	{name: "limits", prefixes: []string{"limits."}},
	{name: "upstream client and routing", prefixes: []string{"upstream.", "routing.", "respcache."}},
	{name: "ledger (usage, store)", prefixes: []string{"usage.", "store."}},
	{name: "access log", prefixes: []string{"proxy.(*Gateway).logAccess"}},
	{name: "metrics and tracing", prefixes: []string{"metrics.", "telemetry.", "github.com/prometheus/"}},
	{name: "rest of the handler (proxy)", prefixes: []string{"proxy."}},
	{name: "HTTP server (fasthttp)", prefixes: []string{"github.com/valyala/fasthttp."}, outer: true},
}

// runtimeStage holds what no stage's function is on the stack of: the
// garbage collector, the scheduler, the network poller.
const runtimeStage = "runtime (GC, scheduler, netpoll)"

// StageRow is one stage's cost per request, from the profiles of a loaded
// Sluice.
type StageRow struct {
	Stage          string  `json:"stage"`
	CPUMicros      float64 `json:"cpu_us_per_request"`
	CPUShare       float64 `json:"cpu_share"`
	Allocs         float64 `json:"allocs_per_request"`
	AllocatedBytes float64 `json:"bytes_per_request"`
}

// stageOf names the stage a stack belongs to: the innermost frame, leaf
// first, that a stage claims.
func stageOf(s *profile.Sample) string {
	for _, outer := range []bool{false, true} {
		for _, loc := range s.Location {
			// Inlined functions come first in a location's lines.
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				if name := stageOfFunction(line.Function.Name, outer); name != "" {
					return name
				}
			}
		}
	}
	return runtimeStage
}

func stageOfFunction(fn string, outer bool) string {
	fn = strings.TrimPrefix(fn, modulePrefix)
	for _, st := range requestStages {
		if st.outer != outer {
			continue
		}
		for _, p := range st.prefixes {
			if strings.HasPrefix(fn, p) {
				return st.name
			}
		}
	}
	return ""
}

// stageBudget divides a CPU and an allocation profile, both taken over the
// same load, among the stages, per request served while they were taken.
func stageBudget(cpu, allocs *profile.Profile, requests float64) ([]StageRow, error) {
	if requests <= 0 {
		return nil, fmt.Errorf("no request was served while profiling")
	}
	cpuNanos, err := sumByStage(cpu, "cpu", "nanoseconds")
	if err != nil {
		return nil, err
	}
	objects, err := sumByStage(allocs, "alloc_objects", "count")
	if err != nil {
		return nil, err
	}
	bytes, err := sumByStage(allocs, "alloc_space", "bytes")
	if err != nil {
		return nil, err
	}
	var total float64
	for _, v := range cpuNanos {
		total += v
	}
	names := make([]string, 0, len(requestStages)+1)
	for _, st := range requestStages {
		names = append(names, st.name)
	}
	names = append(names, runtimeStage)
	rows := make([]StageRow, 0, len(names))
	for _, n := range names {
		r := StageRow{Stage: n, CPUMicros: cpuNanos[n] / 1e3 / requests,
			Allocs: objects[n] / requests, AllocatedBytes: bytes[n] / requests}
		if total > 0 {
			r.CPUShare = cpuNanos[n] / total
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// sumByStage adds up one sample value of a profile by stage.
func sumByStage(p *profile.Profile, typ, unit string) (map[string]float64, error) {
	i := slices.IndexFunc(p.SampleType, func(st *profile.ValueType) bool { return st.Type == typ && st.Unit == unit })
	if i < 0 {
		return nil, fmt.Errorf("the profile has no %s/%s samples", typ, unit)
	}
	sums := map[string]float64{}
	for _, s := range p.Sample {
		sums[stageOf(s)] += float64(s.Value[i])
	}
	return sums, nil
}

func readProfile(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// writeStages prints the per-stage budget table.
func writeStages(bw *bufio.Writer, rows []StageRow) {
	fmt.Fprintf(bw, "%-36s %14s %7s %12s %12s\n", "stage", "CPU µs/req", "share", "allocs/req", "KB/req")
	var cpu, allocs, bytes float64
	for _, r := range rows {
		fmt.Fprintf(bw, "%-36s %14.1f %6.1f%% %12.1f %12.2f\n", r.Stage, r.CPUMicros, 100*r.CPUShare, r.Allocs, r.AllocatedBytes/1024)
		cpu, allocs, bytes = cpu+r.CPUMicros, allocs+r.Allocs, bytes+r.AllocatedBytes
	}
	fmt.Fprintf(bw, "%-36s %14.1f %7s %12.1f %12.2f\n", "all", cpu, "", allocs, bytes/1024)
}
