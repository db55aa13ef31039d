package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sluicehq/sluice/sdk/abi"
)

var errNoFindings = errors.New(`malformed result document: no "findings" array`)

// parseResult decodes a v1 result document and checks every finding against
// the types the plugin declared and the texts it refers to. Unknown fields are
// ignored: later ABI versions add fields (such as rewritten texts) that a v1
// host does not use.
//
// An undeclared type fails the whole result, and the error does not quote it:
// a type is the one string of a result that reaches policies, responses and
// records, so it must come from the manifest the plugin gave at configure,
// before it saw any request, and never from a scanned text.
//
// Documents in the exact form the Go SDK writes take a fast path that needs no
// reflection; everything else goes through encoding/json, so the two accept
// the same documents.
func parseResult(doc []byte, texts []string, types typeTable) ([]Finding, error) {
	// Every finding has a "type" key, so this bounds the findings before any
	// is allocated; a document that escapes the key's letters to get past it
	// is still bounded by its size, and is counted after decoding.
	if n := bytes.Count(doc, []byte(`"type"`)); n > abi.MaxFindings {
		return nil, fmt.Errorf("result holds %d findings, more than the %d allowed", n, abi.MaxFindings)
	}
	findings, ok := parseCanonical(doc, types)
	if !ok {
		var result struct {
			Findings *[]Finding `json:"findings"`
		}
		if err := json.Unmarshal(doc, &result); err != nil {
			return nil, fmt.Errorf("malformed result document: %w", err)
		}
		if result.Findings == nil {
			return nil, errNoFindings
		}
		findings = *result.Findings
		if len(findings) > abi.MaxFindings {
			return nil, fmt.Errorf("result holds %d findings, more than the %d allowed", len(findings), abi.MaxFindings)
		}
		for i := range findings {
			t, ok := types[findings[i].Type]
			if !ok {
				return nil, fmt.Errorf("finding %d: %w", i, errUndeclaredType)
			}
			findings[i].Type = t
		}
	}
	textLen := func(i int) int { return len(texts[i]) }
	for i := range findings {
		if findings[i].Type == "" {
			return nil, fmt.Errorf("finding %d: %w", i, errUndeclaredType)
		}
		if err := findings[i].Validate(len(texts), textLen); err != nil {
			return nil, fmt.Errorf("finding %d: %w", i, err)
		}
	}
	return findings, nil
}

// parseCanonical parses doc if it is exactly what abi.AppendResult writes:
//
//	{"findings":[{"type":"EMAIL","message":0,"start":4,"end":19,"score":0.9},...]}
//
// with no white space, fields in that order, a type without escapes and
// integers that fit an int. It reports false for anything else, valid JSON or
// not, and leaves the document to encoding/json.
//
// A PII-dense prompt has a finding every hundred bytes or so, so this is per
// finding work: it reads numbers by hand rather than through strconv, and
// sizes the slice once.
func parseCanonical(doc []byte, types typeTable) ([]Finding, bool) {
	p := canonical{b: doc}
	if !p.literal(`{"findings":[`) {
		return nil, false
	}
	if p.literal("]}") {
		return nil, len(p.b) == 0
	}
	// In a canonical document every finding opens with this and nothing else
	// contains it (a plain string has no '"'), so the count is exact.
	findings := make([]Finding, 0, bytes.Count(p.b, []byte(`{"type":"`)))
	for {
		var f Finding
		var typ []byte
		ok := p.literal(`{"type":"`)
		if ok {
			typ, ok = p.plainString()
		}
		ok = ok && p.literal(`,"message":`) && p.integer(&f.Message) &&
			p.literal(`,"start":`) && p.integer(&f.Start) &&
			p.literal(`,"end":`) && p.integer(&f.End) &&
			p.literal(`,"score":`) && p.number(&f.Score) && p.literal("}")
		if !ok {
			return nil, false
		}
		f.Type = types[string(typ)] // "" if undeclared, which parseResult refuses
		findings = append(findings, f)
		if p.literal("]}") {
			break
		}
		if !p.literal(",") {
			return nil, false
		}
	}
	return findings, len(p.b) == 0
}

type canonical struct{ b []byte }

func (p *canonical) literal(s string) bool {
	if len(p.b) < len(s) || string(p.b[:len(s)]) != s {
		return false
	}
	p.b = p.b[len(s):]
	return true
}

// plainString reads the rest of a string that has no escapes or control
// characters, and its closing quote.
func (p *canonical) plainString() ([]byte, bool) {
	for i, c := range p.b {
		switch {
		case c == '"':
			s := p.b[:i]
			p.b = p.b[i+1:]
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// maxIntDigits is the most digits integer reads: so many always fit an int
// (18 with 64 bits, 9 with 32).
const maxIntDigits = 9 * strconv.IntSize / 32

// integer reads a JSON integer of digits only, without sign, leading zero,
// fraction or exponent, into an int. Anything else, including "-0" and numbers
// too long to add up without overflow, is left to encoding/json.
func (p *canonical) integer(v *int) bool {
	n, i := 0, 0
	for ; i < len(p.b) && i <= maxIntDigits; i++ {
		c := p.b[i]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	if i == 0 || i > maxIntDigits || i > 1 && p.b[0] == '0' ||
		i < len(p.b) && (p.b[i] == '.' || p.b[i] == 'e' || p.b[i] == 'E') {
		return false
	}
	*v = n
	p.b = p.b[i:]
	return true
}

// pow10 holds the powers of ten that a float64 represents exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// number reads a JSON number into a float64. Scores are "0", "1" or "0." and
// a few digits: a number of at most 15 digits without sign or exponent is
// read by hand, the rest by strconv.
func (p *canonical) number(v *float64) bool {
	if n := numberLen(p.b); n > 0 && n <= len(pow10) && p.b[0] != '-' {
		m, scale := int64(0), -1
		for i, c := range p.b[:n] {
			switch {
			case c == '.':
				scale = n - i - 1
			case c >= '0' && c <= '9':
				m = m*10 + int64(c-'0')
			default:
				scale = -2 // an exponent
			}
		}
		switch {
		case scale == -1:
			*v = float64(m)
		case scale >= 0:
			// m and 10^scale are exact in a float64, so the quotient is
			// correctly rounded: the value strconv.ParseFloat returns.
			*v = float64(m) / pow10[scale]
		}
		if scale >= -1 {
			p.b = p.b[n:]
			return true
		}
	}
	n := numberLen(p.b)
	if n == 0 {
		return false
	}
	f, err := strconv.ParseFloat(string(p.b[:n]), 64)
	if err != nil {
		return false
	}
	*v = f
	p.b = p.b[n:]
	return true
}

// numberLen returns the length of the JSON number at the start of b:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, or 0 if there is none.
func numberLen(b []byte) int {
	i := 0
	digits := func() int {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch n := digits(); {
	case n == 0, n > 1 && b[i-n] == '0':
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

// typeTable holds the finding types a plugin declared, each mapped to itself:
// a lookup with a []byte key does not allocate, so results need not allocate
// their types.
type typeTable map[string]string

var errUndeclaredType = errors.New("a type the plugin did not declare in its manifest")

// newTypeTable returns the table of the declared types.
func newTypeTable(types []string) typeTable {
	t := make(typeTable, len(types))
	for _, s := range types {
		t[s] = s
	}
	return t
}
