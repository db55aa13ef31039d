package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// flatCacheLimit is how many entries a frame of flatCache holds before the
// cache hands over to OPA's own: beyond it, a linear scan per lookup would
// cost more than OPA's tree of hash maps.
const flatCacheLimit = 32

// flatCache is OPA's per-evaluation cache of rule values (the virtual
// cache), kept as a short list per frame instead of a tree of hash maps:
// OPA's builds a map per segment of every cached reference, which was about
// a tenth of the allocations of a small policy's evaluation. Evaluations of
// an admission policy cache a handful of rules, where a scan is cheaper. A
// policy that caches more than flatCacheLimit values in a frame gets OPA's
// cache from then on, with the entries so far.
//
// A flatCache serves one evaluation at a time; Decide takes one from
// flatCaches and puts it back after the evaluation, when OPA holds no
// reference to it any more.
type flatCache struct {
	frames [][]cacheEntry
	// big, once set, serves every call.
	big topdown.VirtualCache
}

type cacheEntry struct {
	ref       ast.Ref
	value     *ast.Term
	undefined bool
}

var flatCaches = sync.Pool{New: func() any { return &flatCache{frames: make([][]cacheEntry, 1, 4)} }}

func getFlatCache() *flatCache { return flatCaches.Get().(*flatCache) }

// release empties c, dropping its references to terms, and pools it.
func (c *flatCache) release() {
	if c.big != nil {
		return // rare; let the collector have it
	}
	for i := range c.frames {
		clear(c.frames[i])
		c.frames[i] = c.frames[i][:0]
	}
	c.frames = c.frames[:1]
	flatCaches.Put(c)
}

func (c *flatCache) Push() {
	if c.big != nil {
		c.big.Push()
		return
	}
	n := len(c.frames)
	if n < cap(c.frames) {
		c.frames = c.frames[:n+1]
		c.frames[n] = c.frames[n][:0]
		return
	}
	c.frames = append(c.frames, nil)
}

func (c *flatCache) Pop() {
	if c.big != nil {
		c.big.Pop()
		return
	}
	top := len(c.frames) - 1
	clear(c.frames[top])
	c.frames[top] = c.frames[top][:0]
	c.frames = c.frames[:top]
}

func (c *flatCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if c.big != nil {
		return c.big.Get(ref)
	}
	top := c.frames[len(c.frames)-1]
	for i := range top {
		if top[i].ref.Equal(ref) {
			// As in OPA's cache, undefined wins over a value put later.
			if top[i].undefined {
				return nil, true
			}
			return top[i].value, false
		}
	}
	return nil, false
}

func (c *flatCache) Put(ref ast.Ref, value *ast.Term) {
	if c.big != nil {
		c.big.Put(ref, value)
		return
	}
	n := len(c.frames) - 1
	top := c.frames[n]
	for i := range top {
		if top[i].ref.Equal(ref) {
			if value != nil {
				top[i].value = value
			} else {
				top[i].undefined = true
			}
			return
		}
	}
	if len(top) == flatCacheLimit {
		c.grow()
		c.big.Put(ref, value)
		return
	}
	c.frames[n] = append(top, cacheEntry{ref: ref, value: value, undefined: value == nil})
}

// grow moves every frame into OPA's cache.
func (c *flatCache) grow() {
	big := topdown.NewVirtualCache()
	for i, frame := range c.frames {
		if i > 0 {
			big.Push()
		}
		for _, e := range frame {
			if e.value != nil {
				big.Put(e.ref, e.value)
			}
			if e.undefined {
				big.Put(e.ref, nil)
			}
		}
	}
	c.big = big
	c.frames = nil
}

func (c *flatCache) Keys() []ast.Ref {
	if c.big != nil {
		return c.big.Keys()
	}
	var keys []ast.Ref
	for _, e := range c.frames[len(c.frames)-1] {
		if e.value != nil {
			keys = append(keys, e.ref)
		}
	}
	return keys
}
