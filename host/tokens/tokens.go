// Package tokens counts tokens offline with OpenAI's o200k_base encoding, so that
// reservations are made from real counts rather than guesses from byte lengths.
//
// Counting sits on every request's path, so it is written for speed: the
// split pattern is matched by hand (split.go) instead of with a backtracking
// regexp, and the vocabulary is a flat hash table (vocab.go) read out of
// github.com/tiktoken-go/tokenizer once. The counts equal tiktoken's; see
// RATIONALE.md for the one input shape where that library's own counts differ.
package tokens

import (
	"strings"
	"sync"
	"unicode/utf8"
)

var (
	once  sync.Once
	o200k *vocab
)

func encoding() *vocab {
	once.Do(func() {
		fillClasses()
		o200k = newVocab()
	})
	return o200k
}

// Warm builds the vocabulary ahead of the first request; Count builds it on
// first use otherwise. It takes a few hundred milliseconds, most of it the
// library building its own map, and leaves about 13 MB in use, half of it
// that map.
func Warm() { encoding() }

// Count is the number of tokens in s. Invalid UTF-8 counts as if each
// invalid byte were U+FFFD, as in the Go library.
func Count(s string) int64 {
	return count(s, splitter{})
}

func count(s string, sp splitter) int64 {
	if s == "" {
		return 0
	}
	v := encoding()
	if !utf8.ValidString(s) {
		s = replaceInvalid(s)
	}
	var n int64
	for i := 0; i < len(s); {
		if sp.library && s[i] == 0x7f {
			i++ // no alternative matches it, so the library skips it
			continue
		}
		end := sp.piece(s, i)
		n += int64(v.pieceTokens(s[i:end]))
		i = end
	}
	return n
}

// replaceInvalid replaces each byte that is not part of a valid UTF-8
// sequence with U+FFFD, one per byte, as converting to []rune does.
func replaceInvalid(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Per-message framing that chat models add around each message, and the
// priming of the reply, as documented in OpenAI's token counting guide.
const (
	perMessage = 3
	perReply   = 3
)

// Chat estimates the prompt tokens of a chat request from its message texts.
func Chat(texts []string, messages int) int64 {
	n := int64(messages*perMessage + perReply)
	for _, t := range texts {
		n += Count(t)
	}
	return n
}
