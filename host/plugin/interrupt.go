package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// A guest that spins must be stoppable. wazero's WithCloseOnContextDone does
// that by leaving machine code for Go at the head of every loop, and Go
// compiles every jump of a function to WebAssembly as a trip round one
// dispatch loop, so that exit runs at nearly every branch and made the PII
// plugin four times slower. Instead, the host rewrites the module before
// compiling it: it adds two mutable i32 globals, a budget and an interrupt
// flag, and at the start of every loop body
//
//	budget = budget - 1
//	if budget == 0 {
//	    budget = interruptEvery
//	    memory.grow(0)           // returns to Go: see below
//	    if interrupt { unreachable }
//	}
//
// which costs a load, a store and a branch per iteration. The host sets the
// flag from a timer or a context callback and the guest traps within
// interruptEvery iterations. Without a loop a function can only run for as
// long as its code is long, and recursion ends in a stack overflow trap, so
// loops are the only place that needs a check.
//
// The guest must also leave machine code now and then: the Go scheduler cannot
// preempt it there, so a garbage collection that stops the world would wait
// for a spinning guest, and the timer that should stop the guest would wait
// for the collection. memory.grow is how the check does that without adding an
// import, which would renumber every function: wazero grows memory in Go, a
// point where the goroutine can be preempted, and growing by 0 changes nothing.
//
// The rewriter knows the instructions of the features wazero enables by
// default (WebAssembly 2.0: bulk memory, multi-value, non-trapping conversions,
// reference types, sign extension and SIMD). A module it cannot read keeps its
// original bytes and runs with WithCloseOnContextDone instead.

// interruptEvery is the number of loop iterations between two trips to Go: a
// few microseconds of guest work, against a trip that costs a fraction of one.
const interruptEvery = 4096

// interruptExport is the name under which the added global is exported. It is
// not a valid identifier in the languages plugins are written in, so it cannot
// collide with a plugin's own exports.
const interruptExport = "sluice:interrupt"

// errUninstrumentable reports a module the rewriter cannot read.
var errUninstrumentable = errors.New("module cannot be instrumented")

// Section ids of the WebAssembly binary format, in the order sections appear.
const (
	secCustom   = 0
	secImport   = 2
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secCode     = 10
	kindGlobal  = 3
	opLoop      = 0x03
	opGlobalGet = 0x23
	opGlobalSet = 0x24
)

// sectionOrder gives each known section's position; custom sections may appear
// anywhere and the tag section (13) sits between memory and global.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// instrument returns wasm with an interrupt global exported as interruptExport
// and a check of it at the start of every loop body.
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errUninstrumentable)
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
			return nil, fmt.Errorf("%w: %v", errUninstrumentable, r.err)
		}
		if id != secCustom {
			if _, ok := sectionOrder[id]; !ok {
				return nil, fmt.Errorf("%w: unknown section %d", errUninstrumentable, id)
			}
		}
		sections = append(sections, section{id, body})
	}

	var globals, memories uint32
	for _, s := range sections {
		var n uint32
		var err error
		switch s.id {
		case secImport:
			var imported imports
			imported, err = countImports(s.body)
			globals += imported.globals
			memories += imported.memories
		case secGlobal:
			n, err = reader{b: s.body}.count()
			globals += n
		case secMemory:
			n, err = reader{b: s.body}.count()
			memories += n
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUninstrumentable, err)
		}
	}
	if memories == 0 {
		return nil, fmt.Errorf("%w: no memory", errUninstrumentable)
	}
	budget, flag := globals, globals+1

	// Rewrite or add the global, export and code sections, keeping the others
	// byte for byte.
	newGlobals := sleb([]byte{0x7f, 0x01, 0x41}, interruptEvery) // mutable i32 budget = interruptEvery
	newGlobals = append(newGlobals, 0x0b)
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, 0x0b) // mutable i32 flag = 0
	newExport := appendName(nil, interruptExport)
	newExport = append(newExport, kindGlobal)
	newExport = binary.AppendUvarint(newExport, uint64(flag))
	var out []section
	added := map[byte]bool{}
	addBefore := func(pos int) {
		for _, id := range []byte{secGlobal, secExport} {
			if !added[id] && sectionOrder[id] < pos {
				added[id] = true
				var body []byte
				if id == secGlobal {
					body = append(binary.AppendUvarint(nil, 2), newGlobals...)
				} else {
					body = append(binary.AppendUvarint(nil, 1), newExport...)
				}
				out = append(out, section{id, body})
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			addBefore(sectionOrder[s.id])
		}
		var err error
		switch s.id {
		case secGlobal:
			added[secGlobal] = true
			s.body, err = appendEntries(s.body, 2, newGlobals)
		case secExport:
			added[secExport] = true
			s.body, err = appendEntries(s.body, 1, newExport)
		case secCode:
			s.body, err = instrumentCode(s.body, budget, flag)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUninstrumentable, err)
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
	return dst, nil
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

type imports struct{ globals, memories uint32 }

func countImports(body []byte) (imports, error) {
	r := reader{b: body}
	n := r.u32()
	var counts imports
	for range n {
		r.bytes(r.u32()) // module
		r.bytes(r.u32()) // name
		switch r.byte() {
		case 0: // function: type index
			r.u32()
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

// instrumentCode rewrites the code section, inserting the interrupt check at
// the start of every loop body.
func instrumentCode(body []byte, budget, flag uint32) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	global := func(dst []byte, op byte, index uint32) []byte {
		return binary.AppendUvarint(append(dst, op), uint64(index))
	}
	var check []byte
	check = global(check, opGlobalGet, budget)
	check = append(check, 0x41, 0x01, 0x6b) // i32.const 1, i32.sub
	check = global(check, opGlobalSet, budget)
	check = global(check, opGlobalGet, budget)
	check = append(check, 0x45, 0x04, 0x40) // i32.eqz, if
	check = append(check, 0x41)             // i32.const interruptEvery
	check = sleb(check, interruptEvery)
	check = global(check, opGlobalSet, budget)
	check = append(check, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0, memory.grow, drop
	check = global(check, opGlobalGet, flag)
	check = append(check, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if, unreachable, end, end
	dst := binary.AppendUvarint(make([]byte, 0, len(body)+len(body)/8), uint64(n))
	var fn []byte
	for range n {
		code := r.bytes(r.u32())
		if r.err != nil {
			return nil, r.err
		}
		var err error
		if fn, err = instrumentFunction(fn[:0], code, check); err != nil {
			return nil, err
		}
		dst = binary.AppendUvarint(dst, uint64(len(fn)))
		dst = append(dst, fn...)
	}
	if !r.done() {
		return nil, errors.New("trailing bytes in code section")
	}
	return dst, r.err
}

// instrumentFunction copies one function body to dst with check inserted after
// every loop's block type.
func instrumentFunction(dst, code, check []byte) ([]byte, error) {
	r := reader{b: code}
	for range r.u32() { // local declarations: count and type
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	copied := 0
	for !r.done() {
		op := r.byte()
		switch {
		case op == opLoop:
			r.s64() // block type
			at := len(code) - len(r.b)
			dst = append(dst, code[copied:at]...)
			dst = append(dst, check...)
			copied = at
		case op == 0x02 || op == 0x04: // block, if: block type
			r.s64()
		case op == 0x0c || op == 0x0d || op == 0x10 || // br, br_if, call
			op >= 0x20 && op <= 0x26 || // local.*, global.*, table.get/set
			op == 0x3f || op == 0x40 || op == 0xd2: // memory.size/grow, ref.func
			r.u32()
		case op == 0x0e: // br_table
			for range r.u32() {
				r.u32()
			}
			r.u32()
		case op == 0x11: // call_indirect: type, table
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
			miscImmediates(&r)
		case op == 0xfd:
			simdImmediates(&r)
		case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
			op >= 0x45 && op <= 0xc4 || op == 0xd1:
			// No immediates.
		default:
			return nil, fmt.Errorf("unsupported opcode 0x%02x", op)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	return append(dst, code[copied:]...), nil
}

// miscImmediates skips the immediates of a 0xfc-prefixed instruction: the
// saturating conversions, bulk memory and table instructions.
func miscImmediates(r *reader) {
	switch op := r.u32(); {
	case op <= 7: // saturating truncations
	case op == 9 || op == 11 || op == 13 || op >= 15 && op <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	case op == 8 || op == 10 || op == 12 || op == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		r.fail(fmt.Errorf("unsupported opcode 0xfc %d", op))
	}
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

// interrupt sets the global; w.mu must be held.
func (w *watchdog) interrupt(cause error) {
	if w.cause == nil {
		w.cause = cause
		w.flag.Set(1)
	}
}
