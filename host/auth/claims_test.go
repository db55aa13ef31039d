package auth

import (
	"fmt"
	"strings"
	"testing"
)

// TestBoundClaimsDropsWhatIsTooLarge: a token's claims reach every
// decision of its caller, so a claim too long in name or value, and every
// claim past the count or the total size, is dropped and counted; the
// others are kept as they are.
func TestBoundClaimsDropsWhatIsTooLarge(t *testing.T) {
	claims := map[string]any{
		"sub":                   "u-17",
		"groups":                []any{"staff", "llm-premium"},
		"blob":                  strings.Repeat("x", MaxClaimValueBytes),
		strings.Repeat("n", 65): "long name",
		"":                      "no name",
	}
	kept, dropped := BoundClaims(claims)
	if dropped != 3 || len(kept) != 2 || kept["sub"] != "u-17" || len(kept["groups"].([]any)) != 2 {
		t.Fatalf("kept %v, dropped %d; want sub and groups kept, three dropped", kept, dropped)
	}

	many := map[string]any{}
	for i := range 100 {
		many[fmt.Sprintf("c%03d", i)] = i
	}
	if kept, dropped := BoundClaims(many); len(kept) != MaxClaims || dropped != 100-MaxClaims || kept["c000"] == nil {
		t.Fatalf("100 claims: kept %d, dropped %d; want the first %d by name", len(kept), dropped, MaxClaims)
	}

	big := map[string]any{}
	for i := range 20 {
		big[fmt.Sprintf("c%02d", i)] = strings.Repeat("y", 900)
	}
	kept, dropped = BoundClaims(big)
	total := 0
	for name, v := range kept {
		total += len(name) + len(v.(string)) + 2
	}
	if total > MaxClaimsBytes || dropped == 0 || dropped+len(kept) != 20 {
		t.Fatalf("20 claims of 900 bytes: kept %d (%d bytes), dropped %d; want at most %d bytes kept", len(kept), total, dropped, MaxClaimsBytes)
	}
}
