// Package contentfilter flags configured terms and phrases in text, by
// category. Matching is case-insensitive, ignores common Latin accents
// ("Café" matches "cafe") and respects word boundaries: "bomb" matches in
// "a bomb!" but not in "bombastic"; a phrase matches across any run of spaces
// or punctuation between its words ("build a bomb", "build a-bomb").
//
// A word is a run of ASCII letters and digits and of non-ASCII letters (see
// isLetterRune). Scan never folds or copies the text: it finds word starts
// sixteen bytes at a time, tests the first two and then three bytes of each
// word against the first words of the phrases, and folds and compares words
// only where a phrase may start. Go compiled to WebAssembly pays for every
// jump and call, so the common path is straight-line arithmetic on 64-bit
// words.
package contentfilter

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

// BlockedTerm is the finding type for terms given as a plain list.
const BlockedTerm = "BLOCKED_TERM"

// Config is the plugin configuration, given as JSON. Both fields may be used;
// with neither, DefaultCategories apply.
type Config struct {
	// Categories maps a category name to its terms. Findings take the name
	// upper-cased, with other characters than letters and digits turned
	// into '_': "self-harm" reports SELF_HARM.
	Categories map[string][]string `json:"categories"`
	// Terms are reported as BLOCKED_TERM.
	Terms []string `json:"terms"`
}

// DefaultCategories is used when the configuration names no terms: a short list
// of requests for serious harm whose wording leaves little doubt.
var DefaultCategories = map[string][]string{
	"violence": {"build a bomb", "make a bomb", "pipe bomb", "make a pipe bomb",
		"plan a mass shooting", "how to kill someone"},
	"weapons":   {"ghost gun", "untraceable gun", "3d printed gun", "convert to full auto"},
	"self_harm": {"kill myself", "how to commit suicide", "end my life"},
	"malware": {"write ransomware", "build a keylogger", "create a botnet",
		"bypass antivirus detection"},
	"drugs": {"synthesize methamphetamine", "cook meth", "make fentanyl"},
}

// Finding is one match: Start and End are byte offsets into the scanned text
// (End exclusive).
type Finding struct {
	Type       string
	Start, End int
	Score      float64
}

// score is the confidence of a match: the operator listed the phrase verbatim.
const score = 0.9

// Filter matches configured phrases. It is immutable after New and safe for
// concurrent use.
type Filter struct {
	// pairs[c0 | c1<<8] is 1 if a word whose first two bytes are c0 and c1,
	// as they appear in the text, may start a phrase. It is the first test of
	// every word, so it is indexed by raw bytes (case, the end of the word and
	// non-ASCII bytes are dealt with once, in New), and holds bytes rather
	// than bits, which saves skim four instructions a byte.
	pairs *[1 << 16]byte
	// starts is a Bloom filter of the first three bytes of every phrase's
	// first word (see prefixHash), the test of the words that pass pairs.
	starts [1 << 16 / 64]uint64
	// slots is an open-addressing table from the hash of a folded first word
	// to its group: slot value k > 0 is groups[k-1]; 0 ends a probe.
	slots []int32
	mask  uint32 // len(slots)-1; len(slots) is a power of two
	// groups holds the phrases by first word, one group per distinct word.
	groups []group
}

// group is the phrases that start with one folded word, longest first so the
// longest match wins.
type group struct {
	hash    uint32 // wordHash(first)
	first   string
	phrases []phrase
}

type phrase struct {
	typ  string
	rest []string // folded words after the first
}

// New returns a Filter configured from JSON (see Config).
func New(config []byte) (*Filter, error) {
	var cfg Config
	if len(config) > 0 {
		if err := json.Unmarshal(config, &cfg); err != nil {
			return nil, fmt.Errorf("contentfilter config: %w", err)
		}
	}
	if len(cfg.Categories) == 0 && len(cfg.Terms) == 0 {
		cfg.Categories = DefaultCategories
	}
	f := &Filter{pairs: new([1 << 16]byte)}
	index := map[string]int{} // first word → its index in f.groups
	add := func(typ, term string) error {
		words := foldWords(term)
		if len(words) == 0 {
			return fmt.Errorf("contentfilter config: %s: term %q has no letters or digits", typ, term)
		}
		k, ok := index[words[0]]
		if !ok {
			k = len(f.groups)
			index[words[0]] = k
			f.groups = append(f.groups, group{hash: wordHash(words[0]), first: words[0]})
		}
		f.groups[k].phrases = append(f.groups[k].phrases, phrase{typ: typ, rest: words[1:]})
		return nil
	}
	// Sorted so that duplicate terms across categories resolve the same way every time.
	for _, name := range slices.Sorted(maps.Keys(cfg.Categories)) {
		typ, err := categoryType(name)
		if err != nil {
			return nil, err
		}
		for _, term := range cfg.Categories[name] {
			if err := add(typ, term); err != nil {
				return nil, err
			}
		}
	}
	for _, term := range cfg.Terms {
		if err := add(BlockedTerm, term); err != nil {
			return nil, err
		}
	}
	size := 1
	for size < 2*len(f.groups) {
		size *= 2
	}
	f.slots, f.mask = make([]int32, size), uint32(size-1)
	for k := range f.groups {
		g := &f.groups[k]
		// Stable, so that of two equal phrases the first configured wins.
		slices.SortStableFunc(g.phrases, func(a, b phrase) int { return len(b.rest) - len(a.rest) })
		i := g.hash & f.mask
		for f.slots[i] != 0 {
			i = (i + 1) & f.mask
		}
		f.slots[i] = int32(k + 1)
		f.addStart(g.first)
	}
	return f, nil
}

// Types returns the finding types f can report, sorted: one per configured
// category, and BLOCKED_TERM if terms were configured.
func (f *Filter) Types() []string {
	seen := map[string]bool{}
	for _, g := range f.groups {
		for _, p := range g.phrases {
			seen[p.typ] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// addStart adds the first bytes of a phrase's first word to f.pairs and
// f.starts.
func (f *Filter) addStart(first string) {
	var c [3]byte
	copy(c[:], first)
	if c[0] < utf8.RuneSelf {
		cases := func(c byte) []byte {
			if c >= 'a' && c <= 'z' {
				return []byte{c, c - 'a' + 'A'}
			}
			return []byte{c}
		}
		var seconds []byte // bytes that may follow c[0] in the text
		for b := utf8.RuneSelf; b < 256; b++ {
			seconds = append(seconds, byte(b)) // may fold to anything, or end the word
		}
		switch {
		case len(first) == 1:
			for b := range utf8.RuneSelf {
				if lowerWord[b] == 0 {
					seconds = append(seconds, byte(b))
				}
			}
		case c[1] < utf8.RuneSelf:
			seconds = append(seconds, cases(c[1])...)
		}
		for _, c0 := range cases(c[0]) {
			for _, c1 := range seconds {
				f.pairs[uint(c0)|uint(c1)<<8] = 1
			}
		}
	}
	if c[0]|c[1]|c[2] >= utf8.RuneSelf {
		return // such a word can only start with non-ASCII text, which mayStart always lets through
	}
	h := prefixHash(c[0], c[1], c[2])
	f.starts[h>>6] |= 1 << (h & 63)
}

// mayStart reports whether a word whose first three bytes are c0, c1 and c2
// (0 past the end of the text) may start a phrase. It is exact for ASCII:
// bytes after the end of the word do not count. A word with a non-ASCII byte
// among them may fold to anything ("é" to "e", "æ" to "ae") and always passes.
func (f *Filter) mayStart(c0, c1, c2 byte) bool {
	l0, l1, l2 := lowerWord[c0], lowerWord[c1], lowerWord[c2]&wordGoesOn[c1]
	if (l0|l1|l2)&nonASCII != 0 {
		return true
	}
	h := prefixHash(l0, l1, l2)
	return f.starts[h>>6]&(1<<(h&63)) != 0
}

// prefixHash hashes the first three folded bytes of a word, with 0 for
// those past its end, into 16 bits.
func prefixHash(l0, l1, l2 byte) uint32 {
	return (uint32(l0)<<16 | uint32(l1)<<8 | uint32(l2)) * 0x9e3779b1 >> 16
}

// nonASCII is what lowerWord maps the bytes of multi-byte runes to.
const nonASCII = 0x80

// wordGoesOn is 0xff for the bytes that may continue a word, 0 for the others.
var wordGoesOn = func() (t [256]byte) {
	for c := range 256 {
		if lowerWord[c] != 0 {
			t[c] = 0xff
		}
	}
	return t
}()

// lowerWord maps ASCII letters and digits to their folded form, other ASCII
// bytes to 0 and the rest to nonASCII.
var lowerWord = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c >= 'A' && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			t[c] = byte(c)
		case c >= utf8.RuneSelf:
			t[c] = nonASCII
		}
	}
	return t
}()

// categoryType turns a category name into its finding type.
func categoryType(name string) (string, error) {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	typ := strings.Trim(string(b), "_")
	if typ == "" || len(typ) > 64 {
		return "", fmt.Errorf("contentfilter config: category name %q: want 1 to 64 letters or digits", name)
	}
	return typ, nil
}

// Scan appends the phrases found in text to dst, in order and without overlap.
// When phrases start at the same word the longest wins; the scan goes on after
// its last word.
func (f *Filter) Scan(dst []Finding, text []byte) []Finding {
	n := len(text)
	// prev is 1 if the text before j ends in a word, so that j cannot start one.
	var prev uint64
	var pad [window + 1]byte
	for j := 0; j < n; {
		var words, cands, high uint64
		if j, prev, words, cands, high = f.skim(text, j, prev); cands|high == 0 {
			if j == n {
				break
			}
			// Too few bytes left for skim: it reads them from a copy padded
			// with zeros, which end a word as the end of the text does.
			pad = [window + 1]byte{}
			copy(pad[:], text[j:])
			if _, _, words, cands, high = f.skim(pad[:], 0, prev); cands|high == 0 {
				break
			}
		}
		if cands != 0 {
			// The scan resumes after the word or the phrase found, so later
			// candidates of the window are found again from there.
			dst, j = f.matchAt(dst, text, j+bits.TrailingZeros64(cands))
			prev = 1
			continue
		}
		if high == 0 {
			prev = words >> (window - 1)
			j += window
			continue
		}
		// A non-ASCII character: skim has dealt with the bytes before it.
		if k := bits.TrailingZeros64(high); k > 0 {
			prev = words >> (k - 1) & 1
			j += k
		}
		size, word := charAt(text, j)
		if word && prev == 0 && f.mayStart(text[j], byteAt(text, j+1), byteAt(text, j+2)) {
			dst, j = f.matchAt(dst, text, j)
			prev = 1
			continue
		}
		prev = 0
		if word {
			prev = 1
		}
		j += size
	}
	return dst
}

// byteAt returns text[i], or 0 past the end of text.
func byteAt(text []byte, i int) byte {
	if i < len(text) {
		return text[i]
	}
	return 0
}

// window is how many bytes skim reads at a time.
const window = 16

// skim returns the first window of text, at j or after, that Scan must look
// into, with a bit per byte of the window: words where the byte is a letter
// or digit, cands where a word starts that passes f.pairs and f.starts, and
// high where the byte is not ASCII. Only the bytes before the first non-ASCII
// one are read for words and cands. prev says whether the text before j ends
// in a word, and is returned for the window. When fewer than window+1 bytes
// are left, skim returns their position and no bits.
//
// This is where Scan spends its time. Go's WebAssembly turns every jump into a
// trip round a dispatch loop and keeps a loop's variables in memory if it
// calls a function, so the loop calls none and, for a window where no word
// passes f.pairs, jumps once: everything else is straight-line arithmetic.
// f.pairs is tested at every byte, without a branch; f.starts only for the
// few words that pass it, most of which it rejects.
func (f *Filter) skim(text []byte, j int, prev uint64) (at int, prevOut, words, cands, high uint64) {
	const (
		ones   = 0x0101010101010101
		top    = 0x8080808080808080
		gather = 0x0102040810204080 // (v>>7)*gather>>56 packs bit 7 of each byte of v into one byte
	)
	for ; j+window+1 <= len(text); j += window {
		t := text[j : j+window+1 : j+window+1]
		x0 := binary.LittleEndian.Uint64(t[0:8])
		x1 := binary.LittleEndian.Uint64(t[8:16])
		// Bit 7 of each byte of w0 and w1 is set where the byte is a letter or
		// a digit: x|0x20 lower-cases letters, and adding 0x80-lo sets bit 7
		// of every byte ≥ lo, with no carry between ASCII bytes. A carry out
		// of a non-ASCII byte only spoils the bytes after it, which are masked
		// off.
		y0, y1 := x0|0x20*ones, x1|0x20*ones
		w0 := ((y0+(0x80-'a')*ones)&^(y0+(0x7f-'z')*ones) | (x0+(0x80-'0')*ones)&^(x0+(0x7f-'9')*ones)) & top
		w1 := ((y1+(0x80-'a')*ones)&^(y1+(0x7f-'z')*ones) | (x1+(0x80-'0')*ones)&^(x1+(0x7f-'9')*ones)) & top
		high = (x0&top)>>7*gather>>56 | (x1&top)>>7*gather>>56<<8
		// Keep the bytes below the first non-ASCII one, or all of them.
		words = ((w0>>7)*gather>>56 | (w1>>7)*gather>>56<<8) & (high&-high - 1)
		starts := words &^ (words<<1 | prev)
		cands = starts & (f.pair(t, 0) | f.pair(t, 1)<<1 | f.pair(t, 2)<<2 | f.pair(t, 3)<<3 |
			f.pair(t, 4)<<4 | f.pair(t, 5)<<5 | f.pair(t, 6)<<6 | f.pair(t, 7)<<7 |
			f.pair(t, 8)<<8 | f.pair(t, 9)<<9 | f.pair(t, 10)<<10 | f.pair(t, 11)<<11 |
			f.pair(t, 12)<<12 | f.pair(t, 13)<<13 | f.pair(t, 14)<<14 | f.pair(t, 15)<<15)
		if cands|high != 0 {
			for c := cands; c != 0; c &= c - 1 {
				k := bits.TrailingZeros64(c) & (window - 1)
				if !f.mayStart(t[k], t[k+1], byteAt(text, j+k+2)) {
					cands &^= 1 << k
				}
			}
			if cands|high != 0 {
				return j, prev, words, cands, high
			}
		}
		prev = words >> (window - 1)
	}
	return j, prev, 0, 0, 0
}

// pair is f.pairs[t[k] | t[k+1]<<8].
func (f *Filter) pair(t []byte, k int) uint64 {
	return uint64(f.pairs[binary.LittleEndian.Uint16(t[k:])])
}

// matchAt looks for a phrase starting with the word at s. It appends the
// longest one found to dst and returns where the scan goes on: after the
// phrase, or after the word if none matched.
//
// Calls are dear in WebAssembly, so ASCII words are hashed and compared
// here; only a word with a non-ASCII byte takes the general path.
func (f *Filter) matchAt(dst []Finding, text []byte, s int) ([]Finding, int) {
	e, h := s, uint32(fnvOffset)
	for ; e < len(text) && text[e] < utf8.RuneSelf; e++ {
		l := lowerWord[text[e]]
		if l == 0 {
			break
		}
		h = (h ^ uint32(l)) * fnvPrime
	}
	ascii := e == len(text) || text[e] < utf8.RuneSelf
	if !ascii {
		e, h = foldedHash(text, s)
	}
	for i := h & f.mask; f.slots[i] != 0; i = (i + 1) & f.mask {
		g := &f.groups[f.slots[i]-1]
		if g.hash != h {
			continue
		}
		if ascii {
			if len(g.first) != e-s {
				continue
			}
			k := 0
			for k < len(g.first) && lowerWord[text[s+k]] == g.first[k] {
				k++
			}
			if k < len(g.first) {
				continue // another word with the same hash
			}
		} else if end, ok := matchWord(text, s, g.first); !ok || end != e {
			continue
		}
		for _, p := range g.phrases {
			if end, ok := matchWords(text, e, p.rest); ok {
				return append(dst, Finding{Type: p.typ, Start: s, End: end, Score: score}), end
			}
		}
		break
	}
	return dst, e
}

// matchWords reports whether the words of text after i, which is not inside a
// word, fold to words, and returns the end of the last one. Like matchAt, it
// deals with ASCII itself.
func matchWords(text []byte, i int, words []string) (int, bool) {
	for n, w := range words {
		j := i
		for j < len(text) && lowerWord[text[j]] == 0 {
			j++
		}
		k := 0
		for j < len(text) && k < len(w) && text[j] < utf8.RuneSelf && lowerWord[text[j]] == w[k] {
			j++
			k++
		}
		if j < len(text) && text[j] >= utf8.RuneSelf {
			return matchWordsUnicode(text, i, words[n:])
		}
		if k < len(w) || j < len(text) && lowerWord[text[j]] != 0 {
			return 0, false
		}
		i = j
	}
	return i, true
}

// matchWordsUnicode is matchWords for any text.
func matchWordsUnicode(text []byte, i int, words []string) (int, bool) {
	for _, w := range words {
		for i < len(text) {
			size, word := charAt(text, i)
			if word {
				break
			}
			i += size
		}
		end, ok := matchWord(text, i, w)
		if !ok {
			return 0, false
		}
		i = end
	}
	return i, true
}

// matchWord reports whether the word starting at i folds to w, and returns
// its end.
func matchWord(text []byte, i int, w string) (int, bool) {
	k := 0
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			f := lowerWord[c]
			if f == 0 {
				break
			}
			if k == len(w) || w[k] != f {
				return 0, false
			}
			k++
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError || !isLetterRune(r) {
			break
		}
		if folded, ok := foldLatin1(r); ok {
			if len(w)-k < len(folded) || w[k:k+len(folded)] != folded {
				return 0, false
			}
			k += len(folded)
		} else {
			// Indexing and comparing string(bytes) does not allocate.
			if len(w)-k < size || w[k:k+size] != string(text[i:i+size]) {
				return 0, false
			}
			k += size
		}
		i += size
	}
	return i, k == len(w)
}

// foldedHash returns the end of the word starting at i and wordHash of its
// folded form.
func foldedHash(text []byte, i int) (int, uint32) {
	h := uint32(fnvOffset)
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			f := lowerWord[c]
			if f == 0 {
				break
			}
			h = (h ^ uint32(f)) * fnvPrime
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError || !isLetterRune(r) {
			break
		}
		folded, ok := foldLatin1(r)
		if ok {
			for k := 0; k < len(folded); k++ {
				h = (h ^ uint32(folded[k])) * fnvPrime
			}
		} else {
			for _, c := range text[i : i+size] {
				h = (h ^ uint32(c)) * fnvPrime
			}
		}
		i += size
	}
	return i, h
}

// FNV-1a, 32 bits.
const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// wordHash is FNV-1a over the bytes of a folded word.
func wordHash(w string) uint32 {
	h := uint32(fnvOffset)
	for i := 0; i < len(w); i++ {
		h = (h ^ uint32(w[i])) * fnvPrime
	}
	return h
}

// charAt returns the length of the character at text[i] and whether it belongs
// to a word. A byte that starts no valid UTF-8 sequence counts as one
// character that is not part of a word, and so does U+FFFD.
func charAt(text []byte, i int) (int, bool) {
	if c := text[i]; c < utf8.RuneSelf {
		return 1, lowerWord[c] != 0
	}
	r, size := utf8.DecodeRune(text[i:])
	if r == utf8.RuneError {
		return 1, false
	}
	return size, isLetterRune(r)
}

// foldWords splits a configured term into folded words, the way Scan reads
// text: ASCII lower-cased, Latin-1 accented letters mapped to their base
// letter, other letters kept as they are.
func foldWords(term string) []string {
	text := []byte(term)
	var words []string
	var buf []byte
	for i := 0; i <= len(text); {
		size, word := 1, false
		if i < len(text) {
			size, word = charAt(text, i)
		}
		if !word {
			if len(buf) > 0 {
				words = append(words, string(buf))
				buf = buf[:0]
			}
			i += size
			continue
		}
		r, _ := utf8.DecodeRune(text[i : i+size])
		if folded, ok := foldLatin1(r); ok {
			buf = append(buf, folded...)
		} else if r < utf8.RuneSelf {
			buf = append(buf, lowerWord[r])
		} else {
			buf = append(buf, text[i:i+size]...)
		}
		i += size
	}
	return words
}

// isLetterRune treats every non-ASCII rune above the Latin-1 punctuation as a
// letter; that keeps words in other scripts whole without Unicode tables.
func isLetterRune(r rune) bool {
	return r >= 0xC0 && r != 0xD7 && r != 0xF7 && !(r >= 0x2000 && r <= 0x206F) && !(r >= 0x3000 && r <= 0x303F)
}

// foldLatin1 maps the accented letters of Latin-1 to ASCII ("é" to "e", "ß" to "ss").
func foldLatin1(r rune) (string, bool) {
	if r < 0xC0 || r > 0xFF {
		return "", false
	}
	const table = "aaaaaaaceeeeiiiidnooooo ouuuuyts" // U+00C0..U+00DF, lower-cased
	if r == 0xFF {
		return "y", true
	}
	if r >= 0xE0 {
		r -= 0x20 // the lower-case half mirrors the upper-case half
	}
	switch r {
	case 0xC6:
		return "ae", true
	case 0xDF:
		return "ss", true
	case 0xD7: // ×, ÷ are not letters; isLetterRune keeps them out
		return "", false
	}
	return table[r-0xC0 : r-0xC0+1], true
}
