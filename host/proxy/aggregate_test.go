package proxy

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/policy"
)

// TestAggregate checks the merge of findings by (plugin, type), and that it
// takes linear time: 80,000 distinct types once took 19 s per request.
func TestAggregate(t *testing.T) {
	found := []Finding{
		{Type: "EMAIL", Text: 0, Score: 0.5}, {Type: "PHONE", Text: 1, Score: 1},
		{Type: "EMAIL", Text: 1, Score: 0.9}, {Type: "EMAIL", Text: 0, Score: 0.1},
	}
	out := aggregate([]policy.Finding{{Plugin: "other", Type: "EMAIL", Count: 1}}, "pii", found, []int{3, 5})
	want := []policy.Finding{
		{Plugin: "other", Type: "EMAIL", Count: 1},
		{Plugin: "pii", Type: "EMAIL", Count: 3, Score: 0.9, Messages: []int{3, 5}},
		{Plugin: "pii", Type: "PHONE", Count: 1, Score: 1, Messages: []int{5}},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("aggregate = %+v, want %+v", out, want)
	}

	many := make([]Finding, 80000)
	for i := range many {
		many[i] = Finding{Type: fmt.Sprintf("T%d", i), Text: i % 7}
	}
	start := time.Now()
	if got := aggregate(nil, "hostile", many, nil); len(got) != len(many) {
		t.Fatalf("aggregate of %d distinct types gave %d entries", len(many), len(got))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("aggregate of 80,000 distinct types took %v", d)
	}
}
