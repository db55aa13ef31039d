package policy

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestFlatCacheActsAsOPAs runs the same calls on flatCache and on OPA's
// virtual cache, past the size where flatCache hands over, and compares
// every answer.
func TestFlatCacheActsAsOPAs(t *testing.T) {
	flat, want := getFlatCache(), topdown.NewVirtualCache()
	ref := func(i int) ast.Ref { return ast.MustParseRef(fmt.Sprintf("data.sluice.authz.r%d", i)) }
	check := func(step string, i int) {
		t.Helper()
		gv, gu := flat.Get(ref(i))
		wv, wu := want.Get(ref(i))
		if gu != wu || (gv == nil) != (wv == nil) || (gv != nil && !gv.Equal(wv)) {
			t.Fatalf("%s: Get(r%d) = %v, %v; OPA's cache says %v, %v", step, i, gv, gu, wv, wu)
		}
	}
	both := func(f func(topdown.VirtualCache)) { f(flat); f(want) }

	for i := range 10 {
		var v *ast.Term
		if i%3 != 0 {
			v = ast.IntNumberTerm(i)
		}
		both(func(c topdown.VirtualCache) { c.Put(ref(i), v) })
	}
	for i := range 12 {
		check("first frame", i)
	}
	both(func(c topdown.VirtualCache) { c.Push(); c.Put(ref(1), ast.StringTerm("inner")) })
	for i := range 3 {
		check("pushed frame", i)
	}
	both(func(c topdown.VirtualCache) { c.Pop() })
	check("popped frame", 1)
	// Undefined, then a value: undefined wins in both.
	both(func(c topdown.VirtualCache) { c.Put(ref(3), ast.IntNumberTerm(3)) })
	check("undefined then value", 3)
	// Past the limit flatCache hands over to OPA's.
	for i := 100; i < 100+2*flatCacheLimit; i++ {
		both(func(c topdown.VirtualCache) { c.Put(ref(i), ast.IntNumberTerm(i)) })
	}
	if flat.big == nil {
		t.Fatal("flatCache did not hand over past its limit")
	}
	for i := range 12 {
		check("after hand-over", i)
	}
	check("after hand-over", 100+flatCacheLimit)
	if got, want := len(flat.Keys()), len(want.Keys()); got != want {
		t.Errorf("%d keys, OPA's cache has %d", got, want)
	}
}
