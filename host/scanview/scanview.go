// Package scanview builds what the guard plugins see of a request's or a
// reply's texts, and maps what they find back to the texts as sent.
//
// Plugins are handed, in order:
//
//  1. each text normalised (host/textnorm): invisible characters dropped,
//     NFKC, digits and dashes of every script folded, look-alike letters
//     folded, percent-escapes and HTML references decoded, base64 and hex
//     runs that hold text decoded beside themselves;
//  2. then seams: for each run of adjacent texts of one kind (the parts of a
//     message, consecutive messages, the strings of one tool call's
//     arguments), the normalised bytes around each boundary between two of
//     them, SeamBytes on each side, so that a value split across parts or
//     messages is seen whole.
//
// A finding in a normalised text maps to the bytes of the original text
// that produced it; one in a seam maps to every text it touches, each
// finding covering that text's share. So redaction masks exactly what was
// sent, and the policy sees a split value as found in every message that
// holds a piece of it. A seam costs at most 2×SeamBytes per boundary,
// whatever the size of the texts.
package scanview

import (
	"slices"
	"unicode/utf8"

	"github.com/sluicehq/sluice/host/redact"
	"github.com/sluicehq/sluice/host/textnorm"
)

// SeamBytes is how much of the normalised text on each side of a boundary
// a seam holds: more than the longest value of DESIGN.md's finding types
// but PEM private keys.
const SeamBytes = 128

// View is the texts plugins scan for one set of texts.
type View struct {
	norm  []textnorm.Text
	texts []string // the normalised texts, then the seams
	seams []seam
}

// seam is a window over a run of adjacent normalised texts: pieces are the
// slices of each text it holds, in order.
type seam struct {
	pieces []piece
}

type piece struct {
	text       int // index of the original text
	start, end int // in the normalised text
}

// New builds the view of texts. joins(i) reports whether texts i and i+1 are
// adjacent texts of one kind, whose boundary a value may straddle; nil joins
// none.
func New(texts []string, joins func(i int) bool) *View {
	v := &View{norm: make([]textnorm.Text, len(texts)), texts: make([]string, len(texts), len(texts)+1)}
	for i, t := range texts {
		v.norm[i] = textnorm.Normalize(t)
		v.texts[i] = v.norm[i].String()
	}
	if joins != nil {
		v.addSeams(joins)
	}
	return v
}

// Texts are what the plugins scan: the normalised texts, then the seams.
func (v *View) Texts() []string { return v.texts }

// Capped reports a text whose normalisation was cut short to keep the view
// bounded (textnorm's Capped): only text built to blow the view up gets
// there, and what it hides was not normalised, so a gateway refuses it.
func (v *View) Capped() bool {
	for _, n := range v.norm {
		if n.Capped() {
			return true
		}
	}
	return false
}

// addSeams adds a seam around each boundary of a run of joined texts; a
// text short enough to be held whole joins the windows of its two
// boundaries into one, so a value spread over three short parts is seen in
// one seam.
func (v *View) addSeams(joins func(i int) bool) {
	var cur *seam
	for i := 0; i+1 < len(v.norm); i++ {
		if !joins(i) {
			cur = v.closeSeam(cur)
			continue
		}
		left := v.texts[i]
		if n := len(cur.piecesOrNil()); n > 0 && cur.pieces[n-1].text == i && len(left) <= 2*SeamBytes {
			cur.pieces[n-1].end = len(left)
		} else {
			cur = v.closeSeam(cur)
			cur = &seam{pieces: []piece{{text: i, start: runeStart(left, max(0, len(left)-SeamBytes)), end: len(left)}}}
		}
		right := v.texts[i+1]
		cur.pieces = append(cur.pieces, piece{text: i + 1, end: runeStart(right, min(len(right), SeamBytes))})
	}
	v.closeSeam(cur)
}

func (s *seam) piecesOrNil() []piece {
	if s == nil {
		return nil
	}
	return s.pieces
}

func (v *View) closeSeam(s *seam) *seam {
	if s == nil {
		return nil
	}
	var b []byte
	for _, p := range s.pieces {
		b = append(b, v.texts[p.text][p.start:p.end]...)
	}
	v.seams = append(v.seams, *s)
	v.texts = append(v.texts, string(b))
	return nil
}

// runeStart is i moved back to the start of the character it falls in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// Findings maps findings in the view's texts back to the original texts:
// offsets into the text as sent, a seam's finding split into one per text
// it touches. Findings outside the view are dropped. A seam finding that
// overlaps what a text's own scan found of the same type is dropped too: the
// value was whole in that text, and the seam only glued a neighbour's bytes
// to it. Duplicates are merged.
func (v *View) Findings(found []redact.Finding) []redact.Finding {
	out := make([]redact.Finding, 0, len(found))
	for _, f := range found {
		if v.outside(f) || f.Text >= len(v.norm) {
			continue
		}
		if g, ok := v.original(f, f.Text, f.Start, f.End); ok {
			out = append(out, g)
		}
	}
	direct := len(out)
	var pieces []redact.Finding
	for _, f := range found {
		if v.outside(f) || f.Text < len(v.norm) {
			continue
		}
		pieces = pieces[:0]
		glued := false
		at := 0
		for _, p := range v.seams[f.Text-len(v.norm)].pieces {
			size := p.end - p.start
			lo, hi := max(f.Start, at), min(f.End, at+size)
			if lo < hi {
				if g, ok := v.original(f, p.text, p.start+lo-at, p.start+hi-at); ok {
					glued = glued || overlapsAny(out[:direct], g)
					pieces = append(pieces, g)
				}
			}
			at += size
		}
		if !glued {
			out = append(out, pieces...)
		}
	}
	slices.SortFunc(out, func(a, b redact.Finding) int {
		if a.Text != b.Text {
			return a.Text - b.Text
		}
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		if a.End != b.End {
			return a.End - b.End
		}
		switch {
		case a.Type < b.Type:
			return -1
		case a.Type > b.Type:
			return 1
		case a.Score > b.Score: // the duplicate kept is the surest
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(a, b redact.Finding) bool {
		return a.Text == b.Text && a.Start == b.Start && a.End == b.End && a.Type == b.Type
	})
}

func (v *View) outside(f redact.Finding) bool {
	return f.Text < 0 || f.Text >= len(v.texts) || f.Start < 0 || f.Start >= f.End || f.End > len(v.texts[f.Text])
}

func overlapsAny(fs []redact.Finding, g redact.Finding) bool {
	for _, f := range fs {
		if f.Text == g.Text && f.Type == g.Type && f.Start < g.End && g.Start < f.End {
			return true
		}
	}
	return false
}

// original is f as a finding at [start, end) of the normalised text i,
// mapped to the original.
func (v *View) original(f redact.Finding, i, start, end int) (redact.Finding, bool) {
	s, e, ok := v.norm[i].Original(start, end)
	if !ok || s >= e {
		return f, false
	}
	f.Text, f.Start, f.End = i, s, e
	return f, true
}
