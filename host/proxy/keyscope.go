package proxy

import (
	"github.com/gobwas/glob"

	"github.com/sluicehq/sluice/host/store"
)

// keyAllows reports whether a key's model allow-list lets it use model. A
// key can only narrow what its client's tier allows: the policy decides
// first, and this is asked only of an allowed request. Patterns match as
// a tier's do in the policy (OPA's glob.match with its default delimiter);
// one that does not compile matches nothing, so a bad pattern denies.
func keyAllows(k store.KeyScope, model string) bool {
	if len(k.Models) == 0 {
		return true
	}
	for _, p := range k.Models {
		if p == model {
			return true
		}
		if g, err := glob.Compile(p, '.'); err == nil && g.Match(model) {
			return true
		}
	}
	return false
}
