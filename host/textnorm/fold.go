package textnorm

import (
	"sort"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// clean is the first pass: invalid UTF-8, invisible and control characters
// are dropped, and tag characters become the ASCII
// characters they stand for.
func (st *state) clean(b *builder) {
	in := b.in
	for i := 0; i < len(in); {
		if i+8 <= len(in) && printable8(load64(in, i)) {
			i += 8
			continue
		}
		c := in[i]
		if c < utf8.RuneSelf {
			if asciiClass[c]&clsText == 0 {
				if c == '\v' || c == '\f' {
					b.replace(i, i+1, " ")
				} else {
					b.drop(i, i+1)
				}
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(in[i:])
		if n == 1 {
			// A run of invalid bytes is dropped, as an invisible character
			// is: a model reading bytes reads the value around them, so a
			// scanner must see it whole (123\xff-45-6789).
			j := i + 1
			for j < len(in) && in[j] >= utf8.RuneSelf {
				if _, m := utf8.DecodeRuneInString(in[j:]); m != 1 {
					break
				}
				j++
			}
			b.drop(i, j)
			i = j
			continue
		}
		switch {
		case invisible(r):
			b.drop(i, i+n)
		case r >= 0xE0020 && r <= 0xE007E:
			// Tag characters render as nothing but some models read them
			// as the ASCII they shadow ("ASCII smuggling"): show it.
			b.replace(i, i+n, asciiChars[r-0xE0000:r-0xE0000+1])
		case r == 0x85:
			b.replace(i, i+n, "\n")
		case r < 0xA0:
			b.drop(i, i+n) // C1 controls
		}
		i += n
	}
	b.finish()
}

// invisible reports characters that render as nothing, or change only the
// direction or joining of their neighbours: a scanner must not see them
// between the characters of a value.
func invisible(r rune) bool {
	switch {
	case r < 0xAD:
		return false
	case r == 0x00AD, // soft hyphen
		r == 0x034F,              // combining grapheme joiner
		r == 0x061C,              // Arabic letter mark
		r == 0x115F, r == 0x1160, // Hangul choseong and jungseong fillers
		r == 0x17B4, r == 0x17B5, // Khmer inherent vowels
		r >= 0x180B && r <= 0x180F, // Mongolian variation selectors and vowel separator
		r >= 0x200B && r <= 0x200F, // zero-width space, joiners, LRM, RLM
		r >= 0x202A && r <= 0x202E, // bidi embeddings and overrides
		r >= 0x2060 && r <= 0x2064, // word joiner, invisible operators
		r >= 0x2066 && r <= 0x206F, // bidi isolates, deprecated format characters
		r == 0x3164, r == 0xFFA0,   // Hangul fillers
		r >= 0xFE00 && r <= 0xFE0F,                 // variation selectors
		r == 0xFEFF,                                // byte order mark, zero-width no-break space
		r >= 0xFFF9 && r <= 0xFFFB,                 // interlinear annotation
		r == 0xFFFD,                                // replacement character: invalid UTF-8 already decoded
		r >= 0x1BCA0 && r <= 0x1BCA3,               // shorthand format controls
		r >= 0x1D173 && r <= 0x1D17A,               // musical symbol format controls
		r >= 0xE0000 && r <= 0xE001F, r == 0xE007F, // tags that stand for no ASCII character
		r >= 0xE0100 && r <= 0xE01EF: // variation selectors supplement
		return true
	}
	return false
}

// nfkc is the second pass: NFKC, then the per-character folds of fold.
//
// Text between two ASCII characters is skipped without calling norm: an
// ASCII character is a normalisation boundary and never composes with what
// precedes it, so only an ASCII character followed by a non-ASCII one (a
// possible base for combining marks) starts a region to normalise.
func (st *state) nfkc(b *builder) {
	in := b.in
	for i := 0; i < len(in); {
		if i+9 <= len(in) && ascii8(load64(in, i)) && in[i+8] < utf8.RuneSelf {
			i += 8
			continue
		}
		if in[i] < utf8.RuneSelf && (i+1 == len(in) || in[i+1] < utf8.RuneSelf) {
			i++
			continue
		}
		j := i + 1
		for j < len(in) && in[j] >= utf8.RuneSelf {
			j++
		}
		st.nfkcRegion(b, i, j)
		i = j
	}
	b.finish()
}

func (st *state) nfkcRegion(b *builder, start, end int) {
	if st.foldNormal(b, start, end) {
		return
	}
	// The region is cut into NFKC segments, each a character that
	// combines with nothing before it and the characters that may combine
	// with it, and each segment is normalised alone. Segments are folded
	// one behind, so that a segment can take the next one along when that
	// holds only marks: NFKC puts a mark of combining class 0 (a keycap's
	// U+20E3) in a segment of its own.
	in := b.in
	p0, p1 := start, start
	st.seg = st.seg[:0]
	for i := start; i < end; {
		j, seg := st.nextSegment(in[:end], i)
		if p1 > p0 && !onlyMarks(seg) {
			st.foldSegment(b, p0, p1, st.seg)
			p0 = p1
			st.seg = st.seg[:0]
		}
		st.seg = append(st.seg, seg...)
		p1, i = j, j
	}
	if p1 > p0 {
		st.foldSegment(b, p0, p1, st.seg)
	}
	st.seg = st.seg[:0]
}

// nextSegment returns the end of the NFKC segment at in[i] and its NFKC
// form, valid until the next call.
func (st *state) nextSegment(in string, i int) (int, []byte) {
	j := i + max(norm.NFKC.PropertiesString(in[i:]).Size(), 1)
	for j < len(in) {
		p := norm.NFKC.PropertiesString(in[j:])
		if p.BoundaryBefore() {
			break
		}
		j += max(p.Size(), 1)
	}
	return j, st.nfkcSegment(in[i:j])
}

// nfkcSegment returns the NFKC form of one segment, valid until the next
// call. The form of a lone character is remembered: a text of U+FDFA
// repeated, 3 bytes that become 33, would otherwise cost a microsecond a
// character in golang.org/x/text's multi-segment path.
func (st *state) nfkcSegment(seg string) []byte {
	r, n := utf8.DecodeRuneInString(seg)
	if n != len(seg) {
		st.nfkcBuf = norm.NFKC.AppendString(st.nfkcBuf[:0], seg)
		return st.nfkcBuf
	}
	m := &st.memo[r%nfkcMemoSize]
	if m.key == r+1 {
		return m.b[:m.n]
	}
	st.nfkcBuf = norm.NFKC.AppendString(st.nfkcBuf[:0], seg)
	if len(st.nfkcBuf) <= len(m.b) {
		m.key, m.n = r+1, uint8(copy(m.b[:], st.nfkcBuf))
	}
	return st.nfkcBuf
}

// nfkcMemo remembers the NFKC form of one character. The longest, U+FDFA's,
// is 33 bytes.
type nfkcMemo struct {
	key rune // the character plus one: the zero nfkcMemo is empty
	n   uint8
	b   [40]byte
}

const nfkcMemoSize = 256

// foldNormal folds a region that is already in NFKC, rune by rune, and
// reports whether it could: not when a mark follows an ASCII letter or
// digit or a digit that folds to one, which foldSegment handles. Most text
// takes this path, which costs a quick check instead of an NFKC
// iteration.
func (st *state) foldNormal(b *builder, start, end int) bool {
	region := b.in[start:end]
	if norm.NFKC.QuickSpanString(region) != len(region) {
		return false
	}
	alnum := false
	for _, r := range region {
		if alnum && unicode.In(r, unicode.Mn, unicode.Me) {
			return false
		}
		alnum = r < utf8.RuneSelf && asciiClass[r]&clsAlnum != 0 || mayFold(r) && unicode.Is(unicode.Nd, r)
	}
	for i := 0; i < len(region); {
		if region[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(region[i:])
		if mayFold(r) {
			raw := region[i : i+n]
			st.tmp = appendFold(st.tmp[:0], r, raw)
			if string(st.tmp) != raw {
				b.replace(start+i, start+i+n, bstr(st.tmp))
			}
		}
		i += n
	}
	return true
}

// foldBMP marks the characters of the Basic Multilingual Plane that
// appendFold may change, so that most characters cost one bit test.
var foldBMP = func() (t [1 << 16 / 64]uint64) {
	for r := rune(0x80); r < 1<<16; r++ {
		if invisible(r) || dash(r) || fullStop(r) || r == 0x2028 || r == 0x2029 ||
			unicode.Is(unicode.Zs, r) || unicode.Is(unicode.Nd, r) {
			t[r/64] |= 1 << (r % 64)
		}
	}
	return t
}()

func mayFold(r rune) bool {
	return r >= 1<<16 || foldBMP[r/64]&(1<<(r%64)) != 0
}

// foldSegment writes the folded form of seg, the NFKC form of in[p0:p1].
func (st *state) foldSegment(b *builder, p0, p1 int, seg []byte) {
	tmp := st.tmp[:0]
	alnum := false // the last byte written is an ASCII letter or digit
	for k := 0; k < len(seg); {
		if c := seg[k]; c < utf8.RuneSelf {
			tmp = append(tmp, c)
			alnum = asciiClass[c]&clsAlnum != 0
			k++
			continue
		}
		r, n := utf8.DecodeRune(seg[k:])
		k += n
		if alnum && unicode.In(r, unicode.Mn, unicode.Me) {
			// Marks NFKC could not compose onto an ASCII letter or digit
			// (1̲2̲3̲, keycaps) only hide it from a scanner.
			continue
		}
		tmp = appendFold(tmp, r, bstr(seg[k-n:k]))
		alnum = len(tmp) > 0 && asciiClass[tmp[len(tmp)-1]]&clsAlnum != 0
	}
	st.tmp = tmp
	if string(tmp) == b.in[p0:p1] {
		return
	}
	if len(tmp) == 0 {
		b.drop(p0, p1)
		return
	}
	b.replace(p0, p1, bstr(tmp)) // past the cap, the segment stays as it was
}

func onlyMarks(s []byte) bool {
	for k := 0; k < len(s); {
		r, n := utf8.DecodeRune(s[k:])
		if !unicode.In(r, unicode.Mn, unicode.Me) {
			return false
		}
		k += n
	}
	return true
}

// appendFold appends the fold of the non-ASCII rune r, whose encoding is raw.
func appendFold(dst []byte, r rune, raw string) []byte {
	if !mayFold(r) {
		return append(dst, raw...)
	}
	switch {
	case invisible(r):
		return dst // norm.Iter inserts U+034F into runs of over 30 marks
	case dash(r):
		return append(dst, '-')
	case r == 0x2028 || r == 0x2029:
		return append(dst, '\n')
	case fullStop(r):
		return append(dst, '.')
	case unicode.Is(unicode.Zs, r):
		return append(dst, ' ')
	}
	if v, ok := digitValue(r); ok {
		return append(dst, byte('0'+v))
	}
	return append(dst, raw...)
}

// dash reports the Unicode dashes and minus signs NFKC leaves alone (or
// makes: U+FE58 becomes U+2014).
func dash(r rune) bool {
	switch {
	case r >= 0x2010 && r <= 0x2015, r == 0x2212, r == 0x2E3A, r == 0x2E3B,
		r == 0xFE58, r == 0xFE63, r == 0xFF0D, r == 0x058A, r == 0x1400, r == 0x1806, r == 0x2E17:
		return true
	}
	return false
}

// fullStop reports full stops of other scripts. U+FF0E, U+FE52 and U+2024
// are already '.' after NFKC; U+FF61 and U+FE12 become U+3002.
func fullStop(r rune) bool {
	switch r {
	case 0x0589, 0x06D4, 0x0701, 0x0702, 0x1362, 0x166E, 0x1803, 0x1809,
		0x2E3C, 0x3002, 0xA4FF, 0xA60E, 0xA6F3, 0xFF61:
		return true
	}
	return false
}

// digitZeros holds the zero of every block of decimal digits (unicode.Nd).
// Unicode encodes each decimal digit set as ten contiguous code points from
// zero to nine, so a digit's value is its distance from the block's zero.
var digitZeros = func() []rune {
	var zs []rune
	for _, r := range unicode.Nd.R16 {
		for z := rune(r.Lo); z <= rune(r.Hi); z += 10 {
			zs = append(zs, z)
		}
	}
	for _, r := range unicode.Nd.R32 {
		for z := rune(r.Lo); z <= rune(r.Hi); z += 10 {
			zs = append(zs, z)
		}
	}
	return zs
}()

func digitValue(r rune) (int, bool) {
	if !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	i := sort.Search(len(digitZeros), func(i int) bool { return digitZeros[i] > r }) - 1
	return int(r - digitZeros[i]), true
}

// confusables is the third pass: inside a word that also holds ASCII
// letters, or whose letters are all look-alikes, Cyrillic and Greek letters
// that look like Latin ones become those Latin letters. A word of another
// script that merely contains look-alikes (привет) is left alone, so
// content filters for that language still see it.
func (st *state) confusables(b *builder) {
	in := b.in
	lo := 0 // no word before lo is left to look at
	for i := 0; i < len(in); {
		if i+8 <= len(in) && ascii8(load64(in, i)) {
			i += 8
			continue
		}
		if in[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(in[i:])
		if lookAlike(r) == 0 {
			i += n
			continue
		}
		ws := i
		for ws > lo {
			q, m := utf8.DecodeLastRuneInString(in[lo:ws])
			if !wordRune(q) {
				break
			}
			ws -= m
		}
		we := i
		asciiLetter, allAlike := false, true
		for k := ws; k < len(in); {
			q, m := rune(in[k]), 1
			if q >= utf8.RuneSelf {
				q, m = utf8.DecodeRuneInString(in[k:])
			}
			if !wordRune(q) {
				break
			}
			switch {
			case q < utf8.RuneSelf:
				asciiLetter = asciiLetter || asciiClass[q]&clsLetter != 0
			case unicode.IsLetter(q) && lookAlike(q) == 0:
				allAlike = false
			}
			k += m
			we = k
		}
		if asciiLetter || allAlike {
			for k := i; k < we; {
				q, m := utf8.DecodeRuneInString(in[k:])
				if c := lookAlike(q); c != 0 {
					b.replace(k, k+m, asciiChars[c:c+1])
				}
				k += m
			}
		}
		i, lo = we, we
	}
	b.finish()
}

func wordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&clsAlnum != 0
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)
}

// lookAlike returns the Latin letter that the Cyrillic or Greek letter r is
// drawn like in common fonts, or 0. The table is short on purpose: letters
// whose shapes match at a glance (the Unicode confusables data, restricted
// to these two scripts and to exact look-alikes), not letters that merely
// resemble one (Greek η and n, Cyrillic и and u), which would fold real
// words of those languages for little gain.
func lookAlike(r rune) byte {
	if r < 0x0391 || r > 0x051D {
		return 0
	}
	switch r {
	// Cyrillic capitals
	case 'А':
		return 'A'
	case 'В':
		return 'B'
	case 'Е':
		return 'E'
	case 'К':
		return 'K'
	case 'М':
		return 'M'
	case 'Н':
		return 'H'
	case 'О':
		return 'O'
	case 'Р':
		return 'P'
	case 'С':
		return 'C'
	case 'Т':
		return 'T'
	case 'У', 'Ү':
		return 'Y'
	case 'Х':
		return 'X'
	case 'Ѕ':
		return 'S'
	case 'І', 'Ӏ':
		return 'I'
	case 'Ј':
		return 'J'
	case 'Һ':
		return 'H'
	case 'Ԛ':
		return 'Q'
	case 'Ԝ':
		return 'W'
	// Cyrillic small letters
	case 'а':
		return 'a'
	case 'е':
		return 'e'
	case 'о':
		return 'o'
	case 'р':
		return 'p'
	case 'с':
		return 'c'
	case 'у':
		return 'y'
	case 'х':
		return 'x'
	case 'ѕ':
		return 's'
	case 'і':
		return 'i'
	case 'ј':
		return 'j'
	case 'һ':
		return 'h'
	case 'ԁ':
		return 'd'
	case 'ԛ':
		return 'q'
	case 'ԝ':
		return 'w'
	case 'ӏ':
		return 'l'
	// Greek capitals
	case 'Α':
		return 'A'
	case 'Β':
		return 'B'
	case 'Ε':
		return 'E'
	case 'Ζ':
		return 'Z'
	case 'Η':
		return 'H'
	case 'Ι':
		return 'I'
	case 'Κ':
		return 'K'
	case 'Μ':
		return 'M'
	case 'Ν':
		return 'N'
	case 'Ο':
		return 'O'
	case 'Ρ':
		return 'P'
	case 'Τ':
		return 'T'
	case 'Υ':
		return 'Y'
	case 'Χ':
		return 'X'
	case 'Ϲ':
		return 'C'
	case 'Ϳ':
		return 'J'
	// Greek small letters
	case 'ο':
		return 'o'
	case 'ν':
		return 'v'
	case 'α':
		return 'a'
	case 'ι':
		return 'i'
	case 'κ':
		return 'k'
	case 'ρ':
		return 'p'
	case 'υ':
		return 'u'
	case 'ϲ':
		return 'c'
	case 'ϳ':
		return 'j'
	}
	return 0
}

// load64 reads s[i:i+8] as one little-endian word.
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// ascii8 reports whether the eight bytes of x are ASCII.
func ascii8(x uint64) bool { return x&highs == 0 }

// printable8 reports whether the eight bytes of x are all in 0x20-0x7E
// (none below 0x20, none above 0x7E), so the clean pass keeps them.
func printable8(x uint64) bool {
	below := (x - 0x20*ones) &^ x & highs
	above := (x + 0x01*ones | x) & highs
	return below|above == 0
}

// Classes of ASCII bytes.
const (
	clsText   = 1 << iota // printable, tab, newline, carriage return
	clsPlain              // clsText, and starts no escape: neither '%' nor '&'
	clsLetter             // A-Z a-z
	clsAlnum              // A-Z a-z 0-9
	clsHex                // 0-9 A-F a-f
	clsRun                // base64 alphabets, standard and URL: A-Z a-z 0-9 + / - _
)

var asciiClass = func() (t [256]uint8) {
	for c := 0; c < 128; c++ {
		var k uint8
		if c >= 0x20 && c < 0x7F || c == '\t' || c == '\n' || c == '\r' {
			k |= clsText | clsPlain
		}
		if c == '%' || c == '&' {
			k &^= clsPlain
		}
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
		digit := c >= '0' && c <= '9'
		if letter {
			k |= clsLetter
		}
		if letter || digit {
			k |= clsAlnum | clsRun
		}
		if digit || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f' {
			k |= clsHex
		}
		if c == '+' || c == '/' || c == '-' || c == '_' {
			k |= clsRun
		}
		t[c] = k
	}
	return t
}()

// asciiChars[c:c+1] is the one-byte string of c, without allocating.
const asciiChars = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f" +
	" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f"
