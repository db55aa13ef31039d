package tokens

import (
	"hash/maphash"
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
	seed   maphash.Seed
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
		seed:   maphash.MakeSeed(),
	}
	for id := 0; id+1 < len(starts); id++ {
		tok := v.token(uint32(id))
		if tok == "" {
			continue
		}
		v.maxLen = max(v.maxLen, len(tok))
		h := maphash.String(v.seed, tok)
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
	h := maphash.String(v.seed, s)
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
