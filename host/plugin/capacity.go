package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrMemoryCeiling means a scan needed a new instance, and the memory of
// every plugin instance together was at the Runtime's ceiling (LimitMemory)
// until the scan could wait no longer.
var ErrMemoryCeiling = errors.New("plugin memory ceiling reached")

// Memory of instances. Each instance may grow its linear memory to its
// plugin's MemoryLimitPages; the host counts it at that size from the moment
// it is made until it is discarded or its plugin closed, so that the
// memory the guests of all plugins can hold at once never exceeds the
// Runtime's ceiling, whatever they do. (An instance whose call grew its
// memory is discarded after the call in any case, see reset.go: memory
// never shrinks.) Past the ceiling no instance is made: idle instances of
// other plugins are closed to make room first, then the scan waits for an
// instance of its own plugin to come free or for memory to be released, up
// to its QueueTimeout, and fails with ErrMemoryCeiling.

// MemoryStats is the Runtime's account of its instances' memory.
type MemoryStats struct {
	// Limit is the ceiling, in bytes; 0 means none.
	Limit uint64 `json:"limit_bytes"`
	// Reserved is what the live instances may grow to, together; Peak the
	// most it has been.
	Reserved uint64 `json:"reserved_bytes"`
	Peak     uint64 `json:"peak_bytes"`
	// Evicted counts idle instances closed to make room for another
	// plugin's; Refused the scans that failed with ErrMemoryCeiling.
	Evicted uint64 `json:"evicted"`
	Refused uint64 `json:"refused"`
}

// memoryBudget is the ceiling on the memory of a Runtime's instances.
type memoryBudget struct {
	mu      sync.Mutex
	stats   MemoryStats
	changed chan struct{} // closed and replaced when memory is released
}

// reserve takes n bytes if they fit; otherwise it returns a channel that is
// closed when memory is next released.
func (b *memoryBudget) reserve(n uint64) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stats.Limit > 0 && b.stats.Reserved+n > b.stats.Limit {
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		return false, b.changed
	}
	b.stats.Reserved += n
	b.stats.Peak = max(b.stats.Peak, b.stats.Reserved)
	return true, nil
}

func (b *memoryBudget) release(n uint64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Reserved -= n
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

func (b *memoryBudget) count(evicted, refused uint64) {
	b.mu.Lock()
	b.stats.Evicted += evicted
	b.stats.Refused += refused
	b.mu.Unlock()
}

// LimitMemory sets the ceiling on the linear memory of all the Runtime's
// instances together, in bytes; 0 removes it. Call it before loading: a
// plugin loaded since counts against it. Load fails with ErrMemoryCeiling
// when not even the plugin's first instance fits.
func (r *Runtime) LimitMemory(bytes uint64) {
	r.mem.mu.Lock()
	r.mem.stats.Limit = bytes
	r.mem.mu.Unlock()
}

// MemoryStats reports the Runtime's account of its instances' memory.
func (r *Runtime) MemoryStats() MemoryStats {
	r.mem.mu.Lock()
	defer r.mem.mu.Unlock()
	return r.mem.stats
}

// instanceBytes is what one instance of p is counted at.
func (p *Plugin) instanceBytes() uint64 {
	return uint64(p.opts.MemoryLimitPages) * 65536
}

// charge counts a new instance of p against the ceiling.
func (p *Plugin) charge() (bool, <-chan struct{}) {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	if p.memClosed {
		return false, nil
	}
	ok, changed := p.rt.mem.reserve(p.instanceBytes())
	if ok {
		p.live++
	}
	return ok, changed
}

// uncharge releases what an instance of p was counted at. After Close it
// does nothing: Close released every instance.
func (p *Plugin) uncharge() {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	if !p.memClosed && p.live > 0 {
		p.live--
		p.rt.mem.release(p.instanceBytes())
	}
}

// releaseMemory releases every instance of p, at Close.
func (p *Plugin) releaseMemory() {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	if !p.memClosed {
		p.memClosed = true
		p.rt.mem.release(uint64(p.live) * p.instanceBytes())
		p.live = 0
	}
}

// evictIdle closes one idle instance of a plugin other than p, to make
// room under the ceiling, and reports whether it found one.
func (r *Runtime) evictIdle(p *Plugin) bool {
	r.mu.Lock()
	others := make([]*Plugin, 0, len(r.plugins))
	for q := range r.plugins {
		if q != p {
			others = append(others, q)
		}
	}
	r.mu.Unlock()
	for _, q := range others {
		select {
		case inst := <-q.idle:
			q.retire(inst) // and gives q the room it held back
			r.mem.count(1, 0)
			return true
		default:
		}
	}
	return false
}

// newCharged makes a new instance with create, once it fits under the ceiling:
// while it does not, it closes idle instances of other plugins, then waits
// until memory is released, or (when idle is not nil) an instance of p's
// comes free, which it returns instead, up to p's QueueTimeout.
func (p *Plugin) newCharged(ctx context.Context, idle <-chan *instance, create func() (*instance, error)) (*instance, error) {
	var timer *time.Timer
	for {
		ok, changed := p.charge()
		if ok {
			inst, err := create()
			if err != nil {
				p.uncharge()
				return nil, err
			}
			inst.charged = true
			return inst, nil
		}
		if changed == nil {
			return nil, ErrClosed
		}
		if p.rt.evictIdle(p) {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(p.opts.QueueTimeout)
			defer timer.Stop()
		}
		select {
		case inst := <-idle:
			return inst, nil
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w while it waited for memory: %w", ErrCancelled, ctx.Err())
		case <-timer.C:
			p.rt.mem.count(0, 1)
			st := p.rt.MemoryStats()
			return nil, fmt.Errorf("%w: plugin instances hold %d of the %d MiB allowed, and none came free within %v",
				ErrMemoryCeiling, st.Reserved>>20, st.Limit>>20, p.opts.QueueTimeout)
		}
	}
}
