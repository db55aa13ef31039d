package plugin

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// A plugin whose calls keep failing is reported unhealthy, with the faults
// named, and healthy again once its calls succeed; calls whose caller went
// away do not count against it.
func TestHealthFollowsRecentFaults(t *testing.T) {
	p := load(t, wasmbuild.HostileGo, Options{Timeout: 300 * time.Millisecond,
		Health: HealthOptions{Window: time.Minute, MinCalls: 4, MaxFailureRatio: 0.5}})
	ctx := context.Background()
	scan := func(text string) Call {
		t.Helper()
		_, call, _ := p.scanCall(ctx, []string{text}, p.opts.Timeout)
		return call
	}
	if call := scan("hello"); call.Fault != FaultNone || call.Guest <= 0 {
		t.Fatalf("a good scan: %+v", call)
	}
	for _, attack := range []string{"panic", "loop", "bad-type", "error"} {
		want := map[string]Fault{"panic": FaultTrap, "loop": FaultTimeout, "bad-type": FaultOutput, "error": FaultError}[attack]
		if call := scan(attack); call.Fault != want {
			t.Errorf("%s: fault %v, want %v", attack, call.Fault, want)
		}
	}
	h := p.Health()
	if h.Healthy || h.Calls != 5 || h.Failures != 4 || h.TimesUnhealthy != 1 {
		t.Fatalf("after 4 failures in 5 calls: %+v", h)
	}
	for _, want := range []string{"4 of its last 5 calls", "1 trap", "1 timeout", "1 invalid_output", "1 error"} {
		if !strings.Contains(h.Reason, want) {
			t.Errorf("reason %q does not say %q", h.Reason, want)
		}
	}

	// Cancelled scans are the caller's doing.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, call, err := p.scanCall(cancelled, []string{"sleep"}, p.opts.Timeout); !errors.Is(err, ErrCancelled) || !call.Cancelled || call.Fault != FaultNone {
		t.Errorf("a cancelled scan: %+v, %v", call, err)
	}
	if h := p.Health(); h.Failures != 4 || h.ScansCancelled != 1 {
		t.Errorf("a cancelled scan counted as a failure: %+v", h)
	}

	for range 4 {
		scan("fine")
	}
	if h := p.Health(); !h.Healthy || h.Reason != "" || h.Calls != 9 {
		t.Fatalf("after 4 more good calls (4 failures in 9): %+v", h)
	}
}

// Scans waiting for a busy plugin end as soon as their callers' contexts
// do, and none of them is run after.
func TestWaitingScansEndWithTheirCaller(t *testing.T) {
	p := load(t, wasmbuild.HostileGo, Options{PoolSize: 1, MaxQueue: 64, QueueTimeout: 10 * time.Second, Timeout: time.Second})
	busy := make(chan error)
	go func() {
		_, err := p.Scan(context.Background(), []string{"sleep"}) // 200 ms on the one instance
		busy <- err
	}()
	for len(p.slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Scan(ctx, []string{"sleep"})
			errs <- err
		}()
	}
	for p.waiting.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Errorf("a waiting scan whose caller left: %v, want ErrCancelled", err)
		}
	}
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	if h := p.Health(); h.ScansCancelled != 20 || h.Calls != 1 {
		t.Errorf("health %+v: want 20 scans cancelled and the one call that ran", h)
	}
}
