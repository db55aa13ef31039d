package abi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestTextsEncodingBytes pins the byte layout documented in sdk/ABI.md.
func TestTextsEncodingBytes(t *testing.T) {
	got := AppendTexts(nil, []string{"hi", "", "é"})
	want := []byte{
		3, 0, 0, 0, // count
		2, 0, 0, 0, 'h', 'i',
		0, 0, 0, 0,
		2, 0, 0, 0, 0xc3, 0xa9,
	}
	if !slices.Equal(got, want) {
		t.Errorf("AppendTexts = % x, want % x", got, want)
	}
	if n := TextsSize([]string{"hi", "", "é"}); n != len(want) {
		t.Errorf("TextsSize = %d, want %d", n, len(want))
	}
}

func TestDecodeTextsRoundTrip(t *testing.T) {
	for _, texts := range [][]string{{}, {""}, {"a", "bc", strings.Repeat("x", 70000)}} {
		got, err := DecodeTexts(nil, AppendTexts(nil, texts))
		if err != nil {
			t.Fatalf("DecodeTexts(%d texts): %v", len(texts), err)
		}
		if len(got) != len(texts) {
			t.Fatalf("got %d texts, want %d", len(got), len(texts))
		}
		for i := range texts {
			if string(got[i]) != texts[i] {
				t.Errorf("text %d = %q, want %q", i, got[i], texts[i])
			}
		}
	}
}

func TestDecodeTextsRejectsMalformed(t *testing.T) {
	valid := AppendTexts(nil, []string{"abc"})
	tests := map[string][]byte{
		"empty":           nil,
		"short count":     {1, 0},
		"huge count":      {0xff, 0xff, 0xff, 0xff},
		"missing length":  {1, 0, 0, 0},
		"length too long": {1, 0, 0, 0, 9, 0, 0, 0, 'a'},
		"trailing bytes":  append(slices.Clone(valid), 0),
		"truncated":       valid[:len(valid)-1],
	}
	for name, buf := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeTexts(nil, buf); !errors.Is(err, ErrMalformedTexts) {
				t.Errorf("DecodeTexts(% x) error = %v, want ErrMalformedTexts", buf, err)
			}
		})
	}
}

func TestAppendResultIsJSON(t *testing.T) {
	findings := []Finding{
		{Type: "EMAIL", Message: 1, Start: 4, End: 19, Score: 0.9},
		{Type: "BAD\"TYPE\xff", Message: 0, Start: 0, End: 1, Score: math.NaN()},
	}
	doc := AppendResult(nil, findings)
	want := `{"findings":[{"type":"EMAIL","message":1,"start":4,"end":19,"score":0.9},{"type":"BAD\"TYPE\u00ff","message":0,"start":0,"end":1,"score":0}]}`
	if string(doc) != want {
		t.Errorf("AppendResult =\n%s\nwant\n%s", doc, want)
	}
	var parsed struct{ Findings []Finding }
	if err := json.Unmarshal(doc, &parsed); err != nil {
		t.Fatalf("result is not JSON: %v", err)
	}
	if parsed.Findings[0] != findings[0] {
		t.Errorf("round trip = %+v, want %+v", parsed.Findings[0], findings[0])
	}
	if got := string(AppendResult(nil, nil)); got != `{"findings":[]}` {
		t.Errorf("empty result = %s", got)
	}
}

func TestFindingValidate(t *testing.T) {
	lens := []int{5, 0}
	textLen := func(i int) int { return lens[i] }
	tests := []struct {
		name string
		f    Finding
		ok   bool
	}{
		{"valid", Finding{Type: "US_SSN", Message: 0, Start: 0, End: 5, Score: 1}, true},
		{"lower-case type", Finding{Type: "email", End: 1}, false},
		{"empty type", Finding{End: 1}, false},
		{"long type", Finding{Type: strings.Repeat("A", 65), End: 1}, false},
		{"negative message", Finding{Type: "X", Message: -1, End: 1}, false},
		{"unknown message", Finding{Type: "X", Message: 2, End: 1}, false},
		{"empty span", Finding{Type: "X", Start: 2, End: 2}, false},
		{"past the end", Finding{Type: "X", Start: 0, End: 6}, false},
		{"in empty message", Finding{Type: "X", Message: 1, End: 1}, false},
		{"negative start", Finding{Type: "X", Start: -1, End: 1}, false},
		{"score above one", Finding{Type: "X", End: 1, Score: 1.5}, false},
		{"NaN score", Finding{Type: "X", End: 1, Score: math.NaN()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(len(lens), textLen); (err == nil) != tt.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tt.f, err, tt.ok)
			}
		})
	}
}

// TestAppendScore holds the hand-written score formatting to what
// strconv.AppendFloat writes, over every score with four decimals and a few
// that take the slow path.
func TestAppendScore(t *testing.T) {
	scores := []float64{0, 1, 0.00001, 0.12345, 1.5, -0.5, math.Nextafter(0.5, 1)}
	for k := range 10001 {
		scores = append(scores, float64(k)/10000)
	}
	for _, score := range scores {
		want := strconv.AppendFloat(nil, score, 'g', 4, 64)
		if got := appendScore(nil, score); string(got) != string(want) {
			t.Errorf("appendScore(%v) = %s, want %s", score, got, want)
		}
	}
}

func TestParseManifest(t *testing.T) {
	many := make([]string, MaxTypes+1)
	for i := range many {
		many[i] = fmt.Sprintf("T%d", i)
	}
	for _, tt := range []struct {
		doc     string
		want    []string
		wantErr string
	}{
		{string(AppendManifest(nil, []string{"EMAIL", "PHONE"})), []string{"EMAIL", "PHONE"}, ""},
		{`{"types":[]}`, []string{}, ""},
		{`{ "types" : ["A"], "later": 1 }`, []string{"A"}, ""},
		{``, nil, "no manifest"},
		{`{"findings":[]}`, nil, `no "types" array`},
		{`{"types":"EMAIL"}`, nil, "not a JSON object"},
		{`{"types":["EMAIL","email; drop"]}`, nil, "manifest type 1 is not"},
		{`{"types":["EMAIL","EMAIL"]}`, nil, "declares type EMAIL twice"},
		{string(AppendManifest(nil, many)), nil, "declares 65 finding types, more than the 64 allowed"},
		{`{"types":["` + strings.Repeat("A", MaxManifestBytes) + `"]}`, nil, "exceeds the 8192-byte limit"},
	} {
		got, err := ParseManifest([]byte(tt.doc))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseManifest(%.40s) error = %v, want one containing %q", tt.doc, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "drop") {
				t.Errorf("ParseManifest error %q quotes the document", err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseManifest(%s) = %v, %v; want %v", tt.doc, got, err, tt.want)
		}
	}
}
