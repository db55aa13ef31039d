package plugin

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/sdk/abi"
)

// TestParseResultFastPath checks that the reflection-free parser and
// encoding/json agree on every document: the same findings or both an error.
func TestParseResultFastPath(t *testing.T) {
	texts := []string{"mail jane@example.com", "call 415-555-2671 now"}
	canonical := string(abi.AppendResult(nil, []Finding{
		{Type: "EMAIL", Message: 0, Start: 5, End: 21, Score: 0.9},
		{Type: "PHONE", Message: 1, Start: 5, End: 17, Score: 1},
	}))
	docs := []string{
		canonical,
		`{"findings":[]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.9}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":9e-1}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":-0}]}`,
		`{"findings":[{"type":"EMAIL","message":-0,"start":5,"end":21,"score":0}]}`,
		// Valid JSON in other forms: spaces, field order, unknown fields, escapes.
		`{ "findings": [] }`,
		`{"findings":[{"start":5,"end":21,"type":"EMAIL","message":0,"score":0.9}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.9,"extra":[1]}],"rewritten":[]}`,
		`{"findings":[{"type":"EM\u0041IL","message":0,"start":5,"end":21,"score":0.9}]}`,
		// Not JSON, or breaking the contract.
		`{"findings":[]`,
		`{"findings":[]}x`,
		`{"findings":[{"type":"EMAIL","message":01,"start":5,"end":21,"score":0.9}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1.}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5.0,"end":21,"score":0.9}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1e}]}`,
		`{"findings":[{"type":"EMAIL","message":99999999999999999999,"start":5,"end":21,"score":0.9}]}`,
		`{"findings":[{"type":"EMAIL","message":2,"start":5,"end":21,"score":0.9}]}`,
		`{"findings":[{"type":"email","message":0,"start":5,"end":21,"score":0.9}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":2}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.9},]}`,
		`{"other":[]}`,
		``,
	}
	for _, doc := range docs {
		var types typeTable
		got, gotErr := parseResult([]byte(doc), texts, &types)
		want, wantErr := parseWithJSON([]byte(doc), texts)
		if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
			t.Errorf("parseResult(%s) = %v, %v\nencoding/json gives %v, %v", doc, got, gotErr, want, wantErr)
		}
	}
}

// parseWithJSON is parseResult without the fast path.
func parseWithJSON(doc []byte, texts []string) ([]Finding, error) {
	var result struct {
		Findings *[]Finding `json:"findings"`
	}
	if err := json.Unmarshal(doc, &result); err != nil {
		return nil, err
	}
	if result.Findings == nil {
		return nil, errNoFindings
	}
	for i := range *result.Findings {
		if err := (*result.Findings)[i].Validate(len(texts), func(i int) int { return len(texts[i]) }); err != nil {
			return nil, err
		}
	}
	return *result.Findings, nil
}

func TestTypeTableIsBounded(t *testing.T) {
	var types typeTable
	for i := range 3 * maxTypeNames {
		name := []byte{'T', byte('A' + i%26), byte('A' + i/26)}
		if got := types.intern(name); got != string(name) {
			t.Fatalf("intern(%s) = %s", name, got)
		}
	}
	if len(types) != maxTypeNames {
		t.Errorf("table holds %d types, want it capped at %d", len(types), maxTypeNames)
	}
}
