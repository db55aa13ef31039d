// Package contentfilter flags configured terms and phrases in text, by
// category. Matching is case-insensitive, ignores common Latin accents
// ("Café" matches "cafe") and respects word boundaries: "bomb" matches in
// "a bomb!" but not in "bombastic"; a phrase matches across any run of spaces
// or punctuation between its words ("build a bomb", "build a-bomb").
//
// A word is a run of ASCII letters and digits and of non-ASCII letters (see
// isLetterRune). Scan never folds or copies the text: it finds word starts
// eight bytes at a time, tests the first two bytes of each word against the
// first words of the phrases, and folds and compares words only where a phrase
// may start. Go compiled to WebAssembly pays for every jump and call, so the
// common path is straight-line arithmetic on 64-bit words.
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
	// starts has a bit set for every prefix key (see prefixKey) that a word
	// starting a phrase can have. Most words of a prompt miss it and cost
	// the scan nothing more than the bit test.
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
	f := &Filter{}
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
		f.setStarts(g.first)
	}
	return f, nil
}

// setStarts sets the prefix keys of every word that may fold to first.
func (f *Filter) setStarts(first string) {
	set := func(key uint) { f.starts[key>>6] |= 1 << (key & 63) }
	var c0, c1 byte = first[0], 0
	if len(first) > 1 {
		c1 = first[1]
	}
	set(prefixKey(c0, c1))
	// A word whose first two bytes are not both ASCII gets a key with
	// nonASCII in it, whatever it folds to ("é" to "e", "æ" to "ae"): such keys
	// are set for every word and the word is folded to find out.
	set(prefixKey(c0, nonASCII))
	for c := range 256 {
		set(prefixKey(nonASCII, byte(c)))
	}
}

// prefixKey is the key of a word starting with bytes c0 c1 (c1 is 0 at the
// end of the text).
func prefixKey(c0, c1 byte) uint { return uint(lowerWord[c0])<<8 | uint(lowerWord[c1]) }

// nonASCII is what lowerWord maps the bytes of multi-byte runes to.
const nonASCII = 0x80

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
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	n := len(text)
	// prev is 1 if the text before j ends in a word, so that j cannot start one.
	var prev uint64
	for j := 0; j < n; {
		if j+8 <= n {
			if x := binary.LittleEndian.Uint64(text[j:]); x&high == 0 {
				// Eight ASCII bytes. Bit 7 of each byte of w is set where the
				// byte is a letter or digit: x|0x20 lower-cases letters, and
				// adding 0x80-lo sets bit 7 of every byte ≥ lo, with no carry
				// between bytes since each is below 0x80.
				y := x | 0x20*ones
				w := ((y+(0x80-'a')*ones)&^(y+(0x7f-'z')*ones) |
					(x+(0x80-'0')*ones)&^(x+(0x7f-'9')*ones)) & high
				// Gather those bits into the low byte: bit k for text[j+k].
				m := (w >> 7) * 0x0102040810204080 >> 56
				starts := m &^ (m<<1 | prev)
				prev = m >> 7
				matched := false
				for starts != 0 {
					p := j + bits.TrailingZeros64(starts)
					starts &= starts - 1
					var c1 byte
					if p+1 < n {
						c1 = text[p+1]
					}
					if key := prefixKey(text[p], c1); f.starts[key>>6]&(1<<(key&63)) == 0 {
						continue
					}
					var end int
					if dst, end = f.matchAt(dst, text, p); end > 0 {
						j, prev, matched = end, 1, true
						break
					}
				}
				if !matched {
					j += 8
				}
				continue
			}
		}
		// Near non-ASCII text or the end: one character at a time.
		size, word := charAt(text, j)
		if word && prev == 0 {
			var c1 byte
			if j+1 < n {
				c1 = text[j+1]
			}
			if key := prefixKey(text[j], c1); f.starts[key>>6]&(1<<(key&63)) != 0 {
				var end int
				if dst, end = f.matchAt(dst, text, j); end > 0 {
					j, prev = end, 1
					continue
				}
			}
		}
		prev = 0
		if word {
			prev = 1
		}
		j += size
	}
	return dst
}

// matchAt looks for a phrase starting with the word at s. It appends the
// longest one found to dst and returns the end of its last word, or 0.
func (f *Filter) matchAt(dst []Finding, text []byte, s int) ([]Finding, int) {
	h := foldedHash(text, s)
	for i := h & f.mask; f.slots[i] != 0; i = (i + 1) & f.mask {
		g := &f.groups[f.slots[i]-1]
		if g.hash != h {
			continue
		}
		e, ok := matchWord(text, s, g.first)
		if !ok {
			continue // another word with the same hash
		}
		for _, p := range g.phrases {
			if end, ok := matchWords(text, e, p.rest); ok {
				return append(dst, Finding{Type: p.typ, Start: s, End: end, Score: score}), end
			}
		}
		return dst, 0
	}
	return dst, 0
}

// matchWords reports whether the words of text after i, which is not inside a
// word, fold to words, and returns the end of the last one.
func matchWords(text []byte, i int, words []string) (int, bool) {
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

// foldedHash is wordHash of the folded word starting at i.
func foldedHash(text []byte, i int) uint32 {
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
	return h
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
