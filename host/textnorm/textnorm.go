package textnorm

import (
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

const (
	// MaxInput is the longest text Normalize normalises. A longer one is
	// returned as it is, with Capped set.
	MaxInput = 1 << 28

	// Slack is the constant part of the cap on a view's length:
	// len(view) <= 2*len(original) + Slack.
	Slack = 64
)

// Text is a normalised view of one original text. The zero Text is the
// view of the empty text. A Text is immutable and safe to share.
type Text struct {
	src     string
	view    string
	pcs     []piece // the map of view to src, when changed
	changed bool    // the view is not the original
	capped  bool
	coarse  bool
}

// Normalize returns the normalised view of src. When nothing changes, the
// view is src itself and nothing is allocated; otherwise the view and its
// map take two allocations. Normalize is safe for concurrent use.
func Normalize(src string) Text {
	if len(src) > MaxInput {
		return Text{src: src, view: src, capped: true}
	}
	if plain(src) {
		return Text{src: src, view: src}
	}
	return normalizeSlow(src)
}

func normalizeSlow(src string) Text {
	st := statePool.Get().(*state)
	defer st.release()
	limit := 2*len(src) + Slack
	cur, prev := src, []piece(nil)
	capped, coarse := false, false
	for k, pass := range [...]func(*state, *builder){(*state).clean, (*state).nfkc, (*state).confusables, (*state).escapes, (*state).runs} {
		b := &st.main[k]
		b.reset(cur, prev, limit, true)
		pass(st, b)
		capped = capped || b.capped
		coarse = coarse || b.coarse
		if b.dirty {
			cur, prev = b.result(), b.pcs
		}
	}
	if cur == src {
		return Text{src: src, view: src, capped: capped}
	}
	// cur lives in a pooled buffer: the view must be a copy.
	return Text{src: src, view: strings.Clone(cur), pcs: append([]piece(nil), prev...), changed: true, capped: capped, coarse: coarse}
}

// plain reports texts that every pass leaves as they are: printable ASCII
// with no '%' or '&' and no base64 or hex run that decodes to text. Without
// '%' and '&', the runs the decode pass judges are the maximal runs of
// base64 characters, judged here by the same runMode.
func plain(s string) bool {
	run := -1 // start of the current run of base64 characters
	for i := 0; i < len(s); i++ {
		k := asciiClass[s[i]]
		if k&clsPlain == 0 {
			return false
		}
		if k&clsRun != 0 {
			if run < 0 {
				run = i
			}
			continue
		}
		if run >= 0 && i-run >= minRun && runMode(s[run:i]) != modeNone {
			return false
		}
		run = -1
	}
	return run < 0 || len(s)-run < minRun || runMode(s[run:]) == modeNone
}

// String returns the normalised view, the text to scan.
func (t Text) String() string { return t.view }

// Source returns the original text.
func (t Text) Source() string { return t.src }

// Identity reports whether the view is the original text, byte for byte,
// and offsets in it are offsets in the original.
func (t Text) Identity() bool { return !t.changed }

// Capped reports whether some of the text was left less normalised than
// the rest to keep the view within 2*len(original)+Slack bytes: an NFKC
// expansion, a decoded escape or a decoded base64 or hex run that did not
// fit was left as written (or, for base64 and hex, not appended), or the
// text is longer than MaxInput and was not normalised at all. The view is
// still valid and its map exact; a caller that must not scan less than
// everything should treat a capped text as it treats a scan failure.
func (t Text) Capped() bool { return t.capped }

// Coarse reports whether the map was coarsened to stay within its bound of
// one piece for every two bytes of the original, which only hostile text
// needs (alternating invalid bytes and letters, say). Original then still
// covers every original byte that produced a span, but may cover more than
// the smallest such span.
func (t Text) Coarse() bool { return t.coarse }

// Original maps the span [start, end) of the view to the original text.
//
// For start < end it returns the smallest span of the original that holds
// every original byte that produced a byte of [start, end), widened to
// whole UTF-8 characters (a covering span, not always the smallest, when
// Coarse). Bytes copied unchanged map byte for byte; the bytes produced by
// one change all map to the whole of what was changed: a folded character,
// a decoded escape, or a base64 or hex token (with its padding or, for a
// JWT, its other parts) together with the decoded text appended to it.
// Characters dropped as invisible belong to no byte of the view, so they
// are covered when they lie inside the span ("1\u200b2" → "12": [0,2) maps
// to [0,5), [0,1) to [0,1)). The start of the result depends only on start,
// the end only on end, and neither decreases as start and end grow: a span
// that contains another maps to a span that contains the other's.
//
// For start == end it returns an empty span where the view byte at start
// comes from (the end of the original when start is the view's length).
//
// The result lies within the original and starts and ends at character
// boundaries (in the sense of utf8.DecodeRuneInString: each invalid byte is
// a character). ok is false, and the span zero, when the span is not within
// the view.
func (t Text) Original(start, end int) (int, int, bool) {
	if start < 0 || end < start || end > len(t.view) {
		return 0, 0, false
	}
	if !t.changed {
		s := runeFloor(t.src, start, 0)
		if start == end {
			return s, s, true
		}
		return s, runeCeil(t.src, end, len(t.src)), true
	}
	s := t.startOf(start)
	if start == end {
		return s, s, true
	}
	return s, t.endOf(end), true
}

// startOf maps the view offset x to where its byte's source begins.
func (t Text) startOf(x int) int {
	if x == len(t.view) {
		return len(t.src)
	}
	p := t.pcs[t.find(x)]
	if !p.verbatim {
		return int(p.src)
	}
	return runeFloor(t.src, int(p.src)+x-int(p.out), int(p.src))
}

// endOf maps the view offset x > 0 to where the source of the byte before
// it ends.
func (t Text) endOf(x int) int {
	p := t.pcs[t.find(x-1)]
	if !p.verbatim {
		return int(p.end)
	}
	return runeCeil(t.src, int(p.src)+x-int(p.out), int(p.end))
}

// find returns the index of the piece holding view byte x.
func (t Text) find(x int) int {
	return sort.Search(len(t.pcs), func(i int) bool { return int(t.pcs[i].out) > x }) - 1
}

func runeFloor(s string, i, lo int) int {
	for i > lo && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

func runeCeil(s string, i, hi int) int {
	for i < hi && !utf8.RuneStart(s[i]) {
		i++
	}
	return i
}

// state holds the buffers of one Normalize call, reused through statePool.
type state struct {
	main    [5]builder // clean, nfkc, confusables, escapes, runs
	sub     [3]builder // the character passes over decoded text
	memo    [nfkcMemoSize]nfkcMemo
	tmp     []byte // the fold of one NFKC segment
	seg     []byte // NFKC segments not yet folded
	nfkcBuf []byte // the NFKC form of one segment
	dec     []byte // the bytes of one escape or run
	app     []byte // a space and the fold of one decoded run
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// maxKept is the largest buffer a pooled state keeps: a rare huge text
// should not pin its buffers for the life of the process.
const maxKept = 1 << 20

func (st *state) release() {
	for i := range st.main {
		st.main[i].trim()
	}
	for i := range st.sub {
		st.sub[i].trim()
	}
	if cap(st.tmp) > maxKept {
		st.tmp = nil
	}
	if cap(st.nfkcBuf) > maxKept {
		st.nfkcBuf = nil
	}
	if cap(st.seg) > maxKept {
		st.seg = nil
	}
	if cap(st.dec) > maxKept {
		st.dec = nil
	}
	if cap(st.app) > maxKept {
		st.app = nil
	}
	statePool.Put(st)
}

func (b *builder) trim() {
	b.in, b.prev = "", nil
	if cap(b.out) > maxKept {
		b.out = nil
	}
	if cap(b.pcs)*16 > maxKept {
		b.pcs = nil
	}
}
