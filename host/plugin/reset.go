package plugin

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tetratelabs/wazero/api"
)

// A call must see only its own input and the configuration (sdk/ABI.md,
// section 3): nothing a module kept from one call, whichever client made it,
// may reach the next. So the host takes a snapshot of the first instance
// right after it is configured, and puts every instance back to that
// snapshot after each call, before any call can have it again:
//
//   - the mutable globals, which the rewriter exports (instrument), are set
//     back to their saved values;
//   - linear memory is put back by the kernel where it can be (Linux: see
//     memory_linux.go): the snapshot is written once to an anonymous file,
//     each instance maps it copy-on-write, and a reset copies the snapshot
//     over the pages the instance made private, so that it costs what the
//     calls touched, not what the module holds; elsewhere the snapshot is
//     copied back whole;
//   - an instance whose memory grew past the snapshot cannot shrink, so it
//     is closed and replaced by a fresh instance of the snapshot;
//   - tables, element and data segments cannot change: the rewriter refuses
//     the instructions that change them.
//
// Fresh instances are made from the snapshot, not by running the start
// function, _initialize and configure again: no guest code runs outside a
// call, and a new instance costs an instantiation and a mapping.
//
// The host's input buffer is allocated before the snapshot, so it is part of
// it: bytes past the current input are the snapshot's, never an earlier
// request's. An input larger than it is written into a buffer allocated for
// that call only, which the reset then forgets.
//
// # Off the caller's path
//
// A reset costs a Go plugin about 7 µs, almost all of it the kernel walking
// the page table of the snapshot's range to find the private pages (see
// RATIONALE.md, "Reset"), while the call itself costs well under a
// microsecond. So the caller does not wait for it: a call takes a clean
// instance, and once the result is copied out it hands the instance to the
// plugin's recycler goroutine and returns; the recycler resets it and only
// then puts it back among the clean ones. No call can be given an instance
// between the two: an instance is in exactly one place at a time (a call, the
// queue of dirty instances, the recycler, or the clean pool), and only the
// clean pool serves calls. When no clean instance is free, a call makes a
// fresh one if the plugin has room for one, or else takes a dirty one from
// the queue and resets it itself, as every call did before.
//
// A plugin may hold one instance more than PoolSize for this: the one being
// reset while PoolSize calls run. Close stops the recycler and waits for it,
// and for every call in flight, before it closes the instances and unmaps the
// snapshot they are mapped from.

// spareInstances is how many instances a plugin may hold beyond PoolSize: the
// ones being reset while PoolSize calls run.
const spareInstances = 1

// resetsInlineAfterSteal is how many calls reset their own instance after a
// call had to reset a dirty one itself. Calls that come faster than the
// recycler resets (back to back, or more than the processors can serve) gain
// nothing from handing it their instance: they end up resetting one each
// anyway, and each hand-over costs a wake-up of the recycler and the
// instance's pages moving between processors' caches (about 1 to 2.5 µs of
// processor time per call, BenchmarkReset). So such calls reset inline, as
// before the recycler, and every so many the hand-over is tried again.
const resetsInlineAfterSteal = 64

// inputBufferSize is the input buffer every instance holds in its snapshot.
const inputBufferSize = 256 << 10

// snapshot is the state of a configured instance.
type snapshot struct {
	pages   uint32   // memory size
	globals []uint64 // the module's mutable globals, in the order of Plugin.globals
	image   *memoryImage
	inPtr   uint32 // the input buffer, inputBufferSize bytes
}

// takeSnapshot saves inst's state; it is called once per Plugin, on the
// instance that ran configure.
func (p *Plugin) takeSnapshot(inst *instance) (*snapshot, error) {
	s := &snapshot{pages: inst.mem.Size() / 65536, inPtr: inst.inPtr, globals: make([]uint64, len(inst.globals))}
	for i, g := range inst.globals {
		s.globals[i] = g.Get()
	}
	img, err := takeImage(inst.mem, inst.lm)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s.image = img
	return s, nil
}

// exportedGlobals returns the module instance's mutable globals.
func (p *Plugin) exportedGlobals(mod api.Module) ([]api.MutableGlobal, error) {
	gs := make([]api.MutableGlobal, len(p.globals))
	for i, index := range p.globals {
		g, ok := mod.ExportedGlobal(globalExport + strconv.FormatUint(uint64(index), 10)).(api.MutableGlobal)
		if !ok {
			return nil, fmt.Errorf("instantiate: global %d is not exported", index)
		}
		gs[i] = g
	}
	return gs, nil
}

// reset puts inst back to s. It reports false when it cannot, because the
// memory grew: the instance must then be replaced.
func (inst *instance) reset(s *snapshot) bool {
	if inst.mem.Size() != s.pages*65536 {
		return false
	}
	if !inst.lm.reset(s.image, inst.mem) {
		return false
	}
	for i, g := range inst.globals {
		g.Set(s.globals[i])
	}
	inst.inPtr, inst.inCap = s.inPtr, inputBufferSize
	return true
}

// fromSnapshot makes a fresh instance in the state of s, without running any
// guest code.
func (p *Plugin) fromSnapshot(ctx context.Context, s *snapshot) (*instance, error) {
	inst, err := p.instantiate(ctx, s.image)
	if err != nil {
		return nil, err
	}
	if size := inst.mem.Size(); size < s.pages*65536 {
		if _, ok := inst.mem.Grow(s.pages - size/65536); !ok {
			p.discard(inst)
			return nil, fmt.Errorf("instantiate: cannot grow memory to the snapshot's %d pages", s.pages)
		}
	}
	inst.lm.forget(s.image)
	if !inst.reset(s) {
		p.discard(inst)
		return nil, fmt.Errorf("instantiate: the snapshot does not fit its memory")
	}
	return inst, nil
}

// take returns a clean instance for a call, the caller holding a slot and
// p.using: one from the clean pool; else a fresh one, if the plugin has room;
// else a dirty one that the recycler has not reached yet, reset here.
func (p *Plugin) take(ctx context.Context) (*instance, error) {
	for {
		var inst *instance
		select {
		case inst = <-p.idle:
			return inst, nil
		default:
		}
		select {
		case inst = <-p.idle:
			return inst, nil
		case <-p.room:
			return p.fresh(ctx)
		default:
		}
		select {
		case inst = <-p.idle:
			return inst, nil
		case <-p.room:
			return p.fresh(ctx)
		case inst = <-p.dirty:
		default:
			// Every instance is in a call or in the recycler's hands, which
			// the room for spares makes impossible while the caller holds a
			// slot; wait all the same rather than exceed the bound.
			select {
			case inst = <-p.idle:
				return inst, nil
			case <-p.room:
				return p.fresh(ctx)
			case inst = <-p.dirty:
			case <-p.stop:
				return nil, ErrClosed
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for a free instance: %w", ctx.Err())
			}
		}
		p.inlineResets.Store(resetsInlineAfterSteal)
		ok := inst.reset(p.snap)
		p.pending.Add(-1)
		if ok {
			return inst, nil
		}
		p.retire(inst)
	}
}

// fresh makes an instance from the snapshot in the room the caller took,
// once the instance fits under the plugins' memory ceiling; while it does
// not, an instance the recycler cleans in the meantime serves instead, and
// the room goes back.
func (p *Plugin) fresh(ctx context.Context) (*instance, error) {
	made := false
	inst, err := p.newCharged(ctx, p.idle, func() (*instance, error) {
		made = true
		return p.fromSnapshot(ctx, p.snap)
	})
	if err != nil || !made {
		p.room <- struct{}{}
	}
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// give takes back the instance of a call that has returned: an instance that
// failed or grew is closed at once, and any other goes to the recycler, which
// resets it before a call can take it again.
func (p *Plugin) give(inst *instance) {
	switch {
	case inst.broken, !p.opts.noReset && inst.mem.Size() != p.snap.pages*65536:
		p.retire(inst)
	case p.opts.noReset:
		p.idle <- inst
	case p.opts.resetInline || p.inlineResets.Load() > 0 && p.inlineResets.Add(-1) >= 0:
		if inst.reset(p.snap) {
			p.idle <- inst
		} else {
			p.retire(inst)
		}
	default:
		p.pending.Add(1)
		p.dirty <- inst // never blocks: it holds every instance the plugin may have
	}
}

// retire closes inst and makes room for another.
func (p *Plugin) retire(inst *instance) {
	p.discard(inst)
	p.room <- struct{}{}
}

// recycler resets the instances calls have returned, one at a time, until
// Close.
func (p *Plugin) recycler() {
	defer p.recycling.Done()
	for {
		select {
		case inst := <-p.dirty:
			if inst.reset(p.snap) {
				p.idle <- inst
			} else {
				p.retire(inst)
			}
			p.pending.Add(-1)
		case <-p.stop:
			return
		}
	}
}
