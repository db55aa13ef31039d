package textnorm

import "unsafe"

// piece maps the output bytes from out up to the next piece's out (or the
// end of the output) to the original bytes [src, end).
//
// A verbatim piece is a byte-for-byte copy of [src, end), so any byte of it
// maps to the same byte of the original. Any other piece is atomic: every
// byte of it maps to the whole of [src, end).
type piece struct {
	out, src, end int32
	verbatim      bool
}

// builder writes the output of one pass over its input and, when tracking,
// the map from that output to the original text.
//
// A pass walks its input left to right and calls replace and drop for the
// spans it changes; what lies between is copied verbatim. Nothing is copied
// until the first change, so a pass that changes nothing costs no copy and
// leaves dirty false.
//
// The input of a pass is the output of the previous one, and prev maps it to
// the original; the builder composes the two maps as it goes, walking prev
// with a cursor, so the result maps straight to the original and only one
// map is kept.
type builder struct {
	in    string
	prev  []piece // map of in to the original; nil when in is the original
	track bool    // keep a map; the sub-pipeline for decoded text does not

	out  []byte
	pcs  []piece
	done int // in[:done] has been written (or, while !dirty, is implied)
	pi   int // cursor in prev

	limit  int  // the output may not grow past this many bytes
	dirty  bool // out and pcs hold the output; otherwise it equals in
	capped bool // a change was skipped to stay within limit
	coarse bool // pieces were merged to stay within maxPieces

	lastSrc, lastEnd int32 // source span of the last atomic piece, for extend
}

func (b *builder) reset(in string, prev []piece, limit int, track bool) {
	b.in, b.prev, b.track, b.limit = in, prev, track, limit
	b.out, b.pcs = b.out[:0], b.pcs[:0]
	b.done, b.pi = 0, 0
	b.dirty, b.capped, b.coarse = false, false, false
}

// result is the output of the pass.
func (b *builder) result() string {
	if !b.dirty {
		return b.in
	}
	return bstr(b.out)
}

// outLen is the length the output has, or would have if it were written.
func (b *builder) outLen() int {
	if b.dirty {
		return len(b.out)
	}
	return b.done
}

// room is how many bytes a replacement of in[start:end] may take without
// the output, plus a verbatim copy of the rest of the input, passing limit.
// Every pass keeps that sum within limit, so the output never passes it.
func (b *builder) room(start, end int) int {
	return b.limit - b.outLen() - (start - b.done) - (len(b.in) - end)
}

// replace writes repl in place of in[start:end], as one atomic piece. It
// reports false, and changes nothing, when repl does not fit in the room
// left; the caller then leaves the span as it is.
func (b *builder) replace(start, end int, repl string) bool {
	if len(repl) == 0 {
		b.drop(start, end)
		return true
	}
	if len(repl) > b.room(start, end) {
		b.capped = true
		return false
	}
	b.begin(start)
	if b.track {
		s, e := b.resolve(start, end)
		b.add(int32(len(b.out)), s, e, false)
		b.lastSrc, b.lastEnd = s, e
	}
	b.out = append(b.out, repl...)
	b.done = end
	return true
}

// extend appends more output mapped to the same source span as the last
// replace, which must be the last call made. It reports false, and changes
// nothing, when repl does not fit.
func (b *builder) extend(repl string) bool {
	if len(repl) > b.room(b.done, b.done) {
		b.capped = true
		return false
	}
	if b.track {
		b.add(int32(len(b.out)), b.lastSrc, b.lastEnd, false)
	}
	b.out = append(b.out, repl...)
	return true
}

// drop leaves in[start:end] out of the output.
func (b *builder) drop(start, end int) {
	if start == end {
		return
	}
	b.begin(start)
	b.done = end
}

// finish copies the rest of the input.
func (b *builder) finish() {
	if b.dirty {
		b.copyTo(len(b.in))
	}
	b.done = len(b.in)
}

// begin copies the input up to start, writing what was implied so far
// the first time something changes.
func (b *builder) begin(start int) {
	if !b.dirty {
		b.dirty = true
		implied := b.done
		b.done = 0
		b.copyTo(implied)
	}
	b.copyTo(start)
}

// copyTo copies in[done:end] verbatim.
func (b *builder) copyTo(end int) {
	start := b.done
	if start >= end {
		return
	}
	o := int32(len(b.out))
	b.out = append(b.out, b.in[start:end]...)
	b.done = end
	if !b.track {
		return
	}
	if b.prev == nil {
		b.add(o, int32(start), int32(end), true)
		return
	}
	for x := start; x < end; {
		b.seek(x)
		p := b.prev[b.pi]
		pend := b.pend(b.pi)
		y := min(end, pend)
		if p.verbatim {
			off := int32(x) - p.out
			b.add(o, p.src+off, p.src+off+int32(y-x), true)
		} else {
			b.add(o, p.src, p.end, false)
		}
		o += int32(y - x)
		x = y
	}
}

// resolve is the source span of in[start:end], start < end.
func (b *builder) resolve(start, end int) (int32, int32) {
	if b.prev == nil {
		return int32(start), int32(end)
	}
	b.seek(start)
	p := b.prev[b.pi]
	s := p.src
	if p.verbatim {
		s += int32(start) - p.out
	}
	b.seek(end - 1)
	p = b.prev[b.pi]
	e := p.end
	if p.verbatim {
		e = p.src + int32(end) - p.out
	}
	return s, e
}

// seek moves the cursor to the piece of prev holding input byte x. Calls
// come with x never below the previous call's, less one, so the walk is
// linear over a pass.
func (b *builder) seek(x int) {
	for b.pi+1 < len(b.prev) && int(b.prev[b.pi+1].out) <= x {
		b.pi++
	}
}

// pend is where piece i of prev ends in the input.
func (b *builder) pend(i int) int {
	if i+1 < len(b.prev) {
		return int(b.prev[i+1].out)
	}
	return len(b.in)
}

// add appends a piece, merging it into the last one when the two are
// contiguous copies or map to the same atomic span. Past maxPieces, it
// merges the piece into the last one regardless, which then becomes atomic
// and covers both: the map stays within its bound and still covers every
// source byte, but no longer finely.
func (b *builder) add(o, src, end int32, verbatim bool) {
	if n := len(b.pcs); n > 0 {
		l := &b.pcs[n-1]
		switch {
		case verbatim && l.verbatim && l.end == src:
			l.end = end
			return
		case !verbatim && !l.verbatim && l.src == src && l.end == end:
			return
		case n >= b.maxPieces():
			l.verbatim = false
			l.end = max(l.end, end)
			b.coarse = true
			return
		}
	}
	b.pcs = append(b.pcs, piece{out: o, src: src, end: end, verbatim: verbatim})
}

// maxPieces bounds the map to a piece for every two bytes of the original
// (limit is twice its length, plus Slack): 8 bytes of map per byte of text.
// Only hostile text needs more: fullwidth text takes a piece every three
// bytes, look-alikes one every two, vertical tabs between letters one a byte.
func (b *builder) maxPieces() int {
	return b.limit/4 + 16
}

// bstr views b as a string without copying; b must not change while the
// string is in use.
func bstr(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
