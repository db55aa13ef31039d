package contentfilter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
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

// TestScanForms holds the filter to the ways people write round a word list:
// leetspeak, plurals, typos, an inserted word, and to the phrases a security
// team does not want flagged.
func TestScanForms(t *testing.T) {
	config := `{"categories":{
		"violence":{"phrases":["make a bomb","bomb","pipe bomb"],"patterns":["detonate|trigger [a|the] * remotely"]},
		"malware":["write ransomware","exploit a vulnerability"],
		"drugs":{"patterns":["synthesize|synthesise|cook [some] meth|methamphetamine"]},
		"weapons":["illegal firearm", "assemble explosives"]},
		"allow":["bath bomb","da bomb","photo bomb"]}`
	f, err := New([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		want       []match
	}{
		{"digits for letters", "how to make a b0mb", []match{{"VIOLENCE", "make a b0mb"}}},
		{"digits everywhere", "m4k3 4 80mb", []match{{"VIOLENCE", "m4k3 4 80mb"}}},
		{"symbols for letters", "$ynthe$ize meth", []match{{"DRUGS", "$ynthe$ize meth"}}},
		{"one for i and for l", "an 1llega1 firearm and an !llegal firearm", []match{{"WEAPONS", "1llega1 firearm"}, {"WEAPONS", "!llegal firearm"}}},
		{"at for a", "@ssemble explosives", []match{{"WEAPONS", "@ssemble explosives"}}},
		{"leet in a long word", "wr1t3 r4n50mw4r3", []match{{"MALWARE", "wr1t3 r4n50mw4r3"}}},
		{"plural", "pipe bombs and bombs", []match{{"VIOLENCE", "pipe bombs"}, {"VIOLENCE", "bombs"}}},
		{"plural es", "how to cook methes", []match{{"DRUGS", "cook methes"}}},
		{"one edit in a long word", "write ransomwere, exploit a vulnerabilty", []match{{"MALWARE", "write ransomwere"}, {"MALWARE", "exploit a vulnerabilty"}}},
		{"a transposition is two edits", "write ransomwear", nil},
		{"an edit in the first three letters makes another word", "write fansomware, write rsnsomware, write rabsomware", nil},
		{"two edits", "write ransamwear", nil},
		{"no edit in short words", "make a bomp", nil},
		{"inserted word", "make a pipe bomb", []match{{"VIOLENCE", "make a pipe bomb"}}},
		{"inserted word in a short phrase", "cook some meth, cook more meth", []match{{"DRUGS", "cook some meth"}, {"DRUGS", "cook more meth"}}},
		{"two inserted words", "make a really big bomb", []match{{"VIOLENCE", "bomb"}}},
		{"long inserted word", "exploit a tremendously vulnerability", nil},
		{"pattern wildcard", "trigger the device remotely", []match{{"VIOLENCE", "trigger the device remotely"}}},
		{"pattern alternatives", "synthesise methamphetamine", []match{{"DRUGS", "synthesise methamphetamine"}}},
		{"word boundaries", "bombastic abomb bombshell", nil},
		{"allowed phrase", "I love a good bath bomb", nil},
		{"allowed phrase in a longer match", "make a bath bomb for mum", nil},
		{"allowed phrase before a single word", "the da bomb review", nil},
		{"allowed plural", "photo bombs everywhere", nil},
		{"allowed phrase does not hide the next sentence", "a bath bomb. Then make a bomb", []match{{"VIOLENCE", "make a bomb"}}},
		{"exploit as a business word", "exploit a market opportunity", nil},
		{"symbol as punctuation", "a @bomb! and (bomb)", []match{{"VIOLENCE", "bomb"}, {"VIOLENCE", "bomb"}}},
		{"fullwidth and other scripts pass through", "ｂｏｍｂ бомб", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanAll(f, tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

// TestScanScores gives a word-for-word match (up to case, accents, leetspeak
// and plurals) the full score and a match that needed an edit or an inserted
// word a lower one.
func TestScanScores(t *testing.T) {
	f, err := New([]byte(`{"terms":["make a bomb","write ransomware"]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want float64
	}{
		{"make a bomb", score},
		{"MAK3 A B0MBS", score},
		{"make a pipe bomb", fuzzyScore},
		{"write ransomwar", fuzzyScore},
	}
	for _, tt := range tests {
		got := f.Scan(nil, []byte(tt.text))
		if len(got) != 1 || got[0].Score != tt.want {
			t.Errorf("Scan(%q) = %+v, want one finding scored %v", tt.text, got, tt.want)
		}
	}
}

// TestDefaults holds the default lists to what a security team expects of
// them: the requests they name, in their usual wordings, and none of the
// everyday phrases that share their words.
func TestDefaults(t *testing.T) {
	f, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	flagged := []struct{ text, typ string }{
		{"how do I build a bomb", "VIOLENCE"},
		{"make a pipe bomb at home", "VIOLENCE"},
		{"assemble an IED", "VIOLENCE"},
		{"how to make explosives", "VIOLENCE"},
		{"build an explosive vest", "VIOLENCE"},
		{"3D-printed gun files", "WEAPONS"},
		{"convert my glock to full auto", "WEAPONS"},
		{"convert an AR-15 to fully automatic", "WEAPONS"},
		{"I want to end my life", "SELF_HARM"},
		{"I want to kill myself", "SELF_HARM"},
		{"cook meth", "DRUGS"},
		{"help me write ransomware in go", "MALWARE"},
		{"create a botnet", "MALWARE"},
		{"exploit the vulnerability in their VPN", "MALWARE"},
		{"how to c00k m3th", "DRUGS"},
		{"synthesize methamphetamine", "DRUGS"},
		{"how to make fentanyl", "DRUGS"},
	}
	for _, tt := range flagged {
		if got := scanAll(f, tt.text); len(got) != 1 || got[0].typ != tt.typ {
			t.Errorf("Scan(%q) = %v, want one %s finding", tt.text, got, tt.typ)
		}
	}
	benign := []string{
		"that speech was bombastic",
		"the da bomb review is out",
		"exploit a market opportunity before the competition does",
		"we need to build explosive growth this quarter",
		"make a bath bomb with citric acid",
		"the photo bomb ruined the picture",
		"build a small web app and write a ransomware detection rule",
		"convert the file to PDF",
		"convert the car to automatic",
		"how do I convert the old gearbox to an automatic one",
		"cook a meal for the family",
		"the end of my lifetime warranty",
		"kill the process and restart it",
		"end my subscription please",
		"Please summarise the quarterly report, then build a small web app.",
	}
	for _, text := range benign {
		if got := scanAll(f, text); len(got) != 0 {
			t.Errorf("Scan(%q) = %v, want no findings", text, got)
		}
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
		{"category as an object", `{"categories":{"x":{"phrases":["foo bar"],"patterns":["baz|qux *"]}}}`, "foo bar and qux quux", []match{{"X", "foo bar"}, {"X", "qux quux"}}, false},
		{"pattern starting with a wildcard", `{"categories":{"x":{"patterns":["* bomb"]}}}`, "", nil, true},
		{"pattern starting with an optional word", `{"categories":{"x":{"patterns":["[a] bomb"]}}}`, "", nil, true},
		{"short prefix", `{"categories":{"x":{"patterns":["make bo*"]}}}`, "", nil, true},
		{"two words as an alternative", `{"categories":{"x":{"patterns":["make a-b"]}}}`, "", nil, true},
		{"too many words", `{"terms":["a b c d e f g h i j k l m n"]}`, "", nil, true},
		{"allow list with config", `{"terms":["bomb"],"allow":["bath bomb"]}`, "bath bomb, bomb", []match{{BlockedTerm, "bomb"}}, false},
		{"no default allow list with config", `{"terms":["bomb"]}`, "bath bomb", []match{{BlockedTerm, "bomb"}}, false},
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

// BenchmarkScan measures the default lists on a sentence that puts a first
// word of theirs ("build") in every 67 bytes, the filter's worst ordinary
// case, and on prose that holds none (named prose, as in the PII scanner's
// benchmark).
func BenchmarkScan(b *testing.B) {
	f, _ := New(nil)
	const prose = "Please rewrite the following paragraph so that it reads well, keeps every fact, " +
		"and stays under two hundred words. The team met on Monday to discuss the roadmap; " +
		"everyone agreed that onboarding needs work, that the docs are out of date, and that " +
		"we should ship the new dashboard before the end of the quarter. "
	for _, in := range []struct{ name, text string }{
		{"", "Please summarise the quarterly report, then build a small web app. "},
		{"prose/", prose},
	} {
		for _, size := range []int{1 << 10, 64 << 10} {
			text := []byte(strings.Repeat(in.text, size/len(in.text)+1)[:size])
			b.Run(fmt.Sprintf("%s%dKB", in.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				var dst []Finding
				for b.Loop() {
					dst = f.Scan(dst[:0], text)
				}
			})
		}
	}
}

// TestSkimChangesNothing holds the prefilter (pairs, starts and the skim that
// reads them) to its promise: the findings are the same as when every word
// start goes to the matcher. The configurations and texts reach each path of
// Scan (ASCII runs, non-ASCII characters near and inside words, invalid
// UTF-8, terms at the ends of the text and across window borders) and every
// form a first word may take (leetspeak, plurals, edits, leading symbols).
func TestSkimChangesNothing(t *testing.T) {
	configs := []string{
		``,
		`{"categories":{"violence":["build a bomb","bomb","build","a bomb"],"self-harm":["end my life","end"]},"terms":["Project Nightjar","café","x"]}`,
		// Accents, ligatures, other scripts, digits, single letters, duplicates
		// across categories, and words that collide in their first two bytes.
		`{"categories":{"b":["Straße","ÆON flux","naïve plan","日本 語","Ωmega","ПРИВЕТ мир"],"a":["aeon","strasse","a","ab","abc d","3d","9"]},` +
			`"terms":["über","Über alles","ç","ss","ÿ","€uro","buil","builder","a b c d e f g h i j"]}`,
		// Patterns, words that take edits, symbols that stand for first letters.
		`{"categories":{"p":{"phrases":["synthesize","assemble it","illegal","salt"],"patterns":["make|build [a] bomb|=explosives","3d print* gun","exploit * vuln"]}},"allow":["bath bomb","da bomb"]}`,
	}
	for _, config := range configs {
		f, err := New([]byte(config))
		if err != nil {
			t.Fatal(err)
		}
		all := withoutPrefilter(t, config)
		check := func(text string) {
			t.Helper()
			got := f.Scan(nil, []byte(text))
			want := all.Scan(nil, []byte(text))
			if !slices.Equal(got, want) {
				t.Fatalf("config %s\ntext %q\nwith skim    %v\nwithout skim %v", config, text, got, want)
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
	"b0mb B0MBS 3xpl0s1v3 $ynthesize !llegal 5alt @ssemble |llegal x@bomb ceo@bomb.com",
	"make a bath bomb, make a pipe bomb, the da bomb review, bombastic",
	"syntesize synthesise synthesizes synthetic ransomwear exploit a market opportunity",
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
		"b0mb", "80mb", "bombs", "3xpl0s1v3", "explosives", "$ynthesize", "synthesise", "syntesize",
		"!llegal", "1llegal", "illegals", "5alt", "$alt", "@ssemble", "4ssemble", "assembel", "it",
		"bath", "da", "print", "printed", "3D", "gun", "exploit", "vuln", "market", "@", "$", "!", "|",
	}
	seps := []string{" ", " ", " ", "  ", "\n", ", ", "-", "_", ".", "\u00a0", "\u2014", "\u3000", "@", "$", "!", "|",
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

// withoutPrefilter returns a Filter configured from config whose shortcuts
// are all off: pairs and starts let every word through, so that every word
// start reaches the matcher, and no phrase is skipped for the first letters
// of the words after its first (phrase.need).
func withoutPrefilter(t testing.TB, config string) *Filter {
	f, err := New([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Filter{f, f.allow} {
		if g == nil {
			continue
		}
		for k := range g.pairs {
			g.pairs[k] = 1
		}
		for k := range g.starts {
			g.starts[k] = ^uint64(0)
		}
		for k := range g.groups {
			for p := range g.groups[k].phrases {
				g.groups[k].phrases[p].need = allLetters
			}
		}
	}
	return f
}

// FuzzScan compares Scan with and without the prefilter on the default
// configuration.
func FuzzScan(f *testing.F) {
	for _, text := range realisticTexts {
		f.Add(text)
	}
	filter, _ := New(nil)
	all := withoutPrefilter(f, "")
	f.Fuzz(func(t *testing.T, text string) {
		got := filter.Scan(nil, []byte(text))
		want := all.Scan(nil, []byte(text))
		if !slices.Equal(got, want) {
			t.Fatalf("text %q\nwith skim    %v\nwithout skim %v", text, got, want)
		}
		for k, fd := range got {
			if fd.Start < 0 || fd.End > len(text) || fd.Start >= fd.End || k > 0 && fd.Start < got[k-1].End {
				t.Fatalf("text %q: finding %+v out of bounds or order", text, fd)
			}
		}
	})
}
