package tokens

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer/codec"
)

var (
	libraryOnce  sync.Once
	libraryCodec *codec.Codec
)

// library counts with github.com/tiktoken-go/tokenizer, the reference the
// hand-written splitter is held to.
func library(t testing.TB, s string) int64 {
	t.Helper()
	libraryOnce.Do(func() { libraryCodec = codec.NewO200kBase() })
	n, err := libraryCodec.Count(s)
	if err != nil {
		t.Fatalf("library count of %d bytes: %v", len(s), err)
	}
	return int64(n)
}

// libraryCompatible counts the way the library does, including the one
// place where it differs from tiktoken (see RATIONALE.md).
func libraryCompatible(s string) int64 {
	return count(s, splitter{library: true})
}

func TestCount(t *testing.T) {
	cases := []struct {
		text string
		want int64
	}{
		{"", 0},
		{"hello", 1},
		{"Hello, world!", 4},
		{"DON'T", 2},
		{"<|endoftext|>", 7}, // special tokens are plain text in prompts
		{"\xff", 1},          // invalid UTF-8 counts as U+FFFD
		{"a\xe2\x82b", 3},    // one U+FFFD per invalid byte: "a", "\ufffd\ufffd", "b"
		{"a\x7fb", 3},        // DEL is a token of its own
	}
	for _, c := range cases {
		if got := Count(c.text); got != c.want {
			t.Errorf("Count(%q) = %d, want %d", c.text, got, c.want)
		}
	}
}

// TestCountMatchesTiktoken pins counts from OpenAI's tiktoken (the Rust
// implementation behind the Python and JavaScript packages) where the Go
// library differs: whitespace runs that hold several line breaks, which it
// splits more, and U+007F, which it drops.
func TestCountMatchesTiktoken(t *testing.T) {
	cases := []struct {
		text    string
		want    int64 // tiktoken
		library int64
	}{
		{"  \n  \n  x", 3, 4},
		{"\n \n\t\nabc", 3, 4},
		{"a \n\n b", 3, 3},
		{"x\n\n  \n\ny", 3, 4},
		{"}\n\t\n\t\treturn", 4, 4},
		{"a\x7fb", 3, 2},
		{"x\x7f\x7fy", 4, 2},
	}
	for _, c := range cases {
		if got := Count(c.text); got != c.want {
			t.Errorf("Count(%q) = %d, want %d as tiktoken counts", c.text, got, c.want)
		}
		if got := library(t, c.text); got != c.library {
			t.Errorf("library count of %q = %d, want %d: has the library changed?", c.text, got, c.library)
		}
		if got := libraryCompatible(c.text); got != c.library {
			t.Errorf("library-compatible count of %q = %d, want %d", c.text, got, c.library)
		}
	}
}

// TestVocabularyMatchesLibrary looks every token of the library up in the
// table built from it: a token missing or misplaced would skew every count
// that needs it.
func TestVocabularyMatchesLibrary(t *testing.T) {
	v := encoding()
	library(t, "warm")
	tokens := 0
	for id := range maxOrdinaryID + 1 {
		tok, err := libraryCodec.Decode([]uint{uint(id)})
		if err != nil {
			continue
		}
		tokens++
		if got, ok := v.rank(tok); !ok || got != uint32(id) {
			t.Fatalf("rank of token %d (%d bytes) = %d, %v; want %d", id, len(tok), got, ok, id)
		}
	}
	if tokens != maxOrdinaryID+1 {
		t.Errorf("library has %d tokens, want %d", tokens, maxOrdinaryID+1)
	}
	if _, ok := v.rank("<|endoftext|>"); ok {
		t.Error("special token <|endoftext|> is in the table; prompts must count it as text")
	}
}

// maxOrdinaryID is the last id of o200k_base's ordinary tokens.
const maxOrdinaryID = 199_997

func TestChatAddsFraming(t *testing.T) {
	// Two messages of one token each: 2 + 2×3 framing + 3 reply priming.
	if got := Chat([]string{"hello", "hello"}, 2); got != 11 {
		t.Fatalf("Chat = %d, want 11", got)
	}
}

// corpus is text of the kinds a gateway sees, plus edge cases of the split
// pattern.
var corpus = []string{
	// Prose.
	"The quick brown fox jumps over the lazy dog. It's a well-known pangram; isn't it?",
	"Mr. O'Neil said: \"We'll see.\" She'd've known — they're sure you've been there, haven't we?",
	"DON'T SHOUT. It'S fine, WE'LL manage, THEY'RE here, I'M ok, YOU'VE won, HE'D go. it'Ll. we'Re",
	"l'amour, rock'n'roll, '90s, 'tis, ''s, 's, 'S, x'ſ, x'ſt, x'Re, x'rE, x'LL, x'lL, x'l, x'r, x'",
	"CamelCaseIdentifier and HTTPServer and XMLHttpRequest and iOS and McDonald and ÉCOLE École",
	// Code.
	"func (v *vocab) rank(s string) (uint32, bool) {\n\tif len(s) > v.maxLen {\n\t\treturn 0, false\n\t}\n}\n",
	"def count(text: str) -> int:\n    \"\"\"Count tokens.\"\"\"\n    return len(enc.encode(text))  # noqa\n\n\nclass A(B):\n    pass\n",
	`{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"max_tokens":256,"stream":true,"temperature":0.2}`,
	"SELECT u.id, COUNT(*) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at >= '2024-01-01' GROUP BY 1;",
	"#include <stdio.h>\r\nint main(void) {\r\n  printf(\"%d\\n\", 42);\r\n  return 0;\r\n}\r\n",
	"<div class=\"a\"><span>x</span></div>\n<!-- comment -->\n<br/>//path//to///x\n/* c */ a/b/c\n",
	// Logs, numbers, dates, addresses.
	"2024-05-17T12:34:56.789Z INFO  [worker-3] request_id=abc123 status=200 latency_ms=12.5 bytes=1048576",
	"Call +1 (555) 123-4567 or 555.987.6543; pay $1,234,567.89 by 17/05/2024; version v1.22.3; 3.14159265358979",
	"12345678901234567890 ١٢٣٤٥ ½ ⅓ Ⅻ ²³ 0x1F 1e-9 -42 +7 100%",
	"mail jane.doe+tag@example.co.uk or visit https://example.com/a/b?c=d&e=f#g and ftp://x.y/z/",
	// Whitespace.
	"a  b   c    d\t\te\t \tf \n g\n\nh\r\n\r\ni \r\n j   ",
	"   leading spaces",
	"trailing spaces   ",
	"\n\n\nnewlines first",
	" \t \n",
	"x \n \n  \n   y",
	"\u00a0nbsp\u00a0\u00a0x\u2003em\u3000ideographic\u2028line\u0085next",
	"\v\f mixed \v",
	// Scripts.
	"日本語のテキストです。東京は大きい都市です。",
	"中文文本测试，包括标点符号！还有数字123。",
	"한국어 텍스트입니다. 서울은 큰 도시입니다.",
	"Привет, мир! Это тест на русском языке. ПРИВЕТ Мир",
	"مرحبا بالعالم! هذا اختبار باللغة العربية.",
	"שלום עולם! זה מבחן.",
	"नमस्ते दुनिया! यह हिंदी में एक परीक्षण है।",
	"ภาษาไทยไม่มีช่องว่างระหว่างคำ",
	"Ελληνικά: Καλημέρα κόσμε! ΑΒΓ αβγ",
	// Emoji and combining marks.
	"I love 🍕 and 🏳️‍🌈 and 👨‍👩‍👧‍👦! 🙂🙂🙂 ✓ ✗ → ←",
	"e\u0301 cafe\u0301 \u0301start n\u0303o A\u0301BC \u0301ABC \u0301\u0301\u0301 x\u20dd",
	"Z̴̡̢͇͉̲̫̈́͊̀a̸̢͎̫̒l̶̨̗̫̈g̷͚͉̈́o̵̳͑̀",
	"\ufeffBOM and \u200bzero\u200cwidth\u200djoiner",
	// Long runs.
	strings.Repeat("a", 300),
	strings.Repeat("ab", 200) + " " + strings.Repeat("xyz", 100),
	strings.Repeat("=", 500) + "\n" + strings.Repeat("-", 129),
	strings.Repeat("😀", 100),
	strings.Repeat(" ", 200) + "x" + strings.Repeat("\n", 50),
	"aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBlbmNvZGVkIHN0cmluZyB0aGF0IGlzIHF1aXRlIGxvbmcgYW5kIGhhcyBubyBzcGFjZXMgYXQgYWxsIGluIGl0IHNvIGl0IGlzIG9uZSBwaWVjZQ==",
}

// randomText is deterministic noise drawn from ASCII, whitespace, and
// characters of many Unicode classes and UTF-8 lengths.
func randomText(r *rand.Rand, n int) string {
	pools := []string{
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
		"0123456789",
		" \t\n\r\v\f  ",
		"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
		"'sStTmMdDrReEvVlLſ",
		"éÉßøÆæĳǅǈǲʰˇ̀́̂͂ͅΆΣσςЖжӁ",
		"\u00a0\u0085\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff",
		"中文日本語한국어ｱｲｳ々〆ー",
		"٠١٢٣½¼²³ⅠⅫ①",
		"\u0300\u0301\u0308\u20dd\u0e31\u093f\u0903",
		"😀🍕👍🏽🏳️‍🌈𝔘𝔫𝔦𝐀𝐚𐐀𐐨",
	}
	var b strings.Builder
	for b.Len() < n {
		p := []rune(pools[r.IntN(len(pools))])
		for k := r.IntN(6) + 1; k > 0; k-- {
			b.WriteRune(p[r.IntN(len(p))])
		}
	}
	return b.String()
}

// randomRunes is any valid rune at all, to catch classes the pools miss.
func randomRunes(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		var c rune
		switch r.IntN(3) {
		case 0:
			c = rune(r.IntN(0x80))
		case 1:
			c = rune(r.IntN(0x3000))
		default:
			c = rune(r.IntN(0x30000))
		}
		if utf8.ValidRune(c) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func TestCountMatchesLibrary(t *testing.T) {
	texts := append([]string{}, corpus...)
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		texts = append(texts, randomText(r, r.IntN(200)+1))
	}
	for range 300 {
		texts = append(texts, randomRunes(r, r.IntN(100)+1))
	}
	// Concatenations cross the boundaries between kinds of text.
	for i := range 200 {
		texts = append(texts, corpus[i%len(corpus)]+corpus[(i*7+3)%len(corpus)])
	}
	// Invalid UTF-8.
	texts = append(texts, "\xff\xfe", "ok\xc3", "\xed\xa0\x80 surrogate", "a\x80b c\xf0\x9f\x98", "'\xffs", "x'\xc5")

	for _, s := range texts {
		want := library(t, s)
		if got := libraryCompatible(s); got != want {
			t.Errorf("library-compatible count of %q = %d, library counts %d", s, got, want)
		}
		if !strings.ContainsAny(s, "\r\n\x7f") {
			if got := Count(s); got != want {
				t.Errorf("Count(%q) = %d, library counts %d", s, got, want)
			}
		}
	}
}

func FuzzCountMatchesLibrary(f *testing.F) {
	for _, s := range corpus {
		f.Add(s)
	}
	f.Add("\xff'S \u0301\u0301ABC x \n\t\n y")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := libraryCompatible(s), library(t, s); got != want {
			t.Errorf("library-compatible count of %q = %d, library counts %d", s, got, want)
		}
		// Count differs from the library only in where a whitespace run
		// with line breaks ends, and in counting U+007F.
		if got, lib := Count(s), library(t, s); got != lib && !strings.ContainsAny(s, "\r\n\x7f") {
			t.Errorf("Count(%q) = %d, library counts %d", s, got, lib)
		}
	})
}

func TestCountConcurrent(t *testing.T) {
	want := make([]int64, len(corpus))
	for i, s := range corpus {
		want[i] = Count(s)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 50 {
				i := (g + k) % len(corpus)
				if got := Count(corpus[i]); got != want[i] {
					t.Errorf("concurrent Count of corpus[%d] = %d, want %d", i, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

func english(size int) string {
	const para = "The quick brown fox jumps over the lazy dog. It's a sentence that " +
		"contains every letter, and writers have used it since the 1880s to test typewriters.\n" +
		"Shall we go on? We'd rather not, but the benchmark needs 1,024 bytes or more of text.\n"
	return strings.Repeat(para, size/len(para)+1)[:size]
}

func BenchmarkCount(b *testing.B) {
	Warm()
	for _, size := range []int{1 << 10, 64 << 10} {
		s := english(size)
		b.Run(fmt.Sprintf("sluice/%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				Count(s)
			}
		})
		b.Run(fmt.Sprintf("library/%dKB", size>>10), func(b *testing.B) {
			library(b, "warm")
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				library(b, s)
			}
		})
	}
}

func BenchmarkCountScripts(b *testing.B) {
	Warm()
	for name, s := range map[string]string{
		"code":  strings.Repeat(corpus[5]+corpus[6]+corpus[7], 8),
		"cjk":   strings.Repeat(corpus[23]+corpus[24], 16),
		"emoji": strings.Repeat(corpus[32], 16),
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				Count(s)
			}
		})
	}
}
