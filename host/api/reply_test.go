package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// replyBody is a reply as OpenAI sends it, with n = 2, a tool call and
// escapes in the content.
const replyBody = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",
 "choices":[
  {"index":0,"message":{"role":"assistant","content":"Write to [EMAIL_1] \"soon\"\n\u00e9t\u00e9 \ud83d\ude00","refusal":null},"logprobs":null,"finish_reason":"stop"},
  {"index":1,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"send","arguments":"{\"to\":\"[EMAIL_1]\"}"}}]},"finish_reason":"tool_calls"}
 ],
 "usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`

func TestParseReply(t *testing.T) {
	var c ReplyContent
	if err := c.ParseReply([]byte(replyBody)); err != nil {
		t.Fatal(err)
	}
	want := []ChoiceContent{
		{Index: 0, Text: "Write to [EMAIL_1] \"soon\"\nété 😀", Finished: true},
		{Index: 1, Text: "", Finished: true},
	}
	if !slices.Equal(c.Choices, want) {
		t.Fatalf("choices = %+v\nwant %+v", c.Choices, want)
	}
}

// decodedReply is what a client's JSON decoder reads from a reply.
type decodedReply struct {
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Content   *string         `json:"content"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"message"`
		Delta struct {
			Content *string `json:"content"`
			Role    string  `json:"role"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
}

func TestReplyRewrite(t *testing.T) {
	tricky := "a \"quoted\" value\\with\nnew line\ttab \u2028 é 😀 </script> \x01"
	tests := []struct {
		name  string
		texts []string
		want  []*string // the contents a client decodes; nil for null
	}{
		{"unchanged keeps every byte", []string{"Write to [EMAIL_1] \"soon\"\nété 😀", ""}, nil},
		{"restored value with escapes", []string{"Write to " + tricky, ""}, []*string{ptr("Write to " + tricky), nil}},
		{"null content given a text", []string{"Write to [EMAIL_1] \"soon\"\nété 😀", "x"}, []*string{ptr("Write to [EMAIL_1] \"soon\"\nété 😀"), ptr("x")}},
		{"emptied", []string{"", ""}, []*string{ptr(""), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ReplyContent
			if err := c.ParseReply([]byte(replyBody)); err != nil {
				t.Fatal(err)
			}
			out, err := c.Rewrite(tt.texts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if string(out) != replyBody {
					t.Fatalf("unchanged texts changed the body:\n%s", out)
				}
				return
			}
			var got, orig decodedReply
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("rewritten reply is not JSON: %v\n%s", err, out)
			}
			json.Unmarshal([]byte(replyBody), &orig)
			for i, w := range tt.want {
				g := got.Choices[i].Message.Content
				if (g == nil) != (w == nil) || g != nil && *g != *w {
					t.Errorf("choice %d content = %v, want %v", i, deref(g), deref(w))
				}
			}
			// Everything but the content is the upstream's.
			if !bytes.Equal(got.Usage, orig.Usage) || !bytes.Equal(got.Choices[1].Message.ToolCalls, orig.Choices[1].Message.ToolCalls) {
				t.Errorf("rewrite changed other members:\n%s", out)
			}
			if !bytes.HasPrefix(out, []byte(replyBody[:strings.Index(replyBody, `"content"`)])) {
				t.Errorf("rewrite changed the bytes before the first content")
			}
		})
	}
}

func TestParseChunk(t *testing.T) {
	tests := []struct {
		name    string
		chunk   string
		want    []ChoiceContent
		rewrite []string
		after   string // the rewritten chunk
	}{
		{
			name:    "content delta",
			chunk:   `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"[EMA"},"finish_reason":null}]}`,
			want:    []ChoiceContent{{Index: 0, Text: "[EMA"}},
			rewrite: []string{""},
			after:   `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}`,
		},
		{
			name:    "role only: content inserted after it",
			chunk:   `{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}`,
			want:    []ChoiceContent{{Index: 0}},
			rewrite: []string{"hi"},
			after:   `{"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}`,
		},
		{
			name:    "finish with empty delta: held text goes here",
			chunk:   `{"choices":[{"index":1,"delta":{ },"finish_reason":"stop"}]}`,
			want:    []ChoiceContent{{Index: 1, Finished: true}},
			rewrite: []string{"a\"b"},
			after:   `{"choices":[{"index":1,"delta":{ "content":"a\"b"},"finish_reason":"stop"}]}`,
		},
		{
			name:    "n=2 in one chunk, null content",
			chunk:   `{"choices":[{"index":1,"delta":{"content":"b\u00e9"}},{"index":0,"delta":{"content":null}}]}`,
			want:    []ChoiceContent{{Index: 1, Text: "bé"}, {Index: 0}},
			rewrite: []string{"B", "A"},
			after:   `{"choices":[{"index":1,"delta":{"content":"B"}},{"index":0,"delta":{"content":"A"}}]}`,
		},
		{
			name:    "tool call delta left alone",
			chunk:   `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`,
			want:    []ChoiceContent{{Index: 0}},
			rewrite: []string{""},
			after:   `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`,
		},
		{
			name:  "usage chunk has no choices",
			chunk: `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
			after: `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
		},
		{
			name:    "no index: position",
			chunk:   `{"choices":[{"delta":{"content":"x"}},{"delta":{"content":"y"}}]}`,
			want:    []ChoiceContent{{Index: 0, Text: "x"}, {Index: 1, Text: "y"}},
			rewrite: []string{"x", "z"},
			after:   `{"choices":[{"delta":{"content":"x"}},{"delta":{"content":"z"}}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ReplyContent
			if err := c.ParseChunk([]byte(tt.chunk)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Choices, tt.want) {
				t.Fatalf("choices = %+v, want %+v", c.Choices, tt.want)
			}
			out, err := c.Rewrite(tt.rewrite)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.after {
				t.Fatalf("rewritten =\n%s\nwant\n%s", out, tt.after)
			}
		})
	}
}

func TestReplyErrors(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"not JSON", `{"choices":[`},
		{"not an object", `[1]`},
		{"trailing bytes", `{"choices":[]} x`},
		{"choices not an array", `{"choices":{}}`},
		{"choice not an object", `{"choices":[1]}`},
		{"content a number", `{"choices":[{"delta":{"content":1}}]}`},
		{"content an array", `{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}]}`},
		{"content twice", `{"choices":[{"delta":{"content":"a","content":"b"}}]}`},
		{"content in another case", `{"choices":[{"delta":{"Content":"a"}}]}`},
		{"escaped content key twice", `{"choices":[{"delta":{"content":"a","\u0063ontent":"b"}}]}`},
		{"choices twice", `{"choices":[],"choices":[{"delta":{"content":"a"}}]}`},
		{"delta twice", `{"choices":[{"delta":{},"delta":{"content":"a"}}]}`},
		{"index a string", `{"choices":[{"index":"0","delta":{}}]}`},
		{"index a fraction", `{"choices":[{"index":0.5,"delta":{}}]}`},
		{"index negative", `{"choices":[{"index":-1,"delta":{}}]}`},
		{"delta not an object", `{"choices":[{"delta":"x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ReplyContent
			err := c.ParseChunk([]byte(tt.body))
			if !errors.Is(err, ErrMalformedReply) {
				t.Fatalf("ParseChunk(%s) = %v, want ErrMalformedReply", tt.body, err)
			}
		})
	}
}

func TestReplyRewriteErrors(t *testing.T) {
	var c ReplyContent
	if err := c.ParseChunk([]byte(`{"choices":[{"index":0,"finish_reason":"stop"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rewrite([]string{"held"}); err == nil {
		t.Fatal("a choice without a delta cannot take content, yet Rewrite succeeded")
	}
	if out, err := c.Rewrite([]string{""}); err != nil || string(out) != `{"choices":[{"index":0,"finish_reason":"stop"}]}` {
		t.Fatalf("unchanged = %s, %v", out, err)
	}
	if _, err := c.Rewrite(nil); err == nil {
		t.Fatal("a text count that does not match the choices must fail")
	}
}

func TestReplyContentReuse(t *testing.T) {
	var c ReplyContent
	if err := c.ParseChunk([]byte(`{"choices":[{"index":0,"delta":{"content":"first \u00e9"}}]}`)); err != nil {
		t.Fatal(err)
	}
	first := c.Choices[0].Text
	if err := c.ParseChunk([]byte(`{"choices":[{"index":1,"delta":{"content":"second"}}]}`)); err != nil {
		t.Fatal(err)
	}
	if first != "first é" || len(c.Choices) != 1 || c.Choices[0] != (ChoiceContent{Index: 1, Text: "second"}) {
		t.Fatalf("after reuse: first %q, choices %+v", first, c.Choices)
	}
	if err := c.ParseChunk([]byte(`{"choices":[1]}`)); err == nil {
		t.Fatal("want an error")
	}
	if err := c.ParseChunk([]byte(`{"choices":[]}`)); err != nil || len(c.Choices) != 0 {
		t.Fatalf("a good chunk after a bad one: %v, %+v", err, c.Choices)
	}
}

// FuzzReplyRewrite checks, for any body the parser accepts, that the texts
// are what encoding/json decodes, that a rewrite is valid JSON holding the
// new texts, and that an unchanged rewrite is the body itself.
func FuzzReplyRewrite(f *testing.F) {
	f.Add([]byte(replyBody), "new \"text\"\n\u2028😀")
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"role":"assistant"}},{"index":1,"delta":{}}]}`), "x")
	f.Add([]byte(`{"choices":[{"delta":{"content":"\ud800 \xff"}}]}`), "")
	f.Add([]byte(`{"choices":null,"usage":{}}`), "y")
	f.Fuzz(func(t *testing.T, body []byte, text string) {
		for _, inner := range []string{"message", "delta"} {
			var c ReplyContent
			if err := c.parse(body, inner); err != nil {
				continue
			}
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			var dec decodedReply
			if json.Unmarshal(body, &dec) == nil && len(dec.Choices) == len(c.Choices) {
				for i, ch := range dec.Choices {
					g := ch.Delta.Content
					if inner == "message" {
						g = ch.Message.Content
					}
					want := ""
					if g != nil {
						want = *g
					}
					if want != c.Choices[i].Text {
						t.Fatalf("choice %d: parsed %q, encoding/json %q", i, c.Choices[i].Text, want)
					}
				}
			}
			same := make([]string, len(c.Choices))
			for i, ch := range c.Choices {
				same[i] = ch.Text
			}
			if out, err := c.Rewrite(same); err != nil || !bytes.Equal(out, body) {
				t.Fatalf("unchanged rewrite = %q, %v", out, err)
			}
			texts := make([]string, len(c.Choices))
			for i := range texts {
				texts[i] = strings.ToValidUTF8(text, "\uFFFD") + strings.Repeat("!", i+1)
			}
			out, err := c.Rewrite(texts)
			if err != nil {
				continue // a choice with nowhere to write
			}
			var again ReplyContent
			if err := again.parse(out, inner); err != nil {
				t.Fatalf("rewritten body does not parse: %v\n%q", err, out)
			}
			for i, ch := range again.Choices {
				if ch.Text != texts[i] {
					t.Fatalf("choice %d after rewrite: %q, want %q", i, ch.Text, texts[i])
				}
			}
		}
	})
}

func BenchmarkReply(b *testing.B) {
	body := []byte(replyBody)
	b.Run("ParseReply", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		var c ReplyContent
		for b.Loop() {
			if err := c.ParseReply(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	chunk := []byte(`{"id":"chatcmpl-AbC","object":"chat.completion.chunk","created":1732000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" [EMAIL_1]"},"logprobs":null,"finish_reason":null}]}`)
	b.Run("ParseChunk+Rewrite", func(b *testing.B) {
		b.SetBytes(int64(len(chunk)))
		b.ReportAllocs()
		var c ReplyContent
		texts := []string{" ann@example.com"}
		for b.Loop() {
			if err := c.ParseChunk(chunk); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Rewrite(texts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// FuzzReplyTexts holds the reply reader to its promise: every text of a
// reply or chunk can be replaced, the result is still JSON, and read again it
// gives exactly the new texts in the same places.
func FuzzReplyTexts(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":\"b\",\"n\":1234567}"}}]}}]}`), true)
	f.Add([]byte(`{"choices":[{"index":1,"delta":{"refusal":"no","reasoning_content":"why"},"finish_reason":null}],"x":{"y":["z"]}}`), false)
	f.Add([]byte(`{"choices":[{"message":{"content":null,"audio":{"transcript":"t"},"annotations":[{"url":"u"}]}}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, whole bool) {
		var c ReplyContent
		parse := c.ParseChunk
		if whole {
			parse = c.ParseReply
		}
		if parse(body) != nil {
			return
		}
		texts, info := c.Texts()
		if len(texts) != len(info) {
			t.Fatalf("%d texts, %d infos", len(texts), len(info))
		}
		same, err := c.RewriteTexts(slices.Clone(texts))
		if err != nil || !bytes.Equal(same, body) {
			t.Fatalf("rewriting with the same texts changed %q to %q (%v)", body, same, err)
		}
		next := make([]string, len(texts))
		for i, s := range texts {
			next[i] = "<" + strings.ToUpper(s) + "\"\\\n>"
		}
		out, err := c.RewriteTexts(next)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) {
			t.Fatalf("%q rewritten is not JSON: %q", body, out)
		}
		var again ReplyContent
		parse = again.ParseChunk
		if whole {
			parse = again.ParseReply
		}
		if err := parse(out); err != nil {
			t.Fatalf("%q rewritten does not parse: %v", out, err)
		}
		got, gotInfo := again.Texts()
		if !slices.Equal(got, next) || !slices.Equal(gotInfo, info) {
			t.Fatalf("%q rewritten reads %q %v, want %q %v", body, got, gotInfo, next, info)
		}
	})
}
