package redact_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/redact"
)

// These tests run the response path the way the gateway does: read each
// chunk's choices with api.ReplyContent, pass each choice's delta through a
// redact.ReplyStream, write the results back, and check what a client
// decodes.

var emailRE = regexp.MustCompile(`[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)

// emailPlugin finds e-mail addresses, as a response-phase plugin would.
func emailPlugin(texts []string) ([]redact.Finding, error) {
	var out []redact.Finding
	for i, text := range texts {
		for _, m := range emailRE.FindAllStringIndex(text, -1) {
			out = append(out, redact.Finding{Type: "EMAIL", Text: i, Start: m[0], End: m[1]})
		}
	}
	return out, nil
}

// requestVault redacts a request the way the gateway does before forwarding.
func requestVault(t *testing.T) *redact.Vault {
	t.Helper()
	prompt := "I am ann@example.com, phone +1 (555) 0100\next. \"7\" é."
	email := strings.Index(prompt, "ann@")
	phone := strings.Index(prompt, "+1")
	var v redact.Vault
	out := v.Redact([]string{prompt}, []redact.Finding{
		{Type: "EMAIL", Start: email, End: email + len("ann@example.com")},
		{Type: "PHONE", Start: phone, End: strings.Index(prompt, " é")},
	}, []string{"EMAIL", "PHONE"})
	if want := "I am [EMAIL_1], phone [PHONE_1] é."; out[0] != want {
		t.Fatalf("redacted prompt %q, want %q", out[0], want)
	}
	return &v
}

// streamChunks makes the stream an upstream sends for the replies, one per
// choice: a role chunk each, content split at random character boundaries
// with the choices interleaved, an empty finishing delta each, then usage.
func streamChunks(replies []string, rng *rand.Rand) [][]byte {
	type delta struct {
		Role    string  `json:"role,omitempty"`
		Content *string `json:"content,omitempty"`
	}
	type choice struct {
		Index        int     `json:"index"`
		Delta        delta   `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	}
	chunk := func(cs ...choice) []byte {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": cs})
		return b
	}
	var out [][]byte
	for i := range replies {
		out = append(out, chunk(choice{Index: i, Delta: delta{Role: "assistant"}}))
	}
	rest := append([]string(nil), replies...)
	for {
		var open []int
		for i, r := range rest {
			if r != "" {
				open = append(open, i)
			}
		}
		if len(open) == 0 {
			break
		}
		i := open[rng.IntN(len(open))]
		n := min(len(rest[i]), 1+rng.IntN(6))
		for n < len(rest[i]) && !utf8.RuneStart(rest[i][n]) {
			n++ // upstreams send whole characters
		}
		text := rest[i][:n]
		rest[i] = rest[i][n:]
		out = append(out, chunk(choice{Index: i, Delta: delta{Content: &text}}))
	}
	stop := "stop"
	for i := range replies {
		out = append(out, chunk(choice{Index: i, FinishReason: &stop}))
	}
	return append(out, []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}`))
}

// relay is the gateway's stream loop over chunks; it returns the chunks
// sent to the client, up to an error.
func relay(chunks [][]byte, rs *redact.ReplyStream) ([][]byte, error) {
	var sent [][]byte
	var c api.ReplyContent
	for _, data := range chunks {
		if err := c.ParseChunk(data); err != nil {
			return sent, err
		}
		texts := make([]string, len(c.Choices))
		for i, ch := range c.Choices {
			out, err := rs.Next(ch.Index, ch.Text)
			if err != nil {
				return sent, err
			}
			if ch.Finished {
				rest, err := rs.Finish(ch.Index)
				if err != nil {
					return sent, err
				}
				out += rest
			}
			texts[i] = out
		}
		b, err := c.Rewrite(texts)
		if err != nil {
			return sent, err
		}
		sent = append(sent, b)
	}
	return sent, nil
}

// clientTexts is what a client accumulates from the chunks, per choice.
func clientTexts(t *testing.T, chunks [][]byte, n int) []string {
	t.Helper()
	texts := make([]strings.Builder, n)
	for _, data := range chunks {
		var c struct {
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("the client cannot read %s: %v", data, err)
		}
		for _, ch := range c.Choices {
			texts[ch.Index].WriteString(ch.Delta.Content)
		}
	}
	out := make([]string, n)
	for i := range texts {
		out[i] = texts[i].String()
	}
	return out
}

func TestStreamRestoreAndScan(t *testing.T) {
	replies := []string{
		"Sure: [EMAIL_1] is on file, and \"[PHONE_1]\" too. Ask bob@example.com or [EMAIL_7].",
		"Je n'ai que [EMAIL_1] — voilà 😀 [EMAIL_1][PHONE_1]",
	}
	phone := "+1 (555) 0100\next. \"7\""
	tests := []struct {
		name    string
		scan    bool
		restore bool
		want    []string
	}{
		{"restore only", false, true, []string{
			"Sure: ann@example.com is on file, and \"" + phone + "\" too. Ask bob@example.com or [EMAIL_7].",
			"Je n'ai que ann@example.com — voilà 😀 ann@example.com" + phone,
		}},
		{"scan and restore", true, true, []string{
			"Sure: ann@example.com is on file, and \"" + phone + "\" too. Ask [EMAIL_2] or [EMAIL_7].",
			"Je n'ai que ann@example.com — voilà 😀 ann@example.com" + phone,
		}},
		{"scan only", true, false, []string{
			"Sure: [EMAIL_1] is on file, and \"[PHONE_1]\" too. Ask [EMAIL_2] or [EMAIL_7].",
			replies[1],
		}},
		{"neither", false, false, replies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(30) {
				v := requestVault(t)
				var scan *redact.ScanOptions
				if tt.scan {
					scan = &redact.ScanOptions{Scan: emailPlugin, Decide: redact.ByType([]string{"EMAIL"}, redact.Block), Window: 32, Batch: 8}
				}
				rs := redact.NewReplyStream(v, scan, tt.restore)
				sent, err := relay(streamChunks(replies, rand.New(rand.NewPCG(seed, 2))), rs)
				if err != nil {
					t.Fatal(err)
				}
				got := clientTexts(t, sent, 2)
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("seed %d, choice %d:\n got %q\nwant %q", seed, i, got[i], tt.want[i])
					}
				}
				if !strings.Contains(string(sent[len(sent)-1]), `"usage":{"prompt_tokens":5`) {
					t.Fatalf("the usage chunk changed: %s", sent[len(sent)-1])
				}
				if len(rs.Unfinished()) != 0 {
					t.Fatalf("choices %v left unfinished", rs.Unfinished())
				}
			}
		})
	}
}

// TestStreamPlaceholderEverySplit splits a placeholder between two chunks at
// every byte.
func TestStreamPlaceholderEverySplit(t *testing.T) {
	reply := "é[EMAIL_1]😀"
	for i := 0; i <= len(reply); i++ {
		if i < len(reply) && !utf8.RuneStart(reply[i]) {
			continue // an upstream's JSON holds whole characters
		}
		chunks := [][]byte{
			fmt.Appendf(nil, `{"choices":[{"index":0,"delta":{"content":%q}}]}`, reply[:i]),
			fmt.Appendf(nil, `{"choices":[{"index":0,"delta":{"content":%q}}]}`, reply[i:]),
			[]byte(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`),
		}
		sent, err := relay(chunks, redact.NewReplyStream(requestVault(t), nil, true))
		if err != nil {
			t.Fatal(err)
		}
		if got := clientTexts(t, sent, 1)[0]; got != "éann@example.com😀" {
			t.Fatalf("split at %d: %q", i, got)
		}
	}
}

func TestStreamBlocked(t *testing.T) {
	v := requestVault(t)
	scan := &redact.ScanOptions{Scan: emailPlugin, Decide: redact.ByType(nil, redact.Block), Window: 32, Batch: 8}
	rs := redact.NewReplyStream(v, scan, true)
	replies := []string{strings.Repeat("Fine text. ", 8) + "Mail carol@example.net now.", "Other choice, harmless."}
	sent, err := relay(streamChunks(replies, rand.New(rand.NewPCG(1, 1))), rs)
	var b *redact.Blocked
	if !errors.As(err, &b) || b.Type != "EMAIL" {
		t.Fatalf("err = %v, want Blocked by EMAIL", err)
	}
	for _, text := range clientTexts(t, sent, 2) {
		if strings.Contains(text, "carol") || strings.Contains(text, "@example.n") {
			t.Fatalf("blocked text reached the client: %q", text)
		}
	}
	if f := rs.Findings(); len(f) != 1 || f[0].Text != 0 || replies[0][f[0].Start:f[0].End] != "carol@example.net" {
		t.Fatalf("Findings = %+v", f)
	}
}

func TestWholeReply(t *testing.T) {
	body := `{"id":"x","object":"chat.completion","choices":[` +
		`{"index":0,"message":{"role":"assistant","content":"Mail [EMAIL_1] or dave@example.org; call [PHONE_1]."},"finish_reason":"stop"},` +
		`{"index":1,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"to\":\"[EMAIL_1]\"}"}}]},"finish_reason":"tool_calls"}],` +
		`"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	v := requestVault(t)
	var c api.ReplyContent
	if err := c.ParseReply([]byte(body)); err != nil {
		t.Fatal(err)
	}
	texts := make([]string, len(c.Choices))
	for i, ch := range c.Choices {
		texts[i] = ch.Text
	}
	masked, found, err := redact.ScanTexts(texts, redact.ScanOptions{Scan: emailPlugin, Decide: redact.ByType([]string{"EMAIL"}, redact.Block)}, v)
	if err != nil || len(found) != 1 {
		t.Fatalf("ScanTexts: %v, %d findings", err, len(found))
	}
	for i := range texts {
		texts[i] = v.Restore(masked[i])
	}
	out, err := c.Rewrite(texts)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Choices []struct {
			Message struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					Function struct{ Arguments string } `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(out, &reply); err != nil {
		t.Fatal(err)
	}
	want := "Mail ann@example.com or [EMAIL_2]; call +1 (555) 0100\next. \"7\"."
	if got := reply.Choices[0].Message.Content; got == nil || *got != want {
		t.Fatalf("content = %v, want %q", got, want)
	}
	if reply.Choices[1].Message.Content != nil || reply.Choices[1].Message.ToolCalls[0].Function.Arguments != `{"to":"[EMAIL_1]"}` {
		t.Fatalf("the tool call choice changed: %s", out)
	}
}

func ExampleVault() {
	var v redact.Vault
	prompt := []string{"Reply to ann@example.com, cc ann@example.com."}
	found := []redact.Finding{{Type: "EMAIL", Start: 9, End: 24}, {Type: "EMAIL", Start: 29, End: 44}}
	fmt.Println(v.Redact(prompt, found, []string{"EMAIL"})[0])
	fmt.Println(&v)

	r := v.NewStreamRestorer()
	for _, delta := range []string{"Done: [EMA", "IL_1] and [EMAIL_9]."} {
		fmt.Printf("%q\n", r.Next(delta))
	}
	fmt.Printf("%q\n", r.Flush())
	// Output:
	// Reply to [EMAIL_1], cc [EMAIL_1].
	// redact.Vault(1 placeholders)
	// "Done: "
	// "ann@example.com and [EMAIL_9]."
	// ""
}
