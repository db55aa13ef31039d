package redact

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// ScanFunc scans texts and returns findings with byte offsets into them,
// Text indexing texts. It is typically the response-phase plugins of a
// request called in turn. A plugin whose fail mode is open should have its
// errors swallowed here (no findings); an error returned fails the reply.
type ScanFunc func(texts []string) ([]Finding, error)

// Action is what happens to a finding in the model's reply.
type Action uint8

const (
	// Allow lets the finding through; it is still counted in Findings.
	Allow Action = iota
	// Mask replaces the finding with a placeholder such as [EMAIL_3],
	// which is never restored.
	Mask
	// Block ends the reply: the scan returns a *Blocked error and nothing
	// more of the reply is released.
	Block
)

// DecideFunc says what to do with one finding. It sees the type, score and
// offsets (into the choice's text, Text 0 in a stream), never the matched
// text. A gateway can build one from static lists with ByType, or ask its
// policy.
type DecideFunc func(f Finding) Action

// ByType is the DecideFunc of a static policy: a finding whose type is in
// mask is masked, any other gets other.
func ByType(mask []string, other Action) DecideFunc {
	mask = slices.Clone(mask)
	return func(f Finding) Action {
		if slices.Contains(mask, f.Type) {
			return Mask
		}
		return other
	}
}

// Blocked is the error a scan returns when a finding's action is Block. It
// names the finding's type, never its text.
type Blocked struct {
	Type string
}

func (b *Blocked) Error() string {
	return "redact: reply blocked by a " + b.Type + " finding"
}

// Defaults of ScanOptions.
const (
	// DefaultWindow is the overlap, in bytes, between one scan of a stream
	// and the next, and so also how much text is held back unscanned-ahead.
	// It covers every finding type of DESIGN.md at its usual length except
	// long JWTs and PEM private keys; see ScanOptions.Window.
	DefaultWindow = 256
	// DefaultBatch is how many new bytes of a stream trigger a scan. At
	// about 4 bytes per token, 128 bytes is one scan per ~32 tokens: a
	// 1 KB reply costs about 8 plugin calls of up to 384 bytes each.
	DefaultBatch = 128
)

// ScanOptions configure response-phase scanning.
type ScanOptions struct {
	// Scan runs the plugins. Required.
	Scan ScanFunc
	// Decide says what each finding calls for. nil blocks every finding:
	// a missing policy fails closed.
	Decide DecideFunc
	// Window is the number of bytes (default DefaultWindow) that a stream
	// scan rescans from before the previous scan's end, and that a
	// StreamScanner holds back after the last scanned byte.
	//
	// Notes:
	//   - A finding of up to Window bytes is never missed and never released
	//     before it was scanned, however the stream is chunked. A longer one
	//     (a PEM private key, a JWT with many claims) is caught only if it
	//     falls inside one scan of Window+Batch bytes; raise Window to cover
	//     the longest finding a policy must stop.
	//   - The price is latency: the first text reaches the caller after
	//     Window+Batch bytes of reply, and the tail only at the end.
	Window int
	// Batch is how many new bytes (default DefaultBatch) a StreamScanner
	// gathers before it scans, since a plugin call per token-sized delta
	// would cost more than the scan itself. It trades latency for calls.
	Batch int
}

func (o *ScanOptions) defaults() {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Decide == nil {
		o.Decide = func(Finding) Action { return Block }
	}
}

// ScanTexts scans the texts of a whole reply (one per choice) in one call
// and applies the decisions: out has masked findings replaced by
// placeholders named in v (nil when nothing was masked), found lists every
// finding. A Block finding returns a *Blocked error; a scan that fails
// returns its error.
func ScanTexts(texts []string, o ScanOptions, v *Vault) (out []string, found []Finding, err error) {
	o.defaults()
	if len(texts) == 0 {
		return nil, nil, nil
	}
	if v == nil {
		v = &Vault{}
	}
	found, err = o.Scan(texts)
	if err != nil {
		return nil, nil, fmt.Errorf("redact: response scan: %w", err)
	}
	var spans []Finding
	for _, f := range found {
		if f.Text < 0 || f.Text >= len(texts) || f.Start < 0 || f.Start >= f.End || f.End > len(texts[f.Text]) {
			return nil, nil, fmt.Errorf("redact: response scan: finding %s at [%d,%d) of text %d is outside the %d texts",
				f.Type, f.Start, f.End, f.Text, len(texts))
		}
		switch o.Decide(f) {
		case Block:
			return nil, found, &Blocked{Type: f.Type}
		case Mask:
			spans = append(spans, f)
		}
	}
	if len(spans) == 0 {
		return nil, found, nil
	}
	sortSpans(spans)
	out = slices.Clone(texts)
	for i := 0; i < len(spans); {
		j := i + 1
		for j < len(spans) && spans[j].Text == spans[i].Text {
			j++
		}
		out[spans[i].Text] = string(replace(nil, texts[spans[i].Text], 0, spans[i:j], v.mask))
		i = j
	}
	return out, found, nil
}

// StreamScanner scans one choice of a streamed reply as its content deltas
// arrive, so that plugins see the model's output before the caller does.
//
// It scans once at least Batch new bytes have arrived, rescanning the last
// Window bytes before them so that a finding across chunk boundaries is seen
// whole, and it releases text only up to Window bytes before the end of what
// it has scanned: a finding that starts in released text and is at most
// Window bytes long therefore ended inside a scan already. Findings are
// de-duplicated by type and absolute offset; one that overlaps an earlier
// finding of its type (a partial match at a scan's edge, then the whole) is
// the same finding, widened. Offsets in Findings are into the choice's
// whole text as the model wrote it.
//
// Feed the scanner's output to a StreamRestorer, not the reverse: the
// plugins should judge what the model wrote, not the caller's own values
// that restoring puts back.
type StreamScanner struct {
	o     ScanOptions
	v     *Vault
	texts [1]string // the scan's argument, reused

	buf     []byte // the text from base on: context for the next scan, then text not yet released
	base    int    // offset of buf[0] in the whole text
	scanned int    // text before this offset has been scanned
	emitted int    // text before this offset has been released

	masks []Finding // spans to mask not yet released, absolute, sorted, disjoint
	found []Finding // every distinct finding, absolute
	live  []seen    // the findings that a later scan may report again
	err   error     // sticky: once blocked or failed, always
}

// seen is a finding a later scan may report again, and what was decided.
type seen struct {
	i      int // index in found
	action Action
}

// NewStreamScanner returns a StreamScanner that names masked values in v.
func NewStreamScanner(o ScanOptions, v *Vault) *StreamScanner {
	o.defaults()
	if v == nil {
		v = &Vault{}
	}
	return &StreamScanner{o: o, v: v}
}

// Next takes the next delta of content and returns the text that is safe to
// release now, often empty. After a *Blocked or scan error, every call
// returns that error, and the caller ends the stream.
func (s *StreamScanner) Next(delta string) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	s.buf = append(s.buf, delta...)
	if s.base+len(s.buf)-s.scanned < s.o.Batch {
		return "", nil
	}
	return s.step(false)
}

// Flush scans what is left at the end of the reply and releases the rest.
func (s *StreamScanner) Flush() (string, error) {
	if s.err != nil {
		return "", s.err
	}
	return s.step(true)
}

// Findings are the distinct findings so far, with offsets into the choice's
// whole text; the slice is the scanner's own, to read. The gateway records
// their types and counts.
func (s *StreamScanner) Findings() []Finding {
	return s.found
}

func (s *StreamScanner) step(final bool) (string, error) {
	end := s.base + len(s.buf)
	if !final {
		// A character split across deltas is scanned once it is whole.
		end = s.runeEnd()
	}
	if end > s.scanned {
		if err := s.scan(end); err != nil {
			s.err = err
			return "", err
		}
	}
	cut := end
	if !final {
		cut = s.runeStart(max(end-s.o.Window, s.emitted))
		// A span to mask is released whole or not at all, since a later
		// finding may still widen it.
		for _, m := range s.masks {
			if m.Start < cut && cut < m.End {
				cut = m.Start
			}
		}
	}
	out := s.release(cut)
	keep := s.runeStart(min(s.emitted, s.scanned-s.o.Window))
	if keep > s.base {
		s.buf = s.buf[:copy(s.buf, s.buf[keep-s.base:])]
		s.base = keep
	}
	return out, nil
}

// scan runs the plugins over the text from Window bytes before the last
// scan's end up to end, and records what they found.
func (s *StreamScanner) scan(end int) error {
	from := s.runeStart(max(s.base, s.scanned-s.o.Window))
	s.texts[0] = string(s.buf[from-s.base : end-s.base])
	found, err := s.o.Scan(s.texts[:])
	s.texts[0] = ""
	if err != nil {
		return fmt.Errorf("redact: response scan: %w", err)
	}
	for _, f := range found {
		if f.Text != 0 || f.Start < 0 || f.Start >= f.End || f.End > end-from {
			return fmt.Errorf("redact: response scan: finding %s at [%d,%d) is outside the %d bytes scanned",
				f.Type, f.Start, f.End, end-from)
		}
		f.Start += from
		f.End += from
		if s.seenBefore(f) {
			continue
		}
		action := s.o.Decide(f)
		s.found = append(s.found, f)
		s.live = append(s.live, seen{len(s.found) - 1, action})
		switch action {
		case Block:
			return &Blocked{Type: f.Type}
		case Mask:
			s.addMask(f)
		}
	}
	s.scanned = end
	// A finding that ends before the next scan's start cannot be reported
	// again: forget it for de-duplication.
	next := s.scanned - s.o.Window
	// (The next scan may start up to UTFMax-1 bytes earlier, at a
	// character's start.)
	s.live = slices.DeleteFunc(s.live, func(l seen) bool { return s.found[l.i].End <= next-utf8.UTFMax })
	return nil
}

// seenBefore reports whether f is a finding already seen: the same, or one
// that overlaps a finding of its type, which f then widens (the decision
// taken for it stands).
func (s *StreamScanner) seenBefore(f Finding) bool {
	for _, l := range s.live {
		g := &s.found[l.i]
		if g.Type != f.Type || f.Start >= g.End || g.Start >= f.End {
			continue
		}
		if f.Start < g.Start || f.End > g.End {
			g.Start, g.End = min(g.Start, f.Start), max(g.End, f.End)
			if l.action == Mask {
				s.addMask(*g)
			}
		}
		return true
	}
	return false
}

// addMask adds a span to mask, merged with those it overlaps. Text already
// released cannot be taken back; a span reaching into it (only a finding
// longer than Window can) is cut to what is still held.
func (s *StreamScanner) addMask(f Finding) {
	f.Start = max(f.Start, s.emitted)
	if f.Start >= f.End {
		return
	}
	i := 0
	for i < len(s.masks) && s.masks[i].End <= f.Start {
		i++
	}
	j := i
	for ; j < len(s.masks) && s.masks[j].Start < f.End; j++ {
		m := s.masks[j]
		if m.Start <= f.Start {
			f.Type = m.Type // the span that starts first names the merged one
		}
		f.Start, f.End = min(f.Start, m.Start), max(f.End, m.End)
	}
	s.masks = slices.Replace(s.masks, i, j, f)
}

// release returns the held text up to cut, with masked spans replaced.
func (s *StreamScanner) release(cut int) string {
	if cut <= s.emitted {
		return ""
	}
	n := 0
	for n < len(s.masks) && s.masks[n].End <= cut {
		n++
	}
	text := s.buf[s.emitted-s.base : cut-s.base]
	var out string
	if n == 0 {
		out = string(text)
	} else {
		out = string(replace(make([]byte, 0, len(text)+16), string(text), s.emitted, s.masks[:n], s.v.mask))
	}
	s.masks = slices.Delete(s.masks, 0, n)
	s.emitted = cut
	return out
}

// runeEnd is the end of the last whole UTF-8 character held.
func (s *StreamScanner) runeEnd() int {
	n := len(s.buf)
	for i := n - 1; i >= max(0, n-utf8.UTFMax); i-- {
		if utf8.RuneStart(s.buf[i]) {
			if !utf8.FullRune(s.buf[i:]) {
				n = i
			}
			break
		}
	}
	return s.base + n
}

// runeStart moves the offset off back to the start of the UTF-8 character
// it falls in, so that text is never released or scanned from mid-character.
// It stays at or after base.
func (s *StreamScanner) runeStart(off int) int {
	for off > s.base && off-s.base < len(s.buf) && !utf8.RuneStart(s.buf[off-s.base]) {
		off--
	}
	return off
}
