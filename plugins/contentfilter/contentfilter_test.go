package contentfilter

import (
	"fmt"
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
