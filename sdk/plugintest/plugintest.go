// Package plugintest is the conformance suite for Sluice filter plugins (ABI
// v1, sdk/ABI.md). It runs a compiled module, written in any language, through
// the checks a plugin must pass before the gateway can rely on it, and reports
// each check by name. `sluice plugin test FILE.wasm` runs it from the command
// line; Run runs it from a plugin's own Go tests.
package plugintest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/sdk/abi"
)

// Names of the checks, in the order a Report lists them.
const (
	CheckCompile        = "compile"
	CheckExports        = "exports"
	CheckABIVersion     = "abi-version"
	CheckConfigure      = "configure"
	CheckInvalidConfig  = "configure-invalid-json"
	CheckScan           = "scan-corpus"
	CheckFindings       = "findings-well-formed"
	CheckDeterministic  = "deterministic"
	CheckEmptyInput     = "empty-input"
	CheckConcurrentScan = "concurrent-scans"
	// The checks a hostile module fails: what the gateway's sandbox stops
	// (sdk/ABI.md sections 6 and 7) found before the gateway has to.
	CheckDeadline     = "deadline"
	CheckOutputLimits = "output-limits"
	CheckStateless    = "stateless"
)

// DefaultTimeout bounds each call into the plugin when Options.Timeout is zero.
// Conformance is not a speed test: the bound is far looser than the
// gateway's default (plugin.DefaultTimeout), so that a busy machine running
// many scans at once (the concurrency check runs 28 of a long, dense text)
// does not fail a plugin. It still stops a plugin that never returns. Set
// Options.Timeout to your deployment's deadline to hold a plugin to it.
const DefaultTimeout = 10 * time.Second

// Options tune a conformance run. The zero value is ready to use.
type Options struct {
	// Corpus is what the plugin scans. Default DefaultCorpus().
	Corpus []Sample
	// Timeout bounds each call into the plugin. Default DefaultTimeout.
	// Notes: a call that runs past it fails its check, so the suite never hangs.
	Timeout time.Duration
	// Concurrency is the number of scans run at once by the concurrent-scans
	// check. Default 4.
	Concurrency int
	// Deadline is what the deadline check holds each scan to: the gateway's
	// per-scan timeout. Default plugin.DefaultTimeout.
	Deadline time.Duration
}

// Result is the outcome of one check: its name, whether it passed, and a
// message saying what was seen.
type Result struct {
	Name    string
	Passed  bool
	Message string
}

// String formats r as one line: "PASS name: message".
func (r Result) String() string {
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	return verdict + " " + r.Name + ": " + r.Message
}

// Report is the outcome of a conformance run, one Result per check in a fixed order.
type Report struct {
	Results []Result
}

// Passed reports whether every check passed.
func (r Report) Passed() bool {
	return len(r.Failed()) == 0
}

// Failed returns the checks that failed.
func (r Report) Failed() []Result {
	var failed []Result
	for _, res := range r.Results {
		if !res.Passed {
			failed = append(failed, res)
		}
	}
	return failed
}

// Result returns the result of the check called name.
func (r Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// Check runs every conformance check on wasm, configured with config (JSON;
// empty means the plugin's defaults), and returns the report. It never panics
// on a misbehaving module, and every call into the module is bounded by
// opts.Timeout. A check that depends on a failed one fails with "not run".
func Check(ctx context.Context, wasm, config []byte, opts Options) Report {
	if len(opts.Corpus) == 0 {
		opts.Corpus = DefaultCorpus()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Deadline <= 0 {
		opts.Deadline = plugin.DefaultTimeout
	}
	s := &suite{ctx: ctx, wasm: wasm, config: config, opts: opts}
	defer s.close()
	s.run()
	return Report{Results: s.results}
}

// Run runs Check with default options and reports each check as a subtest of
// t, so that a plugin's own Go tests can hold it to the ABI:
//
//	func TestConformance(t *testing.T) {
//		wasm, _ := os.ReadFile("plugin.wasm")
//		plugintest.Run(t, wasm, []byte(`{"types":["EMAIL"]}`))
//	}
func Run(t *testing.T, wasm, config []byte) {
	t.Helper()
	report := Check(t.Context(), wasm, config, Options{})
	for _, res := range report.Results {
		t.Run(res.Name, func(t *testing.T) {
			if !res.Passed {
				t.Error(res.Message)
				return
			}
			t.Log(res.Message)
		})
	}
}

type suite struct {
	ctx    context.Context
	wasm   []byte
	config []byte
	opts   Options

	results []Result
	raw     *rawRuntime
	host    *plugin.Runtime
	p       *plugin.Plugin     // the configured plugin, through the host
	first   [][]plugin.Finding // findings per corpus sample from p; nil entry: the scan failed
}

func (s *suite) close() {
	ctx := context.Background()
	if s.raw != nil {
		s.raw.close(ctx)
	}
	if s.host != nil {
		s.host.Close(ctx)
	}
}

// check records one result; fn returns the message and whether the check
// passed. A failed dependency skips fn.
func (s *suite) check(name string, deps []string, fn func() (string, bool)) {
	for _, dep := range deps {
		if res, ok := s.lookup(dep); ok && !res.Passed {
			s.results = append(s.results, Result{Name: name, Message: "not run: " + dep + " failed"})
			return
		}
	}
	msg, ok := s.safely(fn)
	s.results = append(s.results, Result{Name: name, Passed: ok, Message: msg})
}

// safely runs fn and turns a panic into a failure, so that a bug the module
// provokes in the host or the suite shows as a failed check, not a crash.
func (s *suite) safely(fn func() (string, bool)) (msg string, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			msg, ok = fmt.Sprintf("panicked: %v", v), false
		}
	}()
	return fn()
}

func (s *suite) lookup(name string) (Result, bool) {
	return Report{Results: s.results}.Result(name)
}

func (s *suite) run() {
	s.check(CheckCompile, nil, s.compile)
	s.check(CheckExports, []string{CheckCompile}, s.exports)
	s.check(CheckABIVersion, []string{CheckExports}, s.version)
	s.check(CheckConfigure, []string{CheckABIVersion}, s.configure)
	s.check(CheckInvalidConfig, []string{CheckABIVersion}, s.invalidConfig)
	s.check(CheckScan, []string{CheckConfigure}, s.scanCorpus)
	s.check(CheckFindings, []string{CheckConfigure}, s.findings)
	s.check(CheckDeterministic, []string{CheckScan}, s.deterministic)
	s.check(CheckEmptyInput, []string{CheckConfigure}, s.emptyInput)
	s.check(CheckConcurrentScan, []string{CheckScan}, s.concurrent)
	s.check(CheckDeadline, []string{CheckConfigure}, s.deadline)
	s.check(CheckOutputLimits, []string{CheckConfigure}, s.outputLimits)
	s.check(CheckStateless, []string{CheckConfigure}, s.stateless)
}

func (s *suite) compile() (string, bool) {
	raw, err := newRawRuntime(s.ctx, s.wasm, s.opts.Timeout)
	if err != nil {
		return firstLine(err.Error()), false
	}
	s.raw = raw
	return fmt.Sprintf("%d bytes compiled", len(s.wasm)), true
}

func (s *suite) exports() (string, bool) {
	if problems := s.raw.exportProblems(); len(problems) > 0 {
		return strings.Join(problems, "; "), false
	}
	return "memory and the 7 ABI v1 functions are exported with the right signatures; no foreign imports", true
}

func (s *suite) version() (string, bool) {
	inst, err := s.raw.instantiate(s.ctx)
	if err != nil {
		return err.Error(), false
	}
	defer inst.close(s.ctx)
	v, err := inst.call(s.ctx, abi.ExportVersion)
	if err != nil {
		return err.Error(), false
	}
	if got := int32(uint32(v)); got != abi.Version {
		return fmt.Sprintf("%s returned %d, want %d", abi.ExportVersion, got, abi.Version), false
	}
	return fmt.Sprintf("%s returned %d", abi.ExportVersion, abi.Version), true
}

// load loads the module through the host, as the gateway would.
func (s *suite) load(poolSize int) (*plugin.Plugin, error) {
	return s.loadWith(poolSize, s.opts.Timeout)
}

func (s *suite) loadWith(poolSize int, timeout time.Duration) (*plugin.Plugin, error) {
	if s.host == nil {
		rt, err := plugin.NewRuntime(s.ctx, "")
		if err != nil {
			return nil, err
		}
		s.host = rt
	}
	return s.host.Load(s.ctx, s.wasm, plugin.Options{
		Name:     "plugintest",
		Config:   s.config,
		Timeout:  timeout,
		PoolSize: poolSize,
		// The plugin's log is not part of what is checked.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

func (s *suite) configure() (string, bool) {
	p, err := s.load(s.opts.Concurrency)
	if err != nil {
		return err.Error(), false
	}
	s.p = p
	if len(s.config) == 0 {
		return "loaded with an empty configuration (the plugin's defaults)", true
	}
	return fmt.Sprintf("loaded with the given %d-byte configuration", len(s.config)), true
}

// invalidJSON is not JSON in any dialect a plugin might accept.
const invalidJSON = `{"sluice-plugintest": not json`

func (s *suite) invalidConfig() (string, bool) {
	inst, err := s.raw.instantiate(s.ctx)
	if err != nil {
		return err.Error(), false
	}
	defer inst.close(s.ctx)
	if _, err := inst.call(s.ctx, abi.ExportVersion); err != nil {
		return err.Error(), false
	}
	status, out, err := inst.invoke(s.ctx, abi.ExportConfigure, []byte(invalidJSON))
	switch {
	case err != nil:
		return "configuration " + quote(invalidJSON) + " was not refused cleanly: " + err.Error(), false
	case status == abi.StatusOK:
		return "configuration " + quote(invalidJSON) + " was accepted; want status 1 and an error message", false
	case status != abi.StatusError:
		return fmt.Sprintf("%s returned status %d, want 0 or 1", abi.ExportConfigure, status), false
	case len(out) == 0:
		return "invalid configuration refused with status 1 but no error message", false
	}
	return "invalid configuration refused with: " + quote(truncate(string(out), 200)), true
}

func (s *suite) scanCorpus() (string, bool) {
	s.first = make([][]plugin.Finding, len(s.opts.Corpus))
	var failures []string
	total := 0
	for i, sample := range s.opts.Corpus {
		findings, err := s.p.Scan(s.ctx, sample.Texts)
		if err != nil {
			failures = append(failures, fmt.Sprintf("sample %s: %v", sample.Name, err))
			continue
		}
		s.first[i] = findings
		total += len(findings)
	}
	if len(failures) > 0 {
		return fmt.Sprintf("%d of %d samples failed: %s", len(failures), len(s.opts.Corpus), strings.Join(failures, "; ")), false
	}
	return fmt.Sprintf("%d samples scanned, %d findings", len(s.opts.Corpus), total), true
}

// findings checks the result documents themselves, on a fresh instance driven
// by hand: the host rejects a malformed result before anyone sees it, and does
// not check that offsets fall on UTF-8 boundaries.
func (s *suite) findings() (string, bool) {
	inst, err := s.raw.instantiate(s.ctx)
	if err != nil {
		return err.Error(), false
	}
	defer func() {
		if inst != nil {
			inst.close(s.ctx)
		}
	}()
	if _, err := inst.call(s.ctx, abi.ExportVersion); err != nil {
		return err.Error(), false
	}
	if status, out, err := inst.invoke(s.ctx, abi.ExportConfigure, s.config); err != nil || status != abi.StatusOK {
		return fmt.Sprintf("configure failed: %v %s", err, truncate(string(out), 200)), false
	}
	var problems []string
	checked := 0
	for _, sample := range s.opts.Corpus {
		status, out, err := inst.invoke(s.ctx, abi.ExportScan, abi.AppendTexts(nil, sample.Texts))
		if err != nil || status != abi.StatusOK {
			// A result that cannot be read is not well formed either; a
			// status 1 is scan-corpus's concern.
			if err != nil {
				problems = append(problems, "sample "+sample.Name+": no result: "+err.Error())
			} else {
				problems = append(problems, fmt.Sprintf("sample %s: no result, the scan returned status %d", sample.Name, status))
			}
			if err != nil {
				// A trap leaves the instance unusable, as the host would discard it.
				inst.close(s.ctx)
				if inst, err = s.raw.instantiate(s.ctx); err != nil {
					return "a fresh instance after a failed scan: " + err.Error(), false
				}
				inst.call(s.ctx, abi.ExportVersion)
				inst.invoke(s.ctx, abi.ExportConfigure, s.config)
			}
			continue
		}
		for _, p := range resultProblems(out, sample.Texts) {
			problems = append(problems, "sample "+sample.Name+": "+p)
		}
		checked++
	}
	if len(problems) > 0 {
		const shown = 5
		more := ""
		if len(problems) > shown {
			more = fmt.Sprintf(" (and %d more)", len(problems)-shown)
			problems = problems[:shown]
		}
		return strings.Join(problems, "; ") + more, false
	}
	return fmt.Sprintf("every finding of %d results is well formed", checked), true
}

// resultProblems judges one result document against sdk/ABI.md section 4.2,
// adding that offsets must not split a UTF-8 sequence.
func resultProblems(doc []byte, texts []string) []string {
	var res struct {
		Findings *[]json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal(doc, &res); err != nil {
		return []string{"result is not a JSON object: " + err.Error()}
	}
	if res.Findings == nil {
		return []string{`result has no "findings" array`}
	}
	var problems []string
	for i, raw := range *res.Findings {
		var f abi.Finding
		if err := json.Unmarshal(raw, &f); err != nil {
			problems = append(problems, fmt.Sprintf("finding %d: %v", i, err))
			continue
		}
		if err := f.Validate(len(texts), func(m int) int { return len(texts[m]) }); err != nil {
			problems = append(problems, fmt.Sprintf("finding %d: %v", i, err))
			continue
		}
		text := texts[f.Message]
		for _, off := range []int{f.Start, f.End} {
			if !onBoundary(text, off) {
				problems = append(problems, fmt.Sprintf("finding %d: %s offset %d of message %d splits a UTF-8 sequence", i, f.Type, off, f.Message))
			}
		}
	}
	return problems
}

// onBoundary reports whether byte offset off of text starts or ends a UTF-8
// sequence. An invalid byte is a sequence of its own, so that plugins may
// report findings in invalid text.
func onBoundary(text string, off int) bool {
	for i := 0; i < len(text); {
		if i >= off {
			return i == off
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		i += size
	}
	return off == len(text)
}

func (s *suite) deterministic() (string, bool) {
	other, err := s.load(1)
	if err != nil {
		return "a second instance failed to load: " + err.Error(), false
	}
	defer other.Close(s.ctx)
	for i, sample := range s.opts.Corpus {
		again, err := s.p.Scan(s.ctx, sample.Texts)
		if err != nil {
			return fmt.Sprintf("sample %s: second scan failed: %v", sample.Name, err), false
		}
		if !sameFindings(s.first[i], again) {
			return fmt.Sprintf("sample %s: the same instance gave %s, then %s", sample.Name, describe(s.first[i]), describe(again)), false
		}
		elsewhere, err := other.Scan(s.ctx, sample.Texts)
		if err != nil {
			return fmt.Sprintf("sample %s: scan on a second instance failed: %v", sample.Name, err), false
		}
		if !sameFindings(s.first[i], elsewhere) {
			return fmt.Sprintf("sample %s: one instance gave %s, another %s", sample.Name, describe(s.first[i]), describe(elsewhere)), false
		}
	}
	return "the same findings twice on one instance and on a second instance", true
}

func (s *suite) emptyInput() (string, bool) {
	findings, err := s.p.Scan(s.ctx, nil)
	if err != nil {
		return "scan of no texts failed: " + err.Error(), false
	}
	// The host already rejects a finding for a message that does not exist;
	// this guards the message should that ever change.
	if len(findings) > 0 {
		return fmt.Sprintf("scan of no texts returned %d findings", len(findings)), false
	}
	return "scan of no texts returned no findings", true
}

func (s *suite) concurrent() (string, bool) {
	n := s.opts.Concurrency
	type mismatch struct {
		sample string
		err    error
		got    []plugin.Finding
		want   []plugin.Finding
	}
	var (
		mu     sync.Mutex
		failed []mismatch
		wg     sync.WaitGroup
	)
	for w := range n {
		wg.Go(func() {
			// Each worker walks the corpus from a different place, so that
			// instances see different samples at the same time.
			for k := range s.opts.Corpus {
				i := (k + w) % len(s.opts.Corpus)
				got, err := s.p.Scan(s.ctx, s.opts.Corpus[i].Texts)
				if err != nil || !sameFindings(s.first[i], got) {
					mu.Lock()
					failed = append(failed, mismatch{s.opts.Corpus[i].Name, err, got, s.first[i]})
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		f := failed[0]
		if f.err != nil {
			return fmt.Sprintf("%d of %d concurrent scans disagreed; sample %s failed: %v", len(failed), n*len(s.opts.Corpus), f.sample, f.err), false
		}
		return fmt.Sprintf("%d of %d concurrent scans disagreed; sample %s gave %s, alone %s", len(failed), n*len(s.opts.Corpus), f.sample, describe(f.got), describe(f.want)), false
	}
	return fmt.Sprintf("%d scans on %d goroutines agree with the sequential scans", n*len(s.opts.Corpus), n), true
}

// sameFindings compares findings as sets: the ABI lets a plugin list them in
// any order.
func sameFindings(a, b []plugin.Finding) bool {
	if len(a) != len(b) {
		return false
	}
	return slices.Equal(sorted(a), sorted(b))
}

func sorted(fs []plugin.Finding) []plugin.Finding {
	fs = slices.Clone(fs)
	slices.SortFunc(fs, func(x, y plugin.Finding) int {
		if c := x.Message - y.Message; c != 0 {
			return c
		}
		if c := x.Start - y.Start; c != 0 {
			return c
		}
		if c := x.End - y.End; c != 0 {
			return c
		}
		if c := strings.Compare(x.Type, y.Type); c != 0 {
			return c
		}
		switch {
		case x.Score < y.Score:
			return -1
		case x.Score > y.Score:
			return 1
		}
		return 0
	})
	return fs
}

// describe summarises findings without the matched text, which must not reach
// logs: types and offsets only.
func describe(fs []plugin.Finding) string {
	if len(fs) == 0 {
		return "no findings"
	}
	parts := make([]string, 0, min(len(fs), 4))
	for _, f := range sorted(fs)[:min(len(fs), 4)] {
		parts = append(parts, fmt.Sprintf("%s@%d[%d,%d)", f.Type, f.Message, f.Start, f.End))
	}
	if len(fs) > 4 {
		parts = append(parts, fmt.Sprintf("…%d more", len(fs)-4))
	}
	return fmt.Sprintf("%d findings (%s)", len(fs), strings.Join(parts, " "))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// quote quotes s for a message; the texts it quotes are the suite's own.
func quote(s string) string { return strconv.Quote(s) }
