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
// snapshot before each call:
//
//   - the mutable globals, which the rewriter exports (instrument), are set
//     back to their saved values;
//   - linear memory is put back by the kernel where it can be (Linux: see
//     memory_linux.go): the snapshot is written once to an anonymous file,
//     each instance maps it copy-on-write, and a reset drops the pages the
//     call wrote with one madvise, so that it costs what the call touched,
//     not what the module holds; elsewhere the snapshot is copied back whole;
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
	inst.dirty = false
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
