package guest

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unsafe"

	"github.com/sluicehq/sluice/sdk/abi"
)

// The result document is a guest's per-finding work, and Go compiled to
// WebAssembly pays dearly for calls and loops: run by wazero on amd64, a call
// costs about 130 machine instructions and a loop iteration about 35 (counted
// with callgrind), so abi.AppendResult, with its appends, strconv calls and
// byte loops, spent some 7,000 instructions on each finding. resultEncoder
// writes the same bytes (a test holds it to abi.AppendResult) with no call
// and no loop per finding on the common path: the part of a finding that
// depends on its type is encoded once per type and stored as five eight-byte
// words, the keys are eight-byte stores, and numbers below 10^8 (every offset
// within the host's 64 MiB input limit) and scores of up to four decimals are
// built in a register and stored at once. Anything else takes a general path
// that is slower but writes the same bytes.

// emptyResult is the document for a scan without findings, which is most
// scans: the output points at it rather than writing it.
var emptyResult = []byte(`{"findings":[]}`)

// resultHeader opens a document with findings. Each finding is written with a
// leading comma, and the first comma is then overwritten with the '['.
const resultHeader = `{"findings":`

// The keys after the type prefix, as little-endian words. A nine-byte key
// gets its ':' separately; the eighth byte of keyEnd is overwritten by the
// digits that follow.
var (
	keyStart = binary.LittleEndian.Uint64([]byte(`,"start"`))
	keyEnd   = binary.LittleEndian.Uint64([]byte(`,"end":_`))
	keyScore = binary.LittleEndian.Uint64([]byte(`,"score"`))
)

// prefixWords is the size of a cached type prefix in eight-byte words: 40
// bytes hold `,{"type":"` and `","message":` around a type of up to 18 bytes.
const prefixWords = 5

// maxFindingTail bounds what a finding writes after its type prefix,
// including the bytes past the end that eight-byte stores write: three
// integers of up to 20 bytes, the keys, a score of up to 24 bytes and '}'.
const maxFindingTail = 3*20 + len(`,"start":,"end":,"score":}`) + 24 + 8

// maxFinding bounds what a finding with a cached type prefix writes.
const maxFinding = 8*prefixWords + maxFindingTail

// typeSlots is the size of the type prefix cache, a power of two.
const typeSlots = 64

// quads[i] is the four decimal digits of i, with leading zeros, as a
// little-endian uint32. 40 KB of guest memory buy two lookups per number
// instead of a loop over its digits.
var quads = func() (q [10000]uint32) {
	for i := range q {
		q[i] = uint32('0'+i/1000) | uint32('0'+i/100%10)<<8 | uint32('0'+i/10%10)<<16 | uint32('0'+i%10)<<24
	}
	return q
}()

// pow10 holds the powers of ten that fit a uint32.
var pow10 = [...]uint32{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// resultEncoder encodes result documents into a buffer it reuses, so that a
// scan allocates nothing once the buffer has grown to the size of the largest
// result.
type resultEncoder struct {
	buf   []byte
	types [typeSlots]typePrefix
}

// typePrefix is `,{"type":"EMAIL","message":` for one finding type, as
// little-endian words padded with zeros. The cache finds it by the type
// string's address and length; typ keeps the string alive, so that its
// address cannot be reused for another string while it is cached.
type typePrefix struct {
	typ   string
	n     int // bytes of the prefix without the padding; 0 for an empty slot
	words [prefixWords]uint64
	long  []byte // the prefix, when it is longer than words hold
}

// encode returns the result document for findings, valid until the next
// call.
func (e *resultEncoder) encode(findings []Finding) []byte {
	if len(findings) == 0 {
		return emptyResult
	}
	b := append(e.buf[:0], resultHeader...)
	n := len(b)
	for i := range findings {
		f := &findings[i]
		if cap(b)-n < maxFinding {
			b = append(b[:n], make([]byte, maxFinding)...)
		}
		b = b[:cap(b)]

		// The type prefix, from a two-way set of the cache: hashing the
		// address (Fibonacci hashing, as string constants are packed byte by
		// byte) and comparing two words is cheaper than reading the type.
		data := unsafe.StringData(f.Type)
		slot := uint(uint64(uintptr(unsafe.Pointer(data)))*0x9e3779b97f4a7c15>>(64-bits.Len(typeSlots-1))) &^ 1
		p := &e.types[slot]
		if p.n == 0 || unsafe.StringData(p.typ) != data || len(p.typ) != len(f.Type) {
			p = &e.types[slot+1]
			if p.n == 0 || unsafe.StringData(p.typ) != data || len(p.typ) != len(f.Type) {
				p = e.cachePrefix(f.Type, slot)
			}
		}
		if p.long == nil {
			binary.LittleEndian.PutUint64(b[n:], p.words[0])
			binary.LittleEndian.PutUint64(b[n+8:], p.words[1])
			binary.LittleEndian.PutUint64(b[n+16:], p.words[2])
			binary.LittleEndian.PutUint64(b[n+24:], p.words[3])
			binary.LittleEndian.PutUint64(b[n+32:], p.words[4])
			n += p.n
		} else {
			b = append(b[:n], p.long...)
			n = len(b)
			if cap(b)-n < maxFindingTail {
				b = append(b, make([]byte, maxFindingTail)...)
			}
			b = b[:cap(b)]
		}

		if uint(f.Message)|uint(f.Start)|uint(f.End) < 1e8 {
			w, k := decimal(uint32(f.Message))
			binary.LittleEndian.PutUint64(b[n:], w)
			n += k
			binary.LittleEndian.PutUint64(b[n:], keyStart)
			b[n+8] = ':'
			n += 9
			w, k = decimal(uint32(f.Start))
			binary.LittleEndian.PutUint64(b[n:], w)
			n += k
			binary.LittleEndian.PutUint64(b[n:], keyEnd)
			n += 7
			w, k = decimal(uint32(f.End))
			binary.LittleEndian.PutUint64(b[n:], w)
			n += k
		} else {
			n = putInts(b, n, f)
		}
		binary.LittleEndian.PutUint64(b[n:], keyScore)
		b[n+8] = ':'
		n += 9
		if w, k, ok := decimalScore(f.Score); ok {
			binary.LittleEndian.PutUint64(b[n:], w)
			n += k
		} else {
			n = putScore(b, n, f.Score)
		}
		b[n] = '}'
		n++
	}
	b[len(resultHeader)] = '['
	b = append(b[:n], ']', '}')
	e.buf = b
	return b
}

// decimal returns u < 10^8 in decimal, up to eight digits in the low bytes
// of a little-endian word, and the number of digits.
func decimal(u uint32) (uint64, int) {
	w := uint64(quads[u/10000%10000]) | uint64(quads[u%10000])<<32
	// Digits: about log10(2) per bit, then one fewer if below that power of
	// ten. u|1 has as many digits as u and at least one.
	k := bits.Len32(u|1)*1233>>12 + 1
	if u|1 < pow10[k-1] {
		k--
	}
	return w >> (64 - 8*k), k
}

// decimalScore returns score as strconv.AppendFloat(score, 'g', 4, 64)
// writes it, in the low bytes of a little-endian word, and its length, if it
// is in [0,1] with at most four decimals; ok is false otherwise.
func decimalScore(score float64) (w uint64, k int, ok bool) {
	// The bits of non-negative floats order as the floats do; -0, negative
	// numbers and NaN have bits above those of 1.
	d := uint32(score*10000 + 0.5)
	if math.Float64bits(score) > math.Float64bits(1) || float64(d)/10000 != score {
		return 0, 0, false
	}
	if d%10000 == 0 { // 0 or 1
		return uint64('0' + d/10000), 1, true
	}
	// "0.dddd", less the trailing zeros that 'g' drops (d > 0 keeps a digit).
	digits := quads[d]
	return uint64('0') | uint64('.')<<8 | uint64(digits)<<16, 6 - bits.LeadingZeros32(digits^0x30303030)/8, true
}

// cachePrefix encodes the prefix of type t into the set at slot, in place of
// the entry used less recently, and returns it.
func (e *resultEncoder) cachePrefix(t string, slot uint) *typePrefix {
	e.types[slot+1] = e.types[slot] // the newest entry comes first in its set
	p := &e.types[slot]
	prefix := appendTypePrefix(make([]byte, 0, 8*prefixWords), t)
	*p = typePrefix{typ: t, n: len(prefix)}
	if len(prefix) > 8*prefixWords {
		p.long = prefix
		return p
	}
	prefix = prefix[:cap(prefix)]
	for k := range p.words {
		p.words[k] = binary.LittleEndian.Uint64(prefix[8*k:])
	}
	return p
}

// appendTypePrefix appends `,{"type":"T","message":` for type t to dst,
// escaped as abi.AppendResult escapes it: its document for one finding of
// type t whose numbers are zero, from the '{' to the message.
func appendTypePrefix(dst []byte, t string) []byte {
	const tail = `0,"start":0,"end":0,"score":0}]}`
	doc := abi.AppendResult(nil, []Finding{{Type: t}})
	dst = append(dst, ',')
	return append(dst, doc[len(`{"findings":[`):len(doc)-len(tail)]...)
}

// putInts writes the message, start and end of f, with their keys, when one
// of them is negative or at least 10^8, and returns the end. b must have room
// for 80 bytes.
func putInts(b []byte, n int, f *Finding) int {
	tail := strconv.AppendInt(b[n:n], int64(f.Message), 10)
	tail = append(tail, `,"start":`...)
	tail = strconv.AppendInt(tail, int64(f.Start), 10)
	tail = append(tail, `,"end":`...)
	tail = strconv.AppendInt(tail, int64(f.End), 10)
	return n + len(tail)
}

// putScore writes a score that decimalScore does not take, as
// abi.AppendResult writes it, and returns the end. b must have room for 24
// bytes.
func putScore(b []byte, n int, score float64) int {
	if math.IsNaN(score) || math.IsInf(score, 0) {
		score = 0 // JSON has no NaN; the host rejects out-of-range scores anyway.
	}
	return n + len(strconv.AppendFloat(b[n:n], score, 'g', 4, 64))
}
