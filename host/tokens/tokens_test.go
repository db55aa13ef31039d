package tokens

import "testing"

func TestCount(t *testing.T) {
	cases := []struct {
		text string
		want int64
	}{
		{"", 0},
		{"hello", 1},
		{"Hello, world!", 4},
	}
	for _, c := range cases {
		if got := Count(c.text); got != c.want {
			t.Errorf("Count(%q) = %d, want %d", c.text, got, c.want)
		}
	}
}

func TestChatAddsFraming(t *testing.T) {
	// Two messages of one token each: 2 + 2×3 framing + 3 reply priming.
	if got := Chat([]string{"hello", "hello"}, 2); got != 11 {
		t.Fatalf("Chat = %d, want 11", got)
	}
}

func BenchmarkCount1KB(b *testing.B) {
	s := ""
	for len(s) < 1024 {
		s += "The quick brown fox jumps over the lazy dog. "
	}
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		Count(s)
	}
}
