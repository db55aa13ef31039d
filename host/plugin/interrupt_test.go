package plugin

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
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

// BenchmarkNeighbourLatency measures what a plugin that spins or recurses
// until its deadline on every call does to work that uses no plugin: the
// latency of a small allocating task (a stand-in for a no-plugin request,
// which also drives the garbage collector) alone, and while the hostile plugin
// is kept busy by one goroutine (PoolSize 1) or by as many as there are
// processors, when the neighbour can only wait for the scheduler's time
// slice. Reported as p50 and p99 in µs; the aim is a
// p99 within 2× of the baseline. A guest without a way back to Go would
// hold every stop-the-world collection for as long as it ran.
func BenchmarkNeighbourLatency(b *testing.B) {
	type run struct {
		guest   string
		callers int
	}
	runs := []run{{"none", 0}}
	for _, guest := range []string{"!spin", "!recurse"} {
		runs = append(runs, run{guest, 1}, run{guest, runtime.GOMAXPROCS(0)})
	}
	for _, r := range runs {
		guest := r.guest
		b.Run(fmt.Sprintf("%s/callers=%d", strings.TrimPrefix(guest, "!"), r.callers), func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if guest != "none" {
				p := load(b, wasmbuild.HostileRaw, Options{Name: "neighbour", Timeout: 100 * time.Millisecond, PoolSize: r.callers})
				for range r.callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
								p.Scan(context.Background(), []string{guest})
							}
						}
					}()
				}
				time.Sleep(50 * time.Millisecond)
			}
			var lat []time.Duration
			var sink [][]byte
			for b.Loop() {
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
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
		})
	}
}
