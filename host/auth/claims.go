package auth

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
)

// Token is what a verified identity token says of its caller. It is shared
// by every request of the token: never change it.
type Token struct {
	Issuer  string
	Subject string
	// Claims are the token's verified claims, within the bounds of
	// BoundClaims.
	Claims map[string]any
	// DroppedClaims counts the claims left out for their size.
	DroppedClaims int
	// LogClaims are the claims whose values the decision log may write
	// as they are (the provider's log_claims); the others it writes hashed.
	LogClaims []string

	viewOnce sync.Once
	view     any
}

// View returns what make derives from the token, made on the first call
// only: every request of a cached token shares it, so that what is derived
// from its claims (the policy's input) is built once per token, not per
// request. A Token has one view; make must be the same on every call.
func (t *Token) View(make func() any) any {
	t.viewOnce.Do(func() { t.view = make() })
	return t.view
}

// Bounds of the claims a policy sees: a token is the caller's, or its
// provider's, and a claim as large as the token must not cost every
// decision its size.
const (
	MaxClaims          = 64
	MaxClaimNameBytes  = 64
	MaxClaimValueBytes = 1 << 10
	MaxClaimsBytes     = 8 << 10
)

// BoundClaims returns the claims within the bounds, taken in name order,
// and how many were dropped: a claim whose name or JSON value is too long,
// and every claim past MaxClaims or past MaxClaimsBytes in all.
func BoundClaims(claims map[string]any) (map[string]any, int) {
	kept := make(map[string]any, min(len(claims), MaxClaims))
	dropped, total := 0, 0
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		b, err := json.Marshal(claims[name])
		size := len(name) + len(b)
		if err != nil || name == "" || len(name) > MaxClaimNameBytes || len(b) > MaxClaimValueBytes ||
			len(kept) == MaxClaims || total+size > MaxClaimsBytes {
			dropped++
			continue
		}
		kept[name] = claims[name]
		total += size
	}
	return kept, dropped
}
