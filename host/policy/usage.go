package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// usesUsage reports whether any rule of the compiled modules may read
// input.usage. It looks at every reference to input after compilation,
// when imports and local aliases are resolved to full references:
//
//   - input.usage... or input["usage"]... reads it;
//   - input[x]... with a key that is not a constant string may read it;
//   - input on its own (passed to a function, assigned, used as the value
//     of a with) may be read whole, so it counts as reading usage;
//   - the target of "with input... as" replaces input instead of reading it.
//
// Rules the decision never reaches still count: telling them apart would
// need the call graph, and a false "true" only costs counter lookups.
func usesUsage(modules map[string]*ast.Module) bool {
	found := false
	var visit func(x any) bool
	visit = func(x any) bool {
		if found {
			return true
		}
		switch x := x.(type) {
		case *ast.With:
			// Only the value is read; the target is written.
			ast.NewGenericVisitor(visit).Walk(x.Value)
			return true
		case ast.Ref:
			if x.HasPrefix(ast.InputRootRef) {
				found = refReadsUsage(x)
				return true
			}
		case ast.Var:
			// A bare input that the compiler left unresolved.
			if x.Equal(ast.InputRootDocument.Value) {
				found = true
			}
		}
		return false
	}
	vis := ast.NewGenericVisitor(visit)
	for _, m := range modules {
		for _, r := range m.Rules {
			vis.Walk(r)
			if found {
				return true
			}
		}
	}
	return found
}

// usageKey is the key of input.usage.
var usageKey = ast.String("usage")

// refReadsUsage reports whether a reference that starts at input may read
// input.usage.
func refReadsUsage(ref ast.Ref) bool {
	if len(ref) < 2 {
		return true
	}
	key, ok := ref[1].Value.(ast.String)
	return !ok || key == usageKey
}
