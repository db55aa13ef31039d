package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// settle waits until the recycler has reset every instance that calls gave
// back, so that a test can look at the pool.
func settle(t testing.TB, p *Plugin) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.pending.Load() != 0; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d instance(s) still wait for their reset after 5s", p.pending.Load())
		}
	}
}

// TestNoStateCrossesConcurrentCalls is the attacker's view of the reset done
// off the caller's path: many clients call one plugin at once, more than it
// has instances, each keeping its own secret in the module, and every call
// must still find the module as configured: the call counter reads one, and
// no stash of another client (or its own earlier call) comes back. A call
// that was handed an instance before its reset would see CALL_2, or fail on
// the undeclared PREV_ type the stash is reported as.
func TestNoStateCrossesConcurrentCalls(t *testing.T) {
	for _, mode := range []struct {
		name    string
		memfd   bool
		callers int
	}{{"mapped", true, 8}, {"copied", false, 8}} {
		t.Run(mode.name, func(t *testing.T) {
			if !mode.memfd {
				setNoMemfd(t)
			}
			p := load(t, wasmbuild.HostileGo, Options{Name: "hostile-" + mode.name, PoolSize: 2, MaxQueue: 64, Timeout: 5 * time.Second})
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, mode.callers)
			for c := range mode.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					secret := fmt.Sprintf("stash:CLIENT_%d_CONFIDENTIAL", c)
					for i := range 150 {
						findings, err := p.Scan(ctx, []string{secret})
						if err != nil {
							errs <- fmt.Errorf("client %d, call %d: stash: %v", c, i, err)
							return
						}
						for _, f := range findings {
							if strings.HasPrefix(f.Type, "PREV_") {
								errs <- fmt.Errorf("client %d, call %d: stash found %v", c, i, f.Type)
								return
							}
						}
						findings, err = p.Scan(ctx, []string{"count"})
						if err != nil || len(findings) != 1 || findings[0].Type != "CALL_1" {
							errs <- fmt.Errorf("client %d, call %d: count = %v, %v; want CALL_1", c, i, findings, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			settle(t, p)
			if n := len(p.idle); n > 2+spareInstances {
				t.Errorf("%d clean instances, want at most PoolSize+%d", n, spareInstances)
			}
		})
	}
}

// TestCloseWaitsForResets closes plugins while calls run and the recycler
// resets their instances: Close must return, no call may crash the process
// on memory Close unmapped, and every call either succeeds or fails with
// ErrClosed.
func TestCloseWaitsForResets(t *testing.T) {
	for round := range 20 {
		p, err := testRuntime.Load(context.Background(), moduleBytes(t, "empty"),
			Options{Name: fmt.Sprintf("empty-close-%d", round), PoolSize: 2, MaxQueue: 64})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var bad sync.Map
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := p.Scan(context.Background(), []string{"hello " + strings.Repeat("x", round)})
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						bad.Store(err.Error(), true)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- p.Close(context.Background()) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		wg.Wait()
		bad.Range(func(k, _ any) bool { t.Errorf("a call during Close failed with %v, want ErrClosed", k); return true })
		if _, err := p.Scan(context.Background(), []string{"after"}); !errors.Is(err, ErrClosed) {
			t.Errorf("Scan after Close: %v, want ErrClosed", err)
		}
	}
}
