package tokens

import (
	"math"
	"sync"
)

// noRank marks a pair of parts that no token covers.
const noRank = math.MaxUint32

// scanLimit is the piece length, in bytes, below which merges are found by a
// linear scan over arrays on the stack. Longer pieces (long words, base64,
// runs of one character) use a heap so that their cost stays O(n log n).
const scanLimit = 128

// pieceTokens is the number of tokens byte-pair encoding makes of piece.
func (v *vocab) pieceTokens(piece string) int {
	if _, ok := v.rank(piece); ok {
		return 1
	}
	if len(piece) < scanLimit {
		return v.mergeScan(piece)
	}
	return v.mergeHeap(piece)
}

// pairRank is the rank of the token piece[from:to], or noRank.
func (v *vocab) pairRank(piece string, from, to uint8) uint32 {
	if r, ok := v.rank(piece[from:to]); ok {
		return r
	}
	return noRank
}

// mergeScan is tiktoken's merge loop: repeatedly merge the adjacent pair of
// parts whose union has the lowest rank, the leftmost among equals, until no
// pair forms a token. It counts the parts left.
func (v *vocab) mergeScan(piece string) int {
	var (
		pos   [scanLimit + 1]uint8  // start of each part, then len(piece)
		ranks [scanLimit + 1]uint32 // rank of the union of part i and i+1
	)
	m := len(piece) + 1 // boundaries
	for i := range m {
		pos[i] = uint8(i)
		ranks[i] = noRank
	}
	for i := 0; i+2 < m; i++ {
		ranks[i] = v.pairs[uint16(piece[i])<<8|uint16(piece[i+1])]
	}
	for m > 2 {
		best, at := uint32(noRank), -1
		for i, r := range ranks[:m-2] {
			if r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		// Part at+1 joins part at: rerank the pairs that now end or start
		// at the merged part, then drop its boundary.
		ranks[at] = noRank
		if at+3 < m {
			ranks[at] = v.pairRank(piece, pos[at], pos[at+3])
		}
		if at > 0 {
			ranks[at-1] = v.pairRank(piece, pos[at-1], pos[at+2])
		}
		copy(pos[at+1:m-1], pos[at+2:m])
		copy(ranks[at+1:m-1], ranks[at+2:m])
		m--
	}
	return m - 1
}

// mergeNode is a part boundary in mergeHeap's doubly linked list; rank is the
// rank of the token formed by this part and the next.
type mergeNode struct {
	prev, next int32
	rank       uint32
}

type mergeCandidate struct {
	rank uint32
	at   int32
}

// mergeState is the scratch space of mergeHeap, pooled because Count runs
// concurrently and long pieces are rare.
type mergeState struct {
	nodes []mergeNode
	heap  []mergeCandidate
}

var mergeStates = sync.Pool{New: func() any { return new(mergeState) }}

// mergeHeap makes the same merges as mergeScan, finding each in O(log n)
// with a min-heap of candidate pairs ordered by rank, then position. A
// candidate whose rank no longer matches its node is stale and skipped.
func (v *vocab) mergeHeap(piece string) int {
	st := mergeStates.Get().(*mergeState)
	defer mergeStates.Put(st)

	n := int32(len(piece))
	nodes := st.nodes[:0]
	for i := range n + 1 {
		nodes = append(nodes, mergeNode{prev: i - 1, next: i + 1, rank: noRank})
	}
	nodes[n].next = -1
	st.nodes = nodes

	rankOf := func(i int32) uint32 {
		j := nodes[i].next
		if j < 0 {
			return noRank
		}
		k := nodes[j].next
		if k < 0 {
			return noRank
		}
		if r, ok := v.rank(piece[i:k]); ok {
			return r
		}
		return noRank
	}

	h := st.heap[:0]
	for i := int32(0); i+2 <= n; i++ {
		if r := v.pairs[uint16(piece[i])<<8|uint16(piece[i+1])]; r != noRank {
			nodes[i].rank = r
			h = append(h, mergeCandidate{r, i})
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		heapDown(h, i)
	}

	parts := int(n)
	for len(h) > 0 {
		top := h[0]
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
		heapDown(h, 0)
		i := top.at
		if nodes[i].rank != top.rank {
			continue
		}
		j := nodes[i].next
		k := nodes[j].next
		nodes[j].rank = noRank
		nodes[i].next = k
		if k >= 0 {
			nodes[k].prev = i
		}
		parts--
		for _, b := range [2]int32{i, nodes[i].prev} {
			if b < 0 {
				continue
			}
			nodes[b].rank = rankOf(b)
			if nodes[b].rank != noRank {
				h = append(h, mergeCandidate{nodes[b].rank, b})
				heapUp(h, len(h)-1)
			}
		}
	}
	st.heap = h
	return parts
}

func candidateLess(a, b mergeCandidate) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.at < b.at
}

func heapUp(h []mergeCandidate, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !candidateLess(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func heapDown(h []mergeCandidate, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && candidateLess(h[r], h[c]) {
			c = r
		}
		if !candidateLess(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
