package plugin

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The interrupt check calls the host's yield function (see interrupt.go),
// which the rewriter imports after the module's own function imports. The
// function index space lists imports first, so every function the module
// defines moves up by one, and every place that names one is rewritten:
// call and ref.func in code and in constant expressions, the export and
// element sections, and the start function. The name section, which would
// label the wrong functions, is dropped.

// funcShift maps a function index of the module as given to its index in
// the rewritten module: imported functions keep theirs.
type funcShift struct {
	imported uint32 // functions the module imports
	active   bool   // the yield import is added
}

func (s funcShift) of(i uint32) uint32 {
	if s.active && i >= s.imported {
		return i + 1
	}
	return i
}

// yieldType is the type of the yield import: no parameters, no results.
var yieldType = []byte{0x60, 0x00, 0x00}

// yieldImport encodes the import entry of the yield function of type typ.
func yieldImport(typ uint32) []byte {
	b := appendName(nil, yieldModule)
	b = appendName(b, yieldName)
	b = append(b, kindFunc)
	return binary.AppendUvarint(b, uint64(typ))
}

// renumberExports rewrites the function indices of an export section.
func renumberExports(body []byte, s funcShift) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	dst := binary.AppendUvarint(make([]byte, 0, len(body)+8), uint64(n))
	for range n {
		dst = appendName(dst, string(r.bytes(r.u32())))
		kind := r.byte()
		idx := r.u32()
		if kind == kindFunc {
			idx = s.of(idx)
		}
		dst = binary.AppendUvarint(append(dst, kind), uint64(idx))
	}
	if r.err != nil || !r.done() {
		return nil, fmt.Errorf("export section: %v", errOr(r.err, "trailing bytes"))
	}
	return dst, nil
}

// renumberGlobals rewrites the ref.func of a global section's initialisers.
func renumberGlobals(body []byte, s funcShift) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	dst := binary.AppendUvarint(make([]byte, 0, len(body)+8), uint64(n))
	for range n {
		dst = append(dst, r.byte(), r.byte()) // value type, mutability
		dst = renumberConstExpr(dst, &r, s)
	}
	if r.err != nil || !r.done() {
		return nil, fmt.Errorf("global section: %v", errOr(r.err, "trailing bytes"))
	}
	return dst, nil
}

// renumberElements rewrites the function indices of an element section, in
// each of its eight segment encodings: bit 0 of the flags marks a passive or
// declarative segment, bit 1 an explicit table (active) or a declarative one
// (passive), bit 2 initialisers given as expressions rather than indices.
func renumberElements(body []byte, s funcShift) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	dst := binary.AppendUvarint(make([]byte, 0, len(body)+8), uint64(n))
	for range n {
		flags := r.u32()
		if flags > 7 {
			return nil, fmt.Errorf("element section: unknown segment flags %d", flags)
		}
		dst = binary.AppendUvarint(dst, uint64(flags))
		if flags&1 == 0 { // active: table, offset
			if flags&2 != 0 {
				dst = binary.AppendUvarint(dst, uint64(r.u32()))
			}
			dst = renumberConstExpr(dst, &r, s)
		}
		if flags&3 != 0 { // element kind or reference type
			dst = append(dst, r.byte())
		}
		count := r.u32()
		dst = binary.AppendUvarint(dst, uint64(count))
		for range count {
			if flags&4 == 0 {
				dst = binary.AppendUvarint(dst, uint64(s.of(r.u32())))
			} else {
				dst = renumberConstExpr(dst, &r, s)
			}
		}
		if r.err != nil {
			break
		}
	}
	if r.err != nil || !r.done() {
		return nil, fmt.Errorf("element section: %v", errOr(r.err, "trailing bytes"))
	}
	return dst, nil
}

// renumberConstExpr copies one constant expression and its end from r to
// dst, rewriting ref.func.
func renumberConstExpr(dst []byte, r *reader, s funcShift) []byte {
	for !r.done() {
		if r.b[0] == 0xd2 { // ref.func
			r.byte()
			dst = binary.AppendUvarint(append(dst, 0xd2), uint64(s.of(r.u32())))
			continue
		}
		before := r.b
		op := constOp(r)
		dst = append(dst, before[:len(before)-len(r.b)]...)
		if op == opEnd {
			return dst
		}
	}
	r.fail(errTruncated)
	return dst
}

// customName returns the name of a custom section.
func customName(body []byte) string {
	r := reader{b: body}
	name := r.bytes(r.u32())
	if r.err != nil {
		return ""
	}
	return string(name)
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
