package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Fault is how a scan failed through the plugin's own doing. Scans that
// failed for a reason that is not the plugin's (the caller went away, every
// instance was busy, the memory ceiling was reached, the plugin was closed)
// have no fault: they neither count against its health nor as its failures.
type Fault uint8

// The faults a scan can end with.
const (
	FaultNone    Fault = iota
	FaultTimeout       // it ran past its deadline and was stopped
	FaultTrap          // it trapped, exited or ran out of memory
	FaultOutput        // its result broke the contract (not JSON, bad offsets, undeclared types, too large…)
	FaultError         // it answered the call with a non-zero status
	numFaults
)

var faultNames = [numFaults]string{"", "timeout", "trap", "invalid_output", "error"}

// String is the fault's name in metrics and status: timeout, trap,
// invalid_output or error.
func (f Fault) String() string {
	if f < numFaults {
		return faultNames[f]
	}
	return "unknown"
}

// Call is what one scan used and how it ended, for the caller's accounting.
type Call struct {
	// Guest is the time an instance spent on the scan: writing the input
	// into it, the guest's run, and reading its result back. Zero when no
	// instance ran (the scan was refused or cancelled while waiting).
	Guest time.Duration
	// Fault is the plugin's own failure, FaultNone when it scanned or when
	// the scan failed for a reason that is not its own.
	Fault Fault
	// Cancelled reports that the caller's context ended before the scan
	// did: the caller disconnected or its deadline passed. The scan failed,
	// and it is not the plugin's fault.
	Cancelled bool
}

// ErrCancelled is what a scan whose caller's context ended before it
// finished fails with, wrapping the context's error.
var ErrCancelled = errors.New("scan cancelled: the caller's request ended first")

// HealthOptions say when a plugin's recent calls make it unhealthy.
type HealthOptions struct {
	// Window is how far back the calls counted reach. Default
	// DefaultHealthWindow.
	Window time.Duration
	// MinCalls is how many calls the window must hold before the plugin can
	// be judged unhealthy, so that one early failure is not a verdict.
	// Default DefaultHealthMinCalls.
	MinCalls int
	// MaxFailureRatio is the share of the window's calls that may fail
	// through the plugin's fault (Fault): above it the plugin is unhealthy;
	// it is healthy again when the share falls back to it, as calls succeed
	// or old failures leave the window. Default DefaultHealthMaxFailureRatio.
	MaxFailureRatio float64
}

// Defaults of HealthOptions.
const (
	DefaultHealthWindow          = time.Minute
	DefaultHealthMinCalls        = 10
	DefaultHealthMaxFailureRatio = 0.5
)

func (o HealthOptions) withDefaults() HealthOptions {
	if o.Window <= 0 {
		o.Window = DefaultHealthWindow
	}
	if o.MinCalls <= 0 {
		o.MinCalls = DefaultHealthMinCalls
	}
	if o.MaxFailureRatio <= 0 || o.MaxFailureRatio > 1 {
		o.MaxFailureRatio = DefaultHealthMaxFailureRatio
	}
	return o
}

// Health is a plugin's recent record, as /readyz and /admin/plugins show it.
type Health struct {
	// Healthy is false while the share of failed calls in the window is
	// above the threshold.
	Healthy bool `json:"healthy"`
	// Reason says why the plugin is unhealthy; empty while it is healthy.
	Reason string `json:"reason,omitempty"`
	// Since is when the plugin last changed between healthy and unhealthy;
	// zero if it never did.
	Since time.Time `json:"since,omitzero"`
	// Calls and Failures are the calls in the window and those that failed
	// through the plugin's fault; Faults breaks the failures down by fault.
	Calls    int            `json:"calls"`
	Failures int            `json:"failures"`
	Faults   map[string]int `json:"faults,omitempty"`
	// Window is the span the counts cover, in Go's duration syntax.
	Window string `json:"window"`
	// TimesUnhealthy counts the changes from healthy to unhealthy.
	TimesUnhealthy uint64 `json:"times_unhealthy"`
	// ScansCancelled counts the scans whose caller went away or whose
	// deadline passed before they finished (not the plugin's fault).
	ScansCancelled uint64 `json:"scans_cancelled"`
}

// healthBuckets is the number of slices a window is cut into: a failure
// leaves the window at most a twentieth of it late.
const healthBuckets = 20

// healthWindow counts a plugin's calls and faults over a sliding window of
// healthBuckets buckets.
type healthWindow struct {
	opts  HealthOptions
	width time.Duration // of a bucket

	mu        sync.Mutex
	buckets   [healthBuckets]healthBucket
	unhealthy bool
	since     time.Time
	times     uint64
	cancelled uint64
}

type healthBucket struct {
	slot   int64 // the bucket's index since the epoch, in widths
	calls  uint32
	faults [numFaults]uint32
}

func newHealthWindow(o HealthOptions) *healthWindow {
	o = o.withDefaults()
	return &healthWindow{opts: o, width: max(o.Window/healthBuckets, time.Millisecond)}
}

// record counts one finished call. Calls that failed for a reason not the
// plugin's (busy, closed, over the memory ceiling) are not recorded at all;
// cancelled ones only as cancelled.
func (w *healthWindow) record(now time.Time, c Call) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Cancelled {
		w.cancelled++
		return
	}
	slot := now.UnixNano() / int64(w.width)
	b := &w.buckets[slot%healthBuckets]
	if b.slot != slot {
		*b = healthBucket{slot: slot}
	}
	b.calls++
	if c.Fault != FaultNone {
		b.faults[c.Fault]++
	}
	if c.Fault != FaultNone || w.unhealthy {
		// Only a failure can make the plugin unhealthy, and only while it
		// is can a success make it healthy: the sum is skipped otherwise.
		w.judge(now)
	}
}

// sum adds up the buckets still in the window; w.mu is held.
func (w *healthWindow) sum(now time.Time) (calls, failures int, faults [numFaults]int) {
	slot := now.UnixNano() / int64(w.width)
	for i := range w.buckets {
		b := &w.buckets[i]
		if b.calls == 0 || slot-b.slot >= healthBuckets {
			continue
		}
		calls += int(b.calls)
		for f := FaultNone + 1; f < numFaults; f++ {
			faults[f] += int(b.faults[f])
			failures += int(b.faults[f])
		}
	}
	return calls, failures, faults
}

// judge updates the verdict; w.mu is held.
func (w *healthWindow) judge(now time.Time) {
	calls, failures, _ := w.sum(now)
	bad := calls >= w.opts.MinCalls && float64(failures) > w.opts.MaxFailureRatio*float64(calls)
	if bad != w.unhealthy {
		w.unhealthy, w.since = bad, now
		if bad {
			w.times++
		}
	}
}

func (w *healthWindow) health(now time.Time) Health {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.judge(now) // old failures may have left the window since the last call
	calls, failures, faults := w.sum(now)
	h := Health{Healthy: !w.unhealthy, Since: w.since, Calls: calls, Failures: failures,
		Window: w.opts.Window.String(), TimesUnhealthy: w.times, ScansCancelled: w.cancelled}
	var kinds []string
	for f := FaultNone + 1; f < numFaults; f++ {
		if faults[f] > 0 {
			if h.Faults == nil {
				h.Faults = map[string]int{}
			}
			h.Faults[f.String()] = faults[f]
			kinds = append(kinds, fmt.Sprintf("%d %s", faults[f], f))
		}
	}
	if w.unhealthy {
		h.Reason = fmt.Sprintf("%d of its last %d calls (in %v) failed: %s; the threshold is more than %g%% of at least %d calls",
			failures, calls, w.opts.Window, strings.Join(kinds, ", "), w.opts.MaxFailureRatio*100, w.opts.MinCalls)
	}
	return h
}

// Health reports the plugin's recent record.
func (p *Plugin) Health() Health {
	return p.health.health(time.Now())
}

// Health reports the record of the module in force. A module swapped in by
// Reload starts with a clean record.
func (s *Slot) Health() Health {
	if v := s.cur.Load(); v != nil {
		return v.p.Health()
	}
	return Health{Reason: "closed"}
}

// ScanCall scans texts with the module in force, as Scan does, and also says
// what the scan used and how it ended.
func (s *Slot) ScanCall(ctx context.Context, texts []string) ([]Finding, Call, error) {
	v := s.acquire()
	if v == nil {
		return nil, Call{}, fmt.Errorf("plugin %s: scan: %w", s.name, ErrClosed)
	}
	defer s.release(v)
	return v.p.scanCall(ctx, texts, v.p.opts.Timeout)
}
