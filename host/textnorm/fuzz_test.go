package textnorm

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var fuzzSeeds = []string{
	"",
	"plain text, nothing to do",
	"123\u200b-45-6789",
	"１２３-４５-６７８９",
	"user＠example.com",
	"user&#64;example.com &commat; &#x40 &amp;#64;",
	"user%40example.com %EF%BC%A0 %2540 %FF%00",
	b64SSN,
	"x=" + b64Padded + ".",
	hexMail,
	"0x" + hexMail,
	jwt,
	"key=" + awsKeyCyr,
	"b0mb",
	"123\xff-45\xc3-6789",
	"hi" + tagsSSN,
	"1\u03322\u0332 1\ufe0f\u20e3",
	"ﷺ ㍱ ﬁ",
	"привет pаypal ΑΚΙΑ",
	"a\u0301\u200b\u0301",
}

// FuzzNormalize checks, for any text: no panic; a view of valid UTF-8
// within the cap; a map that is well formed; Original in bounds, on
// character boundaries and monotonic for every span; Identity only when the
// view is the original; and a view the character passes leave as it is.
func FuzzNormalize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		n := Normalize(src)
		v := n.String()
		if n.Source() != src {
			t.Fatal("Source is not the original")
		}
		if len(v) > 2*len(src)+Slack {
			t.Fatalf("view of %d bytes for %d", len(v), len(src))
		}
		if !utf8.ValidString(v) {
			t.Fatalf("view %q is not UTF-8", v)
		}
		if n.Identity() && v != src {
			t.Fatalf("identity, but view %q != %q", v, src)
		}
		if slow := normalizeSlow(src); plain(src) && !slow.Identity() {
			t.Fatalf("fast path takes %q, the passes change it to %q", src, slow.view)
		}
		// The view is the caller's: another call must not change it.
		view := strings.Clone(v)
		_ = Normalize(fuzzSeeds[len(src)%len(fuzzSeeds)] + "ｘ")
		if n.String() != view {
			t.Fatalf("view changed by the next call: %q, was %q", n.String(), view)
		}
		checkPieces(t, n)
		checkOriginal(t, n)
		if !isASCII(v) {
			return
		}
		// An ASCII view holds nothing the character passes would change:
		// no control, no invisible character. (Decoding is one level, so
		// normalising the view again may decode what was decoded from.)
		if f, _ := newState().fold(v, 2*len(v)+Slack); f != v {
			t.Fatalf("view %q folds again to %q", v, f)
		}
	})
}

func newState() *state { return new(state) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkPieces checks the map itself: it starts at 0, covers the view in
// order, stays in the original, and verbatim pieces are copies.
func checkPieces(t *testing.T, n Text) {
	t.Helper()
	if n.Identity() {
		return
	}
	if len(n.view) == 0 {
		if len(n.pcs) != 0 {
			t.Fatalf("empty view, %d pieces", len(n.pcs))
		}
		return
	}
	if max := (2*len(n.src)+Slack)/4 + 16; len(n.pcs) > max {
		t.Fatalf("%d pieces, bound %d", len(n.pcs), max)
	}
	if n.pcs[0].out != 0 {
		t.Fatalf("first piece at %d", n.pcs[0].out)
	}
	for i, p := range n.pcs {
		end := len(n.view)
		if i+1 < len(n.pcs) {
			end = int(n.pcs[i+1].out)
		}
		if int(p.out) >= end || p.src < 0 || p.src >= p.end || int(p.end) > len(n.src) {
			t.Fatalf("piece %d %+v (ends at %d) of %d-byte view of %d bytes", i, p, end, len(n.view), len(n.src))
		}
		if p.verbatim && n.view[p.out:end] != n.src[p.src:p.end] {
			t.Fatalf("verbatim piece %d %+v: %q != %q", i, p, n.view[p.out:end], n.src[p.src:p.end])
		}
	}
}

// checkOriginal checks Original over every span of short views and a
// sample of spans of long ones.
func checkOriginal(t *testing.T, n Text) {
	t.Helper()
	v, src := n.view, n.src
	bound := boundaries(src)
	// start and end of the span of each byte alone.
	first := make([]int, len(v)+1)
	last := make([]int, len(v)+1)
	for x := 0; x <= len(v); x++ {
		s, e, ok := n.Original(x, x)
		if !ok || s != e || s < 0 || s > len(src) || !bound[s] {
			t.Fatalf("Original(%d, %d) = %d, %d, %v", x, x, s, e, ok)
		}
		if x > 0 && s < first[x-1] {
			t.Fatalf("Original(%d, %d) starts at %d, before Original(%d, %d)'s %d", x, x, s, x-1, x-1, first[x-1])
		}
		first[x] = s
		if x == 0 {
			continue
		}
		s, e, ok = n.Original(x-1, x)
		if !ok || s >= e || e > len(src) || !bound[e] || !bound[s] {
			t.Fatalf("Original(%d, %d) = %d, %d, %v", x-1, x, s, e, ok)
		}
		if s != first[x-1] {
			t.Fatalf("Original(%d, %d) starts at %d, Original(%d, %d) at %d", x-1, x, s, x-1, x-1, first[x-1])
		}
		if x > 1 && e < last[x-1] {
			t.Fatalf("Original(%d, %d) ends at %d, before Original(%d, %d)'s %d", x-1, x, e, x-2, x-1, last[x-1])
		}
		last[x] = e
	}
	// Every span maps to the start of its first byte and the end of its
	// last, so checking those per byte covers all spans.
	step := 1
	if len(v) > 64 {
		step = len(v)/32 + 1
	}
	for s := 0; s < len(v); s += step {
		for e := s + 1; e <= len(v); e += step {
			gs, ge, ok := n.Original(s, e)
			if !ok || gs != first[s] || ge != last[e] {
				t.Fatalf("Original(%d, %d) = %d, %d, %v; want %d, %d", s, e, gs, ge, ok, first[s], last[e])
			}
		}
	}
	for _, bad := range [][2]int{{-1, 0}, {0, len(v) + 1}, {1, 0}} {
		if _, _, ok := n.Original(bad[0], bad[1]); ok {
			t.Fatalf("Original(%d, %d) ok", bad[0], bad[1])
		}
	}
}

// boundaries marks the character boundaries of s, stepping as
// utf8.DecodeRuneInString does.
func boundaries(s string) []bool {
	b := make([]bool, len(s)+1)
	for i := 0; i < len(s); {
		b[i] = true
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	b[len(s)] = true
	return b
}

// FuzzDecodeRun checks the hand-written base64 and hex decoding against
// encoding/base64 and encoding/hex, and that runMode only accepts what
// decodes to mostly text.
func FuzzDecodeRun(f *testing.F) {
	for _, s := range []string{"My SSN is 123-45-6789", "jane.doe@example.com", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "short", "ü ß 日本 \u200b 12"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, run := range []string{
			base64.StdEncoding.EncodeToString(data),
			base64.RawStdEncoding.EncodeToString(data),
			base64.RawURLEncoding.EncodeToString(data),
			hex.EncodeToString(data),
		} {
			run := trimPadding(run)
			m := runMode(run)
			if m == modeNone {
				continue
			}
			got := decodeRun(nil, run, m)
			want, err := libDecode(run, m)
			if err != nil || string(got) != string(want) {
				t.Fatalf("run %q, mode %d: decoded %q, want %q (%v)", run, m, got, want, err)
			}
			if len(got) != decodedLen(run, m) {
				t.Fatalf("run %q: decoded %d bytes, decodedLen says %d", run, len(got), decodedLen(run, m))
			}
			var tc textCheck
			for _, c := range got {
				tc.add(c)
			}
			if !tc.ok() {
				t.Fatalf("run %q accepted, but %q is not text", run, got)
			}
		}
	})
}

// libDecode decodes run as the standard library does.
func libDecode(run string, m int) ([]byte, error) {
	switch m {
	case modeHex:
		return hex.DecodeString(run)
	case modeHex0x:
		return hex.DecodeString(run[2:])
	}
	if strings.ContainsAny(run, "-_") {
		return base64.RawURLEncoding.DecodeString(run)
	}
	return base64.RawStdEncoding.DecodeString(run)
}

func trimPadding(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// FuzzNFKCSegments checks that normalising a text segment by segment, as
// the nfkc pass does, gives what golang.org/x/text/unicode/norm gives for
// the whole text (but for the U+034F each inserts into long runs of marks,
// which the fold drops).
func FuzzNFKCSegments(f *testing.F) {
	for _, s := range []string{"ﷺﷺ ﷻ", "가\u11a8 ᄀ\u1161", "e\u0301\u0323 q\u0307\u0323", "1\ufe0f\u20e3", "ﬁ㍿ｶﾞ", "a" + strings.Repeat("\u0301", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		st := new(state)
		var got []byte
		for i := 0; i < len(s); {
			j, seg := st.nextSegment(s, i)
			if j <= i {
				t.Fatalf("segment at %d ends at %d", i, j)
			}
			got = append(got, seg...)
			i = j
		}
		cgj := strings.NewReplacer("\u034f", "")
		if want := norm.NFKC.String(s); cgj.Replace(string(got)) != cgj.Replace(want) {
			t.Fatalf("NFKC of %q by segments %q, want %q", s, got, want)
		}
	})
}
