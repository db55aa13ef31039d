package proxy

import (
	"slices"
	"strconv"
	"strings"
)

// redact replaces every finding of the given types with a placeholder such as
// [EMAIL_1]. The same value gets the same placeholder throughout a request, so
// the model can still tell two addresses apart. It returns nil when nothing
// was replaced.
func redact(texts []string, found []Finding, types []string) []string {
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
	slices.SortFunc(spans, func(a, b Finding) int {
		if a.Text != b.Text {
			return a.Text - b.Text
		}
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End // the longer of two spans at one start first
	})
	out := slices.Clone(texts)
	numbers := map[string]int{} // type + value → placeholder number
	counts := map[string]int{}
	for i := 0; i < len(spans); {
		text := spans[i].Text
		var b strings.Builder
		src := texts[text]
		pos := 0
		for ; i < len(spans) && spans[i].Text == text; i++ {
			s := spans[i]
			if s.Start < pos {
				continue // inside a span already replaced (merged below)
			}
			// Spans that overlap this one are merged into it, so that
			// nothing either of them covers goes out in the clear.
			for j := i + 1; j < len(spans) && spans[j].Text == text && spans[j].Start < s.End; j++ {
				s.End = max(s.End, spans[j].End)
			}
			b.WriteString(src[pos:s.Start])
			key := s.Type + "\x00" + src[s.Start:s.End]
			n, ok := numbers[key]
			if !ok {
				counts[s.Type]++
				n = counts[s.Type]
				numbers[key] = n
			}
			b.WriteString("[" + s.Type + "_" + strconv.Itoa(n) + "]")
			pos = s.End
		}
		b.WriteString(src[pos:])
		out[text] = b.String()
	}
	return out
}
