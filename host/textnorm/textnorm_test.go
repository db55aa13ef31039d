package textnorm

import (
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var (
	b64SSN     = base64.StdEncoding.EncodeToString([]byte("My SSN is 123-45-6789"))
	b64Padded  = base64.StdEncoding.EncodeToString([]byte("SSN: 123-45-6789")) // 16 bytes: padded
	b64URL     = base64.RawURLEncoding.EncodeToString([]byte("mail me ~~>> jane@example.com??"))
	b64ZW      = base64.StdEncoding.EncodeToString([]byte("ssn 123\u200b-45-6789"))
	b64Binary  = base64.StdEncoding.EncodeToString(randomBytes(48))
	hexMail    = hex.EncodeToString([]byte("jane.doe@example.com"))
	jwt        = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	tagsSSN    = tags("123-45-6789")
	awsKeyCyr  = "АKIAIOSFODNN7EXAMPLE" // Cyrillic А
	awsKeyMix  = "AKІAIOSFODNN7EXAMPLE" // Cyrillic І
	greekAKIA  = "ΑΚΙΑIOSFODNN7EXAMPLE" // Greek Α, Κ, Ι, Α
	randomSeed = uint64(10)
)

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(randomSeed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tags writes s in Unicode tag characters, which render as nothing.
func tags(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(0xE0000 + r)
	}
	return b.String()
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		view string
		// span is a part of view (its first occurrence, or the last when
		// last is set) and orig the part of src it must map to; "" is the
		// whole text.
		span, orig string
		last       bool
	}{
		{name: "zero-width space in an SSN", src: "ssn 123\u200b-45-6789.", view: "ssn 123-45-6789.",
			span: "123-45-6789", orig: "123\u200b-45-6789"},
		{name: "word joiner, soft hyphen and bidi override", src: "1\u206023\u00ad-45\u202e-6789", view: "123-45-6789",
			span: "", orig: ""},
		{name: "BOM and zero-width joiners", src: "\ufeffjane\u200c@\u200dexample.com", view: "jane@example.com",
			span: "jane@example.com", orig: "jane\u200c@\u200dexample.com"},
		{name: "a token's dropped edge is not part of it", src: "1\u200b2", view: "12",
			span: "1", orig: "1"},
		{name: "fullwidth digits", src: "ssn １２３-４５-６７８９", view: "ssn 123-45-6789",
			span: "45", orig: "４５"},
		{name: "fullwidth at sign", src: "user＠example.com", view: "user@example.com",
			span: "@", orig: "＠"},
		{name: "Arabic-Indic digits", src: "١٢٣-٤٥-٦٧٨٩", view: "123-45-6789",
			span: "3-4", orig: "٣-٤"},
		{name: "Devanagari and Bengali digits", src: "१२३ ৪৫", view: "123 45",
			span: "123", orig: "१२३"},
		{name: "mathematical and circled digits", src: "𝟏𝟐𝟑 ①②", view: "123 12",
			span: "2", orig: "𝟐"},
		{name: "combining marks on digits", src: "1\u03322\u03323\u0332", view: "123",
			span: "2", orig: "2\u0332"},
		{name: "keycap digits", src: "1\ufe0f\u20e32\ufe0f\u20e3", view: "12",
			span: "2", orig: "2\ufe0f\u20e3"},
		{name: "Unicode dashes and minus", src: "123\u201245\u22126789 123\u201445\uff0d6789", view: "123-45-6789 123-45-6789",
			span: "45-6789", orig: "45\u22126789"},
		{name: "spaces", src: "4111\u00a01111\u20091111\u30001111", view: "4111 1111 1111 1111",
			span: "1 1", orig: "1\u30001", last: true},
		{name: "ideographic full stop", src: "jane@example。com", view: "jane@example.com",
			span: ".", orig: "。"},
		{name: "numeric character reference", src: "user&#64;example.com", view: "user@example.com",
			span: "@", orig: "&#64;"},
		{name: "reference without semicolon", src: "user&#64example.com", view: "user@example.com",
			span: "user@", orig: "user&#64"},
		{name: "hex reference", src: "user&#X0040;example.com", view: "user@example.com",
			span: "@", orig: "&#X0040;"},
		{name: "named references", src: "user&commat;example&period;com &amp; 123&hyphen;45&dash;6789", view: "user@example.com & 123-45-6789",
			span: "@example.", orig: "&commat;example&period;"},
		{name: "reference to a fullwidth character", src: "user&#65312;example.com", view: "user@example.com",
			span: "@", orig: "&#65312;"},
		{name: "reference to a zero-width space", src: "123&#8203;-45-6789", view: "123-45-6789",
			span: "", orig: ""},
		{name: "unknown or broken references stay", src: "a &bogus; b &# c &#xZ; &#0; &#1114112;", view: "a &bogus; b &# c &#xZ; &#0; &#1114112;",
			span: "", orig: ""},
		{name: "percent-encoding", src: "user%40example.com", view: "user@example.com",
			span: "@", orig: "%40"},
		{name: "percent-encoded fullwidth at sign", src: "user%EF%BC%A0example.com", view: "user@example.com",
			span: "@", orig: "%EF%BC%A0"},
		{name: "fullwidth percent-encoding", src: "user％４０example.com", view: "user@example.com",
			span: "@", orig: "％４０"},
		{name: "percent-escapes that make no text stay", src: "a%00b%FFc%41", view: "a%00b%FFcA",
			span: "A", orig: "%41"},
		{name: "one level of decoding", src: "%2540 &amp;#64;", view: "%40 &#64;",
			span: "%40", orig: "%2540"},
		{name: "base64 of an SSN", src: "see " + b64SSN + " ok", view: "see " + b64SSN + " My SSN is 123-45-6789 ok",
			span: "123-45-6789", orig: b64SSN},
		{name: "base64 run maps whole", src: "see " + b64SSN + " ok", view: "see " + b64SSN + " My SSN is 123-45-6789 ok",
			span: "SSN", orig: b64SSN},
		{name: "padded base64", src: "x=" + b64Padded + ";", view: "x=" + b64Padded + " SSN: 123-45-6789;",
			span: "123", orig: b64Padded},
		{name: "URL-alphabet base64", src: b64URL, view: b64URL + " mail me ~~>> jane@example.com??",
			span: "jane@example.com", orig: b64URL},
		{name: "zero-width space inside a base64 payload", src: b64ZW, view: b64ZW + " ssn 123-45-6789",
			span: "123-45-6789", orig: b64ZW},
		{name: "hex of an e-mail", src: "id " + hexMail, view: "id " + hexMail + " jane.doe@example.com",
			span: "jane.doe@example.com", orig: hexMail},
		{name: "0x hex", src: "0x" + hexMail, view: "0x" + hexMail + " jane.doe@example.com",
			span: "", orig: ""},
		{name: "base64 of binary is not decoded", src: "blob " + b64Binary, view: "blob " + b64Binary,
			span: b64Binary, orig: b64Binary},
		{name: "a JWT stays whole before its decoded parts", src: "Bearer " + jwt, view: "Bearer " + jwt + ` {"alg":"HS256"} {"sub":"1234567890"}`,
			span: jwt, orig: jwt},
		{name: "AWS key with a Cyrillic A", src: "key=" + awsKeyCyr, view: "key=AKIAIOSFODNN7EXAMPLE",
			span: "AKIAIOSFODNN7EXAMPLE", orig: awsKeyCyr},
		{name: "look-alike letter maps to its bytes", src: awsKeyMix, view: "AKIAIOSFODNN7EXAMPLE",
			span: "I", orig: "І"},
		{name: "word of Greek look-alikes", src: greekAKIA, view: "AKIAIOSFODNN7EXAMPLE",
			span: "KI", orig: "ΚΙ"},
		{name: "Cyrillic look-alikes inside a Latin word", src: "pаypаl.com", view: "paypal.com",
			span: "", orig: ""},
		{name: "Russian words stay Russian", src: "привет, мир", view: "привет, мир",
			span: "мир", orig: "мир"},
		{name: "leetspeak is not folded", src: "b0mb", view: "b0mb",
			span: "0", orig: "0"},
		{name: "invalid UTF-8 inside a value", src: "123\xff-45-6789", view: "123-45-6789",
			span: "123-45-6789", orig: "123\xff-45-6789"},
		{name: "a run of invalid bytes is dropped", src: "12\xc3\xff\xfe3", view: "123",
			span: "23", orig: "2\xc3\xff\xfe3"},
		{name: "a decoded replacement character is dropped", src: "123\ufffd-45-6789", view: "123-45-6789",
			span: "123-45-6789", orig: "123\ufffd-45-6789"},
		{name: "controls are dropped", src: "123\x00-45\x1b-6789\r\n", view: "123-45-6789\r\n",
			span: "123-45-6789", orig: "123\x00-45\x1b-6789"},
		{name: "tag characters show what they hide", src: "hi" + tagsSSN, view: "hi123-45-6789",
			span: "45", orig: tags("45")},
		{name: "NFKC expansion", src: "ﬁle ㍱", view: "file hPa",
			span: "fi", orig: "ﬁ"},
		{name: "mix of all", src: "ＳＳＮ：１２３\u200b-４５-６７８９; mail user&#64;ex%61mple。com; key " + awsKeyCyr + "; note " + b64SSN,
			view: "SSN:123-45-6789; mail user@example.com; key AKIAIOSFODNN7EXAMPLE; note " + b64SSN + " My SSN is 123-45-6789",
			span: "user@example.com", orig: "user&#64;ex%61mple。com"},
		{name: "mix of all, decoded part", src: "ＳＳＮ：１２３\u200b-４５-６７８９; note " + b64SSN,
			view: "SSN:123-45-6789; note " + b64SSN + " My SSN is 123-45-6789",
			span: "123-45-6789", orig: b64SSN, last: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := Normalize(tc.src)
			if got := n.String(); got != tc.view {
				t.Fatalf("view %q, want %q", got, tc.view)
			}
			span, orig := tc.span, tc.orig
			if span == "" {
				span, orig = n.String(), tc.src
			}
			s := strings.Index(n.String(), span)
			if tc.last {
				s = strings.LastIndex(n.String(), span)
			}
			if s < 0 {
				t.Fatalf("%q not in the view", span)
			}
			os := strings.Index(tc.src, orig)
			if os < 0 {
				t.Fatalf("%q not in the source", orig)
			}
			gs, ge, ok := n.Original(s, s+len(span))
			if !ok || gs != os || ge != os+len(orig) {
				t.Fatalf("Original(%d, %d) = %d, %d, %v (%q), want %d, %d (%q)",
					s, s+len(span), gs, ge, ok, tc.src[gs:ge], os, os+len(orig), orig)
			}
			if n.Capped() {
				t.Errorf("capped")
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	for _, src := range []string{
		"",
		"What is the capital of France? Answer in one word.",
		"50% off & free shipping; a%zz; &foo bar",
		"internationalization and a_long_identifier_name and deadbeefdeadbeef", // runs that decode to no text
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",                          // a JWT signature
		"привет, мир; 日本語のテキスト; é composed",
		"b0mb",
	} {
		n := Normalize(src)
		if !n.Identity() || n.String() != src || n.Capped() {
			t.Errorf("Normalize(%q) = %q, identity %v, capped %v; want itself", src, n.String(), n.Identity(), n.Capped())
		}
	}
}

func TestViewOutlivesNextCall(t *testing.T) {
	a := Normalize("user＠example.com")
	for range 10 {
		_ = Normalize("ｘｘｘｘｘｘｘｘｘｘｘｘｘｘｘｘ")
	}
	if a.String() != "user@example.com" {
		t.Errorf("view changed to %q", a.String())
	}
}

func TestFastPathAllocatesNothing(t *testing.T) {
	src := strings.Repeat("Summarise this paper on internationalization of web applications, please. ", 16)
	if !plain(src) {
		t.Fatal("not on the fast path")
	}
	if a := testing.AllocsPerRun(100, func() { _ = Normalize(src) }); a != 0 {
		t.Errorf("%v allocations, want 0", a)
	}
}

func TestOriginal(t *testing.T) {
	n := Normalize("a\u200bb\u200bc") // view "abc"
	for _, tc := range []struct {
		start, end int
		s, e       int
		ok         bool
	}{
		{0, 3, 0, 9, true},
		{0, 1, 0, 1, true},
		{1, 2, 4, 5, true},
		{1, 3, 4, 9, true},
		{1, 1, 4, 4, true},
		{3, 3, 9, 9, true},
		{-1, 1, 0, 0, false},
		{2, 1, 0, 0, false},
		{0, 4, 0, 0, false},
	} {
		s, e, ok := n.Original(tc.start, tc.end)
		if s != tc.s || e != tc.e || ok != tc.ok {
			t.Errorf("Original(%d, %d) = %d, %d, %v; want %d, %d, %v", tc.start, tc.end, s, e, ok, tc.s, tc.e, tc.ok)
		}
	}

	// A span cutting a character of the view is widened to whole
	// characters of the original, on both paths.
	for _, src := range []string{"é-ü", "é-ü\u200b"} {
		n := Normalize(src)
		if s, e, _ := n.Original(1, 4); s != 0 || e != 5 {
			t.Errorf("%q: Original(1, 4) = %d, %d; want 0, 5", src, s, e)
		}
	}
}

func TestCap(t *testing.T) {
	// ﷺ is 3 bytes and 33 after NFKC: a text of them cannot all expand.
	src := strings.Repeat("ﷺ", 100)
	n := Normalize(src)
	if !n.Capped() {
		t.Error("not capped")
	}
	if len(n.String()) > 2*len(src)+Slack {
		t.Errorf("view of %d bytes for %d", len(n.String()), len(src))
	}
	if !utf8.ValidString(n.String()) {
		t.Error("view not UTF-8")
	}
	// What did expand maps to its character, what did not stays.
	if s, e, _ := n.Original(0, 1); s != 0 || e != 3 {
		t.Errorf("Original(0, 1) = %d, %d; want 0, 3", s, e)
	}
	if !strings.HasSuffix(n.String(), "ﷺ") {
		t.Error("the tail was not left as written")
	}
}

func TestCapDecoded(t *testing.T) {
	// The decoded text of a run expands under NFKC past the room left:
	// what fits is appended, the run itself stays, and the text is capped.
	run := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("ﷺ", 40)))
	n := Normalize(run)
	if !n.Capped() {
		t.Error("not capped")
	}
	if len(n.String()) > 2*len(run)+Slack {
		t.Errorf("view of %d bytes for %d", len(n.String()), len(run))
	}
	if !strings.HasPrefix(n.String(), run+" صلى الله") {
		t.Errorf("view %q", n.String())
	}
}

func TestZeroText(t *testing.T) {
	var z Text
	if z.String() != "" || !z.Identity() || z.Capped() || z.Coarse() {
		t.Errorf("zero Text: %q, identity %v, capped %v, coarse %v", z.String(), z.Identity(), z.Capped(), z.Coarse())
	}
	if s, e, ok := z.Original(0, 0); s != 0 || e != 0 || !ok {
		t.Errorf("Original(0, 0) = %d, %d, %v", s, e, ok)
	}
}

func TestCoarse(t *testing.T) {
	src := strings.Repeat("\va", 1000) + "user＠example.com"
	n := Normalize(src)
	if !n.Coarse() {
		t.Fatal("not coarse")
	}
	if len(n.pcs) > len(src)/2+Slack {
		t.Errorf("%d pieces for %d bytes", len(n.pcs), len(src))
	}
	// Still covering: the at sign maps to a span holding ＠.
	x := strings.Index(n.String(), "@")
	s, e, _ := n.Original(x, x+1)
	if at := strings.Index(src, "＠"); s > at || e < at+len("＠") {
		t.Errorf("Original of @ = %d, %d, does not cover %d, %d", s, e, at, at+len("＠"))
	}
	if Normalize("user＠example.com").Coarse() {
		t.Error("a short text is coarse")
	}
}

func TestHostile(t *testing.T) {
	const size = 4 << 20
	text := strings.Repeat(base64.StdEncoding.EncodeToString([]byte("the quick brown fox jumps over the lazy dog ")), size/60)
	for _, tc := range []struct {
		name string
		src  string
	}{
		{"percent signs", strings.Repeat("%", size)},
		{"broken escapes", strings.Repeat("%4", size/2)},
		{"escapes", strings.Repeat("%41", size/3)},
		{"reference starts", strings.Repeat("&#", size/2)},
		{"long reference digits", "&#" + strings.Repeat("0", size)},
		{"ampersands", strings.Repeat("&amp", size/4)},
		{"zero-width spaces", strings.Repeat("\u200b", size/3)},
		{"combining marks", "a" + strings.Repeat("\u0301", size/2)},
		{"invalid bytes", strings.Repeat("\xffa", size/2)},
		{"base64 text run", text},
		{"base64 binary run", base64.StdEncoding.EncodeToString(randomBytes(size * 3 / 4))},
		{"hex run", strings.Repeat("41", size/2)},
		{"look-alikes", strings.Repeat("аx", size/3)},
		{"expansions", strings.Repeat("ﷺ", size/3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := Normalize(tc.src)
			if len(n.String()) > 2*len(tc.src)+Slack {
				t.Errorf("view of %d bytes for %d", len(n.String()), len(tc.src))
			}
			if s, e, ok := n.Original(0, len(n.String())); !ok || e > len(tc.src) || s > e {
				t.Errorf("Original of the view = %d, %d, %v", s, e, ok)
			}
			if len(n.pcs) > len(tc.src)/2+Slack {
				t.Errorf("%d pieces for %d bytes", len(n.pcs), len(tc.src))
			}
		})
	}
}

func TestDigitBlocks(t *testing.T) {
	// digitValue relies on every block of decimal digits being ten code
	// points, zero to nine.
	for _, tab := range [][]unicode.Range16{unicode.Nd.R16} {
		for _, r := range tab {
			if r.Stride != 1 || (r.Hi-r.Lo+1)%10 != 0 {
				t.Errorf("Nd range %#x-%#x stride %d", r.Lo, r.Hi, r.Stride)
			}
		}
	}
	for _, r := range unicode.Nd.R32 {
		if r.Stride != 1 || (r.Hi-r.Lo+1)%10 != 0 {
			t.Errorf("Nd range %#x-%#x stride %d", r.Lo, r.Hi, r.Stride)
		}
	}
	for _, tc := range []struct {
		r rune
		v int
	}{{'٣', 3}, {'९', 9}, {'０', 0}, {'𝟗', 9}, {'߁', 1}, {'꩐', 0}} {
		if v, ok := digitValue(tc.r); !ok || v != tc.v {
			t.Errorf("digitValue(%q) = %d, %v; want %d", tc.r, v, ok, tc.v)
		}
	}
}

func TestWordChecks(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			x := load64(string(w), 0)
			if got, want := printable8(x), c >= 0x20 && c <= 0x7E; got != want {
				t.Errorf("printable8 with %#x at %d = %v", c, pos, got)
			}
			if got, want := ascii8(x), c < 0x80; got != want {
				t.Errorf("ascii8 with %#x at %d = %v", c, pos, got)
			}
		}
	}
}
