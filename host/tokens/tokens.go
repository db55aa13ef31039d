// Package tokens counts tokens offline with OpenAI's o200k_base encoding, so that
// reservations are made from real counts rather than guesses from byte lengths.
package tokens

import (
	"sync"

	"github.com/tiktoken-go/tokenizer/codec"
)

var (
	once  sync.Once
	o200k *codec.Codec
)

func encoding() *codec.Codec {
	once.Do(func() { o200k = codec.NewO200kBase() })
	return o200k
}

// Warm loads the vocabulary ahead of the first request (it takes tens of milliseconds).
func Warm() { encoding().Count("warm") }

// Count is the number of tokens in s.
func Count(s string) int64 {
	if s == "" {
		return 0
	}
	n, err := encoding().Count(s)
	if err != nil {
		// Invalid UTF-8: count bytes, which can only overestimate.
		return int64(len(s))
	}
	return int64(n)
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
