// Package contentfilter flags configured terms, phrases and patterns in text,
// by category.
//
// Matching works on words, the way a reader sees them, so that the usual
// ways of writing round a word list do not work:
//   - case and common Latin accents are folded ("Café" matches "cafe");
//   - leetspeak is folded: 0→o, 1→i or l, 3→e, 4→a, 5→s, 7→t, 8→b, and inside a
//     word or at its start @→a, $→s, ! and |→i or l ("b0mb", "3xpl0s1v3",
//     "$ynthesize");
//   - a word matches its plural ("bombs", "boxes") and, from six letters on,
//     a word one edit away that keeps its first three letters ("ransomwere");
//   - one short word may be inserted between the words of a phrase ("make a
//     pipe bomb" for "make a bomb");
//   - words match whole: "bomb" is not in "bombastic" or "abomb";
//   - any run of spaces or punctuation separates words ("build a-bomb").
//
// A category may also carry patterns, which list alternatives, optional and
// wildcard words (see Terms). An allow list names phrases that are not
// findings even when a term matches them ("bath bomb", "da bomb").
//
// A word is a run of ASCII letters and digits and of non-ASCII letters (see
// isLetterRune), and the leet symbols above where they stand in a word. Scan
// never copies the text: it finds word starts sixteen bytes at a time, tests
// the first two and then three bytes of each word against every form the
// first word of a term may take, and reads and folds words only where a term
// may start. Go compiled to WebAssembly pays for every jump and call, so the
// common path is straight-line arithmetic on 64-bit words.
package contentfilter

import (
	"bytes"
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

// Config is the plugin configuration, given as JSON. Categories and Terms may
// both be used; with neither, DefaultCategories, DefaultPatterns and
// DefaultAllow apply.
type Config struct {
	// Categories maps a category name to its terms: a list of phrases, or an
	// object {"phrases": [...], "patterns": [...]}. Findings take the name
	// upper-cased, with other characters than letters and digits turned into
	// '_': "self-harm" reports SELF_HARM.
	Categories map[string]Terms `json:"categories"`
	// Terms are phrases reported as BLOCKED_TERM.
	Terms []string `json:"terms"`
	// Allow lists phrases and patterns that are never reported: a finding
	// that overlaps one of them is dropped ("bath bomb" for "make a bomb").
	Allow []string `json:"allow"`
}

// Terms is what a category matches: phrases, and patterns.
//
// A pattern is words separated by spaces, where each word is one of
//
//	bomb            a word, matched as in a phrase (folded, plural, one edit)
//	make|build      any of these words
//	[a|an]          optionally one of these words
//	*               any one word
//	synthes*        any word starting with these letters (at least three)
//	=explosives     this word without an edit ("explosive" is not one); also
//	                in a list: bomb|=explosives (not for the first word)
//
// The first word must be a word or a list of words, so that the scan can
// find where a pattern may start. "make|build|assemble [a|an] bomb|ied"
// matches "build an IED" and "make bombs".
type Terms struct {
	Phrases  []string `json:"phrases"`
	Patterns []string `json:"patterns"`
}

// UnmarshalJSON accepts a plain list of phrases as well as an object.
func (t *Terms) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		t.Patterns = nil
		return json.Unmarshal(b, &t.Phrases)
	}
	type plain Terms
	return json.Unmarshal(b, (*plain)(t))
}

// DefaultCategories is used when the configuration names no terms, with
// DefaultPatterns: a short list of requests for serious harm whose wording
// leaves little doubt.
var DefaultCategories = map[string][]string{
	"violence":  {"pipe bomb", "plan a mass shooting", "how to kill someone"},
	"weapons":   {"ghost gun", "untraceable gun", "convert to full auto"},
	"self_harm": {"kill myself", "how to commit suicide", "end my life"},
	"malware":   {"bypass antivirus detection"},
}

// DefaultPatterns go with DefaultCategories: the requests that are said in
// more than one way ("build a bomb", "make an IED", "cook meth"). An exploit
// is named only with what it exploits, so "exploit a market opportunity" is
// not a finding; "=explosives" takes no edit, so "build explosive growth" is
// not one either.
var DefaultPatterns = map[string][]string{
	"violence": {"make|build|assemble [a|an|some|the] bomb|ied|detonator|=explosives",
		"make|build|assemble [a|an] explosive device|vest"},
	"weapons": {"3d print* [a|an|my] gun|firearm|pistol|rifle|glock", "convert [a|an|my|the] * to full|fully auto|automatic"},
	"malware": {"write|build|create [a|an|some|my] ransomware|keylogger|botnet|rootkit|infostealer",
		"exploit [a|an|the|this] vulnerability|vuln|cve|0day"},
	"drugs": {"synthesize|synthesise|make|cook [some] meth|methamphetamine|fentanyl|mdma|heroin"},
}

// DefaultAllow goes with DefaultCategories: phrases a default term would
// match that a security team does not want to see (a bath bomb is soap, "da
// bomb" praise).
var DefaultAllow = []string{"bath bomb", "photo bomb", "photobomb", "da bomb", "the bomb dot com",
	"cherry bomb cocktail", "ransomware detection|protection|defense|defence|attack|attacks|incident|response"}

// Finding is one match: Start and End are byte offsets into the scanned text
// (End exclusive).
type Finding struct {
	Type       string
	Start, End int
	Score      float64
}

// Scores: the configured words as written (up to case, accents, leetspeak
// and plurals), and a match that needed an edit or an inserted word.
const (
	score      = 0.9
	fuzzyScore = 0.8
)

// Filter matches configured terms. It is immutable after New and safe for
// concurrent use.
type Filter struct {
	// pairs[c0 | c1<<8] is 1 if a word whose first two bytes are c0 and c1,
	// as they appear in the text, may start a term. It is the first test of
	// every word, so it is indexed by raw bytes (case, leetspeak, the end of
	// the word and non-ASCII bytes are dealt with once, in New), and holds
	// bytes rather than bits, which saves skim four instructions a byte.
	pairs *[1 << 16]byte
	// starts is a Bloom filter of the first three bytes of every form of a
	// term's first word (see prefixHash), the test of the words that pass
	// pairs.
	starts [1 << 16 / 64]uint64
	// slots is an open-addressing table from the hash of a folded first word
	// to its group: slot value k > 0 is groups[k-1]; 0 ends a probe.
	slots []int32
	mask  uint32 // len(slots)-1; len(slots) is a power of two
	// groups holds the terms by first word, one group per distinct word.
	groups []group
	// long lists by their first two letters (see letterIndex) the groups
	// whose first word may match with an edit.
	long [letters * letters][]int32
	// allow drops findings that overlap its matches; nil for none.
	allow *Filter
}

// Types returns the finding types f can report, sorted: one per configured
// category, and BLOCKED_TERM if terms were configured. A plugin declares
// them to the host when it is configured (sdk/ABI.md).
func (f *Filter) Types() []string {
	seen := map[string]bool{}
	for _, g := range f.groups {
		for _, p := range g.phrases {
			seen[p.typ] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// group is the terms that start with one folded word, longest first so the
// longest match wins.
type group struct {
	hash    uint32 // keyHash(first)
	first   string
	phrases []phrase
}

type phrase struct {
	typ  string
	rest []slot // the words after the first
	// need holds the letterBits that one of the next reach words must start
	// with for the phrase to match: those of its first slot that is not
	// optional, which optional words and one inserted word may push back.
	// need is allLetters when no such test applies.
	need  uint32
	reach int
}

// allLetters is a letter mask that every word passes.
const allLetters = ^uint32(0)

// maxReach is how many words ahead need is tested.
const maxReach = 4

// setNeed fills in need and reach.
func (p *phrase) setNeed() {
	p.need = allLetters
	for r, s := range p.rest {
		if s.any {
			return
		}
		if !s.optional {
			if r+2 <= maxReach {
				p.need, p.reach = s.letters, min(r+2, len(p.rest)+1)
			}
			return
		}
	}
}

// slot is one word of a phrase or pattern after the first.
type slot struct {
	words    []string // folded alternatives; for a prefix, the prefix
	hashes   []uint32 // keyHash of each word
	any      bool     // any one word
	prefix   bool
	optional bool
	noEdit   []bool // per word: no edit, the word as written up to folding and plural
	// What a text word needs to match any of words, tested first: its first
	// letter (see letterBit) and its length.
	letters        uint32
	minLen, maxLen int
}

// index fills in what matchSlot tests first.
func (s *slot) index() {
	s.minLen, s.maxLen = maxWord, 0
	s.hashes = s.hashes[:0]
	for _, w := range s.words {
		s.hashes = append(s.hashes, keyHash(w))
		s.letters |= letterBit(w[0])
		s.minLen, s.maxLen = min(s.minLen, len(w)-1), max(s.maxLen, len(w)+2)
	}
	if s.prefix {
		s.maxLen = maxWord
	}
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
		cfg.Categories = map[string]Terms{}
		for name, phrases := range DefaultCategories {
			cfg.Categories[name] = Terms{Phrases: phrases}
		}
		for name, patterns := range DefaultPatterns {
			t := cfg.Categories[name]
			t.Patterns = patterns
			cfg.Categories[name] = t
		}
		if cfg.Allow == nil {
			cfg.Allow = DefaultAllow
		}
	}
	var terms []term
	// Sorted so that duplicate terms across categories resolve the same way every time.
	for _, name := range slices.Sorted(maps.Keys(cfg.Categories)) {
		typ, err := categoryType(name)
		if err != nil {
			return nil, err
		}
		for _, p := range cfg.Categories[name].Phrases {
			terms = append(terms, term{typ, p, false})
		}
		for _, p := range cfg.Categories[name].Patterns {
			terms = append(terms, term{typ, p, true})
		}
	}
	for _, p := range cfg.Terms {
		terms = append(terms, term{BlockedTerm, p, false})
	}
	f, err := build(terms)
	if err != nil {
		return nil, err
	}
	if len(cfg.Allow) > 0 {
		var allow []term
		for _, p := range cfg.Allow {
			allow = append(allow, term{"ALLOW", p, strings.ContainsAny(p, "|*[")})
		}
		if f.allow, err = build(allow); err != nil {
			return nil, fmt.Errorf("allow: %w", err)
		}
	}
	return f, nil
}

// term is one configured phrase or pattern.
type term struct {
	typ, text string
	pattern   bool
}

// build indexes terms by their first word.
func build(terms []term) (*Filter, error) {
	f := &Filter{pairs: new([1 << 16]byte)}
	index := map[string]int{} // first word → its index in f.groups
	for _, t := range terms {
		firsts, rest, err := parseTerm(t)
		if err != nil {
			return nil, err
		}
		if len(rest) >= maxWords {
			return nil, fmt.Errorf("contentfilter config: %s: %q has more than %d words", t.typ, t.text, maxWords)
		}
		for _, first := range firsts {
			k, ok := index[first]
			if !ok {
				k = len(f.groups)
				index[first] = k
				f.groups = append(f.groups, group{hash: keyHash(first), first: first})
			}
			p := phrase{typ: t.typ, rest: rest}
			p.setNeed()
			f.groups[k].phrases = append(f.groups[k].phrases, p)
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
		if editable(g.first) {
			b := letterIndex(g.first[0])*letters + letterIndex(g.first[1])
			f.long[b] = append(f.long[b], int32(k))
		}
		f.addStarts(g.first)
	}
	return f, nil
}

// parseTerm returns the folded first words a term may start with and the
// slots of its other words.
func parseTerm(t term) (firsts []string, rest []slot, err error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("contentfilter config: %s: %s %q: %s", t.typ, map[bool]string{false: "term", true: "pattern"}[t.pattern], t.text, fmt.Sprintf(format, args...))
	}
	if !t.pattern {
		words := foldWords(t.text)
		if len(words) == 0 {
			return nil, nil, fail("no letters or digits")
		}
		for _, w := range words[1:] {
			s := slot{words: []string{w}}
			s.index()
			rest = append(rest, s)
		}
		return words[:1], rest, nil
	}
	fields := strings.Fields(t.text)
	if len(fields) == 0 {
		return nil, nil, fail("no words")
	}
	for k, field := range fields {
		var s slot
		if strings.HasPrefix(field, "[") && strings.HasSuffix(field, "]") {
			s.optional, field = true, field[1:len(field)-1]
		}
		switch {
		case field == "*":
			s.any = true
		case strings.HasSuffix(field, "*"):
			w := foldWords(field[:len(field)-1])
			if len(w) != 1 || len(w[0]) < 3 {
				return nil, nil, fail("prefix %q: want one word of three letters or more", field)
			}
			s.prefix, s.words = true, w
		default:
			for _, alt := range strings.Split(field, "|") {
				noEdit := strings.HasPrefix(alt, "=")
				w := foldWords(strings.TrimPrefix(alt, "="))
				if len(w) != 1 {
					return nil, nil, fail("%q is not one word", alt)
				}
				s.words = append(s.words, w[0])
				s.noEdit = append(s.noEdit, noEdit)
			}
		}
		s.index()
		if k == 0 {
			if s.any || s.prefix || s.optional {
				return nil, nil, fail("the first word must be a word or words joined by '|'")
			}
			firsts = s.words
			continue
		}
		rest = append(rest, s)
	}
	return firsts, rest, nil
}

// addStarts adds every form the first word of a term may take in the text
// to f.pairs and f.starts: its leetspeak spellings, its plural, the word
// without a leading letter that a symbol may stand for ("$ynthesize" is seen
// from the 'y'), and, for words long enough, every spelling one edit away.
// Only the first three bytes of each form matter.
func (f *Filter) addStarts(first string) {
	forms := map[string]bool{}
	for _, w := range []string{first, first + "s", first + "es"} {
		w = w[:min(len(w), 4)]
		forms[w] = true
		if symbolFor(w[0]) && len(w) > 1 {
			forms[w[1:]] = true
		}
	}
	if editable(first) {
		for _, w := range edits(first[:min(len(first), 5)]) {
			forms[w[:min(len(w), 4)]] = true
		}
	}
	for w := range forms {
		f.addForm(w)
	}
}

// addForm adds the raw spellings of the folded word start w. Position k of
// the raw word may hold any byte that folds to w[k], or, for k > 0, a leet
// symbol that does, where skim sees the word end. mayStart keeps such a
// symbol in its key, so that "a$$emble" makes a candidate of the "a" before
// '$', not of every "a".
func (f *Filter) addForm(w string) {
	var c [3]byte
	copy(c[:], w)
	if c[0] >= utf8.RuneSelf {
		return // such a word starts with non-ASCII text, which skim always lets through
	}
	for _, r0 := range rawForms(c[0]) {
		if len(w) == 1 {
			for b := range utf8.RuneSelf {
				if lowerWord[b] == 0 {
					f.addPair(r0, byte(b))
				}
			}
			f.addPair(r0, 0x80)
			f.addStart(r0, 0, 0)
			for _, s := range symbols {
				f.addStart(r0, s, 0)
			}
			continue
		}
		for _, s := range symbolForms(c[1]) {
			f.addPair(r0, s)
			f.addStart(r0, s, 0)
		}
		f.addPair(r0, 0x80)
		if c[1] >= utf8.RuneSelf {
			continue
		}
		for _, r1 := range rawForms(c[1]) {
			f.addPair(r0, r1)
			if len(w) == 2 {
				f.addStart(r0, r1, 0)
				for _, s := range symbols {
					f.addStart(r0, r1, s)
				}
				continue
			}
			for _, s := range symbolForms(c[2]) {
				f.addStart(r0, r1, s)
			}
			if c[2] >= utf8.RuneSelf {
				continue // non-ASCII third bytes always pass mayStart
			}
			for _, r2 := range rawForms(c[2]) {
				f.addStart(r0, r1, r2)
			}
		}
	}
}

// addPair marks words starting with the lower-case byte c0 followed by c1
// (0x80: any non-ASCII byte, which may fold to anything), in either case.
func (f *Filter) addPair(c0, c1 byte) {
	seconds := []byte{c1}
	switch {
	case c1 >= utf8.RuneSelf:
		seconds = seconds[:0]
		for b := utf8.RuneSelf; b < 256; b++ {
			seconds = append(seconds, byte(b))
		}
	case c1 >= 'a' && c1 <= 'z':
		seconds = append(seconds, c1-'a'+'A')
	}
	firsts := []byte{c0}
	if c0 >= 'a' && c0 <= 'z' {
		firsts = append(firsts, c0-'a'+'A')
	}
	for _, a := range firsts {
		for _, b := range seconds {
			f.pairs[uint(a)|uint(b)<<8] = 1
		}
	}
}

// addStart adds lower-cased raw bytes to the Bloom filter mayStart reads.
func (f *Filter) addStart(l0, l1, l2 byte) {
	h := prefixHash(l0, l1, l2)
	f.starts[h>>6] |= 1 << (h & 63)
}

// mayStart reports whether a word whose first three bytes are c0, c1 and c2
// (0 past the end of the text) may start a term. It is exact for ASCII:
// bytes after the end of the word do not count. A word with a non-ASCII byte
// among them may fold to anything ("é" to "e", "æ" to "ae") and always passes.
func (f *Filter) mayStart(c0, c1, c2 byte) bool {
	l0, l1, l2 := lowerWord[c0], startKey[c1], startKey[c2]&wordGoesOn[c1]
	if (l0|l1|l2)&nonASCII != 0 {
		return true
	}
	h := prefixHash(l0, l1, l2)
	return f.starts[h>>6]&(1<<(h&63)) != 0
}

// startKey is lowerWord with the leet symbols kept as they are.
var startKey = func() (t [256]byte) {
	t = lowerWord
	for _, s := range symbols {
		t[s] = s
	}
	return t
}()

// prefixHash hashes the first three lower-cased bytes of a word, with 0 for
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
	var la lookahead // reused by every candidate: zeroing it costs more than most matches
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
			dst, j = f.matchAt(dst, text, j+bits.TrailingZeros64(cands), &la)
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
			dst, j = f.matchAt(dst, text, j, &la)
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

// foldWords splits a configured term into folded words, the way Scan reads
// text (see textWord.read).
func foldWords(term string) []string {
	text := []byte(term)
	var words []string
	for i := nextWord(text, 0); i < len(text); i = nextWord(text, i) {
		var w textWord
		i = w.read(text, i)
		words = append(words, string(w.b[:w.n]))
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
