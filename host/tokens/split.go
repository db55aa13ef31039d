package tokens

import (
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer splits text into pieces with the o200k_base pattern
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}
//	| ?[^\s\p{L}\p{N}]+[\r\n/]*
//	|\s*[\r\n]+
//	|\s+(?!\S)
//	|\s+
//
// matched by hand: a backtracking regexp costs a few hundred nanoseconds per
// word, far more than the rest of the count. Each alternative below says which
// backtracking of the regexp it reproduces. \s is unicode.IsSpace, as in both
// tiktoken and the Go library.

// Character classes of a rune, as bits.
const (
	classLetter  = 1 << iota // \p{L}
	classNumber              // \p{N}
	classUpper               // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	classLower               // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	classSpace               // \s
	classNewline             // [\r\n]
	classDelete              // U+007F, which only the library's matcher treats specially
)

// bmpClasses holds the classes of every rune below U+10000, filled from the
// unicode tables by fillClasses; runes above it (emoji, rare scripts) are
// classified on the fly.
var bmpClasses [0x10000]uint8

func fillClasses() {
	set := func(t *unicode.RangeTable, c uint8) {
		for _, r := range t.R16 {
			for x := uint32(r.Lo); x <= uint32(r.Hi); x += uint32(r.Stride) {
				bmpClasses[x] |= c
			}
		}
		for _, r := range t.R32 {
			for x := r.Lo; x <= r.Hi && x < 0x10000; x += r.Stride {
				bmpClasses[x] |= c
			}
		}
	}
	set(unicode.L, classLetter)
	set(unicode.N, classNumber)
	for _, t := range []*unicode.RangeTable{unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M} {
		set(t, classUpper)
	}
	for _, t := range []*unicode.RangeTable{unicode.Ll, unicode.Lm, unicode.Lo, unicode.M} {
		set(t, classLower)
	}
	for r := rune(0); r < 0x10000; r++ {
		if unicode.IsSpace(r) {
			bmpClasses[r] |= classSpace
		}
	}
	bmpClasses['\r'] |= classNewline
	bmpClasses['\n'] |= classNewline
	bmpClasses[0x7f] |= classDelete
}

func classOf(r rune) uint8 {
	if r < 0x10000 {
		return bmpClasses[r]
	}
	var c uint8
	if unicode.IsLetter(r) {
		c |= classLetter
	}
	if unicode.IsNumber(r) {
		c |= classNumber
	}
	if unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M) {
		c |= classUpper
	}
	if unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M) {
		c |= classLower
	}
	if unicode.IsSpace(r) {
		c |= classSpace
	}
	return c
}

// next returns the classes and byte length of the rune at s[i]. s must be
// valid UTF-8. It is small enough to inline, so ASCII costs one load.
func next(s string, i int) (c uint8, n int) {
	if b := s[i]; b < utf8.RuneSelf {
		return bmpClasses[b], 1
	}
	return nextRune(s[i:])
}

func nextRune(s string) (uint8, int) {
	r, n := utf8.DecodeRuneInString(s)
	return classOf(r), n
}

// splitter finds the pieces of a text.
//
// Its zero value matches as tiktoken does. With library set, it reproduces
// two quirks of the matcher generated for github.com/tiktoken-go/tokenizer,
// so that tests can hold it to that library exactly: \s*[\r\n]+ backtracks to
// the first line break of a whitespace run rather than the last, and U+007F
// is left out of both negated classes, so that no alternative matches it and
// it makes no token (see count).
type splitter struct {
	library bool
}

// isPrefix reports whether a rune of classes c matches [^\r\n\p{L}\p{N}].
func (sp splitter) isPrefix(c uint8) bool {
	return c&(classLetter|classNumber|classNewline|sp.excluded()) == 0
}

// isPunct reports whether a rune of classes c matches [^\s\p{L}\p{N}].
func (sp splitter) isPunct(c uint8) bool {
	return c&(classSpace|classLetter|classNumber|sp.excluded()) == 0
}

func (sp splitter) excluded() uint8 {
	if sp.library {
		return classDelete
	}
	return 0
}

// piece returns the end of the piece that starts at s[i], i < len(s).
func (sp splitter) piece(s string, i int) int {
	end := asciiWord(s, i)
	if end >= 0 {
		return end
	}
	c, n := next(s, i)
	if end == maybeWord && (c&classLetter != 0 || sp.isPrefix(c)) {
		if end := sp.word(s, i, c, n); end >= 0 {
			return end
		}
	}
	if c&classNumber != 0 {
		// \p{N}{1,3}
		end := i + n
		for k := 1; k < 3 && end < len(s); k++ {
			c, n := next(s, end)
			if c&classNumber == 0 {
				break
			}
			end += n
		}
		return end
	}
	if c&classSpace == 0 || s[i] == ' ' {
		if end := sp.punct(s, i); end >= 0 {
			return end
		}
	}
	return sp.spaces(s, i)
}

// word matches the first two alternatives at s[i], whose rune has classes c
// and length n, or returns -1.
func (sp splitter) word(s string, i int, c uint8, n int) int {
	// The optional prefix is greedy: the regexp tries with it, then without.
	starts := [2]int{i, -1}
	if sp.isPrefix(c) {
		starts = [2]int{i + n, i}
	}
	// Alternative 1: U* L+ contraction?. U* is greedy, so L+ starts at the
	// end of the U run if it can; otherwise U* gives back runes one at a time
	// until L+ can start, which is at the last rune of the run that is in
	// both classes, and L+ then stops right after it.
	for _, st := range starts {
		if st < 0 {
			break
		}
		end, lastLower := st, -1
		for end < len(s) {
			c, n := next(s, end)
			if c&classUpper == 0 {
				break
			}
			end += n
			if c&classLower != 0 {
				lastLower = end
			}
		}
		if end < len(s) {
			if c, _ := next(s, end); c&classLower != 0 {
				return contraction(s, lowerRun(s, end))
			}
		}
		if lastLower >= 0 {
			return contraction(s, lastLower)
		}
	}
	// Alternative 2: U+ L* contraction?, which cannot fail once U+ matched.
	for _, st := range starts {
		if st < 0 {
			break
		}
		end := st
		for end < len(s) {
			c, n := next(s, end)
			if c&classUpper == 0 {
				break
			}
			end += n
		}
		if end > st {
			return contraction(s, lowerRun(s, end))
		}
	}
	return -1
}

// Results of asciiWord that are not a piece's end.
const (
	noWord    = -1 // the word alternatives cannot match here
	maybeWord = -2 // the general path must decide
)

// asciiWord matches the first two alternatives at s[i] for the common case
// of an ASCII word, optionally after one ASCII space or punctuation mark, that
// ends before an ASCII byte. Otherwise it returns noWord or maybeWord.
//
// For such a word the alternatives reduce to: [A-Z]*[a-z]+ (alternative 1,
// which cannot backtrack into a useful match as no ASCII capital is also in
// the lower class), else [A-Z]+ (alternative 2, as no lower follows); either
// way the word ends where its capitals and then its lowers end.
func asciiWord(s string, i int) int {
	j := i
	if b := s[j]; b >= utf8.RuneSelf {
		return maybeWord
	} else if bmpClasses[b]&classLetter == 0 {
		// A number or line break starts no word; another byte may prefix
		// one only if a letter (or a mark, which is not ASCII) follows.
		if j+1 >= len(s) || bmpClasses[b]&(classNumber|classNewline) != 0 {
			return noWord
		}
		if b := s[j+1]; b >= utf8.RuneSelf {
			return maybeWord
		} else if bmpClasses[b]&classLetter == 0 {
			return noWord
		}
		j++
	}
	end := j
	for end < len(s) && 'A' <= s[end] && s[end] <= 'Z' {
		end++
	}
	for end < len(s) && 'a' <= s[end] && s[end] <= 'z' {
		end++
	}
	if end < len(s) && s[end] >= utf8.RuneSelf {
		return maybeWord
	}
	return contraction(s, end)
}

// lowerRun returns the end of the run of [\p{Ll}\p{Lm}\p{Lo}\p{M}] at s[i].
func lowerRun(s string, i int) int {
	for i < len(s) {
		c, n := next(s, i)
		if c&classLower == 0 {
			break
		}
		i += n
	}
	return i
}

// contraction extends a word ending at s[i] by (?i:'s|'t|'re|'ve|'m|'ll|'d).
// Case folding makes 's match the long s (U+017F) too.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return i
	}
	lower := func(k int) byte {
		if k < len(s) {
			return s[k] | 0x20
		}
		return 0
	}
	switch lower(i + 1) {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v':
		if lower(i+2) == 'e' {
			return i + 3
		}
	case 'l':
		if lower(i+2) == 'l' {
			return i + 3
		}
	}
	if s[i+1] == 0xC5 && i+2 < len(s) && s[i+2] == 0xBF { // ſ
		return i + 3
	}
	return i
}

// punct matches ' ?[^\s\p{L}\p{N}]+[\r\n/]*' at s[i], or returns -1. Its
// quantifiers never need to give anything back: a space is not in the class
// that follows it, and the class includes '/'.
func (sp splitter) punct(s string, i int) int {
	if s[i] == ' ' {
		i++
	}
	end := i
	for end < len(s) {
		c, n := next(s, end)
		if !sp.isPunct(c) {
			break
		}
		end += n
	}
	if end == i {
		return -1
	}
	for end < len(s) && (s[end] == '\r' || s[end] == '\n' || s[end] == '/') {
		end++
	}
	return end
}

// spaces matches the last three alternatives at s[i], which is whitespace.
func (sp splitter) spaces(s string, i int) int {
	// The run of \s, where the newlines in it are, and where its last rune
	// starts.
	end, last := i, i
	firstNL, lastNL := -1, -1
	for end < len(s) {
		c, n := next(s, end)
		if c&classSpace == 0 {
			break
		}
		if c&classNewline != 0 {
			if firstNL < 0 {
				firstNL = end
			}
			lastNL = end
		}
		last = end
		end += n
	}
	// \s*[\r\n]+: \s* takes the whole run, then backtracks to the last
	// newline in it, and [\r\n]+ takes that one.
	if lastNL >= 0 {
		if sp.library {
			// The library's matcher backtracks to the first line break of
			// the run instead, then takes the line breaks that follow it.
			end = firstNL
			for end < len(s) && (s[end] == '\r' || s[end] == '\n') {
				end++
			}
			return end
		}
		return lastNL + 1
	}
	// \s+(?!\S): the whole run at the end of the text; otherwise the run
	// less its last rune, which is left to prefix the word that follows.
	if end == len(s) || last == i {
		// \s+ when the run is a single rune before a non-space.
		return end
	}
	return last
}
