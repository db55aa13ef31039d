package tokens

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer/codec"
)

// Token ids are only meaningful in the encoding of the model they were made
// for: OpenAI's embedding models use cl100k_base, its chat models since
// gpt-4o o200k_base.
var (
	cl100kOnce sync.Once
	cl100k     *codec.Codec
)

func codecFor(model string) *codec.Codec {
	if isCL100K(model) {
		cl100kOnce.Do(func() { cl100k = codec.NewCl100kBase() })
		return cl100k
	}
	encoding() // o200k's tables are built anyway; its codec is the library's
	o200kCodecOnce.Do(func() { o200kCodec = codec.NewO200kBase() })
	return o200kCodec
}

var (
	o200kCodecOnce sync.Once
	o200kCodec     *codec.Codec
)

func isCL100K(model string) bool {
	m := strings.ToLower(model)
	return strings.Contains(m, "embedding") || strings.HasPrefix(m, "gpt-4-") || m == "gpt-4" ||
		strings.HasPrefix(m, "gpt-3.5")
}

// ErrUnknownToken is returned for an id the model's encoding does not have.
var ErrUnknownToken = errors.New("tokens: unknown token id")

// Decode is the text that ids stand for in the encoding of model (the
// upstream's name for it). A caller can send token ids where a text is
// expected; decoded, they are scanned like any text.
func Decode(model string, ids []int) (string, error) {
	c := codecFor(model)
	u := make([]uint, len(ids))
	for i, id := range ids {
		if id < 0 {
			return "", fmt.Errorf("%w: %d", ErrUnknownToken, id)
		}
		u[i] = uint(id)
	}
	s, err := c.Decode(u)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnknownToken, err)
	}
	return s, nil
}

// Encode is text as token ids in the encoding of model: how a redacted text
// goes back into a request that was sent as ids.
func Encode(model, text string) []int {
	ids, _, _ := codecFor(model).Encode(text)
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
