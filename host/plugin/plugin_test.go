package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
	"github.com/sluicehq/sluice/plugins/pii"
	"github.com/sluicehq/sluice/sdk/abi"
)

// testRuntime is shared by the tests so each module is compiled once; the
// on-disk cache makes later runs of the suite fast too.
var testRuntime *Runtime

func TestMain(m *testing.M) {
	var err error
	testRuntime, err = NewRuntime(context.Background(), filepath.Join(os.TempDir(), "sluice-plugin-test-cache"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testRuntime.Close(context.Background())
	os.Exit(code)
}

func readModule(t testing.TB, path func(string) (string, error), name string) []byte {
	t.Helper()
	p, err := path(name)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// moduleBytes returns the bytes of a shipped plugin (pii, contentfilter), a
// hostile test module (see wasmbuild.HostilePath), "empty" or "minimal".
func moduleBytes(t testing.TB, name string) []byte {
	t.Helper()
	switch name {
	case "pii", "contentfilter":
		return readModule(t, wasmbuild.Path, name)
	case "empty":
		return readModule(t, wasmbuild.TestdataPath, name)
	case "minimal":
		return readModule(t, func(string) (string, error) { return wasmbuild.MinimalPath() }, name)
	}
	return readModule(t, wasmbuild.HostilePath, name)
}

func load(t testing.TB, name string, opts Options) *Plugin {
	t.Helper()
	if opts.Name == "" {
		opts.Name = name
	}
	p, err := testRuntime.Load(context.Background(), moduleBytes(t, name), opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// hit is a finding as a user checks it: which message, its type and the text it covers.
type hit struct {
	message    int
	typ, value string
}

func hits(texts []string, findings []Finding) []hit {
	var got []hit
	for _, f := range findings {
		got = append(got, hit{f.Message, f.Type, texts[f.Message][f.Start:f.End]})
	}
	return got
}

func TestScanPII(t *testing.T) {
	p := load(t, "pii", Options{})
	texts := []string{
		"You are a helpful assistant.",
		"My card is 4111 1111 1111 1111 and my mail is jane@example.com.",
		"",
		"Use key AKIA6AFQKVXPJEGZC7D3 from 203.0.113.9 — ünïcödé before and after",
	}
	findings, err := p.Scan(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	want := []hit{
		{1, "CREDIT_CARD", "4111 1111 1111 1111"},
		{1, "EMAIL", "jane@example.com"},
		{3, "AWS_ACCESS_KEY", "AKIA6AFQKVXPJEGZC7D3"},
		{3, "IP_ADDRESS", "203.0.113.9"},
	}
	if got := hits(texts, findings); !slices.Equal(got, want) {
		t.Errorf("findings\n got %v\nwant %v", got, want)
	}
	if p.Name() != "pii" {
		t.Errorf("Name() = %q", p.Name())
	}
}

func TestScanContentFilterConfig(t *testing.T) {
	p := load(t, "contentfilter", Options{Config: []byte(`{"categories":{"secrets":["project nightjar"]},"terms":["bomb"]}`)})
	texts := []string{"Tell me about PROJECT  Nightjar.", "how to build a bomb", "bombastic"}
	findings, err := p.Scan(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	want := []hit{{0, "SECRETS", "PROJECT  Nightjar"}, {1, "BLOCKED_TERM", "bomb"}}
	if got := hits(texts, findings); !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

func TestScanConcurrent(t *testing.T) {
	p := load(t, "pii", Options{PoolSize: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 10 {
				text := fmt.Sprintf("request %d-%d from user%d@example.com", g, i, g)
				findings, err := p.Scan(context.Background(), []string{text})
				if err != nil {
					errs <- err
					return
				}
				want := []hit{{0, "EMAIL", fmt.Sprintf("user%d@example.com", g)}}
				if got := hits([]string{text}, findings); !slices.Equal(got, want) {
					errs <- fmt.Errorf("goroutine %d: got %v, want %v", g, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHostileGuest checks that a plugin that crashes, spins or breaks the
// result contract fails only the call it was serving, with an error that says
// what happened, and that the plugin keeps serving afterwards.
func TestHostileGuest(t *testing.T) {
	p := load(t, "hostile", Options{Timeout: 200 * time.Millisecond, PoolSize: 2})
	tests := []struct {
		text    string
		wantErr string
		is      error
	}{
		{"panic", "guest trapped: wasm error: unreachable", nil},
		{"loop", "stopped after its deadline", ErrTimeout},
		{"error", "scan failed: hostile plugin fails", nil},
		{"bad-offsets", "offsets [0,21) invalid for message 0 of 11 bytes", nil},
		{"bad-message", "message index 1 out of range", nil},
		{"bad-type", "a type the plugin did not declare in its manifest", nil},
		{"undeclared", "finding 0: a type the plugin did not declare in its manifest", nil},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			start := time.Now()
			_, err := p.Scan(context.Background(), []string{tt.text})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "plugin hostile") {
				t.Fatalf("Scan(%q) error = %v, want one naming the plugin and containing %q", tt.text, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Scan took %v, want it bounded by the deadline", d)
			}
			findings, err := p.Scan(context.Background(), []string{"still there"})
			if err != nil || len(findings) != 1 || findings[0].Type != "ECHO" {
				t.Fatalf("Scan after %q = %v, %v; want the plugin to keep serving", tt.text, findings, err)
			}
		})
	}
}

func TestSandboxHidesHost(t *testing.T) {
	p := load(t, "hostile", Options{})
	findings, err := p.Scan(context.Background(), []string{"escape"})
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 1 || findings[0].Type != "ECHO" {
		t.Errorf("findings = %+v: the guest could see files, environment or arguments", findings)
	}
}

func TestScanHonoursCallerContext(t *testing.T) {
	p := load(t, "hostile", Options{Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Scan(ctx, []string{"loop"}); err == nil {
		t.Fatal("Scan of a spinning guest returned no error after the caller's deadline")
	}
}

func TestPluginLog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	p := load(t, "hostile", Options{Logger: logger})
	if _, err := p.Scan(context.Background(), []string{"log"}); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log output %q: %v", buf.Bytes(), err)
	}
	if rec["message"] != "hostile plugin says hello" || rec["level"] != "WARN" || rec["plugin"] != "hostile" {
		t.Errorf("log record = %v", rec)
	}
}

// TestOutputDiscipline checks what a plugin's output can make the host do:
// a flood of log messages is cut to a few per call and counted, messages and
// error messages are bounded and escaped (no raw newline or terminal escape,
// nothing of the scanned text past the bounds), findings are capped, and a
// manifest that declares bad or too many types fails the load.
func TestOutputDiscipline(t *testing.T) {
	ctx := context.Background()
	t.Run("log flood", func(t *testing.T) {
		var buf bytes.Buffer
		p := load(t, wasmbuild.HostileGo, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Timeout: 5 * time.Second})
		if _, err := p.Scan(ctx, []string{"log-flood"}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) > maxLogCallMessages {
			t.Errorf("%d log lines from one call, want at most %d", len(lines), maxLogCallMessages)
		}
		if strings.ContainsRune(buf.String(), 0x1b) {
			t.Errorf("a terminal escape reached the log: %q", lines[0])
		}
		if got := p.logsDropped.Load(); got < 100000-maxLogCallMessages {
			t.Errorf("logsDropped = %d, want the %d messages past the cap counted", got, 100000-maxLogCallMessages)
		}
	})
	t.Run("error message", func(t *testing.T) {
		p := load(t, wasmbuild.HostileGo, Options{})
		_, err := p.Scan(ctx, []string{"error-text"})
		if err == nil {
			t.Fatal("Scan succeeded")
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\n\x1b") || len(msg) > maxErrorBytes+200 {
			t.Errorf("error of %d bytes, raw control characters %v: %q", len(msg), strings.ContainsAny(msg, "\n\x1b"), msg)
		}
	})
	t.Run("findings cap", func(t *testing.T) {
		for _, n := range []int{abi.MaxFindings, abi.MaxFindings + 1} {
			p := load(t, wasmbuild.HostileGo, Options{Name: fmt.Sprint("many-", n), Config: []byte(fmt.Sprintf(`{"many":%d}`, n)), Timeout: 5 * time.Second})
			findings, err := p.Scan(ctx, []string{"many"})
			if n <= abi.MaxFindings && (err != nil || len(findings) != n) {
				t.Errorf("%d findings: got %d, %v", n, len(findings), err)
			}
			if n > abi.MaxFindings && (err == nil || !strings.Contains(err.Error(), "more than the 16384 allowed")) {
				t.Errorf("%d findings: error %v, want the cap named", n, err)
			}
		}
	})
	t.Run("manifest", func(t *testing.T) {
		tooMany := make([]string, abi.MaxTypes+1)
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("T%d", i)
		}
		for _, tt := range []struct {
			types   []string
			wantErr string
		}{
			// The Go SDK refuses the first two itself; ParseManifest's own
			// checks are tested in sdk/abi.
			{[]string{"ECHO", "not a type \n"}, "want only A-Z, 0-9 and _"},
			{tooMany, "65 types, more than the 64 allowed"},
			{[]string{"ECHO", "ECHO"}, "configure: manifest declares type ECHO twice"},
		} {
			config, _ := json.Marshal(map[string]any{"types": tt.types})
			_, err := testRuntime.Load(ctx, moduleBytes(t, wasmbuild.HostileGo), Options{Name: "manifest", Config: config})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load with types %.40q: error %v, want one containing %q", tt.types, err, tt.wantErr)
			}
		}
	})
}

func TestLoadErrors(t *testing.T) {
	hostile := readModule(t, wasmbuild.TestdataPath, "hostile")
	emptyModule := []byte("\x00asm\x01\x00\x00\x00")
	tests := []struct {
		name    string
		wasm    []byte
		opts    Options
		wantErr []string
	}{
		{"no name", hostile, Options{}, []string{"Options.Name is required"}},
		{"not wasm", []byte("hello"), Options{Name: "junk"}, []string{"plugin junk", "compile"}},
		{"no exports", emptyModule, Options{Name: "empty"}, []string{"plugin empty", "not a Sluice ABI v1 plugin", "missing export sluice_scan", "missing exported memory"}},
		{"config rejected", hostile, Options{Name: "picky", Config: []byte(`{"fail":true}`)}, []string{"plugin picky", "configure rejected", "refusing this configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testRuntime.Load(context.Background(), tt.wasm, tt.opts)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestScanAfterClose(t *testing.T) {
	p := load(t, "hostile", Options{})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Scan(context.Background(), []string{"x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close error = %v, want ErrClosed", err)
	}
}

func TestScanJSONLines(t *testing.T) {
	p := load(t, "pii", Options{})
	in := strings.Join([]string{
		`{"id": 1, "text": "mail bob@example.com"}`,
		`not json`,
		``,
		`{"id": {"doc": "a"}, "text": "nothing here"}`,
		`{"id": "x"}`,
		`{"id": "é", "text": "ünï 10.1.2.3"}`,
	}, "\n")
	var out bytes.Buffer
	if err := ScanJSONLines(context.Background(), p, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"id":1,"found":[{"type":"EMAIL","value":"bob@example.com","start":5,"end":20,"score":0.9}]}`,
		`{"id":null,"error":"line 2: not a JSON object with id and text: invalid character 'o' in literal null (expecting 'u')"}`,
		`{"id":{"doc":"a"},"found":[]}`,
		`{"id":"x","error":"line 5: missing \"text\""}`,
		`{"id":"é","found":[{"type":"IP_ADDRESS","value":"10.1.2.3","start":6,"end":14,"score":0.5}]}`,
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// corpus is prompt-like text of n bytes with a little PII in it.
func corpus(n int) string {
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

// prose is n bytes of ordinary prompt text without personal data.
func prose(n int) string {
	const p = "Please rewrite the following paragraph so that it reads well, keeps every fact, " +
		"and stays under two hundred words. The team met on Monday to discuss the roadmap; " +
		"everyone agreed that onboarding needs work, that the docs are out of date, and that " +
		"we should ship the new dashboard before the end of the quarter. "
	return strings.Repeat(p, n/len(p)+1)[:n]
}

// BenchmarkScan compares the PII plugin through the host with the same
// scanner compiled natively, in one run, on the PII-dense corpus and on prose.
func BenchmarkScan(b *testing.B) {
	p := load(b, "pii", Options{PoolSize: 1, Timeout: time.Second})
	native, _ := pii.New(nil)
	ctx := context.Background()
	for _, in := range []struct {
		prefix string
		text   func(int) string
		sizes  []int
	}{{"", corpus, []int{27, 1 << 10, 64 << 10}}, {"prose/", prose, []int{1 << 10, 64 << 10}}} {
		for _, size := range in.sizes {
			text := in.text(size)
			b.Run("wasm/"+in.prefix+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.Scan(ctx, []string{text}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("native/"+in.prefix+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				buf := []byte(text)
				var dst []pii.Finding
				for b.Loop() {
					dst = native.Scan(dst[:0], buf)
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n < 1<<10 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%dKB", n>>10)
}

// interruptModes are the ways of keeping a spinning guest stoppable that
// BenchmarkInterrupt and BenchmarkInterruptStop compare: the check of a
// global that the host instruments every loop with, wazero's call into the
// runtime at every loop (WithCloseOnContextDone), and nothing at all.
var interruptModes = []struct {
	name string
	mode interruptMode
}{{"check", interruptCheck}, {"close", interruptClose}, {"none", interruptNone}}

// BenchmarkInterrupt measures what each way of keeping a guest stoppable
// costs the real PII module, on prose (what almost every prompt is) and on
// the PII-dense corpus.
func BenchmarkInterrupt(b *testing.B) {
	for _, mode := range interruptModes {
		p := load(b, "pii", Options{Name: "pii-" + mode.name, PoolSize: 1, Timeout: time.Second, interrupt: mode.mode})
		for _, in := range []struct {
			name string
			text string
		}{{"prose/1KB", prose(1 << 10)}, {"prose/64KB", prose(64 << 10)}, {"corpus/1KB", corpus(1 << 10)}, {"corpus/64KB", corpus(64 << 10)}} {
			b.Run(mode.name+"/"+in.name, func(b *testing.B) {
				b.SetBytes(int64(len(in.text)))
				for b.Loop() {
					if _, err := p.Scan(context.Background(), []string{in.text}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkInterruptStop measures how long after its deadline a spinning
// guest is stopped, with each stoppable mode: "late-µs" is the time from the
// deadline to the call's return, averaged. The Go guest spins with a counter
// in memory; the raw one on a bare branch.
func BenchmarkInterruptStop(b *testing.B) {
	const timeout = 5 * time.Millisecond
	for _, mode := range interruptModes[:2] {
		for _, guest := range []struct{ module, text string }{{wasmbuild.HostileGo, "loop"}, {wasmbuild.HostileRaw, "!spin"}} {
			p := load(b, guest.module, Options{Name: guest.module + "-" + mode.name, PoolSize: 1, Timeout: timeout, interrupt: mode.mode})
			b.Run(mode.name+"/"+guest.module, func(b *testing.B) {
				var late, worst time.Duration
				for b.Loop() {
					b.StopTimer()
					inst, err := p.newInstance(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					start := time.Now()
					_, _, err = inst.scan(context.Background(), timeout, []string{guest.text})
					d := time.Since(start) - timeout
					if !errors.Is(err, ErrTimeout) {
						b.Fatalf("scan error = %v, want ErrTimeout", err)
					}
					late += d
					worst = max(worst, d)
					inst.mod.Close(context.Background())
				}
				b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs")
				b.ReportMetric(float64(worst.Microseconds()), "worst-late-µs")
			})
		}
	}
}

// BenchmarkCall measures the fixed cost of a scan on a pooled instance: a
// short text with nothing to find, on the hand-written minimal module (the
// host's own cost), the Go SDK's empty plugin and the PII plugin.
func BenchmarkCall(b *testing.B) {
	ctx := context.Background()
	texts := []string{"hi"}
	for _, name := range []string{"minimal", "empty", "pii"} {
		p := load(b, name, Options{PoolSize: 1})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Scan(ctx, texts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReset measures what putting an instance back to its configured
// state after each call costs: the call overhead of the minimal module, of
// an empty Go plugin and of the PII plugin on a 2-byte text, and the PII
// plugin on prose, each with the reset done by the recycler (what the host
// does), with the reset on the caller's path (what it did before), and
// without a reset, in one run so that the ratios hold on a busy machine.
// "cpu-ns/op" is the processor time of the whole process per call, which
// counts the recycler's work that ns/op may not; "grown/op" counts instances
// replaced because a call grew their memory.
func BenchmarkReset(b *testing.B) {
	ctx := context.Background()
	cases := []struct {
		module, name string
		text         string
	}{
		{"minimal", "call/minimal", "hi"}, {"empty", "call/empty", "hi"}, {"pii", "call/pii", "hi"},
		{"pii", "scan/pii/prose/1KB", prose(1 << 10)}, {"pii", "scan/pii/prose/64KB", prose(64 << 10)},
		{"pii", "scan/pii/dense/1KB", corpus(1 << 10)}, {"pii", "scan/pii/dense/64KB", corpus(64 << 10)},
	}
	for _, c := range cases {
		for _, mode := range []struct {
			name                 string
			noReset, resetInline bool
		}{{"recycled", false, false}, {"inline", false, true}, {"none", true, false}} {
			p := load(b, c.module, Options{Name: c.module + "-" + mode.name, PoolSize: 1, Timeout: time.Second,
				noReset: mode.noReset, resetInline: mode.resetInline})
			b.Run(c.name+"/"+mode.name, func(b *testing.B) {
				if len(c.text) > 2 {
					b.SetBytes(int64(len(c.text)))
				}
				grown := p.grown.Load()
				cpu := processCPU()
				for b.Loop() {
					if _, err := p.Scan(ctx, []string{c.text}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(p.grown.Load()-grown)/float64(b.N), "grown/op")
			})
		}
	}
}

// BenchmarkCallLatency measures what a call costs its caller when calls
// arrive as requests do, apart rather than back to back: the caller waits
// 100 µs between calls, and each call is timed from Scan to its return. The
// recycler resets the instance meanwhile; resetting on the caller's path (the
// host before the recycler) and not at all are measured in the same run.
// Reported as p50 and p99 in ns, and as the processor time of the whole
// process per call, which counts the recycler's work.
func BenchmarkCallLatency(b *testing.B) {
	ctx := context.Background()
	for _, c := range []struct{ module, name, text string }{
		{"minimal", "minimal", "hi"}, {"empty", "empty", "hi"}, {"pii", "pii/prose/1KB", prose(1 << 10)},
	} {
		for _, mode := range []struct {
			name                 string
			noReset, resetInline bool
		}{{"recycled", false, false}, {"inline", false, true}, {"none", true, false}} {
			p := load(b, c.module, Options{Name: c.module + "-latency-" + mode.name, PoolSize: 1, Timeout: time.Second,
				noReset: mode.noReset, resetInline: mode.resetInline})
			b.Run(c.name+"/"+mode.name, func(b *testing.B) {
				texts := []string{c.text}
				var lat []time.Duration
				cpu := processCPU()
				for b.Loop() {
					time.Sleep(100 * time.Microsecond)
					start := time.Now()
					if _, err := p.Scan(ctx, texts); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			})
		}
	}
}

// BenchmarkScanContentFilter measures the shipped content filter through the
// host on prose, which is what almost every prompt is.
func BenchmarkScanContentFilter(b *testing.B) {
	p := load(b, "contentfilter", Options{PoolSize: 1, Timeout: time.Second})
	ctx := context.Background()
	for _, size := range []int{1 << 10, 64 << 10} {
		text := prose(size)
		b.Run("wasm/prose/"+sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Scan(ctx, []string{text}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestQueueIsBounded checks that scans waiting for a busy plugin are bounded
// in number and in wait: one beyond MaxQueue fails at once, and one that waits
// longer than QueueTimeout fails then, both with ErrBusy and counted.
func TestQueueIsBounded(t *testing.T) {
	p := load(t, wasmbuild.HostileGo, Options{PoolSize: 1, MaxQueue: 1, QueueTimeout: 50 * time.Millisecond, Timeout: time.Second})
	ctx := context.Background()
	busy := make(chan error)
	go func() {
		_, err := p.Scan(ctx, []string{"sleep"}) // 200 ms on the one instance
		busy <- err
	}()
	for p.waiting.Load() == 0 && len(p.slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	waited := make(chan error)
	go func() {
		_, err := p.Scan(ctx, []string{"queued"})
		waited <- err
	}()
	for p.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := p.Scan(ctx, []string{"third"}); !errors.Is(err, ErrBusy) || time.Since(start) > 20*time.Millisecond {
		t.Errorf("a scan beyond the queue: %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	if err := <-waited; !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "no instance free within 50ms") {
		t.Errorf("a scan that waited past QueueTimeout: %v, want ErrBusy", err)
	}
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	if got := p.rejected.Load(); got != 2 {
		t.Errorf("rejected = %d, want 2", got)
	}
}
