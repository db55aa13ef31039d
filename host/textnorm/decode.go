package textnorm

import (
	"unicode"
	"unicode/utf8"
)

const (
	// minBase64 and minHex are the shortest runs tried as base64 and hex:
	// 12 and 8 decoded bytes. Shorter runs are words far more often than
	// encodings, and a value shorter than that is rarely worth hiding.
	minBase64 = 16
	minHex    = 16
	minRun    = min(minBase64, minHex)
)

// escapes is the fourth pass: percent-escapes and HTML character
// references. What they decode to goes through the character passes (fold)
// but is not decoded as an escape again.
func (st *state) escapes(b *builder) {
	in := b.in
	for i := 0; i < len(in); {
		switch in[i] {
		case '%':
			i = st.percent(b, i)
		case '&':
			i = st.entity(b, i)
		default:
			i++
		}
	}
	b.finish()
}

// runs is the last pass: base64 and hex runs, read after the escapes so that
// a token written with escapes between its runs (a JWT whose dots are
// &period;) is judged whole. What a run decodes to is appended, folded, and
// not decoded again.
func (st *state) runs(b *builder) {
	in := b.in
	for i := 0; i < len(in); {
		if asciiClass[in[i]]&clsRun == 0 {
			i++
			continue
		}
		k := i + 1
		for k < len(in) && asciiClass[in[k]]&clsRun != 0 {
			k++
		}
		if k-i < minRun && (k == len(in) || in[k] != '.' && in[k] != '=') {
			i = k // a word: a compound of one run too short to decode
			continue
		}
		j, found := scanCompound(in, i)
		if found {
			st.expandCompound(b, i, j)
		}
		i = j
	}
	b.finish()
}

// percent decodes the run of %XX escapes at in[i] and returns where it
// ends. Escapes are decoded a whole UTF-8 character at a time; an escape
// that yields no character (an invalid byte, a control other than tab and
// newline) stays as it is.
func (st *state) percent(b *builder, i int) int {
	in := b.in
	dec := st.dec[:0]
	j := i
	for j+2 < len(in) && in[j] == '%' && asciiClass[in[j+1]]&clsHex != 0 && asciiClass[in[j+2]]&clsHex != 0 {
		dec = append(dec, unhex(in[j+1])<<4|unhex(in[j+2]))
		j += 3
	}
	st.dec = dec
	if j == i {
		return i + 1
	}
	gs := 0 // start in dec of the characters not yet written
	for k := 0; k < len(dec); {
		r, n := utf8.DecodeRune(dec[k:])
		if n == 1 && r == utf8.RuneError || !textRune(r) {
			st.emitDecoded(b, i+3*gs, i+3*k, bstr(dec[gs:k]))
			k += n
			gs = k
			continue
		}
		k += n
	}
	st.emitDecoded(b, i+3*gs, i+3*len(dec), bstr(dec[gs:]))
	return j
}

// entity decodes the character reference at in[i] and returns where it
// ends: &#64; &#x40; (the semicolon optional, as browsers allow) and the
// named references of namedEntities (semicolon required).
func (st *state) entity(b *builder, i int) int {
	in := b.in
	j := i + 1
	var repl string
	if j < len(in) && in[j] == '#' {
		j++
		base := 10
		if j < len(in) && in[j]|0x20 == 'x' {
			base = 16
			j++
		}
		ds := j
		v := 0
		for j < len(in) {
			d := digitIn(in[j], base)
			if d < 0 {
				break
			}
			v = min(v*base+d, unicode.MaxRune+1) // stays bounded however many digits
			j++
		}
		if j == ds {
			return i + 1
		}
		if j < len(in) && in[j] == ';' {
			j++
		}
		r := rune(v)
		if r > unicode.MaxRune || r >= 0xD800 && r <= 0xDFFF || !textRune(r) {
			return i + 1
		}
		st.dec = utf8.AppendRune(st.dec[:0], r)
		repl = bstr(st.dec)
	} else {
		for j < len(in) && j-i <= maxEntityName && asciiClass[in[j]]&clsAlnum != 0 {
			j++
		}
		if j == i+1 || j >= len(in) || in[j] != ';' {
			return i + 1
		}
		s, ok := namedEntities[in[i+1:j]]
		if !ok {
			return i + 1
		}
		repl = s
		j++
	}
	st.emitDecoded(b, i, j, repl)
	return j
}

// emitDecoded writes the fold of text, decoded from in[start:end], in its
// place. If the fold does not fit, the escape stays as it was.
func (st *state) emitDecoded(b *builder, start, end int, text string) {
	if start == end {
		return
	}
	f, capped := st.fold(text, b.room(start, end))
	b.capped = b.capped || capped
	b.replace(start, end, f)
}

// fold runs the character passes over decoded text, without a map.
func (st *state) fold(s string, limit int) (string, bool) {
	capped := false
	for k, pass := range [...]func(*state, *builder){(*state).clean, (*state).nfkc, (*state).confusables} {
		sb := &st.sub[k]
		sb.reset(s, nil, max(limit, len(s)), false)
		pass(st, sb)
		s = sb.result()
		capped = capped || sb.capped
	}
	return s, capped
}

// scanCompound returns the end of the compound starting at in[i] and
// whether one of its runs decodes to text. A compound is one or more base64
// and hex runs, each with its padding, joined by '.' (a JWT): its decoded
// texts go after the whole compound so that the raw token stays whole for
// detectors that match it.
func scanCompound(in string, i int) (int, bool) {
	found := false
	j := i
	for {
		k := j + 1
		for k < len(in) && asciiClass[in[k]]&clsRun != 0 {
			k++
		}
		if !found && runMode(in[j:k]) != modeNone {
			found = true
		}
		for k < len(in) && in[k] == '=' {
			k++
		}
		j = k
		if j+1 < len(in) && in[j] == '.' && asciiClass[in[j+1]]&clsRun != 0 {
			j++
			continue
		}
		return j, found
	}
}

// expandCompound keeps the compound in[i:j] and appends, after a space, the
// fold of each run that decodes to text. Raw compound and decoded texts
// form one atomic piece, so a finding in either maps to the whole compound.
func (st *state) expandCompound(b *builder, i, j int) {
	in := b.in
	if !b.replace(i, j, in[i:j]) {
		return
	}
	for k := i; k < j; {
		if asciiClass[in[k]]&clsRun == 0 {
			k++
			continue
		}
		e := k + 1
		for e < j && asciiClass[in[e]]&clsRun != 0 {
			e++
		}
		run := in[k:e]
		k = e
		m := runMode(run)
		if m == modeNone {
			continue
		}
		room := b.room(b.done, b.done) - 1
		if decodedLen(run, m) > room {
			b.capped = true
			continue
		}
		st.dec = decodeRun(st.dec[:0], run, m)
		f, capped := st.fold(bstr(st.dec), room)
		b.capped = b.capped || capped
		st.app = append(append(st.app[:0], ' '), f...)
		b.extend(bstr(st.app))
	}
}

const (
	modeNone = iota
	modeHex
	modeHex0x // hex after a 0x prefix
	modeBase64
)

// runMode says how the run decodes to text, if it does: hex when it is all
// hex digits, else base64 (standard or URL alphabet, not both, with or
// without padding). It decodes nothing into memory.
func runMode(run string) int {
	if len(run) < minRun {
		return modeNone
	}
	hexFrom := 0
	if len(run) >= 2 && run[0] == '0' && run[1]|0x20 == 'x' {
		hexFrom = 2
	}
	if len(run)-hexFrom >= minHex && (len(run)-hexFrom)%2 == 0 && allHex(run[hexFrom:]) {
		var tc textCheck
		for k := hexFrom; k < len(run) && !tc.hopeless(); k += 2 {
			tc.add(unhex(run[k])<<4 | unhex(run[k+1]))
		}
		if tc.ok() {
			if hexFrom > 0 {
				return modeHex0x
			}
			return modeHex
		}
	}
	if len(run) < minBase64 || len(run)%4 == 1 {
		return modeNone
	}
	std, url := false, false
	for k := 0; k < len(run); k++ {
		switch run[k] {
		case '+', '/':
			std = true
		case '-', '_':
			url = true
		}
	}
	if std && url {
		return modeNone
	}
	var tc textCheck
	var q [4]byte
	for k := 0; k < len(run) && !tc.hopeless(); {
		n := copy(q[:], run[k:])
		k += n
		v := uint32(b64[q[0]])<<18 | uint32(b64[q[1]])<<12
		if n > 2 {
			v |= uint32(b64[q[2]]) << 6
		}
		if n > 3 {
			v |= uint32(b64[q[3]])
		}
		tc.add(byte(v >> 16))
		if n > 2 {
			tc.add(byte(v >> 8))
		}
		if n > 3 {
			tc.add(byte(v))
		}
	}
	if tc.ok() {
		return modeBase64
	}
	return modeNone
}

func decodedLen(run string, m int) int {
	switch m {
	case modeHex:
		return len(run) / 2
	case modeHex0x:
		return len(run)/2 - 1
	}
	return len(run) * 3 / 4
}

func decodeRun(dst []byte, run string, m int) []byte {
	switch m {
	case modeHex, modeHex0x:
		if m == modeHex0x {
			run = run[2:]
		}
		for k := 0; k+1 < len(run); k += 2 {
			dst = append(dst, unhex(run[k])<<4|unhex(run[k+1]))
		}
		return dst
	}
	for k := 0; k < len(run); k += 4 {
		q := run[k:min(k+4, len(run))]
		v := uint32(b64[q[0]])<<18 | uint32(b64[q[1]])<<12
		if len(q) > 2 {
			v |= uint32(b64[q[2]]) << 6
		}
		if len(q) > 3 {
			v |= uint32(b64[q[3]])
		}
		dst = append(dst, byte(v>>16))
		if len(q) > 2 {
			dst = append(dst, byte(v>>8))
		}
		if len(q) > 3 {
			dst = append(dst, byte(v))
		}
	}
	return dst
}

// b64 holds the value of each character of both base64 alphabets.
var b64 = func() (t [256]uint8) {
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = uint8(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// textCheck judges, byte by byte, whether decoded bytes are text: valid
// UTF-8 of characters that are printable, spaces or format characters
// (these are dropped by the fold). A tenth of the bytes may be otherwise,
// so one stray byte cannot hide a payload, but no more, in the whole and in
// every prefix of 64 bytes or longer, so random and binary data are
// rejected after their first 64 bytes whatever their length.
type textCheck struct {
	n, bad, good int
	need         int  // continuation bytes still expected
	r, lowest    rune // the rune being read, and its lowest valid value
}

func (c *textCheck) add(x byte) {
	c.n++
	if c.need > 0 {
		if x&0xC0 == 0x80 {
			c.r = c.r<<6 | rune(x&0x3F)
			if c.need--; c.need == 0 {
				if c.r < c.lowest || c.r > unicode.MaxRune || c.r >= 0xD800 && c.r <= 0xDFFF {
					c.bad++
				} else {
					c.char(c.r)
				}
			}
			return
		}
		c.bad++ // a truncated sequence; x starts afresh
		c.need = 0
	}
	switch {
	case x < 0x80:
		c.char(rune(x))
	case x&0xE0 == 0xC0:
		c.need, c.r, c.lowest = 1, rune(x&0x1F), 0x80
	case x&0xF0 == 0xE0:
		c.need, c.r, c.lowest = 2, rune(x&0x0F), 0x800
	case x&0xF8 == 0xF0:
		c.need, c.r, c.lowest = 3, rune(x&0x07), 0x10000
	default:
		c.bad++
	}
}

func (c *textCheck) char(r rune) {
	if textRune(r) && r != utf8.RuneError {
		c.good++
	} else {
		c.bad++
	}
}

func (c *textCheck) hopeless() bool {
	return c.n >= 64 && c.bad*10 > c.n
}

func (c *textCheck) ok() bool {
	bad := c.bad
	if c.need > 0 {
		bad++
	}
	return c.good > 0 && bad*10 <= c.n
}

// textRune reports characters decoded text may hold: not controls other
// than tab, newline and carriage return, and not unassigned or private-use
// code points.
func textRune(r rune) bool {
	if r < 0x80 {
		return r >= 0x20 && r < 0x7F || r == '\t' || r == '\n' || r == '\r'
	}
	return unicode.IsPrint(r) || unicode.IsSpace(r) && r >= 0xA0 || unicode.Is(unicode.Cf, r)
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if asciiClass[s[i]]&clsHex == 0 {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func digitIn(c byte, base int) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case base == 16 && c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case base == 16 && c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

const maxEntityName = 32

// namedEntities are the HTML named character references a hidden value is
// likely to use: ASCII punctuation, spaces, dashes and invisible
// characters. The full HTML list (over 2,000 names, mostly letters and
// mathematical symbols) would add nothing a scanner needs.
var namedEntities = map[string]string{
	"amp": "&", "AMP": "&", "lt": "<", "LT": "<", "gt": ">", "GT": ">",
	"quot": "\"", "QUOT": "\"", "apos": "'", "commat": "@", "period": ".",
	"hyphen": "\u2010", "dash": "\u2010", "ndash": "\u2013", "mdash": "\u2014", "minus": "\u2212",
	"nbsp": "\u00a0", "NonBreakingSpace": "\u00a0", "ensp": "\u2002", "emsp": "\u2003",
	"emsp13": "\u2004", "emsp14": "\u2005", "numsp": "\u2007", "puncsp": "\u2008",
	"thinsp": "\u2009", "ThinSpace": "\u2009", "hairsp": "\u200a", "VeryThinSpace": "\u200a",
	"MediumSpace": "\u205f", "Tab": "\t", "NewLine": "\n",
	"ZeroWidthSpace": "\u200b", "zwnj": "\u200c", "zwj": "\u200d", "lrm": "\u200e", "rlm": "\u200f",
	"shy": "\u00ad", "NoBreak": "\u2060", "InvisibleTimes": "\u2062", "it": "\u2062",
	"InvisibleComma": "\u2063", "ic": "\u2063",
	"colon": ":", "semi": ";", "comma": ",", "sol": "/", "bsol": "\\", "num": "#",
	"dollar": "$", "plus": "+", "equals": "=", "lowbar": "_", "UnderBar": "_",
	"excl": "!", "quest": "?", "percnt": "%", "lpar": "(", "rpar": ")",
	"ast": "*", "midast": "*", "lsqb": "[", "lbrack": "[", "rsqb": "]", "rbrack": "]",
	"lcub": "{", "lbrace": "{", "rcub": "}", "rbrace": "}", "verbar": "|", "vert": "|",
	"VerticalLine": "|", "grave": "`", "DiacriticalGrave": "`", "Hat": "^",
	"middot": "\u00b7", "centerdot": "\u00b7", "bull": "\u2022", "hellip": "\u2026",
}
