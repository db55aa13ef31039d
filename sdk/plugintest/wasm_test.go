package plugintest

import "encoding/binary"

// A tiny WebAssembly assembler for the test modules that break the ABI in ways
// a Go-built plugin cannot: wrong version, missing exports, results outside
// memory. Each module has one page of memory exported as "memory".

const (
	valI32 = 0x7f
	valI64 = 0x7e
)

type wasmFunc struct {
	name            string
	params, results []byte
	body            []byte // instructions, without locals or the final end
}

func uleb(dst []byte, v uint64) []byte {
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			dst = append(dst, b|0x80)
			continue
		}
		return append(dst, b)
	}
}

func sleb(dst []byte, v int64) []byte {
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}

func section(dst []byte, id byte, body []byte) []byte {
	dst = append(dst, id)
	dst = uleb(dst, uint64(len(body)))
	return append(dst, body...)
}

func vec(n int) []byte { return uleb(nil, uint64(n)) }

func name(dst []byte, s string) []byte {
	return append(uleb(dst, uint64(len(s))), s...)
}

// dataAt is where assemble places a module's data.
const dataAt = 16

// assemble builds a module exporting funcs and its memory, with data at
// address dataAt.
func assemble(data string, funcs ...wasmFunc) []byte {
	out := []byte("\x00asm")
	out = binary.LittleEndian.AppendUint32(out, 1)
	types, fns, code := vec(len(funcs)), vec(len(funcs)), vec(len(funcs))
	exports := vec(len(funcs) + 1)
	for i, f := range funcs {
		types = append(types, 0x60)
		types = append(uleb(types, uint64(len(f.params))), f.params...)
		types = append(uleb(types, uint64(len(f.results))), f.results...)
		fns = uleb(fns, uint64(i))
		body := append(append([]byte{0}, f.body...), 0x0b) // no locals
		code = append(uleb(code, uint64(len(body))), body...)
		exports = append(name(exports, f.name), 0x00) // a function
		exports = uleb(exports, uint64(i))
	}
	exports = append(name(exports, "memory"), 0x02, 0)
	out = section(out, 1, types)
	out = section(out, 3, fns)
	out = section(out, 5, []byte{1, 0, 16}) // one memory of 16 pages, room for the long sample
	out = section(out, 7, exports)
	out = section(out, 10, code)
	seg := append([]byte{1, 0}, i32Const(dataAt)...)
	seg = append(uleb(append(seg, 0x0b), uint64(len(data))), data...)
	return section(out, 11, seg)
}

func i32Const(v int32) []byte { return sleb([]byte{0x41}, int64(v)) }
func i64Const(v int64) []byte { return sleb([]byte{0x42}, v) }

var unreachable = []byte{0x00}

// outputOf returns an sluice_output body that points at the module's data.
func outputOf(data string) []byte { return i64Const(dataAt<<32 | int64(len(data))) }

// emptyResult is the result document of a scan that found nothing. The
// modules of these tests return one output for every call, so it is also
// their manifest (sdk/ABI.md 4.4): each reader ignores the other's field.
const emptyResult = `{"types":["X"],"findings":[]}`

// abiFuncs returns the exports of a minimal ABI v1 module whose every scan
// returns result, and whose configure accepts anything, even invalid JSON.
// Tests replace entries to break one more rule.
func abiFuncs(result string) map[string]wasmFunc {
	fs := map[string]wasmFunc{}
	for _, f := range []wasmFunc{
		{name: "_initialize"},
		{name: "sluice_abi_version", results: []byte{valI32}, body: i32Const(1)},
		{name: "sluice_alloc", params: []byte{valI32}, results: []byte{valI32}, body: i32Const(1024)},
		{name: "sluice_free", params: []byte{valI32}},
		{name: "sluice_configure", params: []byte{valI32, valI32}, results: []byte{valI32}, body: i32Const(0)},
		{name: "sluice_scan", params: []byte{valI32, valI32}, results: []byte{valI32}, body: i32Const(0)},
		{name: "sluice_output", results: []byte{valI64}, body: outputOf(result)},
	} {
		fs[f.name] = f
	}
	return fs
}

// moduleOf assembles fs, with data holding the result abiFuncs(data) points at.
func moduleOf(data string, fs map[string]wasmFunc) []byte {
	var list []wasmFunc
	for _, n := range []string{"_initialize", "sluice_abi_version", "sluice_alloc", "sluice_free", "sluice_configure", "sluice_scan", "sluice_output"} {
		if f, ok := fs[n]; ok {
			list = append(list, f)
		}
	}
	return assemble(data, list...)
}
