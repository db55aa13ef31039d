package plugintest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

func readModule(t *testing.T, path func(string) (string, error), name string) []byte {
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

func TestShippedPluginsConform(t *testing.T) {
	for _, tt := range []struct {
		name   string
		config string
	}{
		{"pii", ""},
		{"pii", `{"types":["EMAIL","CREDIT_CARD"]}`},
		{"contentfilter", ""},
	} {
		t.Run(tt.name+tt.config, func(t *testing.T) {
			wasm := readModule(t, wasmbuild.Path, tt.name)
			report := Check(context.Background(), wasm, []byte(tt.config), Options{})
			if len(report.Results) != 13 {
				t.Errorf("got %d checks, want 13", len(report.Results))
			}
			for _, res := range report.Results {
				if !res.Passed {
					t.Error(res)
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	Run(t, readModule(t, wasmbuild.Path, "pii"), nil)
}

// want says that check name fails with a message containing each fragment;
// every check not listed must pass.
type want map[string][]string

func TestHostileModulesFail(t *testing.T) {
	hostile := func(t *testing.T) []byte { return readModule(t, wasmbuild.TestdataPath, "hostile") }
	with := func(name string, f wasmFunc) func(*testing.T) []byte {
		return func(*testing.T) []byte {
			fs := abiFuncs(emptyResult)
			f.name = name
			fs[name] = f
			return moduleOf(emptyResult, fs)
		}
	}
	without := func(names ...string) func(*testing.T) []byte {
		return func(*testing.T) []byte {
			fs := abiFuncs(emptyResult)
			for _, n := range names {
				delete(fs, n)
			}
			return moduleOf(emptyResult, fs)
		}
	}
	// Every check that needs a configured plugin fails as "not run" when
	// loading fails.
	notLoaded := func(w want) want {
		for _, name := range []string{CheckScan, CheckFindings, CheckDeterministic, CheckEmptyInput, CheckConcurrentScan,
			CheckDeadline, CheckOutputLimits, CheckStateless} {
			if _, ok := w[name]; !ok {
				w[name] = []string{"not run"}
			}
		}
		return w
	}
	// The minimal module accepts any configuration, which is the one thing
	// it gets wrong on its own.
	acceptsAnything := []string{"was accepted", "want status 1"}
	splitResult := `{"types":["X"],"findings":[{"type":"X","message":0,"start":2,"end":4,"score":1}]}`
	spin := []byte{0x03, 0x40, 0x0c, 0x00, 0x0b} // loop br 0 end
	tests := []struct {
		name   string
		wasm   func(*testing.T) []byte
		config string
		corpus []Sample
		want   want
	}{
		{
			name: "not wasm",
			wasm: func(*testing.T) []byte { return []byte("hello") },
			want: notLoaded(want{CheckCompile: {"invalid magic number"}, CheckExports: {"not run: compile failed"},
				CheckABIVersion: {"not run"}, CheckConfigure: {"not run"}, CheckInvalidConfig: {"not run"}}),
		},
		{
			name: "missing exports",
			wasm: without("sluice_scan", "sluice_output"),
			want: notLoaded(want{CheckExports: {"missing export sluice_scan", "missing export sluice_output"},
				CheckABIVersion: {"not run: exports failed"}, CheckConfigure: {"not run"}, CheckInvalidConfig: {"not run"}}),
		},
		{
			name: "wrong signature",
			wasm: with("sluice_scan", wasmFunc{params: []byte{valI32}, results: []byte{valI32}, body: i32Const(0)}),
			want: notLoaded(want{CheckExports: {"export sluice_scan is (i32) -> (i32), want (i32,i32) -> (i32)"},
				CheckABIVersion: {"not run"}, CheckConfigure: {"not run"}, CheckInvalidConfig: {"not run"}}),
		},
		{
			name: "wrong ABI version",
			wasm: with("sluice_abi_version", wasmFunc{results: []byte{valI32}, body: i32Const(2)}),
			want: notLoaded(want{CheckABIVersion: {"sluice_abi_version returned 2, want 1"},
				CheckConfigure: {"not run"}, CheckInvalidConfig: {"not run"}}),
		},
		{
			name: "configure traps",
			wasm: with("sluice_configure", wasmFunc{params: []byte{valI32, valI32}, results: []byte{valI32}, body: append(unreachable, i32Const(0)...)}),
			want: notLoaded(want{CheckConfigure: {"configure", "unreachable"}, CheckInvalidConfig: {"not refused cleanly", "sluice_configure trapped"}}),
		},
		{
			name: "accepts invalid configuration",
			wasm: func(*testing.T) []byte { return moduleOf(emptyResult, abiFuncs(emptyResult)) },
			want: want{CheckInvalidConfig: acceptsAnything},
		},
		{
			name: "result outside memory",
			wasm: with("sluice_output", wasmFunc{results: []byte{valI64}, body: i64Const(0x7fff0000<<32 | 64)}),
			// Its configure output, the manifest, is outside memory too, so it
			// fails to load; raw's !oob holds the host to a scan result outside
			// memory.
			want: notLoaded(want{
				CheckConfigure:     {"manifest", "outside guest memory"},
				CheckInvalidConfig: {"not refused cleanly", "outside memory"},
			}),
		},
		{
			name:   "offset inside a UTF-8 sequence",
			wasm:   func(*testing.T) []byte { return moduleOf(splitResult, abiFuncs(splitResult)) },
			corpus: []Sample{{Name: "accented", Texts: []string{"aé b"}}},
			want: want{
				CheckInvalidConfig: acceptsAnything,
				CheckFindings:      {"sample accented", "offset 2 of message 0 splits a UTF-8 sequence"},
				// The same result names a message that an empty input lacks.
				CheckEmptyInput: {"message index 0 out of range"},
			},
		},
		{
			name:   "scan spins",
			wasm:   with("sluice_scan", wasmFunc{params: []byte{valI32, valI32}, results: []byte{valI32}, body: append(spin, i32Const(0)...)}),
			corpus: []Sample{{Name: "any", Texts: []string{"hello"}}},
			want: want{
				CheckInvalidConfig: acceptsAnything,
				CheckScan:          {"sample any", "timed out"},
				CheckFindings:      {"sample any", "did not return within"},
				CheckDeterministic: {"not run"}, CheckConcurrentScan: {"not run"},
				CheckEmptyInput: {"timed out"},
				CheckDeadline:   {"sample any did not finish within the 100ms deadline"},
			},
		},
		{
			name:   "Go plugin refuses its configuration",
			wasm:   hostile,
			config: `{"fail":true}`,
			want:   notLoaded(want{CheckConfigure: {"configure rejected", "refusing this configuration"}}),
		},
		{
			name:   "Go plugin panics",
			wasm:   hostile,
			corpus: []Sample{{Name: "ok", Texts: []string{"fine"}}, {Name: "boom", Texts: []string{"panic"}}},
			want: want{
				CheckScan:          {"1 of 2 samples failed", "sample boom", "trapped"},
				CheckFindings:      {"sample boom", "trapped"},
				CheckDeterministic: {"not run"}, CheckConcurrentScan: {"not run"},
			},
		},
		{
			name:   "Go plugin returns bad findings",
			wasm:   hostile,
			corpus: []Sample{{Name: "offsets", Texts: []string{"bad-offsets"}}, {Name: "message", Texts: []string{"bad-message"}}, {Name: "type", Texts: []string{"bad-type"}}},
			want: want{
				CheckScan: {"3 of 3 samples failed"},
				CheckFindings: {"sample offsets: finding 0: finding ECHO: offsets [0,21) invalid",
					"sample message: finding 0: finding ECHO: message index 1 out of range",
					`sample type: finding 0: finding type "echo; drop table"`},
				CheckDeterministic: {"not run"}, CheckConcurrentScan: {"not run"},
				CheckOutputLimits: {`sample type: finding type "echo; drop table" is not declared`},
			},
		},
		{
			name:   "Go plugin spins",
			wasm:   hostile,
			corpus: []Sample{{Name: "spin", Texts: []string{"loop"}}},
			want: want{
				CheckScan:          {"sample spin", "timed out"},
				CheckFindings:      {"sample spin", "did not return within"},
				CheckDeterministic: {"not run"}, CheckConcurrentScan: {"not run"},
				CheckDeadline: {"sample spin did not finish"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			report := Check(context.Background(), tt.wasm(t), []byte(tt.config), Options{Corpus: tt.corpus, Timeout: 200 * time.Millisecond})
			// A bound on a hang, not on speed: compiling the Go module twice
			// takes seconds on a machine busy with other tests.
			if d := time.Since(start); d > time.Minute {
				t.Errorf("the suite took %v", d)
			}
			if report.Passed() {
				t.Fatal("every check passed")
			}
			for _, res := range report.Results {
				fragments, shouldFail := tt.want[res.Name]
				switch {
				case shouldFail && res.Passed:
					t.Errorf("%s passed (%s), want a failure", res.Name, res.Message)
				case !shouldFail && !res.Passed:
					t.Errorf("%s failed: %s", res.Name, res.Message)
				}
				for _, f := range fragments {
					if !strings.Contains(res.Message, f) {
						t.Errorf("%s: message %q does not contain %q", res.Name, res.Message, f)
					}
				}
			}
		})
	}
}

func TestOnBoundary(t *testing.T) {
	text := "aé\xffb" // a, é (2 bytes), an invalid byte, b
	for off, want := range []bool{true, true, false, true, true, true} {
		if got := onBoundary(text, off); got != want {
			t.Errorf("onBoundary(%q, %d) = %v, want %v", text, off, got, want)
		}
	}
}
