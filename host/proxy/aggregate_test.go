package proxy

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/policy"
)

// TestAggregate checks the merge of findings by (plugin, type), with the
// messages and kinds of place each was found in.
func TestAggregate(t *testing.T) {
	info := []api.Text{{Loc: api.LocContent, Message: 3}, {Loc: api.LocName, Message: 5}, {Loc: api.LocMetadata, Message: api.NotMessage}}
	a := newAggregator(info)
	a.add("other", []Finding{{Type: "EMAIL", Text: 0}})
	a.add("pii", []Finding{
		{Type: "EMAIL", Text: 0, Score: 0.5}, {Type: "PHONE", Text: 1, Score: 1},
		{Type: "EMAIL", Text: 1, Score: 0.9}, {Type: "EMAIL", Text: 2, Score: 0.1},
	})
	want := []policy.Finding{
		{Plugin: "other", Type: "EMAIL", Count: 1, Messages: []int{3}, Locations: []string{"content"}},
		{Plugin: "pii", Type: "EMAIL", Count: 3, Score: 0.9, Messages: []int{3, 5}, Locations: []string{"content", "metadata", "name"}},
		{Plugin: "pii", Type: "PHONE", Count: 1, Score: 1, Messages: []int{5}, Locations: []string{"name"}},
	}
	if got := a.findings(); !reflect.DeepEqual(got, want) {
		t.Errorf("findings = %+v\nwant %+v", got, want)
	}
}

// A hostile plugin's 80,000 distinct types once cost 19 s of CPU per request
// in a search per finding; merged through a map, they are one pass (the
// package's test timeout is the bound: no timing is asserted here).
func TestAggregateManyTypes(t *testing.T) {
	many := make([]Finding, 80000)
	for i := range many {
		many[i] = Finding{Type: fmt.Sprintf("T%d", i), Text: i % 7}
	}
	a := newAggregator(nil)
	a.add("hostile", many)
	if got := a.findings(); len(got) != len(many) {
		t.Fatalf("%d distinct types gave %d entries", len(many), len(got))
	}
}
