package tokens_test

import (
	"fmt"

	"github.com/sluicehq/sluice/host/tokens"
)

func ExampleCount() {
	tokens.Warm() // at startup, so the first request does not build the vocabulary
	fmt.Println(tokens.Count("Hello, world!"))
	// Output: 4
}

func ExampleChat() {
	// A system and a user message: their tokens, 3 of framing per message,
	// and 3 that prime the reply.
	fmt.Println(tokens.Chat([]string{"You are terse.", "Hi!"}, 2))
	// Output: 15
}
