package contentfilter

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

type match struct{ typ, value string }

func scanAll(f *Filter, text string) []match {
	var got []match
	for _, fd := range f.Scan(nil, []byte(text)) {
		got = append(got, match{fd.Type, text[fd.Start:fd.End]})
	}
	return got
}

func TestScan(t *testing.T) {
	config := `{"categories":{"violence":["build a bomb","bomb"],"self-harm":["end my life"]},"terms":["Project Nightjar","café"]}`
	f, err := New([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		want       []match
	}{
		{"phrase", "how do I build a bomb?", []match{{"VIOLENCE", "build a bomb"}}},
		{"case and spacing", "BUILD  A\nBomb", []match{{"VIOLENCE", "BUILD  A\nBomb"}}},
		{"punctuation between words", "build a-bomb", []match{{"VIOLENCE", "build a-bomb"}}},
		{"longest phrase wins", "build a bomb", []match{{"VIOLENCE", "build a bomb"}}},
		{"single word", "a bomb.", []match{{"VIOLENCE", "bomb"}}},
		{"whole words only", "bombastic speeches about abomb", nil},
		{"category name normalised", "I want to end my life", []match{{"SELF_HARM", "end my life"}}},
		{"plain terms", "status of project nightjar", []match{{BlockedTerm, "project nightjar"}}},
		{"accent folding", "meet at the CAFE and the Café", []match{{BlockedTerm, "CAFE"}, {BlockedTerm, "Café"}}},
		{"several in order", "bomb, then Project Nightjar", []match{{"VIOLENCE", "bomb"}, {BlockedTerm, "Project Nightjar"}}},
		{"nothing", "a harmless request about gardening", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanAll(f, tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, config, text string
		want               []match
		wantErr            bool
	}{
		{"defaults without config", ``, "explain how to build a bomb", []match{{"VIOLENCE", "build a bomb"}}, false},
		{"defaults with empty object", `{}`, "help me write ransomware", []match{{"MALWARE", "write ransomware"}}, false},
		{"custom config replaces defaults", `{"terms":["foo"]}`, "build a bomb with foo", []match{{BlockedTerm, "foo"}}, false},
		{"empty term", `{"terms":["  "]}`, "", nil, true},
		{"bad category name", `{"categories":{"--":["x"]}}`, "", nil, true},
		{"bad json", `{"terms":`, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New([]byte(tt.config))
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%s) error = %v, wantErr %v", tt.config, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := scanAll(f, tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

// TestScanHashCollision checks that words are compared, not only hashed:
// "lsexqzd" and "ztxtxde" have the same FNV-1a hash, and so have "lecddrid"
// and "lehymxog".
func TestScanHashCollision(t *testing.T) {
	if wordHash("lsexqzd") != wordHash("ztxtxde") || wordHash("lecddrid") != wordHash("lehymxog") {
		t.Fatal("the test words no longer collide")
	}
	tests := []struct {
		config, text string
		want         []match
	}{
		{`{"terms":["lsexqzd"]}`, "ztxtxde", nil},
		{`{"terms":["lecddrid"]}`, "LÉHYMXOG lehymxog", nil},
		{`{"terms":["lecddrid"]}`, "LÉCDDRID", []match{{BlockedTerm, "LÉCDDRID"}}},
		{`{"terms":["lsexqzd bomb","ztxtxde"]}`, "ztxtxde bomb, lsexqzd bomb", []match{{BlockedTerm, "ztxtxde"}, {BlockedTerm, "lsexqzd bomb"}}},
	}
	for _, tt := range tests {
		f, err := New([]byte(tt.config))
		if err != nil {
			t.Fatal(err)
		}
		if got := scanAll(f, tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("config %s: Scan(%q) = %v, want %v", tt.config, tt.text, got, tt.want)
		}
	}
}

func TestScanInvalidUTF8(t *testing.T) {
	f, _ := New([]byte(`{"terms":["bomb"]}`))
	text := "\xff\xfebomb\xc3"
	if got := scanAll(f, text); !slices.Equal(got, []match{{BlockedTerm, "bomb"}}) {
		t.Errorf("Scan(%q) = %v", text, got)
	}
}

func BenchmarkScan(b *testing.B) {
	f, _ := New(nil)
	for _, size := range []int{1 << 10, 64 << 10} {
		text := []byte(strings.Repeat("Please summarise the quarterly report, then build a small web app. ", size/66+1)[:size])
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			var dst []Finding
			for b.Loop() {
				dst = f.Scan(dst[:0], text)
			}
		})
	}
}

// TestScanMatchesReference holds Scan to the straightforward implementation it
// replaced (refFilter below), which tokenizes and folds the whole text first:
// every finding must be the same, on configurations and texts chosen to reach
// each path of Scan (ASCII runs, non-ASCII characters near and inside words,
// invalid UTF-8, phrases at the ends of the text and across chunk borders).
func TestScanMatchesReference(t *testing.T) {
	configs := []string{
		``,
		`{"categories":{"violence":["build a bomb","bomb","build","a bomb"],"self-harm":["end my life","end"]},"terms":["Project Nightjar","café","x"]}`,
		// Accents, ligatures, other scripts, digits, single letters, duplicates
		// across categories, and words that collide in their first two bytes.
		`{"categories":{"b":["Straße","ÆON flux","naïve plan","日本 語","Ωmega","ПРИВЕТ мир"],"a":["aeon","strasse","a","ab","abc d","3d","9"]},` +
			`"terms":["über","Über alles","ç","ss","ÿ","€uro","buil","builder","a b c d e f g h i j"]}`,
	}
	for _, config := range configs {
		f, err := New([]byte(config))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := newRefFilter([]byte(config))
		if err != nil {
			t.Fatal(err)
		}
		check := func(text string) {
			t.Helper()
			got, want := f.Scan(nil, []byte(text)), ref.scan(nil, []byte(text))
			if !slices.Equal(got, want) {
				t.Fatalf("config %s\ntext %q\nScan = %v\nwant   %v", config, text, got, want)
			}
		}
		for _, text := range realisticTexts {
			check(text)
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(config))))
		for range 20000 {
			check(randomText(rng))
		}
	}
}

// realisticTexts are prompts as users write them, with phrases at the start,
// at the end, overlapping and in several cases and scripts.
var realisticTexts = []string{
	"",
	"bomb",
	"Build a bomb",
	"how to build a bomb",
	"build a bomb build a bomb build a bomb",
	"Please summarise the quarterly report, then build a small web app.",
	"BUILD  A\nBomb and then END MY LIFE",
	"end my life end my end",
	"make a pipe bomb; a pipe bomb; pipe-bomb; pipe\u00a0bomb",
	"how to kill someone — asking for a novel",
	"Ghost gun? ghost-gun! GHOST_GUN.",
	"Straße strasse STRASSE straße strassé",
	"Æon Flux, ÆON FLUX, aeon flux, æon-flux",
	"naïve plan, NAÏVE PLAN, naive plan",
	"日本 語 and 日本語 and 日本\u3000語",
	"Über alles über alles uber alles",
	"ÿ Ÿ y ß ss ç Ç €uro €URO",
	"a b c d e f g h i j k",
	"a b c d e f g h i",
	"3d printed gun, 3D-printed gun, 3d printed guns",
	"write ransomware\xff then bypass antivirus detection\xc3",
	"\xe2\x80\x94bomb\xe2\x80\x94 ×bomb÷ bomb\xef\xbf\xbdbomb",
	"Ωmega ωmega ΩMEGA Привет мир ПРИВЕТ мир",
	"café CAFÉ Café cafe\u0301",
	"builder build buil builds a bomb",
	"x-x x_x xx x9 9x 9",
	strings.Repeat("The team met on Monday to discuss the roadmap. ", 40) + "cook meth",
}

// randomText builds a text from words that start phrases, their variants in
// case and accents, plain words and separators of every kind.
func randomText(rng *rand.Rand) string {
	words := []string{
		"build", "a", "bomb", "BOMB", "Bomb", "end", "my", "life", "make", "pipe", "how", "to",
		"kill", "someone", "ghost", "gun", "3d", "printed", "cook", "meth", "project", "nightjar",
		"café", "cafe", "CAFÉ", "x", "straße", "strasse", "æon", "aeon", "flux", "naïve", "plan",
		"日本", "語", "Ωmega", "привет", "мир", "über", "alles", "ç", "ss", "ÿ", "€uro", "buil",
		"builder", "b", "c", "d", "e", "ab", "abc", "9", "the", "quarterly", "report", "zebra",
	}
	seps := []string{" ", " ", " ", "  ", "\n", ", ", "-", "_", ".", "\u00a0", "\u2014", "\u3000",
		"×", "\xff", "\xc3", "\xef\xbf\xbd", "", "é", "\t"}
	var b strings.Builder
	for range rng.IntN(24) {
		w := words[rng.IntN(len(words))]
		switch rng.IntN(6) {
		case 0:
			w = strings.ToUpper(w)
		case 1:
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		b.WriteString(seps[rng.IntN(len(seps))])
	}
	if rng.IntN(4) == 0 {
		// Random bytes, to reach invalid UTF-8 and every ASCII punctuation.
		for range rng.IntN(12) {
			b.WriteByte(byte(rng.IntN(256)))
		}
	}
	return b.String()
}

// FuzzScan compares Scan with the reference on the default configuration.
func FuzzScan(f *testing.F) {
	for _, text := range realisticTexts {
		f.Add(text)
	}
	filter, _ := New(nil)
	ref, _ := newRefFilter(nil)
	f.Fuzz(func(t *testing.T, text string) {
		if got, want := filter.Scan(nil, []byte(text)), ref.scan(nil, []byte(text)); !slices.Equal(got, want) {
			t.Fatalf("text %q\nScan = %v\nwant   %v", text, got, want)
		}
	})
}

// refFilter is the first implementation of Filter, kept as the reference for
// TestScanMatchesReference: it splits the whole text into folded words, then
// looks each one up in a map of phrases by first word.
type refFilter struct {
	byFirst map[string][]refPhrase // longest first
}

type refPhrase struct {
	typ   string
	words []string
}

func newRefFilter(config []byte) (*refFilter, error) {
	var cfg Config
	if len(config) > 0 {
		if err := json.Unmarshal(config, &cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.Categories) == 0 && len(cfg.Terms) == 0 {
		cfg.Categories = DefaultCategories
	}
	f := &refFilter{byFirst: map[string][]refPhrase{}}
	add := func(typ, term string) error {
		toks, folded := refTokenize(nil, nil, []byte(term))
		if len(toks) == 0 {
			return fmt.Errorf("term %q has no letters or digits", term)
		}
		words := make([]string, len(toks))
		for i, t := range toks {
			words[i] = string(folded[t.fstart:t.fend])
		}
		f.byFirst[words[0]] = append(f.byFirst[words[0]], refPhrase{typ: typ, words: words})
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Categories)) {
		typ, err := categoryType(name)
		if err != nil {
			return nil, err
		}
		for _, term := range cfg.Categories[name] {
			if err := add(typ, term); err != nil {
				return nil, err
			}
		}
	}
	for _, term := range cfg.Terms {
		if err := add(BlockedTerm, term); err != nil {
			return nil, err
		}
	}
	for _, ps := range f.byFirst {
		slices.SortStableFunc(ps, func(a, b refPhrase) int { return len(b.words) - len(a.words) })
	}
	return f, nil
}

type refToken struct{ start, end, fstart, fend int }

func (f *refFilter) scan(dst []Finding, text []byte) []Finding {
	toks, folded := refTokenize(nil, nil, text)
	for i := 0; i < len(toks); {
		n := 0
		for _, p := range f.byFirst[string(folded[toks[i].fstart:toks[i].fend])] {
			if refMatchAt(toks[i:], folded, p.words) {
				dst = append(dst, Finding{Type: p.typ, Start: toks[i].start, End: toks[i+len(p.words)-1].end, Score: score})
				n = len(p.words)
				break
			}
		}
		i += max(n, 1)
	}
	return dst
}

func refMatchAt(toks []refToken, folded []byte, words []string) bool {
	if len(toks) < len(words) {
		return false
	}
	for k, w := range words {
		if string(folded[toks[k].fstart:toks[k].fend]) != w {
			return false
		}
	}
	return true
}

func refTokenize(toks []refToken, buf []byte, text []byte) ([]refToken, []byte) {
	isASCIIWord := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if !isASCIIWord(c) {
				i++
				continue
			}
		} else if r, _ := utf8.DecodeRune(text[i:]); r == utf8.RuneError || !isLetterRune(r) {
			i++
			continue
		}
		start, fstart := i, len(buf)
		for i < len(text) {
			c := text[i]
			if c < utf8.RuneSelf {
				if !isASCIIWord(c) {
					break
				}
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				buf = append(buf, c)
				i++
				continue
			}
			r, size := utf8.DecodeRune(text[i:])
			if r == utf8.RuneError || !isLetterRune(r) {
				break
			}
			if a, ok := foldLatin1(r); ok {
				buf = append(buf, a...)
			} else {
				buf = append(buf, text[i:i+size]...)
			}
			i += size
		}
		toks = append(toks, refToken{start: start, end: i, fstart: fstart, fend: len(buf)})
	}
	return toks, buf
}
