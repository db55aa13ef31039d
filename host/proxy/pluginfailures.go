package proxy

import (
	"sync"
	"time"
)

// PluginFailureWindow is how far back input.client.plugin_failures counts.
const PluginFailureWindow = 5 * time.Minute

// maxFailingClients bounds the clients whose plugin failures are kept:
// clients are the operator's, so a gateway rarely has more, and past it the
// clients with no failure left in the window make room.
const maxFailingClients = 10000

// failureSlices is the number of slices the window is cut into: a failure
// leaves the count at most a sixth of the window late.
const failureSlices = 6

// clientFailures counts, per client, the scans of its requests that failed
// through a plugin's fault in the last PluginFailureWindow: a client whose
// prompts keep crashing or stalling plugins is probing them, and the policy
// sees the count as input.client.plugin_failures.
type clientFailures struct {
	mu      sync.Mutex
	clients map[string]*[failureSlices]failureSlice
}

type failureSlice struct {
	slot int64 // the slice's index since the epoch
	n    int
}

func failureSlot(now time.Time) int64 {
	return now.UnixNano() / int64(PluginFailureWindow/failureSlices)
}

// add counts one failure of client's at now.
func (f *clientFailures) add(client string, now time.Time) {
	if client == "" {
		return
	}
	slot := failureSlot(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.clients[client]
	if !ok {
		if f.clients == nil {
			f.clients = map[string]*[failureSlices]failureSlice{}
		}
		if len(f.clients) >= maxFailingClients {
			f.sweep(slot)
			if len(f.clients) >= maxFailingClients {
				return
			}
		}
		s = &[failureSlices]failureSlice{}
		f.clients[client] = s
	}
	b := &s[slot%failureSlices]
	if b.slot != slot {
		*b = failureSlice{slot: slot}
	}
	b.n++
}

// count is client's failures in the window that ends at now.
func (f *clientFailures) count(client string, now time.Time) int {
	slot := failureSlot(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.clients[client]
	if !ok {
		return 0
	}
	n := 0
	for _, b := range s {
		if slot-b.slot < failureSlices {
			n += b.n
		}
	}
	return n
}

// sweep forgets the clients with no failure in the window; f.mu is held.
func (f *clientFailures) sweep(slot int64) {
	for c, s := range f.clients {
		recent := false
		for _, b := range s {
			recent = recent || b.n > 0 && slot-b.slot < failureSlices
		}
		if !recent {
			delete(f.clients, c)
		}
	}
}
