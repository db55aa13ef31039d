package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// module assembles a WebAssembly binary from sections given as id and body.
func module(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s[0], byte(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

// Sections of a module whose one function, exported as "spin", loops forever.
var (
	typeSection   = []byte{1, 1, 0x60, 0, 0}                                // () -> ()
	funcSection   = []byte{3, 1, 0}                                         // function 0 has type 0
	memorySection = []byte{5, 1, 0, 1}                                      // one memory of 1 page
	importGlobal  = []byte{2, 1, 3, 'e', 'n', 'v', 1, 'g', 3, 0x7f, 0}      // env.g: immutable i32
	spinExport    = []byte{7, 1, 4, 's', 'p', 'i', 'n', 0, 0}               // "spin" is function 0
	spinCode      = []byte{10, 1, 7, 0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b} // loop br 0 end end
)

func TestInstrumentStopsSpinningCode(t *testing.T) {
	ctx := context.Background()
	res, err := instrument(module(typeSection, funcSection, memorySection, spinExport, spinCode), true)
	if err != nil {
		t.Fatal(err)
	}
	wasm := res.wasm
	r := wazero.NewRuntime(ctx) // no WithCloseOnContextDone: the check is all there is
	defer r.Close(ctx)
	var yields atomic.Int64
	if err := instantiateYield(ctx, r, func(api.Module) { yields.Add(1) }); err != nil {
		t.Fatal(err)
	}
	mod, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instrumented module does not instantiate: %v", err)
	}
	flag, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	if !ok {
		t.Fatalf("no mutable global exported as %q", interruptExport)
	}
	done := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction("spin").Call(ctx)
		done <- err
	}()
	// A collection must be able to stop the world while the guest spins: the
	// check returns to Go now and then for that.
	runtime.GC()
	select {
	case err := <-done:
		t.Fatalf("spin returned before it was interrupted: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	flag.Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("spin returned %v, want the check's unreachable trap", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("spin still running 5s after the interrupt was set")
	}
	// The check leaves for Go through the host's yield function, which is
	// where the scheduler gets the processor back.
	if yields.Load() == 0 {
		t.Error("the spinning guest never called the host's yield function")
	}
}

// TestInstrumentRenumbersFunctions runs a module that names its functions in
// every place the yield import moves them (testdata/renumber.wat): rewritten,
// it must compute what it did before.
func TestInstrumentRenumbersFunctions(t *testing.T) {
	ctx := context.Background()
	wasm, err := os.ReadFile("testdata/renumber.wasm")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, wasm []byte, start string) uint64 {
		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		if err := instantiateYield(ctx, r, func(api.Module) {}); err != nil {
			t.Fatal(err)
		}
		double := func(_ context.Context, stack []uint64) { stack[0] = uint64(uint32(stack[0]) * 2) }
		_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
			WithGoFunction(api.GoFunc(double), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
			Export("double").Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := r.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatalf("instantiate: %v", err)
		}
		if start != "" {
			if _, err := mod.ExportedFunction(start).Call(ctx); err != nil {
				t.Fatalf("start: %v", err)
			}
		}
		res, err := mod.ExportedFunction("run").Call(ctx, 5)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		inc, err := mod.ExportedFunction("inc").Call(ctx, 41)
		if err != nil || inc[0] != 42 {
			t.Fatalf("inc(41) = %v, %v; want 42: the export names another function", inc, err)
		}
		return res[0]
	}
	const want = 10 + 6 + 4 + 15 + 100
	if got := run(t, wasm, ""); got != want {
		t.Fatalf("the module as given: run(5) = %d, want %d", got, want)
	}
	res, err := instrument(wasm, true)
	if err != nil {
		t.Fatal(err)
	}
	if !res.start {
		t.Fatal("the start function was not moved to an export")
	}
	if got := run(t, res.wasm, startExport); got != want {
		t.Errorf("rewritten: run(5) = %d, want %d", got, want)
	}
}

func TestInstrumentModules(t *testing.T) {
	tests := []struct {
		name    string
		wasm    []byte
		wantErr bool
	}{
		{"loop", module(typeSection, funcSection, memorySection, spinExport, spinCode), false},
		{"no export section", module(typeSection, funcSection, memorySection, spinCode), false},
		{"imported global", module(typeSection, importGlobal, funcSection, memorySection, spinCode), false},
		{"no memory", module(typeSection, funcSection, spinExport, spinCode), true},
		{"not wasm", []byte("hello"), true},
		{"truncated", module(typeSection, funcSection, memorySection, spinExport, spinCode)[:30], true},
		{"unknown opcode", module(typeSection, funcSection, memorySection, []byte{10, 1, 3, 0, 0xff, 0x0b}), true},
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := instrument(tt.wasm, true)
			out := res.wasm
			if tt.wantErr {
				if !errors.Is(err, ErrUnsupportedModule) {
					t.Errorf("instrument error = %v, want ErrUnsupportedModule", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Compiling validates the module: a wrong global index would set
			// an immutable or missing global and fail here.
			if _, err := r.CompileModule(ctx, out); err != nil {
				t.Errorf("instrumented module does not compile: %v", err)
			}
		})
	}
}

// TestSpinningGuestLetsCollectionsRun checks that a spinning plugin, whether
// it loops or recurses, neither blocks a garbage collection nor outlives its
// deadline while one runs.
func TestSpinningGuestLetsCollectionsRun(t *testing.T) {
	for _, guest := range []struct{ module, text string }{
		{wasmbuild.HostileGo, "loop"}, {wasmbuild.HostileRaw, "!recurse"},
	} {
		t.Run(guest.module+"/"+guest.text, func(t *testing.T) {
			p := load(t, guest.module, Options{Timeout: 100 * time.Millisecond, PoolSize: 1})
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
						runtime.GC()
					}
				}
			}()
			done := make(chan error, 1)
			go func() {
				_, err := p.Scan(context.Background(), []string{guest.text})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("Scan error = %v, want ErrTimeout", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a spinning guest and garbage collections deadlocked")
			}
		})
	}
}

// TestDeadlineHoldsWhateverTheGuestDoes checks that a call is stopped near
// its deadline however the guest spends its time: a bare loop, a loop whose
// iterations each fill 16 MiB, and recursion without any loop. Each ran for
// seconds against a 100 ms deadline when only loop iterations were counted.
func TestDeadlineHoldsWhateverTheGuestDoes(t *testing.T) {
	const timeout = 100 * time.Millisecond
	p := load(t, wasmbuild.HostileRaw, Options{Timeout: timeout, PoolSize: 1})
	for _, text := range []string{"!spin", "!fill", "!recurse"} {
		t.Run(text, func(t *testing.T) {
			start := time.Now()
			_, err := p.Scan(context.Background(), []string{text})
			took := time.Since(start)
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("Scan(%q) error = %v, want ErrTimeout", text, err)
			}
			// The slack is for a loaded machine's scheduler, not for the guest:
			// a quiet one stops each within a millisecond of the deadline.
			if took > timeout+400*time.Millisecond {
				t.Errorf("Scan(%q) took %v against a %v deadline", text, took, timeout)
			}
		})
	}
}

// flagGlobal is an api.MutableGlobal that records when it was set to 1.
type flagGlobal struct {
	api.MutableGlobal
	mu  sync.Mutex
	v   uint64
	set time.Time
}

func (g *flagGlobal) Set(v uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.v = v
	if v == 1 {
		g.set = time.Now()
	}
}

func (g *flagGlobal) get() (uint64, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.v, g.set
}

// TestWatchdogKeepsEachCallsDeadline checks that the timer shared by the calls
// of an instance interrupts each call at its own deadline: a short call after
// a long one is not left to the long one's timer, a call that ends in time is
// never interrupted, even when the timer of an earlier call fires during it.
func TestWatchdogKeepsEachCallsDeadline(t *testing.T) {
	g := &flagGlobal{}
	w := newWatchdog(g)
	ctx := context.Background()

	w.arm(ctx, time.Hour) // a set-up call with a long allowance, ending at once
	w.disarm()
	start := time.Now()
	w.arm(ctx, 20*time.Millisecond) // then a scan that spins
	for v, _ := g.get(); v == 0; v, _ = g.get() {
		if time.Since(start) > 5*time.Second {
			t.Fatal("a short call after a long one was not interrupted")
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(w.interrupted(), context.DeadlineExceeded) {
		t.Errorf("cause = %v, want DeadlineExceeded", w.interrupted())
	}
	w.disarm()

	// Calls back to back, each well within its deadline, across several
	// firings of the timer: none is interrupted.
	for range 6 {
		w.arm(ctx, 30*time.Millisecond)
		time.Sleep(10 * time.Millisecond)
		if w.interrupted() != nil {
			t.Fatal("a call that ended in time was interrupted")
		}
		w.disarm()
	}

	// A canceled context interrupts at once, with its own cause.
	cctx, cancel := context.WithCancel(ctx)
	w.arm(cctx, time.Hour)
	cancel()
	for w.interrupted() == nil {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(w.interrupted(), context.Canceled) {
		t.Errorf("cause = %v, want Canceled", w.interrupted())
	}
	w.disarm()
}

// BenchmarkNeighbourLatency times a small allocating task (a stand-in for a
// request that uses no plugin, which also drives the garbage collector) while
// the hostile raw module spins or recurses to its deadline on every call,
// from one caller or from as many as there are processors. A shared machine's
// load moves such figures by several times from minute to minute, so each run
// alternates: rounds of the task alone and rounds with the guests spinning,
// and reports the p99 of each and their ratio. The guest "go" is the
// yardstick: the same 100 ms calls spent spinning in Go code, which the Go
// scheduler preempts as it likes, so what it costs the task is what any
// busy processor costs it on this machine.
func BenchmarkNeighbourLatency(b *testing.B) {
	const rounds = 10
	for _, guest := range []string{"go", "!spin", "!recurse"} {
		for _, callers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/callers=%d", strings.TrimPrefix(guest, "!"), callers), func(b *testing.B) {
				call := func() {
					for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
					}
				}
				if guest != "go" {
					p := load(b, wasmbuild.HostileRaw, Options{Name: "neighbour", Timeout: 100 * time.Millisecond, PoolSize: callers})
					call = func() { p.Scan(context.Background(), []string{guest}) }
				}
				spin := func() (stop func()) {
					done := make(chan struct{})
					var wg sync.WaitGroup
					for range callers {
						wg.Go(func() {
							for {
								select {
								case <-done:
									return
								default:
									call()
								}
							}
						})
					}
					time.Sleep(20 * time.Millisecond)
					return func() { close(done); wg.Wait() }
				}
				var sink [][]byte
				task := func(lat []time.Duration, n int) []time.Duration {
					for range n {
						start := time.Now()
						for i := range 64 {
							sink = append(sink, make([]byte, 1024+i))
						}
						if len(sink) > 4096 {
							sink = sink[:0]
						}
						lat = append(lat, time.Since(start))
						time.Sleep(200 * time.Microsecond) // requests arrive, they do not queue back to back
					}
					return lat
				}
				per := max(b.N/(2*rounds), 1)
				var alone, beside []time.Duration
				b.ResetTimer()
				for range rounds {
					alone = task(alone, per)
					stop := spin()
					beside = task(beside, per)
					stop()
				}
				b.StopTimer()
				p99 := func(lat []time.Duration) float64 {
					slices.Sort(lat)
					return float64(lat[len(lat)*99/100].Microseconds())
				}
				base, under := p99(alone), p99(beside)
				b.ReportMetric(base, "alone-p99-µs")
				b.ReportMetric(under, "beside-p99-µs")
				b.ReportMetric(under/max(base, 1), "p99-ratio")
				b.ReportMetric(float64(beside[len(beside)-1].Microseconds()), "beside-max-µs")
			})
		}
	}
}
