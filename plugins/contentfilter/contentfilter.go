// Package contentfilter flags configured terms and phrases in text, by
// category. Matching is case-insensitive, ignores common Latin accents
// ("Café" matches "cafe") and respects word boundaries: "bomb" matches in
// "a bomb!" but not in "bombastic"; a phrase matches across any run of spaces
// or punctuation between its words ("build a bomb", "build a-bomb").
package contentfilter

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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
	// byFirst maps the first folded word of each phrase to the phrases that
	// start with it, longest first so the longest match wins.
	byFirst map[string][]phrase
	// firstWords has a bit set for the hash of every phrase's first word. Most
	// words of a prompt miss it, and skip the map lookup, which in WASM costs
	// far more than the bit test.
	firstWords bloom
}

// bloom is a one-hash Bloom filter over word hashes.
type bloom [1 << 10]uint64 // 65,536 bits

func (b *bloom) add(h uint32)          { b[h>>6%uint32(len(b))] |= 1 << (h & 63) }
func (b *bloom) mayHave(h uint32) bool { return b[h>>6%uint32(len(b))]&(1<<(h&63)) != 0 }

type phrase struct {
	typ   string
	words []string // folded words
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
	f := &Filter{byFirst: map[string][]phrase{}}
	add := func(typ, term string) error {
		words, first := foldWords(term)
		if len(words) == 0 {
			return fmt.Errorf("contentfilter config: %s: term %q has no letters or digits", typ, term)
		}
		f.byFirst[words[0]] = append(f.byFirst[words[0]], phrase{typ: typ, words: words})
		f.firstWords.add(first)
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
	for _, ps := range f.byFirst {
		slices.SortStableFunc(ps, func(a, b phrase) int { return len(b.words) - len(a.words) })
	}
	return f, nil
}

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

// token is a word of the scanned text: its byte span in the text and the span
// of its folded form in the scratch buffer.
type token struct {
	start, end, fstart, fend int
	hash                     uint32 // of the folded word, for Filter.firstWords
}

type scratch struct {
	tokens []token
	folded []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Scan appends the phrases found in text to dst, in order and without overlap.
func (f *Filter) Scan(dst []Finding, text []byte) []Finding {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.tokens, s.folded = tokenize(s.tokens[:0], s.folded[:0], text)
	toks, folded := s.tokens, s.folded
	for i := 0; i < len(toks); {
		n := 0
		// Indexing a map with string(bytes) does not allocate.
		for _, p := range f.byFirst[string(folded[toks[i].fstart:toks[i].fend])] {
			if matchAt(toks[i:], folded, p.words) {
				dst = append(dst, Finding{Type: p.typ, Start: toks[i].start, End: toks[i+len(p.words)-1].end, Score: score})
				n = len(p.words)
				break
			}
		}
		i += max(n, 1)
	}
	return dst
}

func matchAt(toks []token, folded []byte, words []string) bool {
	if len(toks) < len(words) {
		return false
	}
	for k, w := range words {
		if string(folded[toks[k].fstart:toks[k].fend]) != w {
			return false
		}
	}
	return true
}

// foldWords splits s into folded words; it is how terms are normalised, the
// same way as the text.
// foldWords splits s into folded words, and returns the first word's hash.
func foldWords(s string) ([]string, uint32) {
	toks, folded := tokenize(nil, nil, []byte(s))
	words := make([]string, len(toks))
	for i, t := range toks {
		words[i] = string(folded[t.fstart:t.fend])
	}
	if len(toks) == 0 {
		return nil, 0
	}
	return words, toks[0].hash
}

// wordHash is FNV-1a over the folded bytes of a word.
func wordHash(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// tokenize splits text into words (runs of letters, digits and non-ASCII
// letters) and folds each into buf: ASCII lower-cased, Latin-1 accented letters
// mapped to their base letter. Both slices are reused across calls.
func tokenize(toks []token, buf []byte, text []byte) ([]token, []byte) {
	buf = slices.Grow(buf, len(text))
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if !isASCIIWord(c) {
				i++
				continue
			}
		} else if r, _ := utf8.DecodeRune(text[i:]); r == utf8.RuneError || !isLetterRune(r) {
			i++
			continue
		}
		start, fstart := i, len(buf)
		for i < len(text) {
			c := text[i]
			if c < utf8.RuneSelf {
				if !isASCIIWord(c) {
					break
				}
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				buf = append(buf, c)
				i++
				continue
			}
			r, size := utf8.DecodeRune(text[i:])
			if r == utf8.RuneError || !isLetterRune(r) {
				break
			}
			if a, ok := foldLatin1(r); ok {
				buf = append(buf, a...)
			} else {
				buf = append(buf, text[i:i+size]...)
			}
			i += size
		}
		toks = append(toks, token{start: start, end: i, fstart: fstart, fend: len(buf), hash: wordHash(buf[fstart:])})
	}
	return toks, buf
}

func isASCIIWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
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
