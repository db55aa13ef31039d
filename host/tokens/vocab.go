package tokens

import (
	"math/bits"

	"github.com/tiktoken-go/tokenizer/codec"
)

// maxTokenID bounds the ids probed when the vocabulary is read out of the
// library; o200k_base's ordinary tokens end just below 200,000.
const maxTokenID = 1 << 18

// vocab maps the bytes of each o200k_base token to its rank (its id, which is
// also its merge priority). It is built once and only read afterwards, so any
// number of goroutines may use it.
//
// All token bytes live in one arena and the index is an open-addressing table
// of uint64 slots, instead of a map[string]uint32: 200,000 Go strings would
// cost a header and an allocation each, and a map lookup hashes no faster.
type vocab struct {
	arena  string   // every token's bytes, in id order
	starts []uint32 // token id's bytes are arena[starts[id]:starts[id+1]]
	// slots holds id+1 in its low 32 bits (0 marks an empty slot) and the
	// high 32 bits of the key's hash, so that most mismatches are rejected
	// without reading the arena.
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
	arena := make([]byte, 0, 2<<20)
	starts := make([]uint32, 1, 200_001)
	n := 0
	for id := 0; id < maxTokenID; id++ {
		tok, err := c.Decode([]uint{uint(id)})
		if err != nil {
			// Gaps (and the ids of special tokens, which the library does
			// not split out of text either) have no bytes.
			tok = ""
		} else {
			n++
		}
		arena = append(arena, tok...)
		starts = append(starts, uint32(len(arena)))
	}
	// Trim the empty tail past the last token.
	last := len(starts) - 1
	for last > 0 && starts[last] == starts[last-1] {
		last--
	}
	starts = starts[:last+1]

	size := uint64(1) << bits.Len(uint(n*2)) // load factor below 1/2
	v := &vocab{
		arena:  string(arena),
		starts: starts,
		slots:  make([]uint64, size),
		mask:   size - 1,
		pairs:  make([]uint32, 1<<16),
	}
	for i := range v.pairs {
		v.pairs[i] = noRank
	}
	for id := 0; id+1 < len(starts); id++ {
		tok := v.token(uint32(id))
		if tok == "" {
			continue
		}
		v.maxLen = max(v.maxLen, len(tok))
		if len(tok) == 2 {
			v.pairs[uint16(tok[0])<<8|uint16(tok[1])] = uint32(id)
		}
		h := hash(tok)
		i := h & v.mask
		for v.slots[i] != 0 {
			i = (i + 1) & v.mask
		}
		v.slots[i] = h&^0xffff_ffff | uint64(id+1)
	}
	return v
}

func (v *vocab) token(id uint32) string {
	return v.arena[v.starts[id]:v.starts[id+1]]
}

// rank is the id of the token whose bytes are s, if there is one.
func (v *vocab) rank(s string) (uint32, bool) {
	if len(s) > v.maxLen {
		return 0, false
	}
	h := hash(s)
	tag := h &^ 0xffff_ffff
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		e := v.slots[i]
		if e == 0 {
			return 0, false
		}
		if e&^0xffff_ffff == tag {
			id := uint32(e) - 1
			if v.token(id) == s {
				return id, true
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
