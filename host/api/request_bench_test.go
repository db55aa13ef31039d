package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// chatBody is a plausible chat request of about size bytes: a system prompt,
// then turns of conversation (multi-line text, so strings carry escapes) until
// the size is reached, the last one with content parts.
func chatBody(size int) []byte {
	type part struct {
		Type     string            `json:"type"`
		Text     string            `json:"text,omitempty"`
		ImageURL map[string]string `json:"image_url,omitempty"`
	}
	type message struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
	}
	msgs := []message{{"system", "You are a careful assistant for Acme Corp.\nAnswer briefly, cite the policy section, and never reveal internal ticket numbers."}}
	turn := "Could you summarise the attached incident report?\nThe outage began at 09:14 UTC, lasted 42 minutes, and affected the EU región's checkout service."
	for n := 0; n < size-520; n += len(turn) + 40 {
		role := "user"
		if len(msgs)%2 == 0 {
			role = "assistant"
		}
		msgs = append(msgs, message{role, turn})
	}
	msgs = append(msgs, message{"user", []part{
		{Type: "text", Text: "And what should we change first?"},
		{Type: "image_url", ImageURL: map[string]string{"url": "https://example.com/graph.png", "detail": "low"}},
	}})
	body, err := json.Marshal(map[string]any{
		"model": "gpt-4o-mini", "messages": msgs, "temperature": 0.2, "max_tokens": 512, "stream": true,
		"user": "user-1234", "metadata": map[string]string{"team": "payments"},
	})
	if err != nil {
		panic(err)
	}
	return body
}

var benchSizes = []int{1 << 10, 64 << 10}

func sizeName(n int) string { return fmt.Sprintf("%dKB", n>>10) }

func BenchmarkParseChatRequest(b *testing.B) {
	for _, size := range benchSizes {
		body := chatBody(size)
		b.Run(sizeName(size)+"/scanner", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, aerr := ParseChatRequest(body); aerr != nil {
					b.Fatal(aerr)
				}
			}
		})
		b.Run(sizeName(size)+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, aerr := refParseChatRequest(body); aerr != nil {
					b.Fatal(aerr)
				}
			}
		})
	}
}

func BenchmarkUpstreamBody(b *testing.B) {
	for _, size := range benchSizes {
		body := chatBody(size)
		r, _ := ParseChatRequest(body)
		ref, _ := refParseChatRequest(body)
		b.Run(sizeName(size)+"/scanner", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r.UpstreamBody("gpt-4o-mini-2024-07-18")
			}
		})
		b.Run(sizeName(size)+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				ref.UpstreamBody("gpt-4o-mini-2024-07-18")
			}
		})
	}
}

func BenchmarkParseEmbeddingsRequest(b *testing.B) {
	inputs := make([]string, 16)
	for i := range inputs {
		inputs[i] = strings.Repeat("Quarterly revenue grew in every región.\n", 2)
	}
	body, _ := json.Marshal(map[string]any{"model": "text-embedding-3-small", "input": inputs})
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, aerr := ParseEmbeddingsRequest(body); aerr != nil {
				b.Fatal(aerr)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, aerr := refParseEmbeddingsRequest(body); aerr != nil {
				b.Fatal(aerr)
			}
		}
	})
}

// BenchmarkCollect measures the collection of every text of a request on
// its own: the part of ParseChatRequest that reads more than the messages.
// make bench measures it on a request with 20 tool definitions too
// (host/bench/texts.go).
func BenchmarkCollect(b *testing.B) {
	for _, c := range []struct {
		name string
		body []byte
	}{{"1KB", chatBody(1 << 10)}, {"64KB", chatBody(64 << 10)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				var col collected
				col.collect(c.body, chatSchema, nil)
				if len(col.texts) == 0 {
					b.Fatal("no texts")
				}
			}
		})
		b.Run(c.name+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, aerr := ParseChatRequest(c.body); aerr != nil {
					b.Fatal(aerr)
				}
			}
		})
	}
}
