package api

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit: a document that opens more
// containers than this is invalid, and the scanner must agree.
const maxDepth = 10000

// scanner walks one JSON document in place. It accepts exactly the documents
// encoding/json accepts (same grammar, same nesting limit) but decodes nothing
// on its own: it reports where values sit, so that a parser can decode the few
// it needs and step over the rest without allocating.
//
// Errors are sticky: the first one moves pos to the end of buf and sets bad,
// after which every method returns at once, so loops over containers end by
// themselves and callers check bad once.
type scanner struct {
	buf   []byte
	pos   int
	depth int // containers open around pos
	bad   bool
}

func (s *scanner) fail() {
	s.bad = true
	s.pos = len(s.buf)
}

// peek skips whitespace and returns the byte at pos, or 0 at the end (a NUL
// byte is never valid JSON there either).
func (s *scanner) peek() byte {
	for s.pos < len(s.buf) {
		switch c := s.buf[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() {
	if s.peek() != 0 || s.pos != len(s.buf) {
		s.fail()
	}
}

// open consumes the '{' or '[' at pos, which the caller has peeked.
func (s *scanner) open() {
	s.pos++
	s.depth++
}

// more reports whether the container opened last has another element, consuming
// the ',' before it, or the closing byte after the last one. first is true
// before the first element.
func (s *scanner) more(first bool, closing byte) bool {
	switch c := s.peek(); {
	case c == closing:
		s.pos++
		s.depth--
		return false
	case c == 0:
		s.fail()
		return false
	case first:
		return true
	case c == ',':
		s.pos++
		return true
	default:
		s.fail()
		return false
	}
}

// key reads an object key and the colon after it, and returns the key's span,
// quotes included; esc reports escapes in it.
func (s *scanner) key() (start, end int, esc bool) {
	if s.peek() != '"' {
		s.fail()
		return 0, 0, false
	}
	start, end, esc = s.str()
	if s.peek() != ':' {
		s.fail()
		return 0, 0, false
	}
	s.pos++
	return start, end, esc
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// str reads the string at pos and returns its span, quotes included. esc
// reports a backslash in it: without one, the bytes between the quotes are the
// text, once checked to be valid UTF-8.
func (s *scanner) str() (start, end int, esc bool) {
	b := s.buf
	start = s.pos
	i := start + 1
	for {
		// Eight bytes at a time while none of them is a quote, a backslash
		// or a control character; prompts are mostly such runs.
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			q := w ^ ('"' * lsb)
			bs := w ^ ('\\' * lsb)
			special := ((q - lsb) &^ q) | ((bs - lsb) &^ bs) | ((w - 0x20*lsb) &^ w)
			if special&msb != 0 {
				break
			}
			i += 8
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			s.fail()
			return 0, 0, false
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return start, i + 1, esc
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				s.fail()
				return 0, 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.fail()
					return 0, 0, false
				}
				i += 6
			default:
				s.fail()
				return 0, 0, false
			}
		default: // a control character
			s.fail()
			return 0, 0, false
		}
	}
}

// plainByte marks the bytes a string may hold unescaped. Bytes of 0x80 and
// above are plain: encoding/json accepts invalid UTF-8 and coerces it when
// decoding, so only decoding needs to look at them.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number reads the number at pos.
func (s *scanner) number() {
	b, i := s.buf, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		s.fail()
		return
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			s.fail()
			return
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			s.fail()
			return
		}
		i = j
	}
	s.pos = i
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// literal reads true, false or null at pos.
func (s *scanner) literal(word string) {
	if !bytes.HasPrefix(s.buf[s.pos:], []byte(word)) {
		s.fail()
		return
	}
	s.pos += len(word)
}

// scalar reads the string, number or literal starting with c at pos, and
// reports false when c starts none of them.
func (s *scanner) scalar(c byte) bool {
	switch c {
	case '"':
		s.str()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		s.number()
	default:
		return false
	}
	return true
}

// skip reads one value of any kind at pos. Nested containers are tracked with
// a bit stack rather than recursion, so hostile nesting costs no stack growth.
func (s *scanner) skip() {
	c := s.peek()
	if c != '{' && c != '[' {
		if !s.scalar(c) {
			s.fail()
		}
		return
	}
	var local [2]uint64
	stack := local[:] // bit n: container n is an object; grows past 128 levels
	n := 0
	for {
		// A value starts at pos.
		switch c = s.peek(); c {
		case '{', '[':
			s.pos++
			if s.depth+n+1 > maxDepth {
				s.fail()
				return
			}
			if n/64 == len(stack) {
				stack = append(stack, 0)
			}
			if c == '{' {
				stack[n/64] |= 1 << (n % 64)
			} else {
				stack[n/64] &^= 1 << (n % 64)
			}
			n++
			if c == '{' {
				if s.peek() == '}' {
					s.pos++
					n--
					break
				}
				s.key()
				continue
			}
			if s.peek() == ']' {
				s.pos++
				n--
				break
			}
			continue
		default:
			if !s.scalar(c) {
				s.fail()
			}
		}
		// A value ended: close containers until one has another element.
		for {
			if n == 0 || s.bad {
				return
			}
			object := stack[(n-1)/64]>>((n-1)%64)&1 == 1
			c = s.peek()
			if c == ',' {
				s.pos++
				if object {
					s.key()
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				s.pos++
				n--
				continue
			}
			s.fail()
			return
		}
	}
}

// decodesTo reports whether the string raw (quotes included) decodes to name
// exactly, as a map key or a string value does in encoding/json.
func decodesTo(raw []byte, esc bool, name string) bool {
	if len(raw) < 2 {
		return false // the scanner failed on it
	}
	if !esc {
		return string(raw[1:len(raw)-1]) == name
	}
	return decodeString(raw, esc) == name // an escaped key is rare enough to allocate
}

// keyFolds reports whether the key raw matches the struct field name the way
// encoding/json matches keys to fields: case-insensitively, with Unicode folding.
func keyFolds(raw []byte, esc bool, name string) bool {
	if len(raw) < 2 {
		return false // the scanner failed on it
	}
	if !esc {
		return bytes.EqualFold(raw[1:len(raw)-1], []byte(name))
	}
	return strings.EqualFold(decodeString(raw, esc), name)
}

// decodeString is the text of the valid JSON string raw (quotes included),
// decoded as encoding/json decodes it.
func decodeString(raw []byte, esc bool) string {
	var a textArena
	return a.decode(raw, esc, 0)
}

// textArena decodes strings into one growing buffer, so that the texts of a
// request cost a few allocations between them rather than one each. A string
// it returns stays valid as it grows, since bytes already written never change
// (the guarantee strings.Builder gives). A textArena must not be copied once used.
type textArena struct{ b strings.Builder }

// decode is the text of the valid JSON string raw (quotes included), decoded
// as encoding/json decodes it. hint is the room to make on first use.
func (a *textArena) decode(raw []byte, esc bool, hint int) string {
	if len(raw) < 2 {
		return "" // the scanner failed on it
	}
	inner := raw[1 : len(raw)-1]
	if len(inner) == 0 {
		return ""
	}
	if a.b.Cap() == 0 {
		a.b.Grow(max(len(inner), hint))
	}
	start := a.b.Len()
	if !esc && utf8.Valid(inner) {
		a.b.Write(inner)
	} else {
		unquote(&a.b, inner)
	}
	return a.b.String()[start:]
}

// unquote writes the text of s, the inside of a valid JSON string, exactly as
// encoding/json decodes it: escapes resolved, a lone or broken surrogate and
// every byte of invalid UTF-8 replaced by U+FFFD.
func unquote(w *strings.Builder, s []byte) {
	for {
		run := s
		if k := bytes.IndexByte(s, '\\'); k >= 0 {
			run = s[:k]
		}
		writeUTF8(w, run)
		s = s[len(run):]
		if len(s) == 0 {
			return
		}
		n := 2 // the escape's length
		switch c := s[1]; c {
		case 'b':
			w.WriteByte('\b')
		case 'f':
			w.WriteByte('\f')
		case 'n':
			w.WriteByte('\n')
		case 'r':
			w.WriteByte('\r')
		case 't':
			w.WriteByte('\t')
		case 'u':
			r := hex4(s[2:])
			n = 6
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
				if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
					if pair := utf16.DecodeRune(hex4(s[2:]), hex4(s[8:])); pair != utf8.RuneError {
						r, n = pair, 12
					}
				}
			}
			w.WriteRune(r)
		default: // '"', '\\', '/'
			w.WriteByte(c)
		}
		s = s[n:]
	}
}

// writeUTF8 writes run, replacing each byte of invalid UTF-8 with U+FFFD.
func writeUTF8(w *strings.Builder, run []byte) {
	if utf8.Valid(run) {
		w.Write(run)
		return
	}
	for len(run) > 0 {
		r, size := utf8.DecodeRune(run)
		if r == utf8.RuneError && size == 1 {
			w.WriteRune(utf8.RuneError)
		} else {
			w.Write(run[:size])
		}
		run = run[size:]
	}
}

// hex4 is the value of four hex digits the scanner has already checked.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendString appends s as a JSON string, escaped as encoding/json escapes it
// apart from HTML characters, which need no escaping outside a web page.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript: escaped as encoding/json does.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// parseInt decodes the valid JSON number raw into an int64 as encoding/json
// does: a fraction, an exponent or an overflow is a type error (ok false).
func parseInt(raw []byte) (n int64, ok bool) {
	neg := raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	var u uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true // -(1<<63) wraps to itself: the minimum
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}
