package plugin

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// TestHostileModulesRefusedAtLoad checks that a module that is not an ABI v1
// plugin, or that hangs while it starts, fails its load with a message that
// names the problem, within the set-up deadline.
func TestHostileModulesRefusedAtLoad(t *testing.T) {
	tests := []struct {
		module  string
		opts    Options
		wantErr []string
		is      error
	}{
		{wasmbuild.HostileABIv2, Options{}, []string{"plugin implements ABI v2, this host implements v1"}, nil},
		{wasmbuild.HostileMissingExports, Options{}, []string{
			"not a Sluice ABI v1 plugin", "missing export sluice_scan", "missing export sluice_output",
			"export sluice_free has signature (i64) -> (), want (i32) -> ()",
		}, nil},
		{wasmbuild.HostileForbiddenImport, Options{}, []string{"imports env.system, which Sluice does not provide"}, nil},
		{wasmbuild.HostileSpinInit, Options{Timeout: 10 * time.Millisecond}, []string{"_initialize", "stopped after its deadline"}, ErrTimeout},
		{wasmbuild.HostileStartSpin, Options{Timeout: 10 * time.Millisecond}, []string{"start function", "stopped after its deadline"}, ErrTimeout},
		{wasmbuild.HostileUndeclaredGlobal, Options{}, []string{"invalid WebAssembly module", "compile", "global"}, ErrInvalidModule},
		{wasmbuild.HostileGo, Options{SHA256: strings.Repeat("ab", 32)}, []string{"but the configuration pins abab", "refusing to load it"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			tt.opts.Name = tt.module
			start := time.Now()
			p, err := testRuntime.Load(context.Background(), moduleBytes(t, tt.module), tt.opts)
			if err == nil {
				p.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			for _, want := range append(tt.wantErr, "plugin "+tt.module+": load") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load error %q does not contain %q", err, want)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Load took %v, want it bounded by the set-up deadline", d)
			}
		})
	}
}

// TestFailedInstanceIsDiscarded checks, for every way a call can go wrong,
// the message the operator sees, that an instance whose state can no longer
// be trusted is closed and never handed to another call, that one which only
// reported an error is kept, and that the pool refills on the next call.
func TestFailedInstanceIsDiscarded(t *testing.T) {
	tests := []struct {
		module, text string
		wantErr      string
		is           error
		discard      bool
		timeout      time.Duration // default 100ms; growing to the limit takes longer, more so on a busy machine
	}{
		{wasmbuild.HostileGo, "panic", "guest trapped: wasm error: unreachable", nil, true, 0},
		{wasmbuild.HostileGo, "loop", "stopped after its deadline", ErrTimeout, true, 0},
		{wasmbuild.HostileGo, "grow", "most likely ran out of memory", nil, true, 10 * time.Second},
		{wasmbuild.HostileGo, "bad-offsets", "offsets [0,21) invalid for message 0 of 11 bytes", nil, true, 0},
		{wasmbuild.HostileGo, "error", "scan failed: hostile plugin fails", nil, false, 0},
		{wasmbuild.HostileRaw, "!trap", "guest trapped: wasm error: unreachable", nil, true, 0},
		{wasmbuild.HostileRaw, "!spin", "stopped after its deadline", ErrTimeout, true, 0},
		{wasmbuild.HostileRaw, "!grow", "its memory was at 31 of 32 MiB, so it most likely ran out of memory", nil, true, 10 * time.Second},
		{wasmbuild.HostileRaw, "!oob", "scan result: output [4294901760,+16) lies outside guest memory", nil, true, 0},
		{wasmbuild.HostileRaw, "!big", "scan result: output of 17825792 bytes exceeds the 16777216-byte limit", nil, true, 0},
		{wasmbuild.HostileRaw, "!json", "scan result: malformed result document", nil, true, 0},
		{wasmbuild.HostileRaw, "!fill", "stopped after its deadline", ErrTimeout, true, 0},
		{wasmbuild.HostileRaw, "!recurse", "stopped after its deadline", ErrTimeout, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.module+"/"+tt.text, func(t *testing.T) {
			p := load(t, tt.module, Options{Timeout: cmp.Or(tt.timeout, 100*time.Millisecond), PoolSize: 1})
			served := <-p.idle // the one instance Load made
			p.idle <- served

			_, err := p.Scan(context.Background(), []string{tt.text})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Scan(%q) error = %q, want one line containing %q", tt.text, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			settle(t, p) // an instance kept is back in the pool once reset
			if got := served.mod.IsClosed(); got != tt.discard {
				t.Errorf("instance closed = %v, want %v", got, tt.discard)
			}
			if want := map[bool]int{false: 1}[tt.discard]; len(p.idle) != want {
				t.Errorf("%d instance(s) in the pool after a failed call, want %d", len(p.idle), want)
			}
			if got := p.discarded.Load(); got != map[bool]uint64{true: 1}[tt.discard] {
				t.Errorf("discarded = %d", got)
			}

			if _, err := p.Scan(context.Background(), []string{"still there"}); err != nil {
				t.Fatalf("Scan after %q: %v; want the plugin to keep serving", tt.text, err)
			}
			next := <-p.idle
			p.idle <- next
			if (next != served) != tt.discard {
				t.Errorf("next call served by a new instance = %v, want %v", next != served, tt.discard)
			}
		})
	}
}

// TestInstanceStateAfterTrap shows, through the plugin's own state, that
// every call starts from the configured state: after a success, as after a
// crash, the call counter the module keeps in memory reads one.
func TestInstanceStateAfterTrap(t *testing.T) {
	p := load(t, wasmbuild.HostileGo, Options{PoolSize: 1})
	var got []string
	for _, text := range []string{"count", "count", "panic", "count"} {
		findings, err := p.Scan(context.Background(), []string{text})
		switch {
		case err != nil:
			got = append(got, "error")
		case len(findings) == 1:
			got = append(got, findings[0].Type)
		default:
			t.Fatalf("Scan(%q) = %v", text, findings)
		}
	}
	if want := "CALL_1 CALL_1 error CALL_1"; strings.Join(got, " ") != want {
		t.Errorf("results %q, want %q", strings.Join(got, " "), want)
	}
}

// TestNoStateCrossesCalls checks that nothing of one call reaches the next:
// not what a module keeps in memory (the Go module's stash), not its globals
// or a word it wrote (raw's !mark), not a file descriptor it closed (raw's
// !close), not the bytes of a longer earlier input
// left in the host's input buffer, and not across an instance that was
// replaced after its memory grew.
func TestNoStateCrossesCalls(t *testing.T) {
	ctx := context.Background()
	t.Run("stash", func(t *testing.T) {
		p := load(t, wasmbuild.HostileGo, Options{PoolSize: 1})
		if _, err := p.Scan(ctx, []string{"stash:ALICE_CONFIDENTIAL merger with ACME"}); err != nil {
			t.Fatal(err)
		}
		findings, err := p.Scan(ctx, []string{"stash:bob"})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range findings {
			if strings.HasPrefix(f.Type, "PREV_") {
				t.Errorf("the second call returned %s: the first call's text", f.Type)
			}
		}
	})
	t.Run("globals, memory and input buffer", func(t *testing.T) {
		p := load(t, wasmbuild.HostileRaw, Options{PoolSize: 1})
		probeAfter(t, p)
	})
	t.Run("copied snapshot", func(t *testing.T) {
		// Where the kernel's copy-on-write cannot be used, the copy holds.
		setNoMemfd(t)
		p := load(t, wasmbuild.HostileRaw, Options{Name: "raw-copied", PoolSize: 1})
		probeAfter(t, p)
	})
	t.Run("after growth", func(t *testing.T) {
		// What is tested is state, not time: a 6 MB scan gets the time a
		// loaded machine needs.
		p := load(t, wasmbuild.HostileGo, Options{PoolSize: 1, Timeout: 10 * time.Second})
		// An input larger than the snapshot's buffer makes the Go guest grow
		// its heap, so the instance is replaced by one from the snapshot.
		big := "stash:" + strings.Repeat("ALICE ", 1<<20)
		if _, err := p.Scan(ctx, []string{big}); err != nil {
			t.Fatal(err)
		}
		findings, err := p.Scan(ctx, []string{"stash:bob"})
		if err != nil {
			t.Fatal(err)
		}
		if len(findings) != 0 && strings.HasPrefix(findings[0].Type, "PREV_") {
			t.Errorf("the second call returned %s", findings[0].Type)
		}
		if p.grown.Load() == 0 {
			t.Errorf("no instance was replaced after its memory grew")
		}
	})
}

// probeAfter scans, on p, inputs that leave state behind, each followed by
// raw's probes, which must find nothing of it.
func probeAfter(t *testing.T, p *Plugin) {
	t.Helper()
	ctx := context.Background()
	for _, earlier := range [][]string{
		{"!close"},
		{"!mark"},
		{"!x" + strings.Repeat("A", 3000)},
		{"!x", strings.Repeat("secret ", 500)},
	} {
		if _, err := p.Scan(ctx, earlier); err != nil {
			t.Fatal(err)
		}
		for _, probe := range []string{"!probe", "!write"} {
			findings, err := p.Scan(ctx, []string{probe})
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 0 {
				t.Errorf("after %.20q, %s found %v: state of the earlier call", earlier, probe, findings)
			}
		}
	}
}

// TestCheckedInModulesMatchSources rebuilds the hand-written modules from
// their WebAssembly text when wabt's wat2wasm is installed, so that the
// checked-in binaries cannot drift from the sources a reader sees.
func TestCheckedInModulesMatchSources(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm (Debian package wabt) is not installed")
	}
	minimal, err := wasmbuild.MinimalPath()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(minimal))) // testdata/
	sources, _ := filepath.Glob(filepath.Join(root, "plugins", "hostile", "wat", "*.wat"))
	sources = append(sources, filepath.Join(root, "plugins", "minimal", "minimal.wat"))
	if len(sources) < 6 {
		t.Fatalf("found %d .wat sources, want the hostile ones and minimal", len(sources))
	}
	for _, src := range sources {
		out := filepath.Join(t.TempDir(), "out.wasm")
		args := []string{src, "-o", out}
		if source, err := os.ReadFile(src); err == nil && bytes.Contains(source, []byte(";; wat2wasm-flags: --no-check\n")) {
			args = append(args, "--no-check") // a module that is invalid on purpose
		}
		if msg, err := exec.Command(wat2wasm, args...).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm %s: %v\n%s", src, err, msg)
		}
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(strings.TrimSuffix(src, ".wat") + ".wasm")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s.wasm is not what wat2wasm builds from %s (err %v): run wat2wasm %s -o %s.wasm",
				strings.TrimSuffix(filepath.Base(src), ".wat"), filepath.Base(src), err, src, strings.TrimSuffix(src, ".wat"))
		}
	}
}
