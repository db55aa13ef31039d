package redact

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// testVault holds values that are awkward in JSON and in streams: quotes,
// backslashes, newlines, non-ASCII, a bracket, and the text of another
// placeholder.
func testVault(t testing.TB) *Vault {
	t.Helper()
	values := []struct{ typ, value string }{
		{"EMAIL", "ann@example.com"},
		{"EMAIL", `"bob"@example.com`},
		{"PHONE", "+33 6 12\n34 56 78"},
		{"US_SSN", "078-05-1120"},
		{"PRIVATE_KEY", "-----BEGIN KEY-----\\nMIIB\u00e9\U0001F600[x]\u2028-----END KEY-----"},
		{"IBAN", "[EMAIL_2]"}, // a value that looks like a placeholder is not restored again
	}
	texts := make([]string, len(values))
	found := make([]Finding, len(values))
	types := make([]string, len(values))
	for i, v := range values {
		texts[i] = v.value
		found[i] = Finding{Type: v.typ, Text: i, Start: 0, End: len(v.value)}
		types[i] = v.typ
	}
	var v Vault
	got := v.Redact(texts, found, types)
	want := []string{"[EMAIL_1]", "[EMAIL_2]", "[PHONE_1]", "[US_SSN_1]", "[PRIVATE_KEY_1]", "[IBAN_1]"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("placeholders = %q, want %q", got, want)
		}
	}
	return &v
}

var restoreTests = []struct {
	name, reply, want string
}{
	{"no placeholder", "Hello there.", "Hello there."},
	{"one", "Write to [EMAIL_1].", "Write to ann@example.com."},
	{"repeated twice", "[EMAIL_1] and again [EMAIL_1]", "ann@example.com and again ann@example.com"},
	{"values with escapes", "[EMAIL_2]|[PHONE_1]|[PRIVATE_KEY_1]",
		`"bob"@example.com|+33 6 12` + "\n" + `34 56 78|-----BEGIN KEY-----\nMIIBé😀[x]` + "\u2028" + `-----END KEY-----`},
	{"invented by the model", "[EMAIL_7] and [PHONE_0] and [EMAIL_1]", "[EMAIL_7] and [PHONE_0] and ann@example.com"},
	{"adjacent", "[US_SSN_1][EMAIL_1]", "078-05-1120ann@example.com"},
	{"nested brackets", "[[EMAIL_1]] [EMAIL_1", "[ann@example.com] [EMAIL_1"},
	{"a value that looks like a placeholder", "[IBAN_1]", "[EMAIL_2]"},
	{"lower case is not a placeholder", "[email_1]", "[email_1]"},
	{"markdown links pass", "[see](http://x) [EMAIL_1 ] [", "[see](http://x) [EMAIL_1 ] ["},
	{"multi-byte around", "é[EMAIL_1]😀", "éann@example.com😀"},
	{"empty", "", ""},
}

func TestRestore(t *testing.T) {
	v := testVault(t)
	for _, tt := range restoreTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Restore(tt.reply); got != tt.want {
				t.Fatalf("Restore(%q) = %q, want %q", tt.reply, got, tt.want)
			}
		})
	}
	var empty *Vault
	if got := empty.Restore("[EMAIL_1]"); got != "[EMAIL_1]" {
		t.Fatalf("nil vault restored %q", got)
	}
}

// restoreStream feeds chunks to a StreamRestorer and returns what it sent.
func restoreStream(v *Vault, chunks []string) string {
	r := v.NewStreamRestorer()
	var b strings.Builder
	for _, c := range chunks {
		b.WriteString(r.Next(c))
	}
	b.WriteString(r.Flush())
	return b.String()
}

// TestStreamRestorerEverySplit splits each reply in two at every byte, a
// placeholder or a multi-byte character included, and in three at every
// pair of bytes.
func TestStreamRestorerEverySplit(t *testing.T) {
	v := testVault(t)
	for _, tt := range restoreTests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i <= len(tt.reply); i++ {
				if got := restoreStream(v, []string{tt.reply[:i], tt.reply[i:]}); got != tt.want {
					t.Fatalf("split at %d (%q + %q): %q, want %q", i, tt.reply[:i], tt.reply[i:], got, tt.want)
				}
				for j := i; j <= len(tt.reply); j++ {
					if got := restoreStream(v, []string{tt.reply[:i], tt.reply[i:j], tt.reply[j:]}); got != tt.want {
						t.Fatalf("split at %d, %d: %q, want %q", i, j, got, tt.want)
					}
				}
			}
		})
	}
}

// TestStreamRestorerHoldsBackLittle checks what goes out at once: text is
// held only while it may still become a placeholder.
func TestStreamRestorerHoldsBackLittle(t *testing.T) {
	v := testVault(t)
	tests := []struct {
		chunks []string
		sent   []string // after each Next
	}{
		{[]string{"Hi [EMA", "IL_1]!"}, []string{"Hi ", "ann@example.com!"}},
		{[]string{"[see", " more]"}, []string{"[see", " more]"}},       // no placeholder starts "[s"
		{[]string{"a [EMAIL_", "9] b"}, []string{"a ", "[EMAIL_9] b"}}, // held, then let go
		{[]string{"[", "[", "EMAIL_1]"}, []string{"", "[", "ann@example.com"}},
		{[]string{"no brackets", " at all"}, []string{"no brackets", " at all"}},
	}
	for _, tt := range tests {
		r := v.NewStreamRestorer()
		for i, c := range tt.chunks {
			if got := r.Next(c); got != tt.sent[i] {
				t.Fatalf("%q: Next(%q) = %q, want %q", tt.chunks, c, got, tt.sent[i])
			}
		}
		if got := r.Flush(); got != "" {
			t.Fatalf("%q: Flush = %q, want nothing left", tt.chunks, got)
		}
	}
	r := v.NewStreamRestorer()
	if got := r.Next("end [EMAIL"); got != "end " {
		t.Fatalf("Next = %q", got)
	}
	if got := r.Flush(); got != "[EMAIL" {
		t.Fatalf("Flush = %q, want the held tail as it is", got)
	}
}

// FuzzStreamRestorer checks that any chunking of any reply restores to what
// restoring it whole gives.
func FuzzStreamRestorer(f *testing.F) {
	for _, tt := range restoreTests {
		f.Add(tt.reply, uint64(len(tt.reply)))
	}
	f.Add("[EMAIL_1][EMAIL_2][[PHONE_1]][PRIVATE_KEY_1", uint64(7))
	v := testVault(f)
	f.Fuzz(func(t *testing.T, reply string, seed uint64) {
		want := v.Restore(reply)
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		var chunks []string
		for rest := reply; rest != ""; {
			n := min(len(rest), rng.IntN(12))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got := restoreStream(v, chunks); got != want {
			t.Fatalf("chunks %q restored to %q, whole to %q", chunks, got, want)
		}
		if utf8.ValidString(reply) && !utf8.ValidString(want) {
			t.Fatalf("restoring valid UTF-8 gave invalid UTF-8: %q", want)
		}
	})
}
