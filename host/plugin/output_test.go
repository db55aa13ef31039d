package plugin

import (
	"strings"
	"testing"
)

func TestGuestText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain text, with \"quotes\" and é", 100, "plain text, with \"quotes\" and é"},
		{"line\nforged=record", 100, `line\nforged=record`},
		{"\x1b[2Jclear", 100, `\x1b[2Jclear`},
		{"bidi \u202eoverride", 100, `bidi \u202eoverride`},
		{"bad \xff byte", 100, "bad \uFFFD byte"},
		{strings.Repeat("a", 10), 4, "aaaa…"},
		{"ééé", 3, "é…"}, // the cut falls inside the second é, which is left out
	}
	for _, tt := range tests {
		if got := guestText([]byte(tt.in), tt.max); got != tt.want {
			t.Errorf("guestText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
