package plugin

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// smokeTexts is the fixed part of what a module must scan without error
// before a Slot puts it in service: two messages, one of them empty, with
// nothing to find.
var smokeTexts = []string{"Sluice smoke test: please summarise the meeting notes.", ""}

// smokeInputs returns the inputs of a smoke test: smokeTexts, then inputs
// generated afresh for each load, so that a module cannot pass by
// recognising a fixed text and fail every request after: prose of random
// words and lengths, some with an e-mail address or a number in it, spread
// over one to four messages.
func smokeInputs() [][]string {
	words := []string{"the", "meeting", "notes", "please", "summarise", "budget", "quarter", "team",
		"review", "draft", "customer", "ticket", "release", "plan", "Zürich", "café", "naïve", "日本語"}
	inputs := [][]string{smokeTexts}
	for range 4 {
		texts := make([]string, 1+mrand.IntN(4))
		for i := range texts {
			var b strings.Builder
			for n := mrand.IntN(400); n > 0; n-- {
				b.WriteString(words[mrand.IntN(len(words))])
				switch mrand.IntN(40) {
				case 0:
					fmt.Fprintf(&b, " user%d@example.com", mrand.IntN(1000))
				case 1:
					fmt.Fprintf(&b, " %d", mrand.Int64())
				}
				b.WriteString(" ")
			}
			texts[i] = b.String()
		}
		inputs = append(inputs, texts)
	}
	return inputs
}

// Slot is one configured plugin whose module can be replaced while it serves.
// The gateway keeps a Slot per configured plugin and scans through it; Reload
// swaps in a new module only after it has been verified, compiled, configured
// and made to scan, so a bad module never replaces a good one. Scans in flight
// during a swap finish on the old module, which is closed when the last of
// them returns. A Slot is safe for concurrent use.
type Slot struct {
	rt   *Runtime
	name string
	cur  atomic.Pointer[version]

	reloadMu sync.Mutex // one reload at a time

	mu            sync.Mutex // guards the fields below
	closed        bool
	opts          Options // of the module in force
	reloads       int
	failedReloads int
	lastErr       string
	lastErrAt     time.Time
	retiring      sync.WaitGroup // replaced versions whose plugin is not closed yet
}

// version is one loaded module of a Slot. refs counts the Slot's own
// reference, held while the version is current, and one per Scan in flight;
// the plugin is closed when it drops to zero, and a version at zero is never
// revived.
type version struct {
	p        *Plugin
	loadedAt time.Time
	refs     atomic.Int64
}

func (v *version) acquire() bool {
	for {
		n := v.refs.Load()
		if n == 0 {
			return false
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Status is what an operator needs to know about a Slot.
type Status struct {
	// Name is the plugin's name from Options.
	Name string `json:"name"`
	// SHA256 is the hex SHA-256 digest of the module in force.
	SHA256 string `json:"sha256"`
	// LoadedAt is when the module in force was put in service.
	LoadedAt time.Time `json:"loaded_at"`
	// Reloads counts the modules swapped in after the first one;
	// FailedReloads the attempts that left the old module in force.
	Reloads       int `json:"reloads"`
	FailedReloads int `json:"failed_reloads"`
	// LastError is why the most recent reload attempt failed, and
	// LastErrorAt when; both are empty when it succeeded or none was made.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// InstancesDiscarded counts the instances of the module in force that
	// were closed after a trap, a timeout, a memory fault or a malformed result.
	InstancesDiscarded uint64 `json:"instances_discarded"`
	// InstancesGrown counts the instances of the module in force that were
	// replaced because a call grew their memory past the configured state's.
	InstancesGrown uint64 `json:"instances_grown"`
	// LogsDropped counts the sluice.log messages of the module in force that
	// the per-call and per-second limits dropped.
	LogsDropped uint64 `json:"logs_dropped"`
	// ScansRejected counts the scans of the module in force refused because
	// every instance was busy and the queue was full or its wait too long.
	ScansRejected uint64 `json:"scans_rejected"`
	// Health is the recent record of the module in force (health.go).
	Health Health `json:"health"`
}

// NewSlot loads wasm as Load does, checks it as Reload does, and returns a Slot
// serving it.
func (r *Runtime) NewSlot(ctx context.Context, wasm []byte, opts Options) (*Slot, error) {
	v, err := r.loadChecked(ctx, wasm, opts)
	if err != nil {
		return nil, err
	}
	s := &Slot{rt: r, name: opts.Name, opts: opts}
	s.cur.Store(v)
	return s, nil
}

// loadChecked loads a module and makes it scan smokeTexts, so that a module
// that configures but cannot scan is refused before it serves.
func (r *Runtime) loadChecked(ctx context.Context, wasm []byte, opts Options) (*version, error) {
	p, err := r.Load(ctx, wasm, opts)
	if err != nil {
		return nil, err
	}
	// A first scan on a cold instance may be slower than the per-call
	// deadline allows later, so it gets the set-up allowance.
	for i, texts := range smokeInputs() {
		if _, err := p.scan(ctx, texts, max(p.opts.Timeout, minSetupTime)); err != nil {
			p.Close(context.Background())
			if i == 0 {
				return nil, fmt.Errorf("smoke test: %w", err)
			}
			return nil, fmt.Errorf("smoke test on generated input %d: %w", i, err)
		}
	}
	v := &version{p: p, loadedAt: time.Now()}
	v.refs.Store(1)
	return v, nil
}

// Name returns the plugin's name.
func (s *Slot) Name() string { return s.name }

// Scan scans texts with the module in force, as Plugin.Scan does.
func (s *Slot) Scan(ctx context.Context, texts []string) ([]Finding, error) {
	v := s.acquire()
	if v == nil {
		return nil, fmt.Errorf("plugin %s: scan: %w", s.name, ErrClosed)
	}
	defer s.release(v)
	return v.p.Scan(ctx, texts)
}

func (s *Slot) acquire() *version {
	for {
		v := s.cur.Load()
		if v == nil || v.acquire() {
			return v
		}
		// v was replaced and drained between the load and the acquire: the
		// next load sees its successor.
	}
}

// release drops one reference to v and closes its plugin after the last.
// Closing runs on its own goroutine so that the scan that happened to be
// last does not wait for it.
func (s *Slot) release(v *version) {
	if v.refs.Add(-1) == 0 {
		go func() {
			defer s.retiring.Done()
			v.p.Close(context.Background())
		}()
	}
}

// Reload verifies wasm against opts.SHA256, compiles it (through the
// Runtime's compilation cache), instantiates and configures it, makes it scan
// smokeInputs, and then puts it in service in place of the current
// module. opts replaces the Slot's options; an empty opts.Name keeps the
// Slot's. On any error the current module stays in force, the error is
// recorded in Status and returned.
func (s *Slot) Reload(ctx context.Context, wasm []byte, opts Options) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if opts.Name == "" {
		opts.Name = s.name
	}
	if opts.Name != s.name {
		return s.failed(fmt.Errorf("plugin %s: reload: options name %q, want the slot's name", s.name, opts.Name))
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("plugin %s: reload: %w", s.name, ErrClosed)
	}
	v, err := s.rt.loadChecked(ctx, wasm, opts)
	if err != nil {
		return s.failed(fmt.Errorf("reload refused, the module in force stays: %w", err))
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		v.p.Close(context.Background())
		return fmt.Errorf("plugin %s: reload: %w", s.name, ErrClosed)
	}
	s.retiring.Add(1) // before the swap: Close waits for it
	old := s.cur.Swap(v)
	s.opts = opts
	s.reloads++
	s.lastErr, s.lastErrAt = "", time.Time{}
	s.mu.Unlock()
	s.release(old)
	return nil
}

// failed records err as the outcome of a reload attempt and returns it.
func (s *Slot) failed(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failedReloads++
	s.lastErr, s.lastErrAt = err.Error(), time.Now()
	return err
}

// options returns the options of the module in force.
func (s *Slot) options() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// Status reports the module in force and the outcome of reloads.
func (s *Slot) Status() Status {
	s.mu.Lock()
	st := Status{
		Name:          s.name,
		Reloads:       s.reloads,
		FailedReloads: s.failedReloads,
		LastError:     s.lastErr,
		LastErrorAt:   s.lastErrAt,
	}
	s.mu.Unlock()
	if v := s.cur.Load(); v != nil {
		st.SHA256, st.LoadedAt = v.p.SHA256(), v.loadedAt
		st.InstancesDiscarded = v.p.discarded.Load()
		st.InstancesGrown = v.p.grown.Load()
		st.LogsDropped = v.p.logsDropped.Load()
		st.ScansRejected = v.p.rejected.Load()
		st.Health = v.p.Health()
	}
	return st
}

// Close stops new scans, waits until the scans in flight have returned (or ctx
// is done), and closes every module of the Slot. Scans after Close fail with
// ErrClosed.
func (s *Slot) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.retiring.Add(1)
	v := s.cur.Swap(nil)
	s.mu.Unlock()
	s.release(v)

	done := make(chan struct{})
	go func() {
		s.retiring.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("plugin %s: close: scans still in flight: %w", s.name, ctx.Err())
	}
}
