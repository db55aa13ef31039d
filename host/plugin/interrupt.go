package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A guest that spins must be stoppable. wazero's WithCloseOnContextDone does
// that by leaving machine code for Go at the head of every loop, and Go
// compiles every jump of a function to WebAssembly as a trip round one
// dispatch loop, so that exit runs at nearly every branch and made the PII
// plugin four times slower. Instead, the host rewrites the module before
// compiling it (after wazero has validated the untouched bytes: see
// validate in plugin.go). It adds three mutable i32 globals, a budget, an
// interrupt flag and a scratch register, and charges the budget
//
//	budget = budget - cost
//	if budget < 1 {
//	    budget = interruptEvery
//	    yield()                  // a host function: returns to Go, see below
//	    if interrupt { unreachable }
//	}
//
// at every place where the time a guest can spend is not bounded by the
// length of its code:
//
//   - the start of every loop body, cost 1;
//   - the entry of every function that contains a call, cost 1: without a
//     loop, a guest spends unbounded time only by calling, and a function
//     that calls itself twice per level takes 2^depth calls (a function
//     without a call instruction cannot be part of a cycle of calls);
//   - after every bulk memory instruction (memory.fill, memory.copy,
//     memory.init), cost length/256: one 16 MiB fill costs what 65,536 loop
//     iterations do, so 2,000 of them cannot run far past a deadline;
//   - every checkEvery instructions of straight-line code, cost 1, so a loop
//     body of a million instructions is checked inside as well.
//
// A check costs a load, a store and a branch. The host sets the flag from a
// timer or a context callback, that is by the clock, and the guest traps at
// the next check that runs out of budget: within interruptEvery units of
// work, which is a few microseconds of ordinary code and a millisecond at the
// very worst (interruptEvery straight-line runs of checkEvery instructions).
//
// The guest must also leave machine code now and then: the Go scheduler cannot
// preempt it there, so a garbage collection that stops the world would wait
// for a spinning guest, and the timer that should stop the guest would wait
// for the collection. The slow path calls the host's yield function, which is
// Go code, a point where the goroutine can be preempted; and every yieldEvery
// of guest time it hands its processor to other goroutines, so that requests
// that use no plugin keep their latency while guests spin. The import is
// added after the module's own, which renumbers the module's functions (see
// renumber.go).
//
// The rewriter also prepares the module for the state reset between calls
// (see snapshot in reset.go): it exports every mutable global under
// "sluice:global:<index>", moves the start function, if any, to the export
// "sluice:start" so that the host runs it under a deadline rather than inside
// InstantiateModule where nothing can stop it, and refuses instructions that
// change state the host cannot read back: table.set, table.grow, table.fill,
// table.copy, table.init, elem.drop and data.drop (no compiler that targets
// plugins emits them for ordinary code).
//
// The rewriter knows the instructions of the features wazero enables by
// default (WebAssembly 2.0: bulk memory, multi-value, non-trapping conversions,
// reference types, sign extension and SIMD). A valid module it cannot read is
// refused: without the rewrite neither the deadline checks nor the reset hold.

// interruptEvery is the budget, in units of work, between two trips to Go: a
// few microseconds of guest work, against a trip that costs a fraction of one.
const interruptEvery = 4096

// checkEvery is the longest run of instructions the rewriter leaves without a
// check.
const checkEvery = 256

// bulkShift converts the length of a bulk memory instruction into budget
// units: one unit per 256 bytes, about what a loop iteration costs.
const bulkShift = 8

// Names the rewriter exports. None is a valid identifier in the languages
// plugins are written in, and a module that exports a name with the prefix
// is refused, so they cannot collide with a plugin's own exports.
const (
	reservedPrefix  = "sluice:"
	interruptExport = "sluice:interrupt"
	startExport     = "sluice:start"
	globalExport    = "sluice:global:"
)

// The host function the checks call, imported from a module whose name no
// plugin can register: the host instantiates it in every plugin's runtime.
const (
	yieldModule = "sluice:interrupt"
	yieldName   = "yield"
)

// yieldEvery is how long a guest runs before its check gives its processor
// to other goroutines. The Go scheduler cannot preempt machine code, and its
// own time slice (10 ms) is long: while a collection's mark worker holds one
// processor and a spinning guest another, a two-processor gateway had no
// processor left for other requests for milliseconds at a time.
const yieldEvery = 100 * time.Microsecond

// ErrUnsupportedModule reports a valid module that the host cannot run under
// its guarantees: one that uses instructions whose effect cannot be undone
// between calls, a mutable global the host cannot save, a name the host
// reserves, or code the rewriter cannot read. It is refused at load.
var ErrUnsupportedModule = errors.New("module not supported by the sandbox")

// errUninstrumentable reports code the rewriter cannot read.
var errUninstrumentable = fmt.Errorf("%w: the deadline rewriter cannot read it", ErrUnsupportedModule)

// errStateful reports instructions whose effect the host cannot undo.
var errStateful = fmt.Errorf("%w: it changes state the host cannot reset between calls", ErrUnsupportedModule)

// Section ids and opcodes of the WebAssembly binary format.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElem     = 9
	secCode     = 10
	kindFunc    = 0
	kindGlobal  = 3
	opLoop      = 0x03
	opCall      = 0x10
	opCallInd   = 0x11
	opGlobalGet = 0x23
	opGlobalSet = 0x24
	opTableSet  = 0x26
	opEnd       = 0x0b
)

// sectionOrder gives each known section's position; custom sections may appear
// anywhere and the tag section (13) sits between memory and global.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// instrumented is what instrument returns besides the rewritten module.
type instrumented struct {
	wasm []byte
	// globals are the indices of the module's mutable globals, each exported
	// as globalExport + its index.
	globals []uint32
	// start is true when the module had a start function, now exported as
	// startExport.
	start bool
}

// instrument returns wasm with an interrupt global exported as
// interruptExport, checks of it where guest time is otherwise unbounded, its
// mutable globals exported and its start function moved to an export.
// With checks false it adds the globals and exports but no check: only the
// benchmark that compares ways of stopping a guest wants that.
func instrument(wasm []byte, checks bool) (instrumented, error) {
	var res instrumented
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return res, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errUninstrumentable)
	}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	r := reader{b: wasm[8:]}
	for !r.done() {
		id := r.byte()
		body := r.bytes(r.u32())
		if r.err != nil {
			return res, fmt.Errorf("%w: %v", errUninstrumentable, r.err)
		}
		if id != secCustom {
			if _, ok := sectionOrder[id]; !ok {
				return res, fmt.Errorf("%w: unknown section %d", errUninstrumentable, id)
			}
		}
		sections = append(sections, section{id, body})
	}

	var globals, memories, funcs, types uint32
	var start []byte // the start section's body: a function index
	for _, s := range sections {
		var err error
		switch s.id {
		case secType:
			types, err = reader{b: s.body}.count()
		case secImport:
			var imported imports
			imported, err = countImports(s.body)
			globals += imported.globals
			memories += imported.memories
			funcs += imported.funcs
		case secMemory:
			var n uint32
			n, err = reader{b: s.body}.count()
			memories += n
		case secStart:
			start = s.body
		case secExport:
			err = checkExportNames(s.body)
		}
		if err != nil {
			return res, err
		}
	}
	for _, s := range sections {
		if s.id == secGlobal {
			mutable, n, err := mutableGlobals(s.body, globals)
			if err != nil {
				return res, err
			}
			res.globals = mutable
			globals += n
		}
	}
	if memories == 0 {
		return res, fmt.Errorf("%w: no memory", errUninstrumentable)
	}
	budget, flag, scratch := globals, globals+1, globals+2
	// The checks call the yield import, added after the module's own.
	shift := funcShift{imported: funcs, active: checks}
	yield := funcs

	// Rewrite or add the global and export sections, rewrite the code
	// section and drop the start section, keeping the others byte for byte.
	newGlobals := sleb([]byte{0x7f, 0x01, 0x41}, interruptEvery) // mutable i32 budget = interruptEvery
	newGlobals = append(newGlobals, opEnd)
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, opEnd) // mutable i32 flag = 0
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, opEnd) // mutable i32 scratch = 0
	const addedGlobals = 3
	newExports := appendName(nil, interruptExport)
	newExports = append(newExports, kindGlobal)
	newExports = binary.AppendUvarint(newExports, uint64(flag))
	addedExports := uint32(1)
	for _, g := range res.globals {
		newExports = appendName(newExports, globalExport+strconv.FormatUint(uint64(g), 10))
		newExports = append(newExports, kindGlobal)
		newExports = binary.AppendUvarint(newExports, uint64(g))
		addedExports++
	}
	if start != nil {
		fn, err := reader{b: start}.count()
		if err != nil {
			return res, fmt.Errorf("%w: start section: %v", errUninstrumentable, err)
		}
		newExports = appendName(newExports, startExport)
		newExports = append(newExports, kindFunc)
		newExports = binary.AppendUvarint(newExports, uint64(shift.of(fn)))
		addedExports++
		res.start = true
	}
	var out []section
	added := map[byte]bool{}
	if !shift.active {
		// Nothing to import: count the type and import sections as present.
		added[secType], added[secImport] = true, true
	}
	addBefore := func(pos int) {
		for _, id := range []byte{secType, secImport, secGlobal, secExport} {
			if !added[id] && sectionOrder[id] < pos {
				added[id] = true
				var body []byte
				switch id {
				case secType:
					body = append([]byte{1}, yieldType...)
				case secImport:
					body = append([]byte{1}, yieldImport(types)...)
				case secGlobal:
					body = append(binary.AppendUvarint(nil, addedGlobals), newGlobals...)
				default:
					body = append(binary.AppendUvarint(nil, uint64(addedExports)), newExports...)
				}
				out = append(out, section{id, body})
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			addBefore(sectionOrder[s.id])
		} else if shift.active && customName(s.body) == "name" {
			continue
		}
		var err error
		switch {
		case s.id == secType && shift.active:
			added[secType] = true
			s.body, err = appendEntries(s.body, 1, yieldType)
		case s.id == secImport && shift.active:
			added[secImport] = true
			s.body, err = appendEntries(s.body, 1, yieldImport(types))
		case s.id == secGlobal:
			added[secGlobal] = true
			if s.body, err = renumberGlobals(s.body, shift); err == nil {
				s.body, err = appendEntries(s.body, addedGlobals, newGlobals)
			}
		case s.id == secExport:
			added[secExport] = true
			if s.body, err = renumberExports(s.body, shift); err == nil {
				s.body, err = appendEntries(s.body, addedExports, newExports)
			}
		case s.id == secElem:
			s.body, err = renumberElements(s.body, shift)
		case s.id == secStart:
			continue
		case s.id == secCode:
			s.body, err = instrumentCode(s.body, budget, flag, scratch, yield, shift, checks)
		}
		if err != nil {
			if errors.Is(err, ErrUnsupportedModule) {
				return res, err
			}
			return res, fmt.Errorf("%w: %v", errUninstrumentable, err)
		}
		out = append(out, s)
	}
	addBefore(len(sectionOrder) + 1)

	dst := make([]byte, 0, len(wasm)+len(wasm)/8)
	dst = append(dst, wasm[:8]...)
	for _, s := range out {
		dst = append(dst, s.id)
		dst = binary.AppendUvarint(dst, uint64(len(s.body)))
		dst = append(dst, s.body...)
	}
	res.wasm = dst
	return res, nil
}

// checkExportNames refuses a module that exports a name the rewriter adds.
func checkExportNames(body []byte) error {
	r := reader{b: body}
	for range r.u32() {
		name := r.bytes(r.u32())
		r.byte()
		r.u32()
		if r.err != nil {
			return fmt.Errorf("%w: export section: %v", errUninstrumentable, r.err)
		}
		if strings.HasPrefix(string(name), reservedPrefix) {
			return fmt.Errorf("%w: the module exports %q, and names starting with %q are the host's",
				errUninstrumentable, truncateName(name), reservedPrefix)
		}
	}
	return r.err
}

func truncateName(b []byte) string {
	return strconv.Quote(string(b[:min(len(b), 64)]))
}

// mutableGlobals returns the indices of the mutable globals a global section
// defines, first being the index of its first global, and how many globals it
// defines. The reset reads and writes globals as 64-bit numbers, so a mutable
// v128 or reference global is refused.
func mutableGlobals(body []byte, first uint32) ([]uint32, uint32, error) {
	r := reader{b: body}
	n := r.u32()
	var mutable []uint32
	for i := range n {
		typ, mut := r.byte(), r.byte()
		constExpr(&r)
		if r.err != nil {
			return nil, 0, fmt.Errorf("%w: global section: %v", errUninstrumentable, r.err)
		}
		if mut == 1 {
			if typ != 0x7f && typ != 0x7e && typ != 0x7d && typ != 0x7c { // i32, i64, f32, f64
				return nil, 0, fmt.Errorf("%w: global %d is a mutable %s", errStateful, first+i, valueTypeName(typ))
			}
			mutable = append(mutable, first+i)
		}
	}
	return mutable, n, r.err
}

func valueTypeName(t byte) string {
	switch t {
	case 0x7b:
		return "v128"
	case 0x70:
		return "funcref"
	case 0x6f:
		return "externref"
	}
	return fmt.Sprintf("type 0x%02x", t)
}

// constExpr skips a constant expression and its end.
func constExpr(r *reader) {
	for !r.done() {
		if constOp(r) == opEnd {
			return
		}
	}
	r.fail(errTruncated)
}

// constOp skips one instruction of a constant expression and returns its
// opcode.
func constOp(r *reader) byte {
	op := r.byte()
	switch op {
	case opEnd:
	case 0x41, 0x42: // i32.const, i64.const
		r.s64()
	case 0x43:
		r.bytes(4)
	case 0x44:
		r.bytes(8)
	case opGlobalGet, 0xd2: // global.get, ref.func
		r.u32()
	case 0xd0: // ref.null
		r.byte()
	case 0xfd: // v128.const
		if r.u32() != 0x0c {
			r.fail(errors.New("unsupported constant expression"))
		}
		r.bytes(16)
	default:
		r.fail(fmt.Errorf("unsupported opcode 0x%02x in a constant expression", op))
	}
	return op
}

// appendEntries adds n encoded entries to a section that is a vector.
func appendEntries(body []byte, n uint32, entries []byte) ([]byte, error) {
	r := reader{b: body}
	count := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	dst := binary.AppendUvarint(nil, uint64(count)+uint64(n))
	dst = append(dst, r.b...)
	return append(dst, entries...), nil
}

// sleb appends v in the signed LEB128 encoding of i32.const and i64.const.
func sleb(dst []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendName(dst []byte, name string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	return append(dst, name...)
}

type imports struct{ globals, memories, funcs uint32 }

func countImports(body []byte) (imports, error) {
	r := reader{b: body}
	n := r.u32()
	var counts imports
	for range n {
		r.bytes(r.u32()) // module
		r.bytes(r.u32()) // name
		switch r.byte() {
		case kindFunc: // function: type index
			r.u32()
			counts.funcs++
		case 1: // table: reference type and limits
			r.byte()
			r.limits()
		case 2: // memory: limits
			r.limits()
			counts.memories++
		case kindGlobal: // global: value type and mutability
			r.byte()
			r.byte()
			counts.globals++
		default:
			return counts, errors.New("unknown import kind")
		}
		if r.err != nil {
			return counts, r.err
		}
	}
	return counts, r.err
}

// probes are the instruction sequences the rewriter inserts. Each leaves the
// operand stack as it found it, so it is valid at any instruction boundary.
type probes struct {
	tick       []byte // charge 1
	bulkBefore []byte // keep the length operand of a bulk instruction in scratch
	bulkAfter  []byte // charge scratch >> bulkShift
}

func newProbes(budget, flag, scratch, yield uint32) probes {
	global := func(dst []byte, op byte, index uint32) []byte {
		return binary.AppendUvarint(append(dst, op), uint64(index))
	}
	var slow []byte
	slow = append(slow, 0x41) // i32.const interruptEvery
	slow = sleb(slow, interruptEvery)
	slow = global(slow, opGlobalSet, budget)
	slow = binary.AppendUvarint(append(slow, opCall), uint64(yield))
	slow = global(slow, opGlobalGet, flag)
	slow = append(slow, 0x04, 0x40, 0x00, opEnd) // if, unreachable, end
	charge := func(dst []byte) []byte {
		dst = append(dst, 0x6b) // i32.sub
		dst = global(dst, opGlobalSet, budget)
		dst = global(dst, opGlobalGet, budget)
		dst = append(dst, 0x41, 0x01, 0x48, 0x04, 0x40) // i32.const 1, i32.lt_s, if
		dst = append(dst, slow...)
		return append(dst, opEnd)
	}
	var p probes
	p.tick = global(p.tick, opGlobalGet, budget)
	p.tick = charge(append(p.tick, 0x41, 0x01)) // i32.const 1
	p.bulkBefore = global(p.bulkBefore, opGlobalSet, scratch)
	p.bulkBefore = global(p.bulkBefore, opGlobalGet, scratch)
	p.bulkAfter = global(p.bulkAfter, opGlobalGet, budget)
	p.bulkAfter = global(p.bulkAfter, opGlobalGet, scratch)
	p.bulkAfter = charge(append(p.bulkAfter, 0x41, bulkShift, 0x76)) // i32.const bulkShift, i32.shr_u
	return p
}

// instrumentCode rewrites the code section, inserting probes where guest time
// is otherwise unbounded; with checks false it only refuses what instrument
// refuses.
func instrumentCode(body []byte, budget, flag, scratch, yield uint32, shift funcShift, checks bool) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	p := newProbes(budget, flag, scratch, yield)
	dst := binary.AppendUvarint(make([]byte, 0, len(body)+len(body)/8), uint64(n))
	var fn []byte
	for i := range n {
		code := r.bytes(r.u32())
		if r.err != nil {
			return nil, r.err
		}
		var err error
		if fn, err = instrumentFunction(fn[:0], code, p, shift, checks); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		dst = binary.AppendUvarint(dst, uint64(len(fn)))
		dst = append(dst, fn...)
	}
	if !r.done() {
		return nil, errors.New("trailing bytes in code section")
	}
	return dst, r.err
}

// insertion is a probe to insert before the byte at offset at of a
// function, in place of the skip bytes from there: a renumbered function
// index replaces the old one.
type insertion struct {
	at    int
	probe []byte
	skip  int
}

// instrumentFunction copies one function body to dst with probes inserted: a
// tick after every loop's block type, at the entry if the function calls,
// and before an instruction that would otherwise end a run of checkEvery
// instructions without one; around every bulk memory instruction, a charge
// for its length.
func instrumentFunction(dst, code []byte, p probes, shift funcShift, checks bool) ([]byte, error) {
	r := reader{b: code}
	for range r.u32() { // local declarations: count and type
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	entry := len(code) - len(r.b)
	var inserts []insertion
	calls := false
	run := 0 // instructions since the last probe
	for !r.done() {
		at := len(code) - len(r.b)
		if run++; run >= checkEvery {
			inserts = append(inserts, insertion{at: at, probe: p.tick})
			run = 0
		}
		op := r.byte()
		// renumber replaces the function index that follows a call or
		// ref.func if the yield import moved it.
		renumber := func() {
			imm := len(code) - len(r.b)
			if fn := r.u32(); shift.of(fn) != fn {
				inserts = append(inserts, insertion{at: imm, probe: binary.AppendUvarint(nil, uint64(shift.of(fn))), skip: len(code) - len(r.b) - imm})
			}
		}
		switch {
		case op == opLoop:
			r.s64() // block type
			inserts = append(inserts, insertion{at: len(code) - len(r.b), probe: p.tick})
			run = 0
		case op == 0x02 || op == 0x04: // block, if: block type
			r.s64()
		case op == opCall:
			calls = true
			renumber()
		case op == 0xd2: // ref.func
			renumber()
		case op == opTableSet:
			r.fail(fmt.Errorf("%w: table.set", errStateful))
		case op == 0x0c || op == 0x0d || // br, br_if
			op >= 0x20 && op <= 0x25 || // local.*, global.*, table.get
			op == 0x3f || op == 0x40: // memory.size/grow
			r.u32()
		case op == 0x0e: // br_table
			for range r.u32() {
				r.u32()
			}
			r.u32()
		case op == opCallInd: // call_indirect: type, table
			calls = true
			r.u32()
			r.u32()
		case op == 0x1c: // select with types
			r.bytes(r.u32())
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memarg()
		case op == 0x41: // i32.const
			r.s64()
		case op == 0x42: // i64.const
			r.s64()
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0: // ref.null: reference type
			r.byte()
		case op == 0xfc:
			if miscImmediates(&r) {
				inserts = append(inserts, insertion{at: at, probe: p.bulkBefore}, insertion{at: len(code) - len(r.b), probe: p.bulkAfter})
			}
		case op == 0xfd:
			simdImmediates(&r)
		case op <= 0x01 || op == 0x05 || op == opEnd || op == 0x0f || op == 0x1a || op == 0x1b ||
			op >= 0x45 && op <= 0xc4 || op == 0xd1:
			// No immediates.
		default:
			return nil, fmt.Errorf("unsupported opcode 0x%02x", op)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if !checks {
		return append(dst, code...), nil
	}
	copied := 0
	if calls {
		dst = append(dst, code[:entry]...)
		dst = append(dst, p.tick...)
		copied = entry
	}
	for _, in := range inserts {
		dst = append(dst, code[copied:in.at]...)
		dst = append(dst, in.probe...)
		copied = in.at + in.skip
	}
	return append(dst, code[copied:]...), nil
}

// miscImmediates skips the immediates of a 0xfc-prefixed instruction: the
// saturating conversions, bulk memory and table instructions. It reports
// whether the instruction is a bulk memory one with a length operand on top
// of the stack, and refuses those that change tables or drop segments.
func miscImmediates(r *reader) (bulk bool) {
	switch op := r.u32(); {
	case op <= 7: // saturating truncations
	case op == 8: // memory.init: data segment, memory
		r.u32()
		r.u32()
		return true
	case op == 10: // memory.copy: two memories
		r.u32()
		r.u32()
		return true
	case op == 11: // memory.fill: memory
		r.u32()
		return true
	case op == 16: // table.size
		r.u32()
	case op == 9:
		r.fail(fmt.Errorf("%w: data.drop", errStateful))
	case op == 12:
		r.fail(fmt.Errorf("%w: table.init", errStateful))
	case op == 13:
		r.fail(fmt.Errorf("%w: elem.drop", errStateful))
	case op == 14:
		r.fail(fmt.Errorf("%w: table.copy", errStateful))
	case op == 15:
		r.fail(fmt.Errorf("%w: table.grow", errStateful))
	case op == 17:
		r.fail(fmt.Errorf("%w: table.fill", errStateful))
	default:
		r.fail(fmt.Errorf("unsupported opcode 0xfc %d", op))
	}
	return false
}

// simdImmediates skips the immediates of a 0xfd-prefixed (SIMD) instruction.
func simdImmediates(r *reader) {
	switch op := r.u32(); {
	case op <= 0x0b || op == 0x5c || op == 0x5d: // loads and stores
		r.memarg()
	case op == 0x0c || op == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case op >= 0x15 && op <= 0x22: // extract and replace lane
		r.byte()
	case op >= 0x54 && op <= 0x5b: // load and store lane
		r.memarg()
		r.byte()
	case op <= 0xff:
		// No immediates.
	default:
		r.fail(fmt.Errorf("unsupported opcode 0xfd %d", op))
	}
}

// reader decodes the WebAssembly binary format. The first error sticks; reads
// after it return zero values.
type reader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) done() bool { return len(r.b) == 0 || r.err != nil }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n uint32) []byte {
	if uint64(n) > uint64(len(r.b)) {
		r.fail(errTruncated)
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.fail(errors.New("malformed unsigned integer"))
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

func (r *reader) s64() int64 {
	// Signed LEB128, as the binary format encodes it (not zig-zag).
	var v int64
	var shift uint
	for {
		if shift >= 70 {
			r.fail(errors.New("malformed signed integer"))
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

// memarg skips a memory argument: alignment (with bit 6 flagging a memory
// index, from the multi-memory proposal) and offset.
func (r *reader) memarg() {
	if align := r.u32(); align&0x40 != 0 {
		r.u32()
	}
	r.u32()
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

// count reads the length of a vector section. It takes a value receiver so
// that callers can count without consuming.
func (r reader) count() (uint32, error) {
	n := r.u32()
	return n, r.err
}

// watchdog sets an instrumented instance's interrupt global when a call runs
// past its deadline or its context is done. One timer per instance serves
// every call: a call moves the deadline, and the timer, when it fires early,
// sets itself for the new deadline, so back-to-back calls neither start nor
// stop a timer and arming costs no goroutine and no allocation.
type watchdog struct {
	flag  api.MutableGlobal
	timer *time.Timer
	stop  func() bool // unregisters the context callback of the current call

	mu       sync.Mutex
	armed    bool
	gen      uint64    // counts arm calls, so a late context callback of an earlier call does nothing
	deadline time.Time // of the current call
	fireAt   time.Time // when the timer fires; zero when it is not set
	cause    error     // why the guest was interrupted, nil if it was not

	// yieldAt is when the current call began or last gave up its processor;
	// only the calling goroutine reads and writes it.
	yieldAt time.Time
}

func newWatchdog(flag api.MutableGlobal) *watchdog {
	w := &watchdog{flag: flag}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	return w
}

// arm clears the interrupt and starts watching timeout and ctx.
func (w *watchdog) arm(ctx context.Context, timeout time.Duration) {
	now := time.Now()
	w.yieldAt = now
	w.mu.Lock()
	w.gen++
	gen := w.gen
	w.armed, w.deadline, w.cause = true, now.Add(timeout), nil
	w.flag.Set(0)
	if w.fireAt.IsZero() || w.fireAt.After(w.deadline) {
		// Not set, or set for a later deadline than this call's.
		w.fireAt = w.deadline
		w.timer.Reset(timeout)
	}
	w.mu.Unlock()
	if ctx.Done() != nil {
		w.stop = context.AfterFunc(ctx, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.armed && w.gen == gen {
				w.interrupt(ctx.Err())
			}
		})
	}
}

// disarm stops watching. The interrupt stays set if it fired, which only
// matters to an instance that is about to be discarded. The timer is left to
// fire: the next call will likely need it, and if none comes it fires once
// and stops.
func (w *watchdog) disarm() {
	if w.stop != nil {
		w.stop()
		w.stop = nil
	}
	w.mu.Lock()
	w.armed = false
	w.mu.Unlock()
}

// interrupted returns the reason the guest was interrupted, or nil.
func (w *watchdog) interrupted() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cause
}

func (w *watchdog) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		w.fireAt = time.Time{}
		return
	}
	if left := time.Until(w.deadline); left > 0 {
		// Set by an earlier call; this call ends later.
		w.fireAt = w.deadline
		w.timer.Reset(left)
		return
	}
	w.fireAt = time.Time{}
	w.interrupt(context.DeadlineExceeded)
}

// yield runs at the slow path of the guest's checks, on the calling
// goroutine: it gives up the processor once the call has run yieldEvery since
// it began or last gave it up.
func (w *watchdog) yield() {
	if now := time.Now(); now.Sub(w.yieldAt) >= yieldEvery {
		runtime.Gosched()
		w.yieldAt = time.Now()
	}
}

// instantiateYield adds to r the module of the yield function the checks
// call; yield is called with the instrumented module that runs the check.
func instantiateYield(ctx context.Context, r wazero.Runtime, yield func(api.Module)) error {
	_, err := r.NewHostModuleBuilder(yieldModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, _ []uint64) { yield(m) }), nil, nil).
		Export(yieldName).
		Instantiate(ctx)
	return err
}

// interrupt sets the global; w.mu must be held.
func (w *watchdog) interrupt(cause error) {
	if w.cause == nil {
		w.cause = cause
		w.flag.Set(1)
	}
}
