package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// ceilingRuntime is a Runtime of its own whose instances may hold limit
// bytes together.
func ceilingRuntime(t *testing.T, limit uint64) *Runtime {
	t.Helper()
	r, err := NewRuntime(context.Background(), filepath.Join(os.TempDir(), "sluice-plugin-test-cache"))
	if err != nil {
		t.Fatal(err)
	}
	r.LimitMemory(limit)
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// A module that grows its memory to the limit and traps, on every call and
// from every caller at once, never holds more than the ceiling: the host
// counts each instance at its limit, and makes no new one past it.
func TestMemoryCeilingHoldsAgainstGrowThenTrap(t *testing.T) {
	const instance = 16 << 20
	r := ceilingRuntime(t, 2*instance)
	p, err := r.Load(context.Background(), moduleBytes(t, wasmbuild.HostileRaw), Options{Name: "grow",
		MemoryLimitPages: instance / 65536, PoolSize: 4, MaxQueue: 64, QueueTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, call, err := p.scanCall(context.Background(), []string{"!grow"}, time.Second)
				if err == nil || call.Fault != FaultTrap {
					t.Errorf("!grow: %+v, %v; want a trap", call, err)
				}
			}
		}()
	}
	wg.Wait()
	st := r.MemoryStats()
	if st.Peak > st.Limit || st.Reserved > st.Limit {
		t.Errorf("memory %+v: the instances held more than the ceiling", st)
	}
	if st.Peak != st.Limit {
		t.Errorf("memory %+v: four callers at once never reached the ceiling", st)
	}
	if st.Refused != 0 {
		t.Errorf("memory %+v: a scan was refused although instances kept coming free", st)
	}
	// The plugin still serves, and its memory is released when it closes.
	if _, err := p.Scan(context.Background(), []string{"hello"}); err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
	if st := r.MemoryStats(); st.Reserved != 0 {
		t.Errorf("after Close, %d bytes are still counted", st.Reserved)
	}
}

// At the ceiling, a scan that needs a new instance first closes an idle
// instance of another plugin; with none left, it waits QueueTimeout and
// fails closed with ErrMemoryCeiling, saying so.
func TestMemoryCeilingEvictsIdleThenFailsClosed(t *testing.T) {
	const instance = 32 << 20
	r := ceilingRuntime(t, 2*instance)
	other, err := r.Load(context.Background(), moduleBytes(t, "minimal"), Options{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Load(context.Background(), moduleBytes(t, wasmbuild.HostileGo), Options{Name: "slow",
		PoolSize: 3, QueueTimeout: 100 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st := r.MemoryStats(); st.Reserved != 2*instance {
		t.Fatalf("after two loads: %+v", st)
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := p.Scan(context.Background(), []string{"sleep"}) // 200 ms
			errs <- err
		}()
	}
	var refused []error
	for range 3 {
		if err := <-errs; err != nil {
			refused = append(refused, err)
		}
	}
	if len(refused) != 1 || !errors.Is(refused[0], ErrMemoryCeiling) || !strings.Contains(refused[0].Error(), "64 of the 64 MiB allowed") {
		t.Fatalf("errors %v: want one scan refused with ErrMemoryCeiling", refused)
	}
	st := r.MemoryStats()
	if st.Evicted != 1 || st.Refused != 1 || st.Peak != st.Limit {
		t.Errorf("memory %+v: want the other plugin's idle instance evicted and one scan refused", st)
	}
	// The other plugin makes itself a new instance once memory is free.
	p.Close(context.Background())
	if _, err := other.Scan(context.Background(), []string{"hello"}); err != nil {
		t.Fatalf("the other plugin after its instance was evicted: %v", err)
	}
}

// A plugin whose first instance does not fit is not loaded.
func TestMemoryCeilingRefusesALoadThatCannotFit(t *testing.T) {
	r := ceilingRuntime(t, 8<<20)
	_, err := r.Load(context.Background(), moduleBytes(t, "minimal"), Options{Name: "big", QueueTimeout: 10 * time.Millisecond})
	if !errors.Is(err, ErrMemoryCeiling) {
		t.Fatalf("Load: %v, want ErrMemoryCeiling", err)
	}
	if st := r.MemoryStats(); st.Reserved != 0 {
		t.Errorf("a refused load left %d bytes counted", st.Reserved)
	}
}
