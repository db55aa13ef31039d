package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/plugins/contentfilter"
	"github.com/sluicehq/sluice/plugins/pii"
)

// The plugin host's speed aims.
const (
	MaxCallOverhead   = 2 * time.Microsecond // one scan of an empty plugin on a pooled instance
	MinWASMMBPerSec   = 50.0                 // a shipped scanner's throughput in WebAssembly
	pluginCallTimeout = 10 * time.Second     // generous: a busy machine must not turn a figure into an error
)

// PluginSettings say what MeasurePlugins measures, and for how long.
type PluginSettings struct {
	// PII and ContentFilter are the paths of the shipped modules.
	PII, ContentFilter string
	// Empty is a Go plugin that finds nothing (the guest SDK's cost);
	// Minimal a hand-written module that finds nothing (the host's cost).
	Empty, Minimal string
	// Rounds is how many times each figure is measured; figures are medians.
	Rounds int
	// Duration is how long one round of one figure runs. Default 300 ms.
	Duration time.Duration
	// LoadRounds is how many cold and cached loads are timed. Default 3.
	LoadRounds int
	// Progress, if set, is called with a line per figure.
	Progress func(format string, args ...any)
}

// PluginReport is what MeasurePlugins measured.
type PluginReport struct {
	Calls      []CallFigure       `json:"calls"`
	Throughput []ThroughputFigure `json:"throughput"`
	Loads      []LoadFigure       `json:"loads"`
}

// CallFigure is the cost of one scan of a short text on a pooled instance of
// a plugin that finds nothing: PerCall with calls back to back, Spaced the
// median time a call takes its caller when calls come apart, as requests do
// (a pause of spacedPause before each), which leaves the plugin's recycler
// time to reset the instance off the caller's path.
type CallFigure struct {
	Module  string        `json:"module"`
	What    string        `json:"what"`
	PerCall time.Duration `json:"per_call_ns"`
	Spaced  time.Duration `json:"spaced_ns"`
	AimMet  bool          `json:"aim_met"`
}

// spacedPause is the pause before each call of the spaced figure, and
// spacedCalls the calls of one of its rounds.
const (
	spacedPause = 100 * time.Microsecond
	spacedCalls = 300
)

// ThroughputFigure is one scanner on one input, through the host in
// WebAssembly and as the same Go package called natively, in the same rounds.
type ThroughputFigure struct {
	Plugin     string        `json:"plugin"`
	Input      string        `json:"input"`
	Bytes      int           `json:"bytes"`
	WASM       time.Duration `json:"wasm_ns"`
	Native     time.Duration `json:"native_ns"`
	WASMMBps   float64       `json:"wasm_mb_per_s"`
	NativeMBps float64       `json:"native_mb_per_s"`
	// Ratio is the native throughput over the WebAssembly one: how many
	// times slower the sandboxed scanner is.
	Ratio  float64 `json:"ratio"`
	AimMet bool    `json:"aim_met"`
}

// LoadFigure is the time Runtime.Load takes for a shipped module (compile,
// instrument, instantiate, configure a first instance): Cold with an empty
// compilation cache, Cached with the on-disk cache filled by an earlier load
// in another Runtime, as after a restart.
type LoadFigure struct {
	Plugin  string        `json:"plugin"`
	Bytes   int           `json:"bytes"`
	Cold    time.Duration `json:"cold_ns"`
	Cached  time.Duration `json:"cached_ns"`
	Speedup float64       `json:"speedup"`
}

// MeasurePlugins measures the plugin host in this process: call overhead,
// scanner throughput against native Go, and module load times.
func MeasurePlugins(ctx context.Context, s PluginSettings) (*PluginReport, error) {
	if s.Rounds < 1 {
		s.Rounds = 1
	}
	if s.Duration <= 0 {
		s.Duration = 300 * time.Millisecond
	}
	if s.LoadRounds < 1 {
		s.LoadRounds = 3
	}
	if s.Progress == nil {
		s.Progress = func(string, ...any) {}
	}
	m := &pluginMeasurer{s: s}
	var err error
	if m.rt, err = plugin.NewRuntime(ctx, ""); err != nil {
		return nil, err
	}
	defer m.rt.Close(context.Background())

	r := &PluginReport{}
	if r.Calls, err = m.calls(ctx); err != nil {
		return nil, err
	}
	if r.Throughput, err = m.throughput(ctx); err != nil {
		return nil, err
	}
	if r.Loads, err = m.loads(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

type pluginMeasurer struct {
	s  PluginSettings
	rt *plugin.Runtime
}

func (m *pluginMeasurer) load(ctx context.Context, name, path string) (*plugin.Plugin, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plugin benchmark: %w", err)
	}
	return m.rt.Load(ctx, wasm, plugin.Options{Name: name, PoolSize: 1, Timeout: pluginCallTimeout})
}

// perOp runs each of fns for the round's duration, in turn, for every round,
// and returns the median time per call of each: fns measured together see
// the same drift of a shared machine.
func (m *pluginMeasurer) perOp(ctx context.Context, fns ...func() error) ([]time.Duration, error) {
	samples := make([][]time.Duration, len(fns))
	for range m.s.Rounds {
		for i, fn := range fns {
			if err := fn(); err != nil { // warm: first calls fill caches and buffers
				return nil, err
			}
			n := 0
			start := time.Now()
			for time.Since(start) < m.s.Duration {
				for range 16 {
					if err := fn(); err != nil {
						return nil, err
					}
				}
				n += 16
			}
			samples[i] = append(samples[i], time.Since(start)/time.Duration(n))
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	out := make([]time.Duration, len(fns))
	for i, s := range samples {
		slices.Sort(s)
		out[i] = s[len(s)/2]
	}
	return out, nil
}

// spaced times fn alone, spacedCalls times a round with a pause of
// spacedPause before each, and returns the median over all rounds' calls.
func (m *pluginMeasurer) spaced(ctx context.Context, fn func() error) (time.Duration, error) {
	var lat []time.Duration
	for range m.s.Rounds {
		for range spacedCalls {
			time.Sleep(spacedPause)
			start := time.Now()
			if err := fn(); err != nil {
				return 0, err
			}
			lat = append(lat, time.Since(start))
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

func (m *pluginMeasurer) calls(ctx context.Context) ([]CallFigure, error) {
	modules := []struct{ name, path, what string }{
		{"minimal", m.s.Minimal, "hand-written module: the host's own cost"},
		{"empty", m.s.Empty, "Go guest SDK, finds nothing: what a Go plugin costs before it scans"},
	}
	var out []CallFigure
	for _, mod := range modules {
		p, err := m.load(ctx, mod.name, mod.path)
		if err != nil {
			return nil, err
		}
		texts := []string{"hi"}
		d, err := m.perOp(ctx, func() error { _, err := p.Scan(ctx, texts); return err })
		var spaced time.Duration
		if err == nil {
			spaced, err = m.spaced(ctx, func() error { _, err := p.Scan(ctx, texts); return err })
		}
		p.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("plugin benchmark: %s: %w", mod.name, err)
		}
		out = append(out, CallFigure{Module: mod.name, What: mod.what, PerCall: d[0], Spaced: spaced, AimMet: d[0] < MaxCallOverhead})
		m.s.Progress("plugin call overhead, %s: %s back to back, %s apart", mod.name, d[0], spaced)
	}
	return out, nil
}

func (m *pluginMeasurer) throughput(ctx context.Context) ([]ThroughputFigure, error) {
	piiNative, err := pii.New(nil)
	if err != nil {
		return nil, err
	}
	cfNative, err := contentfilter.New(nil)
	if err != nil {
		return nil, err
	}
	var piiFound []pii.Finding
	var cfFound []contentfilter.Finding
	scanners := []struct {
		name, path string
		native     func([]byte)
	}{
		{"pii", m.s.PII, func(b []byte) { piiFound = piiNative.Scan(piiFound[:0], b) }},
		{"contentfilter", m.s.ContentFilter, func(b []byte) { cfFound = cfNative.Scan(cfFound[:0], b) }},
	}
	inputs := []struct {
		name string
		text func(int) string
	}{{"prose", prose}, {"pii-dense", piiDense}}
	var out []ThroughputFigure
	for _, sc := range scanners {
		p, err := m.load(ctx, sc.name, sc.path)
		if err != nil {
			return nil, err
		}
		for _, in := range inputs {
			for _, size := range []int{1 << 10, 64 << 10} {
				text := in.text(size)
				texts, buf := []string{text}, []byte(text)
				d, err := m.perOp(ctx,
					func() error { _, err := p.Scan(ctx, texts); return err },
					func() error { sc.native(buf); return nil })
				if err != nil {
					p.Close(ctx)
					return nil, fmt.Errorf("plugin benchmark: %s on %s: %w", sc.name, in.name, err)
				}
				f := ThroughputFigure{Plugin: sc.name, Input: fmt.Sprintf("%s %dKB", in.name, size>>10), Bytes: size,
					WASM: d[0], Native: d[1], WASMMBps: mbps(size, d[0]), NativeMBps: mbps(size, d[1])}
				f.Ratio = float64(d[0]) / float64(d[1])
				f.AimMet = f.WASMMBps >= MinWASMMBPerSec
				out = append(out, f)
				m.s.Progress("plugin throughput, %s on %s: %.1f MB/s in WASM, %.1f MB/s native", f.Plugin, f.Input, f.WASMMBps, f.NativeMBps)
			}
		}
		p.Close(ctx)
	}
	return out, nil
}

func mbps(bytes int, d time.Duration) float64 {
	return float64(bytes) / 1e6 / d.Seconds()
}

func (m *pluginMeasurer) loads(ctx context.Context) ([]LoadFigure, error) {
	var out []LoadFigure
	for _, mod := range []struct{ name, path string }{{"pii", m.s.PII}, {"contentfilter", m.s.ContentFilter}} {
		wasm, err := os.ReadFile(mod.path)
		if err != nil {
			return nil, fmt.Errorf("plugin benchmark: %w", err)
		}
		var cold, cached []time.Duration
		for range m.s.LoadRounds {
			dir, err := os.MkdirTemp("", "sluice-bench-cache-")
			if err != nil {
				return nil, err
			}
			d, err := timeLoad(ctx, dir, mod.name, wasm) // empty cache: compiles
			if err == nil {
				cold = append(cold, d)
				d, err = timeLoad(ctx, dir, mod.name, wasm) // a new runtime on the filled cache
				cached = append(cached, d)
			}
			os.RemoveAll(dir)
			if err != nil {
				return nil, err
			}
		}
		slices.Sort(cold)
		slices.Sort(cached)
		f := LoadFigure{Plugin: mod.name, Bytes: len(wasm), Cold: cold[len(cold)/2], Cached: cached[len(cached)/2]}
		f.Speedup = float64(f.Cold) / float64(f.Cached)
		out = append(out, f)
		m.s.Progress("plugin load, %s: %s cold, %s with the compilation cache", f.Plugin, f.Cold, f.Cached)
	}
	return out, nil
}

func timeLoad(ctx context.Context, cacheDir, name string, wasm []byte) (time.Duration, error) {
	rt, err := plugin.NewRuntime(ctx, cacheDir)
	if err != nil {
		return 0, err
	}
	defer rt.Close(context.Background())
	start := time.Now()
	p, err := rt.Load(ctx, wasm, plugin.Options{Name: name, PoolSize: 1})
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("plugin benchmark: %w", err)
	}
	p.Close(ctx)
	return d, nil
}

// prose is n bytes of ordinary prompt text with nothing for a scanner to find:
// what almost every prompt is.
func prose(n int) string {
	const p = "Please rewrite the following paragraph so that it reads well, keeps every fact, " +
		"and stays under two hundred words. The team met on Monday to discuss the roadmap; " +
		"everyone agreed that onboarding needs work, that the docs are out of date, and that " +
		"we should ship the new dashboard before the end of the quarter. "
	return strings.Repeat(p, n/len(p)+1)[:n]
}

// piiDense is n bytes of text with personal data, secrets and look-alikes
// (versions, order numbers, hashes) every sentence: a scanner's worst case.
func piiDense(n int) string {
	parts := []string{
		"Please summarise the quarterly report for the board meeting on 2024-03-15. ",
		"The service runs version 1.2.3.4 on build 20240315 and handles 1500 requests per second. ",
		"Contact jane.doe@example.com or call +1 415 555 2671 if the deploy fails. ",
		"Order #4111111111111111 was refunded; see ticket 12345 and commit 356a192b7913b04c. ",
		"func main() { fmt.Println(\"hello, world\", 42, 3.14) } // TODO: handle errors ",
		"The customer's card 4111 1111 1111 1111 was declined at 10:30:00 UTC. ",
	}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(parts[i%len(parts)])
	}
	return b.String()[:n]
}
