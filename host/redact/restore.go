package redact

import (
	"slices"
	"strings"
)

// Restore puts the original values back into text, a whole reply of the
// model. Placeholders v does not hold (ones the model made up, such as an
// [EMAIL_7] it was never given, or ones masked in the reply) are left as they
// are. A text without a placeholder is returned as it is, without copying.
func (v *Vault) Restore(text string) string {
	out, _ := v.restore(nil, text, true)
	if out == nil {
		return text
	}
	return string(out)
}

// restore appends text to dst with every complete placeholder of v replaced
// by its value. Unless final, a tail of text that could be the start of a
// placeholder is held back: rest is where that tail starts (len(text) when
// there is none), and the caller feeds it again with the next delta. out is
// nil when nothing was replaced: the result is then text[:rest] itself.
//
// Every '[' is a point where a placeholder may start, whole or streamed,
// since placeholders hold no other '['. That is what makes restoring in
// chunks give exactly the whole text's result.
func (v *Vault) restore(dst []byte, text string, final bool) (out []byte, rest int) {
	if v.Len() == 0 {
		return nil, len(text)
	}
	done := 0 // text before done is in out
	for i := 0; ; {
		j := strings.IndexByte(text[i:], '[')
		if j < 0 {
			break
		}
		p := i + j
		window := text[p:min(len(text), p+v.longest)]
		if q := strings.IndexByte(window, ']'); q >= 0 {
			if value, ok := v.values[window[:q+1]]; ok {
				if out == nil {
					out = slices.Grow(dst, len(text)+len(text)/4)
				}
				out = append(out, text[done:p]...)
				out = append(out, value...)
				done = p + q + 1
				i = done
				continue
			}
		} else if !final && len(window) < v.longest && v.isPrefix(window) {
			if out == nil {
				return nil, p
			}
			return append(out, text[done:p]...), p
		}
		i = p + 1
	}
	if out == nil {
		return nil, len(text)
	}
	return append(out, text[done:]...), len(text)
}

// isPrefix reports whether s begins some restorable placeholder. A vault
// holds a request's few placeholders, so a walk over them is cheap.
func (v *Vault) isPrefix(s string) bool {
	for p := range v.values {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// StreamRestorer restores a streamed reply delta by delta: each call to Next
// returns the text that is safe to send now, holding back only a tail that
// may be the start of a placeholder (such as "[EMA" when "IL_1]" is still to
// come). Flush returns what is left at the end. The concatenated output is
// exactly v.Restore of the concatenated input, however the input is split.
//
// The hold-back is at most the longest placeholder minus one byte, and only
// while the tail matches the start of one, so restoring adds no latency to
// text without brackets. One StreamRestorer serves one choice of one reply.
type StreamRestorer struct {
	v    *Vault
	held string // the tail held back: a possible placeholder's start
	buf  []byte
}

// NewStreamRestorer returns a StreamRestorer for a reply to the request v
// redacted. v may be nil or empty: the restorer then passes text through.
func (v *Vault) NewStreamRestorer() *StreamRestorer {
	return &StreamRestorer{v: v}
}

// Next takes the next delta of content and returns the text to send now,
// which may be empty.
func (r *StreamRestorer) Next(delta string) string {
	if r.v.Len() == 0 || r.held == "" && strings.IndexByte(delta, '[') < 0 {
		return delta
	}
	text := delta
	if r.held != "" {
		text = r.held + delta
	}
	out, rest := r.v.restore(r.buf[:0], text, false)
	r.held = text[rest:]
	if out == nil {
		return text[:rest]
	}
	r.buf = out[:0]
	return string(out)
}

// Flush returns the text held back, at the end of the reply. What is held
// cannot be a whole placeholder, so it goes out as it is.
func (r *StreamRestorer) Flush() string {
	held := r.held
	r.held = ""
	return held
}
