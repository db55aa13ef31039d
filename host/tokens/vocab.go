package tokens

import (
	"fmt"
	"math/bits"

	"github.com/tiktoken-go/tokenizer/codec"
)

// A slot of the vocabulary's hash table packs everything a lookup needs, so
// that a hit reads one slot and the token's bytes, and nothing else:
//
//	bits  0–17  token id + 1 (0 marks an empty slot)
//	bits 18–38  offset of the token's bytes in the arena
//	bits 39–46  length of the token, in bytes
//	bits 47–63  the top 17 bits of the token's hash, to skip most mismatches
//
// o200k_base fits with room to spare: about 200,000 ids, 1.4 MB of bytes, and
// no token longer than 128 bytes. newVocab checks it.
const (
	idBits     = 18
	offsetBits = 21
	lengthBits = 8
	tagShift   = idBits + offsetBits + lengthBits
)

// giveUpAfter is how many consecutive ids without a token end the read-out;
// o200k_base's ordinary tokens are dense and end just below 200,000.
const giveUpAfter = 4096

// vocab maps the bytes of each o200k_base token to its rank (its id, which is
// also its merge priority). It is built once and only read afterwards, so any
// number of goroutines may use it.
//
// All token bytes live in one arena and the index is an open-addressing table
// of packed uint64 slots, instead of a map[string]uint32, which would hold
// 200,000 strings and cost a header and an allocation each.
type vocab struct {
	arena  string
	slots  []uint64
	mask   uint64
	maxLen int // longest token, in bytes: longer pieces skip the lookup
	// pairs holds the rank of every two-byte token, indexed by its bytes;
	// byte-pair merging starts by looking up every adjacent pair of bytes.
	pairs []uint32
}

// newVocab reads every token out of the library's o200k_base codec. The
// library keeps its vocabulary unexported; Decode of a single id is the one
// public way to enumerate it.
func newVocab() *vocab {
	c := codec.NewO200kBase()
	var (
		arena []byte
		spans [][2]uint32 // per id: offset and length in arena
	)
	arena = make([]byte, 0, 2<<20)
	for id, misses := 0, 0; misses < giveUpAfter; id++ {
		tok, err := c.Decode([]uint{uint(id)})
		if err != nil {
			// A gap, or past the end. Special tokens have ids but no entry
			// here: like the library, Count treats their text as text.
			misses++
			spans = append(spans, [2]uint32{})
			continue
		}
		misses = 0
		spans = append(spans, [2]uint32{uint32(len(arena)), uint32(len(tok))})
		arena = append(arena, tok...)
	}
	if len(spans) >= 1<<idBits || len(arena) >= 1<<offsetBits {
		panic(fmt.Sprintf("tokens: vocabulary of %d ids and %d bytes does not fit the table", len(spans), len(arena)))
	}

	n := len(spans) - giveUpAfter
	size := uint64(1) << bits.Len(uint(n*2)) // load factor below 1/2
	v := &vocab{
		arena: string(arena),
		slots: make([]uint64, size),
		mask:  size - 1,
		pairs: make([]uint32, 1<<16),
	}
	for i := range v.pairs {
		v.pairs[i] = noRank
	}
	for id, span := range spans {
		if span[1] == 0 {
			continue
		}
		if span[1] >= 1<<lengthBits {
			panic(fmt.Sprintf("tokens: token %d is %d bytes long, more than the table holds", id, span[1]))
		}
		tok := v.arena[span[0] : span[0]+span[1]]
		v.maxLen = max(v.maxLen, len(tok))
		if len(tok) == 2 {
			v.pairs[uint16(tok[0])<<8|uint16(tok[1])] = uint32(id)
		}
		h := hash(tok)
		i := h & v.mask
		for v.slots[i] != 0 {
			i = (i + 1) & v.mask
		}
		v.slots[i] = h>>tagShift<<tagShift |
			uint64(span[1])<<(idBits+offsetBits) |
			uint64(span[0])<<idBits |
			uint64(id+1)
	}
	return v
}

// rank is the id of the token whose bytes are s, if there is one.
func (v *vocab) rank(s string) (uint32, bool) {
	if len(s) > v.maxLen {
		return 0, false
	}
	h := hash(s)
	// The tag and the length must both match before the bytes are read.
	want := h>>tagShift<<tagShift | uint64(len(s))<<(idBits+offsetBits)
	const keyMask uint64 = 1<<64 - 1<<(idBits+offsetBits)
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		e := v.slots[i]
		if e == 0 {
			return 0, false
		}
		if e&keyMask == want {
			off := e >> idBits & (1<<offsetBits - 1)
			if v.arena[off:off+uint64(len(s))] == s {
				return uint32(e&(1<<idBits-1)) - 1, true
			}
		}
	}
}

// hash mixes s eight bytes at a time. It needs no random seed: the table is
// fixed once built, so no input can lengthen its probe sequences.
func hash(s string) uint64 {
	const (
		m1 = 0x9e3779b97f4a7c15
		m2 = 0xbf58476d1ce4e5b9
	)
	h := uint64(len(s)) * m1
	for len(s) >= 8 {
		h = (h ^ load64(s)) * m2
		h ^= h >> 31
		s = s[8:]
	}
	var tail uint64
	for i := range len(s) {
		tail |= uint64(s[i]) << (8 * i)
	}
	h = (h ^ tail) * m2
	h ^= h >> 29
	h *= m1
	h ^= h >> 32
	return h
}

// load64 reads the first eight bytes of s, little-endian; the compiler turns
// it into a single load.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
