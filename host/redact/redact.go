package redact

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Finding is one span to act on: a type at byte offsets [Start, End) of
// texts[Text]. Score is carried for the caller (the policy reads it) and
// ignored here; with it, a gateway can use Finding as its own finding type.
type Finding struct {
	Type       string
	Text       int
	Start, End int
	Score      float64
}

// Vault maps the placeholders of one request to the values they stand for.
// The same value of the same type gets the same placeholder throughout the
// request, so the model can still tell two addresses apart.
//
// Its zero value is empty and ready to use. A nil *Vault is an empty vault:
// restoring with it returns the text unchanged. A Vault is not safe for
// concurrent use; one request's stream is written by one goroutine.
type Vault struct {
	values  map[string]string // restorable placeholder → original value
	numbers map[string]int    // type + "\x00" + value → number, request phase
	masks   map[string]int    // the same, for values masked in the reply
	counts  map[string]int    // type → placeholders issued, both phases
	longest int               // bytes of the longest restorable placeholder
}

// Redact replaces every finding whose type is in types with a placeholder
// and records the value in v for Restore. Spans that overlap are merged, so
// nothing either covers goes out in the clear; a span is widened to whole
// UTF-8 characters. Findings outside the texts are ignored. It returns nil
// when nothing was replaced; texts is never modified.
func (v *Vault) Redact(texts []string, found []Finding, types []string) []string {
	var spans []Finding
	for _, f := range found {
		if slices.Contains(types, f.Type) && f.Text >= 0 && f.Text < len(texts) &&
			f.Start >= 0 && f.Start < f.End && f.End <= len(texts[f.Text]) {
			spans = append(spans, f)
		}
	}
	if len(spans) == 0 {
		return nil
	}
	sortSpans(spans)
	out := slices.Clone(texts)
	for i := 0; i < len(spans); {
		j := i + 1
		for j < len(spans) && spans[j].Text == spans[i].Text {
			j++
		}
		out[spans[i].Text] = string(replace(nil, texts[spans[i].Text], 0, spans[i:j], v.keep))
		i = j
	}
	return out
}

// Len is the number of values v can restore.
func (v *Vault) Len() int {
	if v == nil {
		return 0
	}
	return len(v.values)
}

// Reset forgets every value, so that they can be collected before the
// request's other state is.
func (v *Vault) Reset() {
	*v = Vault{}
}

// String describes v without any value: it may end up in a log line.
func (v *Vault) String() string {
	return "redact.Vault(" + strconv.Itoa(v.Len()) + " placeholders)"
}

// Format prints v as String does, whatever the verb (%v, %+v and %#v
// included), so that no formatting of a Vault shows a value.
func (v *Vault) Format(f fmt.State, _ rune) {
	f.Write([]byte(v.String()))
}

// LogValue makes slog log v as a count of placeholders.
func (v *Vault) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("placeholders", v.Len()))
}

var (
	_ fmt.Formatter  = (*Vault)(nil)
	_ slog.LogValuer = (*Vault)(nil)
)

// keep names a request-phase value and records it for restoring.
func (v *Vault) keep(typ, value string) string {
	key := typ + "\x00" + value
	if n, ok := v.numbers[key]; ok {
		return placeholder(typ, n)
	}
	if v.numbers == nil {
		v.numbers, v.values = map[string]int{}, map[string]string{}
	}
	n := v.next(typ)
	v.numbers[key] = n
	p := placeholder(typ, n)
	v.values[p] = value
	v.longest = max(v.longest, len(p))
	return p
}

// mask names a value found in the model's reply. Its placeholder is never
// restored, and its number follows the request's, so that it cannot be
// mistaken for a placeholder the model was given. A value the request also
// held gets a new placeholder for the same reason.
func (v *Vault) mask(typ, value string) string {
	key := typ + "\x00" + value
	if n, ok := v.masks[key]; ok {
		return placeholder(typ, n)
	}
	if v.masks == nil {
		v.masks = map[string]int{}
	}
	n := v.next(typ)
	v.masks[key] = n
	return placeholder(typ, n)
}

func (v *Vault) next(typ string) int {
	if v.counts == nil {
		v.counts = map[string]int{}
	}
	v.counts[typ]++
	return v.counts[typ]
}

// placeholder is [TYPE_n]. Plugin hosts admit only A-Z, 0-9 and _ in types;
// any other byte becomes _, since restoring relies on a placeholder holding
// no bracket but its own two.
func placeholder(typ string, n int) string {
	b := make([]byte, 0, len(typ)+8)
	b = append(b, '[')
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			c = '_'
		}
		b = append(b, c)
	}
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(n), 10)
	return string(append(b, ']'))
}

// sortSpans orders findings by text, then start, the longer of two spans at
// one start first, then type, so that merging is deterministic.
func sortSpans(spans []Finding) {
	slices.SortFunc(spans, func(a, b Finding) int {
		switch {
		case a.Text != b.Text:
			return a.Text - b.Text
		case a.Start != b.Start:
			return a.Start - b.Start
		case a.End != b.End:
			return b.End - a.End
		}
		return strings.Compare(a.Type, b.Type)
	})
}

// replace appends src to dst with each span replaced by name(type, value).
// spans are sorted by sortSpans and hold offsets into src minus base (base
// is where src starts in a longer text). Overlapping spans are merged into
// the first, whose type names the merged value.
func replace(dst []byte, src string, base int, spans []Finding, name func(typ, value string) string) []byte {
	pos := 0
	for i := 0; i < len(spans); i++ {
		s := spans[i]
		end := s.End - base
		if end <= pos {
			continue // inside a span already replaced
		}
		start := max(s.Start-base, pos)
		for i+1 < len(spans) && spans[i+1].Start-base < end {
			i++
			end = max(end, spans[i].End-base)
		}
		start, end = widen(src, start, end)
		dst = append(dst, src[pos:start]...)
		dst = append(dst, name(s.Type, src[start:end])...)
		pos = end
	}
	return append(dst, src[pos:]...)
}

// widen moves start back and end forward to the edges of the UTF-8
// characters they fall in, so that no fragment of a hidden character is left.
func widen(src string, start, end int) (int, int) {
	for start > 0 && !utf8.RuneStart(src[start]) {
		start--
	}
	for end < len(src) && !utf8.RuneStart(src[end]) {
		end++
	}
	return start, end
}
