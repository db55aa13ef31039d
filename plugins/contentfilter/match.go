package contentfilter

import (
	"math/bits"
	"unicode/utf8"
)

// fold maps an ASCII byte to its folded form: letters to lower case,
// leetspeak digits and symbols to the letter they stand for, other letters
// and digits to themselves, anything else to 0. '1', '!' and '|' stand for
// 'i' or 'l' and fold to ambiguous, which eq lets match either.
var fold = func() (t [utf8.RuneSelf]byte) {
	for c := range utf8.RuneSelf {
		t[c] = lowerWord[c]
	}
	for _, p := range []string{"0o", "1I", "3e", "4a", "5s", "7t", "8b", "@a", "$s", "!I", "|I"} {
		t[p[0]] = p[1]
	}
	return t
}()

// ambiguous is the folded form of '1', '!' and '|': 'i' or 'l'.
const ambiguous = 'I'

// isSymbol reports whether c is a leet symbol: a letter inside a word or at its
// start, punctuation elsewhere.
func isSymbol(c byte) bool { return c == '@' || c == '$' || c == '!' || c == '|' }

// symbols are the leet symbols.
var symbols = []byte{'@', '$', '!', '|'}

// symbolFor reports whether some leet symbol folds to the folded letter c.
func symbolFor(c byte) bool { return len(symbolForms(c)) > 0 }

// symbolForms returns the leet symbols that fold to the folded letter c.
func symbolForms(c byte) []byte {
	switch c {
	case 'a':
		return []byte{'@'}
	case 's':
		return []byte{'$'}
	case 'i', 'l', ambiguous:
		return []byte{'!', '|'}
	}
	return nil
}

// rawForms returns the lower-case ASCII bytes that fold to the folded byte c.
func rawForms(c byte) []byte {
	switch c {
	case 'a':
		return []byte{'a', '4'}
	case 'b':
		return []byte{'b', '8'}
	case 'e':
		return []byte{'e', '3'}
	case 'i', 'l':
		return []byte{c, '1'}
	case 'o':
		return []byte{'o', '0'}
	case 's':
		return []byte{'s', '5'}
	case 't':
		return []byte{'t', '7'}
	case ambiguous:
		return []byte{'1'}
	}
	return []byte{c}
}

// eq reports whether the folded text byte c matches the folded term byte p.
func eq(c, p byte) bool { return c == p || c == ambiguous && (p == 'i' || p == 'l') }

// minEdit is the length from which a word matches one edit away.
const minEdit = 6

func editable(w string) bool { return len(w) >= minEdit }

// edits returns the words one edit (a substitution, a deletion or an
// insertion) away from w that keep its first two letters.
func edits(w string) []string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz269" + string(ambiguous)
	var out []string
	for k := 2; k <= len(w); k++ {
		if k < len(w) {
			out = append(out, w[:k]+w[k+1:])
		}
		for _, c := range []byte(alphabet) {
			if k < len(w) {
				out = append(out, w[:k]+string(c)+w[k+1:])
			}
			out = append(out, w[:k]+string(c)+w[k:])
		}
	}
	return out
}

// maxWord is the longest word the matcher folds; longer words match nothing.
const maxWord = 40

// textWord is one word of the text, folded.
type textWord struct {
	b      [maxWord]byte
	n      int
	long   bool // longer than maxWord
	symbol bool // starts with a leet symbol
	start  int  // where lookahead found it
}

func (w *textWord) add(c byte) {
	if w.n < maxWord {
		w.b[w.n] = c
		w.n++
	} else {
		w.long = true
	}
}

// read folds the word starting at i into w and returns its end. A leet
// symbol belongs to the word when a letter or digit follows it.
func (w *textWord) read(text []byte, i int) int {
	w.n, w.long, w.symbol = 0, false, i < len(text) && isSymbol(text[i])
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			f := fold[c]
			if f == 0 || isSymbol(c) && !(i+1 < len(text) && (lowerWord[text[i+1]] != 0)) {
				break
			}
			w.add(f)
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError || !isLetterRune(r) {
			break
		}
		if folded, ok := foldLatin1(r); ok {
			for k := 0; k < len(folded); k++ {
				w.add(folded[k])
			}
		} else {
			for _, b := range text[i : i+size] {
				w.add(b)
			}
		}
		i += size
	}
	return i
}

// hash returns wordHash of w with the ambiguous byte read as alt.
func (w *textWord) hash(n int, alt byte) uint32 {
	h := uint32(fnvOffset)
	for _, c := range w.b[:n] {
		if c == ambiguous {
			c = alt
		}
		h = (h ^ uint32(c)) * fnvPrime
	}
	return h
}

// How a text word matched a term's word.
const (
	noMatch = iota
	exact   // up to case, accents, leetspeak and plural
	edited  // one edit away
)

// matchWord reports how the folded text word t matches the folded term word
// p, trying an edit if edit allows.
func matchWord(t []byte, p string, edit bool) int {
	if len(t) >= len(p) && len(t) <= len(p)+2 {
		k := 0
		for k < len(p) && eq(t[k], p[k]) {
			k++
		}
		if k == len(p) {
			switch string(t[len(p):]) {
			case "", "s", "es":
				return exact
			}
		}
	}
	if edit && len(p) >= minEdit && len(t) > 1 && eq(t[0], p[0]) && eq(t[1], p[1]) && oneEdit(t, p) {
		return edited
	}
	return noMatch
}

// oneEdit reports whether t is at most one substitution, deletion or
// insertion away from p.
func oneEdit(t []byte, p string) bool {
	if len(t) > len(p)+1 || len(p) > len(t)+1 {
		return false
	}
	k := 0
	for k < len(t) && k < len(p) && eq(t[k], p[k]) {
		k++
	}
	rest := func(a []byte, b string) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if !eq(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	if k == len(t) || k == len(p) {
		return true // equal up to one byte at the end
	}
	return rest(t[k+1:], p[k+1:]) || rest(t[k+1:], p[k:]) || rest(t[k:], p[k+1:])
}

// letterBit maps a folded first letter to a bit: one per letter a to z, and
// one for everything else.
func letterBit(c byte) uint32 {
	if c >= 'a' && c <= 'z' {
		return 1 << (c - 'a')
	}
	return 1 << 26
}

// textLetters is the letterBit a folded text letter may match: '1' may be 'i'
// or 'l'.
func textLetters(c byte) uint32 {
	if c == ambiguous {
		return letterBit('i') | letterBit('l') | letterBit(c)
	}
	return letterBit(c)
}

// matchSlot reports how the folded text word t matches s.
func matchSlot(t []byte, s *slot) int {
	if s.any {
		if len(t) == 0 {
			return noMatch
		}
		return exact
	}
	if len(t) == 0 || len(t) < s.minLen || len(t) > s.maxLen || textLetters(t[0])&s.letters == 0 {
		return noMatch
	}
	if s.prefix {
		p := s.words[0]
		if len(t) < len(p) {
			return noMatch
		}
		for k := range len(p) {
			if !eq(t[k], p[k]) {
				return noMatch
			}
		}
		return exact
	}
	best := noMatch
	for k, w := range s.words {
		switch matchWord(t, w, s.noEdit == nil || !s.noEdit[k]) {
		case exact:
			return exact
		case edited:
			best = edited
		}
	}
	return best
}

// maxInserted is the longest word that may be inserted into a phrase.
const maxInserted = 7

// nextWord returns the start of the next word at or after i, or len(text).
func nextWord(text []byte, i int) int {
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			if lowerWord[c] != 0 || isSymbol(c) && i+1 < len(text) && lowerWord[text[i+1]] != 0 {
				return i
			}
			i++
			continue
		}
		size, word := charAt(text, i)
		if word {
			return i
		}
		i += size
	}
	return i
}

// maxWords is the most words a term may have, and how far the matcher
// looks ahead.
const maxWords = 12

// lookahead holds the words after a candidate first word, read and folded
// once however many terms are tried against them.
type lookahead struct {
	text  []byte
	from  int // where the next unread word is looked for
	n     int // words read
	words [maxWords]textWord
	ends  [maxWords]int
	eof   bool
}

// word returns the k-th word after the first (from 0), or nil past the end of
// the text.
func (la *lookahead) word(k int) (*textWord, int) {
	for la.n <= k && !la.eof {
		j := nextWord(la.text, la.from)
		if j == len(la.text) {
			la.eof = true
			break
		}
		w := &la.words[la.n]
		w.start = j
		la.from = w.read(la.text, j)
		la.ends[la.n] = la.from
		la.n++
	}
	if k >= la.n {
		return nil, 0
	}
	return &la.words[k], la.ends[k]
}

// matchRest matches the slots of a phrase against the words of la. It
// returns the end of the last word and whether a word needed an edit or was
// inserted, or -1.
func matchRest(la *lookahead, e int, rest []slot) (end int, fuzzy bool) {
	inserted := false
	end = e
	k := 0 // the next word of la
	for s := 0; s < len(rest); {
		var w *textWord
		var we int
		if k < la.n {
			w, we = &la.words[k], la.ends[k]
		} else {
			w, we = la.word(k)
		}
		if w == nil {
			if rest[s].optional {
				s++
				continue
			}
			return -1, false
		}
		m := noMatch
		if !w.long {
			m = matchSlot(w.b[:w.n], &rest[s])
		}
		if m == noMatch && w.symbol {
			// A symbol that is punctuation after all: "@bomb" read as "bomb".
			var alt textWord
			if alt.read(la.text, w.start+1); !alt.long {
				m = matchSlot(alt.b[:alt.n], &rest[s])
			}
		}
		switch {
		case m != noMatch:
			fuzzy = fuzzy || m == edited
			end = we
			k++
			s++
		case rest[s].optional:
			s++
		case !inserted && w.n <= maxInserted && !w.long:
			inserted, fuzzy = true, true
			k++
		default:
			return -1, false
		}
	}
	return end, fuzzy
}

// matchAt looks for a term starting with the word at s. It appends the
// longest one found to dst and returns where the scan goes on: after the
// term, or after the word if none matched.
//
// When no term matches, the scan goes on after the letters and digits at s,
// not after the leet word: in "x@bomb" the word "bomb" still gets its turn.
func (f *Filter) matchAt(dst []Finding, text []byte, s int, la *lookahead) ([]Finding, int) {
	var w textWord
	e := w.read(text, s)
	// A leet symbol before the word may be its first letter: "$ynthesize".
	// Such a word must then match without an edit.
	if s > 0 && isSymbol(text[s-1]) && (s == 1 || lowerWord[text[s-2]] == 0 && text[s-2] < utf8.RuneSelf) {
		var ws textWord
		ws.read(text, s-1)
		if !ws.long {
			if found, end := f.longest(text, &ws, e, la, false); end > 0 {
				return f.report(dst, text, s-1, end, found)
			}
		}
	}
	if !w.long {
		if found, end := f.longest(text, &w, e, la, true); end > 0 {
			return f.report(dst, text, s, end, found)
		}
	}
	return dst, plainEnd(text, s)
}

// plainEnd returns the end of the run of letters and digits at i: the word
// as skim sees it.
func plainEnd(text []byte, i int) int {
	for i < len(text) {
		if c := text[i]; c < utf8.RuneSelf {
			if lowerWord[c] == 0 {
				break
			}
			i++
			continue
		}
		size, word := charAt(text, i)
		if !word {
			break
		}
		i += size
	}
	return i
}

// report appends a finding from s to end unless the allow list covers it,
// and returns where the scan goes on.
func (f *Filter) report(dst []Finding, text []byte, s, end int, found Finding) ([]Finding, int) {
	if f.allow != nil && f.allow.overlaps(text, s, end) {
		return dst, end
	}
	found.Start, found.End = s, end
	return append(dst, found), end
}

// longest returns the longest term whose first word is w (the text word
// ending at e) and the end of its match, or 0. With edits false, the first
// word must match without an edit.
func (f *Filter) longest(text []byte, w *textWord, e int, la *lookahead, edits bool) (Finding, int) {
	var best Finding
	bestEnd := 0
	la.text, la.from, la.n, la.eof = text, e, 0, false
	try := func(g *group, fuzzy bool) {
		for _, p := range g.phrases {
			end, fz := e, fuzzy
			if len(p.rest) > 0 {
				var rf bool
				if end, rf = matchRest(la, e, p.rest); end < 0 {
					continue
				}
				fz = fz || rf
			}
			sc := score
			if fz {
				sc = fuzzyScore
			}
			if end > bestEnd || end == bestEnd && sc > best.Score {
				best, bestEnd = Finding{Type: p.typ, Score: sc}, end
			}
		}
	}
	t := w.b[:w.n]
	seen := [4]int32{-1, -1, -1, -1}
	lookup := func(h uint32, n int) {
		for i := h & f.mask; f.slots[i] != 0; i = (i + 1) & f.mask {
			k := f.slots[i] - 1
			g := &f.groups[k]
			if g.hash != h || len(g.first) != n || k == seen[0] || k == seen[1] || k == seen[2] || k == seen[3] {
				continue
			}
			if matchWord(t, g.first, false) == exact {
				seen[0], seen[1], seen[2], seen[3] = k, seen[0], seen[1], seen[2]
				try(g, false)
			}
		}
	}
	// The word as written, with '1' as 'i' and then as 'l', then without a
	// plural ending.
	ambig := false
	for _, c := range t {
		ambig = ambig || c == ambiguous
	}
	for _, n := range []int{w.n, w.n - 1, w.n - 2} {
		if n < 1 || n < w.n && t[n] != 's' && t[n] != 'e' {
			break
		}
		lookup(w.hash(n, 'i'), n)
		if ambig {
			lookup(w.hash(n, 'l'), n)
			lookup(w.hash(n, ambiguous), n)
		}
	}
	if !edits {
		return best, bestEnd
	}
	if w.n >= minEdit-1 && t[0] == ambiguous {
		// '1' for both 'i' and 'l' in one word ("1llega1") escapes the hash.
		for _, k := range f.long[bits.TrailingZeros32(letterBit('i'))] {
			if m := matchWord(t, f.groups[k].first, true); m != noMatch {
				try(&f.groups[k], m == edited)
			}
		}
		for _, k := range f.long[bits.TrailingZeros32(letterBit('l'))] {
			if m := matchWord(t, f.groups[k].first, true); m != noMatch {
				try(&f.groups[k], m == edited)
			}
		}
	}
	if w.n >= minEdit-1 {
		for _, k := range f.long[bits.TrailingZeros32(letterBit(t[0]))] {
			if k == seen[0] || k == seen[1] || k == seen[2] || k == seen[3] {
				continue
			}
			if m := matchWord(t, f.groups[k].first, true); m != noMatch {
				try(&f.groups[k], m == edited)
			}
		}
	}
	return best, bestEnd
}

// overlaps reports whether a term of f matches words overlapping text[s:end],
// starting at most two words before s.
func (f *Filter) overlaps(text []byte, s, end int) bool {
	lo := s
	for n := 0; n < 2 && lo > 0; n++ {
		k := lo
		for k > 0 && !wordByte(text[k-1]) {
			k--
		}
		if k == 0 || s-k > 32 {
			break
		}
		for k > 0 && wordByte(text[k-1]) {
			k--
		}
		lo = k
	}
	var la lookahead
	for i := lo; i < end; {
		i = nextWord(text, i)
		if i >= end {
			break
		}
		var w textWord
		e := w.read(text, i)
		if !w.long {
			if _, mend := f.longest(text, &w, e, &la, true); mend > s {
				return true
			}
		}
		i = e
	}
	return false
}

// wordByte reports whether c may be part of a word (any non-ASCII byte may).
func wordByte(c byte) bool { return c >= utf8.RuneSelf || fold[c] != 0 }
