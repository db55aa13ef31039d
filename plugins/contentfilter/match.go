package contentfilter

import (
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

// keep is how many letters of a word an edit leaves alone. The skim tests
// the first three bytes of a word; an edit among them would make a candidate
// of every word that shares the others ("under" for "untraceable").
const keep = 3

// edits returns the words one edit (a substitution, a deletion or an
// insertion) away from w that keep its first letters.
func edits(w string) []string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz269" + string(ambiguous)
	var out []string
	for k := keep; k <= len(w); k++ {
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

// textWord is one word of the text, folded, with the hashes the matcher
// compares before it compares bytes.
type textWord struct {
	b      [maxWord]byte
	n      int
	long   bool // longer than maxWord
	symbol bool // starts with a leet symbol
	ambig  bool // holds the ambiguous byte ('1', '!' or '|')
	endS   bool // ends in 's'
	endES  bool // ends in "es"
	plain  bool // only ASCII letters and digits: the word as skim sees it
	// h is keyHash of the word; h1 of the word without its last byte, h2
	// without its last two: the word without a plural ending.
	h, h1, h2 uint32
	start     int // where lookahead found it
}

// isSymbolTab is isSymbol as a table: one load instead of four compares.
var isSymbolTab = func() (t [256]bool) {
	for _, s := range symbols {
		t[s] = true
	}
	return t
}()

// read folds the word starting at i into w and returns its end. A leet
// symbol belongs to the word when a letter or digit follows it.
func (w *textWord) read(text []byte, i int) int {
	n, h, h1, h2 := 0, uint32(fnvOffset), uint32(0), uint32(0)
	sawSymbol, sawHigh := false, false
	w.long, w.ambig, w.symbol = false, false, i < len(text) && isSymbolTab[text[i]]
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			f := fold[c]
			if f == 0 || isSymbolTab[c] && (i+1 >= len(text) || lowerWord[text[i+1]] == 0) {
				break
			}
			if n < maxWord {
				w.b[n] = f
			} else {
				w.long = true
			}
			n++
			sawSymbol = sawSymbol || isSymbolTab[c]
			if f == ambiguous {
				w.ambig, f = true, 'i'
			}
			h2, h1, h = h1, h, (h^uint32(f))*fnvPrime
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError || !isLetterRune(r) {
			break
		}
		sawHigh = true
		folded, ok := foldLatin1(r)
		if !ok {
			folded = string(text[i : i+size])
		}
		for k := 0; k < len(folded); k++ {
			if n < maxWord {
				w.b[n] = folded[k]
			} else {
				w.long = true
			}
			n++
			h2, h1, h = h1, h, (h^uint32(folded[k]))*fnvPrime
		}
		i += size
	}
	w.n, w.h, w.h1, w.h2 = min(n, maxWord), h, h1, h2
	w.plain = !w.symbol && !sawSymbol && !sawHigh
	w.endS = n >= 2 && n <= maxWord && w.b[n-1] == 's'
	w.endES = w.endS && n >= 3 && w.b[n-2] == 'e'
	return i
}

// hashAs returns keyHash of the first n bytes of w with the ambiguous byte
// read as alt.
func (w *textWord) hashAs(n int, alt byte) uint32 {
	h := uint32(fnvOffset)
	for _, c := range w.b[:n] {
		if c == ambiguous {
			c = alt
		}
		h = (h ^ uint32(c)) * fnvPrime
	}
	return h
}

// keyHash is FNV-1a over the bytes of a folded word, with the ambiguous byte
// read as 'i', the way read hashes text.
func keyHash(w string) uint32 {
	h := uint32(fnvOffset)
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c == ambiguous {
			c = 'i'
		}
		h = (h ^ uint32(c)) * fnvPrime
	}
	return h
}

// equalFold reports whether the folded text bytes t match the term word p
// byte for byte (eq).
func equalFold(t []byte, p string) bool {
	if len(t) != len(p) {
		return false
	}
	for k := range len(p) {
		if !eq(t[k], p[k]) {
			return false
		}
	}
	return true
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
	if edit && len(p) >= minEdit && len(t) >= keep && eq(t[0], p[0]) && eq(t[1], p[1]) && eq(t[2], p[2]) && oneEdit(t, p) {
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
func textLetters(c byte) uint32 { return textLettersTab[c] }

// textLettersTab is textLetters as a table, which calls cost nothing.
var textLettersTab = func() (t [256]uint32) {
	for c := range 256 {
		t[c] = letterBit(byte(c))
	}
	t[ambiguous] |= letterBit('i') | letterBit('l')
	return t
}()

// matchSlot reports how the text word w matches s. Whole words are compared
// by hash first, so that a slot of many words costs a few integer compares.
func matchSlot(w *textWord, s *slot) int {
	if w.n == 0 || w.long {
		return noMatch
	}
	if s.any {
		return exact
	}
	t := w.b[:w.n]
	if w.n < s.minLen || w.n > s.maxLen || textLetters(t[0])&s.letters == 0 {
		return noMatch
	}
	if s.prefix {
		p := s.words[0]
		if len(t) < len(p) || !equalFold(t[:len(p)], p) {
			return noMatch
		}
		return exact
	}
	best := noMatch
	for k, p := range s.words {
		ph := s.hashes[k]
		if w.n == len(p) && w.h == ph || w.endS && w.n-1 == len(p) && w.h1 == ph || w.endES && w.n-2 == len(p) && w.h2 == ph {
			if equalFold(t[:len(p)], p) {
				return exact
			}
		}
		edit := s.noEdit == nil || !s.noEdit[k]
		if w.ambig || edit && len(p) >= minEdit && w.n >= len(p)-1 && w.n <= len(p)+1 {
			// The hash read '1' as 'i'; "ki11" needs the bytes.
			switch matchWord(t, p, edit) {
			case exact:
				return exact
			case edited:
				best = edited
			}
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
	// peek[k] is letters(k+1), for the first peeked words; peekAt is where
	// the next word to peek at is looked for.
	peek           [maxReach]uint32
	peeked, peekAt int
}

// word returns the k-th word after the first (from 0), or nil past the end of
// the text.
func (la *lookahead) word(k int) (*textWord, int) {
	for la.n <= k && !la.eof {
		// Most separators are one space: skip it without a call.
		j := la.from
		if j+1 < len(la.text) && la.text[j] == ' ' && lowerWord[la.text[j+1]]&^nonASCII != 0 {
			j++
		} else {
			j = nextWord(la.text, j)
		}
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

// letters returns the letterBits the next n words of la (at most maxReach)
// may stand for, from their first bytes: more than one for '1', a leading
// symbol (which may be a letter or punctuation) or a non-ASCII letter (which
// may fold to anything). It reads no word in full, so that a first word
// whose phrases cannot go on costs little.
func (la *lookahead) letters(n int) uint32 {
	for la.peeked < n {
		j := la.peekAt
		if j+1 < len(la.text) && la.text[j] == ' ' && lowerWord[la.text[j+1]]&^nonASCII != 0 {
			j++ // one space, the usual separator, without a call
		} else {
			j = nextWord(la.text, j)
		}
		if j >= len(la.text) {
			for ; la.peeked < maxReach; la.peeked++ {
				la.peek[la.peeked] = la.peek[max(0, la.peeked-1)]
			}
			break
		}
		var m uint32
		if la.peeked > 0 {
			m = la.peek[la.peeked-1]
		}
		c := la.text[j]
		switch {
		case c >= utf8.RuneSelf:
			m = allLetters
		case isSymbolTab[c]:
			m |= textLetters(fold[c])
			if j+1 < len(la.text) {
				if c1 := la.text[j+1]; c1 >= utf8.RuneSelf {
					m = allLetters
				} else {
					m |= textLetters(fold[c1])
				}
			}
		default:
			m |= textLetters(fold[c])
		}
		k := j
		for k < len(la.text) && lowerWord[la.text[k]]&^nonASCII != 0 {
			k++
		}
		if k < len(la.text) && (la.text[k] >= utf8.RuneSelf || isSymbolTab[la.text[k]]) {
			var w textWord // the word goes on past letters and digits: read it all
			k = w.read(la.text, j)
		}
		la.peekAt = k
		la.peek[la.peeked] = m
		la.peeked++
	}
	if n == 0 {
		return 0
	}
	return la.peek[n-1]
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
		if sl := &rest[s]; sl.any || w.n >= sl.minLen && w.n <= sl.maxLen && textLetters(w.b[0])&sl.letters != 0 {
			m = matchSlot(w, sl) // most words fail the test above, without a call
		}
		if m == noMatch && w.symbol {
			// A symbol that is punctuation after all: "@bomb" read as "bomb".
			var alt textWord
			alt.read(la.text, w.start+1)
			m = matchSlot(&alt, &rest[s])
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
	if w.plain {
		return dst, e
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
	la.text, la.from, la.n, la.eof, la.peeked, la.peekAt = text, e, 0, false, 0, e
	var b best
	n := w.n
	f.probe(w, w.h, n, la, e, &b)
	if w.endS {
		f.probe(w, w.h1, n-1, la, e, &b)
	}
	if w.endES {
		f.probe(w, w.h2, n-2, la, e, &b)
	}
	if w.ambig {
		f.probe(w, w.hashAs(n, 'l'), n, la, e, &b)
	}
	if !edits || n < minEdit-1 ||
		!w.ambig && len(f.long[letterIndex(w.b[0])*letters+letterIndex(w.b[1])]) == 0 {
		return b.found, b.end
	}
	for _, i0 := range letterIndexes(w.b[0]) {
		for _, i1 := range letterIndexes(w.b[1]) {
			for _, k := range f.long[i0*letters+i1] {
				g := &f.groups[k]
				// An exact match was found by its hash, unless the word mixes
				// '1' for 'i' and for 'l' ("1llega1").
				if m := matchWord(w.b[:n], g.first, true); m == edited || m == exact && w.ambig {
					f.tryGroup(g, m == edited, la, e, &b)
				}
			}
		}
	}
	return b.found, b.end
}

// best is the longest match found so far.
type best struct {
	found Finding
	end   int
}

// probe tries the groups whose first word has hash h and is the first n
// bytes of w, the rest of w being "", "s" or "es".
func (f *Filter) probe(w *textWord, h uint32, n int, la *lookahead, e int, b *best) {
	for i := h & f.mask; f.slots[i] != 0; i = (i + 1) & f.mask {
		g := &f.groups[f.slots[i]-1]
		if g.hash == h && len(g.first) == n && equalFold(w.b[:n], g.first) {
			f.tryGroup(g, false, la, e, b)
		}
	}
}

// tryGroup matches the terms of g after its first word, which ends at e,
// and keeps the longest in b.
func (f *Filter) tryGroup(g *group, fuzzy bool, la *lookahead, e int, b *best) {
	for _, p := range g.phrases {
		if p.need != allLetters {
			m := uint32(0)
			if la.peeked >= p.reach {
				m = la.peek[p.reach-1] // peeked for an earlier phrase: no call
			} else {
				m = la.letters(p.reach)
			}
			if m&p.need == 0 {
				continue // "end of the quarter" for "end my life": no need to read on
			}
		}
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
		if end > b.end || end == b.end && sc > b.found.Score {
			b.found, b.end = Finding{Type: p.typ, Score: sc}, end
		}
	}
}

// letters is the number of letter indexes: a to z, and one for the rest.
const letters = 27

// letterIndex maps a folded byte to its letter index.
func letterIndex(c byte) int {
	if c >= 'a' && c <= 'z' {
		return int(c - 'a')
	}
	return letters - 1
}

// letterIndexes returns the letter indexes a folded text byte may stand for.
func letterIndexes(c byte) []int {
	if c == ambiguous {
		return ambiguousIndexes[:]
	}
	return oneIndex[letterIndex(c)][:]
}

var (
	ambiguousIndexes = [3]int{int('i' - 'a'), int('l' - 'a'), letters - 1}
	oneIndex         = func() (t [letters][1]int) {
		for k := range t {
			t[k][0] = k
		}
		return t
	}()
)

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
		if !w.long && w.n > 0 {
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
