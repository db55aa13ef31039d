package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

var errNoFindings = errors.New(`malformed result document: no "findings" array`)

// parseResult decodes a v1 result document and checks every finding against
// the texts it refers to. Unknown fields are ignored: later ABI versions add
// fields (such as rewritten texts) that a v1 host does not use.
//
// Documents in the exact form the Go SDK writes take a fast path that needs no
// reflection; everything else goes through encoding/json, so the two accept
// the same documents.
func parseResult(doc []byte, texts []string, types *typeTable) ([]Finding, error) {
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
	}
	textLen := func(i int) int { return len(texts[i]) }
	for i := range findings {
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
func parseCanonical(doc []byte, types *typeTable) ([]Finding, bool) {
	p := canonical{b: doc}
	if !p.literal(`{"findings":[`) {
		return nil, false
	}
	var findings []Finding
	if !p.literal("]}") {
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
			f.Type = types.intern(typ)
			findings = append(findings, f)
			if p.literal("]}") {
				break
			}
			if !p.literal(",") {
				return nil, false
			}
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

// integer reads a JSON integer without fraction or exponent into an int.
func (p *canonical) integer(v *int) bool {
	n := numberLen(p.b)
	if n == 0 || bytes.ContainsAny(p.b[:n], ".eE") {
		return false
	}
	i, err := strconv.Atoi(string(p.b[:n]))
	if err != nil {
		return false
	}
	*v = i
	p.b = p.b[n:]
	return true
}

// number reads a JSON number into a float64.
func (p *canonical) number(v *float64) bool {
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

// typeTable interns finding types: a plugin reports the same few types over
// and over, and a string per finding would be most of a scan's allocations.
type typeTable map[string]string

// maxTypeNames bounds the table, so that a plugin that makes up types cannot
// grow it without limit.
const maxTypeNames = 64

func (t *typeTable) intern(b []byte) string {
	if s, ok := (*t)[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if *t == nil {
		*t = typeTable{}
	}
	if len(*t) < maxTypeNames {
		(*t)[s] = s
	}
	return s
}
