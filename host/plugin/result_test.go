package plugin

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
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
		// Numbers the fast path reads by hand, and the edges where it defers to strconv.
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.95}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.9500}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.1}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.3333333333333}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.33333333333333}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.333333333333333}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.3333333333333333}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.30000000000000004}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1.0}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1e0}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":0.5E-0}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":-0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":00.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":0,"end":1,"score":0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":999999999999999999,"score":0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":1000000000000000000,"score":0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":-5,"end":21,"score":0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21e0,"score":0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":0,"start":05,"end":21,"score":0.5}]}`,
		`{"findings":[{"type":"EMAIL","message":1,"start":5,"end":17,"score":0.5},{"type":"PHONE","message":1,"start":0,"end":4,"score":0.7}]}`,
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
		got, gotErr := parseResult([]byte(doc), texts, newTypeTable([]string{"EMAIL", "PHONE"}))
		want, wantErr := parseWithJSON([]byte(doc), texts)
		if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
			t.Errorf("parseResult(%s) = %v, %v\nencoding/json gives %v, %v", doc, got, gotErr, want, wantErr)
		}
	}
}

// TestParseCanonicalRoundTrip checks that every document the Go SDK writes
// for well-formed findings takes the fast path and reads back exactly.
func TestParseCanonicalRoundTrip(t *testing.T) {
	types := []string{"EMAIL", "PHONE", "CREDIT_CARD", "X", strings.Repeat("Z", abi.MaxTypeLen)}
	scores := []float64{0, 1, 0.5, 0.9, 0.95, 0.99, 0.7, 0.0001, 0.1234, 0.3333}
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 50 {
		findings := make([]Finding, n)
		for i := range findings {
			start := r.IntN(1 << 30)
			findings[i] = Finding{
				Type:    types[r.IntN(len(types))],
				Message: r.IntN(3),
				Start:   start,
				End:     start + 1 + r.IntN(1000),
				Score:   scores[r.IntN(len(scores))],
			}
		}
		doc := abi.AppendResult(nil, findings)
		got, ok := parseCanonical(doc, newTypeTable(types))
		if !ok {
			t.Fatalf("the fast path refused %s", doc)
		}
		if len(got)+len(findings) > 0 && !reflect.DeepEqual(got, findings) {
			t.Fatalf("parseCanonical(%s) = %v, want %v", doc, got, findings)
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

// TestResultDiscipline checks that a result fails as a whole when it holds a
// type the plugin did not declare, in the compact form or any other, or more
// findings than allowed, and that the error never quotes the type.
func TestResultDiscipline(t *testing.T) {
	texts := []string{"mail jane@example.com"}
	declared := newTypeTable([]string{"EMAIL"})
	many := make([]Finding, abi.MaxFindings+1)
	for i := range many {
		many[i] = Finding{Type: "EMAIL", Start: 5, End: 21, Score: 1}
	}
	for _, tt := range []struct{ name, doc, wantErr string }{
		{"undeclared, compact", `{"findings":[{"type":"EMAIL","message":0,"start":5,"end":21,"score":1},{"type":"ALICE_SECRET_PROMPT","message":0,"start":5,"end":21,"score":1}]}`, "finding 1: a type the plugin did not declare"},
		{"undeclared, other form", `{"findings":[{"score":1,"type":"ALICE_SECRET_PROMPT","message":0,"start":5,"end":21}]}`, "finding 0: a type the plugin did not declare"},
		{"not an identifier", `{"findings":[{"type":"alice's secret prompt","message":0,"start":5,"end":21,"score":1}]}`, "finding 0: a type the plugin did not declare"},
		{"too many", string(abi.AppendResult(nil, many)), "more than the 16384 allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseResult([]byte(tt.doc), texts, declared)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseResult error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(strings.ToUpper(err.Error()), "SECRET") {
				t.Errorf("the error %q quotes the plugin's type", err)
			}
		})
	}
}

// BenchmarkParseResult measures the host's side of a PII-dense result: the
// document the Go SDK writes for 400 findings of a few types, parsed and
// checked against the texts.
func BenchmarkParseResult(b *testing.B) {
	texts := []string{strings.Repeat("x", 64<<10)}
	types := []string{"EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS"}
	scores := []float64{0.9, 0.95, 1, 0.7}
	var findings []Finding
	for i := range 400 {
		findings = append(findings, Finding{Type: types[i%4], Start: 160 * i, End: 160*i + 17, Score: scores[i%4]})
	}
	doc := abi.AppendResult(nil, findings)
	declared := newTypeTable(types)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseResult(doc, texts, declared); err != nil {
			b.Fatal(err)
		}
	}
}
