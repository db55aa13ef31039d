package bench

import (
	"context"
	"testing"
)

// TestMeasurePolicy runs the policy section briefly and checks that each
// case decides what the default configuration decides, and that every
// figure is there.
func TestMeasurePolicy(t *testing.T) {
	r, err := MeasurePolicy(context.Background(), PolicySettings{Rounds: 2, Calls: 50})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"first":         "allowed",
		"first-pattern": "allowed",
		// The default tiers redact nothing: personal data blocks.
		"findings": "denied 400 pii_detected",
		"cached":   "allowed",
	}
	if len(r.Decisions) != len(want) {
		t.Fatalf("%d decision figures, want %d", len(r.Decisions), len(want))
	}
	for _, d := range r.Decisions {
		if d.Outcome != want[d.Case] {
			t.Errorf("%s: outcome %q, want %q", d.Case, d.Outcome, want[d.Case])
		}
		if d.P50 <= 0 || d.P99 < d.P50 || d.PerOp <= 0 || d.AllocsPerOp <= 0 || d.P50Ratio <= 0 || d.PerOpRatio <= 0 {
			t.Errorf("%s: %+v", d.Case, d)
		}
	}
	if f := r.Floor; f.Outcome != "allowed" || f.P50 <= 0 || f.P50Ratio != 1 {
		t.Errorf("floor %+v", f)
	}
}
