package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/redact"
)

// secretScan finds every "SECRET" in the texts, as type KEY.
func secretScan(texts []string) ([]redact.Finding, error) {
	var out []redact.Finding
	for i, t := range texts {
		for at := 0; ; {
			k := strings.Index(t[at:], "SECRET")
			if k < 0 {
				break
			}
			out = append(out, redact.Finding{Text: i, Type: "KEY", Start: at + k, End: at + k + len("SECRET"), Score: 1})
			at += k + len("SECRET")
		}
	}
	return out, nil
}

func newTestFilter(decide redact.Action) *replyFilter {
	o := &redact.ScanOptions{Scan: secretScan, Decide: func(redact.Finding) redact.Action { return decide }, Window: 16, Batch: 8}
	return &replyFilter{rs: redact.NewReplyStream(&redact.Vault{}, o, false), last: map[int][]byte{}, open: map[int][]int{}, known: map[int]bool{}}
}

// streamed is what a caller assembles of a filtered stream: per choice, the
// content and the arguments of each tool call.
type streamed struct {
	content map[int]string
	args    map[[2]int]string
}

func assemble(t *testing.T, events [][]byte) streamed {
	t.Helper()
	s := streamed{content: map[int]string{}, args: map[[2]int]string{}}
	for _, ev := range events {
		var c struct {
			Choices []struct {
				Index int
				Delta struct {
					Content   string
					ToolCalls []struct {
						Index    int
						Function struct{ Arguments string }
					} `json:"tool_calls"`
				}
			}
		}
		if err := json.Unmarshal(ev, &c); err != nil {
			t.Fatalf("event %s is not JSON: %v", ev, err)
		}
		for _, ch := range c.Choices {
			s.content[ch.Index] += ch.Delta.Content
			for _, tc := range ch.Delta.ToolCalls {
				s.args[[2]int{ch.Index, tc.Index}] += tc.Function.Arguments
			}
		}
	}
	return s
}

func deltaChunk(choice int, delta, finish string) []byte {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return []byte(`{"id":"x","object":"chat.completion.chunk","choices":[{"index":` + string(rune('0'+choice)) + `,"delta":` + delta + `,"finish_reason":` + f + `}]}`)
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzStreamedToolCalls holds the stream filter to this: however a reply's
// content and two tool calls' arguments are cut into deltas and interleaved,
// what the caller assembles is the whole texts with every finding masked, and
// nothing of a finding is released before it was judged.
func FuzzStreamedToolCalls(f *testing.F) {
	f.Add("hello SECRET world", `{"key":"SECRET"}`, `{"a":1}`, uint64(0x123456789))
	f.Add("", `SECRETSECRET`, `xSECRETy`, uint64(7))
	f.Add("a", "", "SECRET", uint64(0))
	f.Fuzz(func(t *testing.T, content, args0, args1 string, cuts uint64) {
		for _, s := range []string{content, args0, args1} {
			if !isPlain(s) {
				return
			}
		}
		// Cut each text into pieces of 1 to 8 bytes, chosen by cuts.
		next := func(s string) (string, string) {
			if s == "" {
				return "", ""
			}
			n := int(cuts%8) + 1
			cuts = cuts/8 ^ cuts<<59
			n = min(n, len(s))
			return s[:n], s[n:]
		}
		var events [][]byte
		events = append(events, deltaChunk(0, `{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":""}},{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":""}}]}`, ""))
		rc, r0, r1 := content, args0, args1
		for rc != "" || r0 != "" || r1 != "" {
			var p string
			switch cuts % 3 {
			case 0:
				if p, rc = next(rc); p != "" {
					events = append(events, deltaChunk(0, `{"content":`+jsonText(p)+`}`, ""))
				}
			case 1:
				if p, r0 = next(r0); p != "" {
					events = append(events, deltaChunk(0, `{"tool_calls":[{"index":0,"function":{"arguments":`+jsonText(p)+`}}]}`, ""))
				}
			default:
				if p, r1 = next(r1); p != "" {
					events = append(events, deltaChunk(0, `{"tool_calls":[{"index":1,"function":{"arguments":`+jsonText(p)+`}}]}`, ""))
				}
			}
			cuts = cuts*6364136223846793005 + 1442695040888963407
		}
		events = append(events, deltaChunk(0, `{}`, "tool_calls"))

		filter := newTestFilter(redact.Mask)
		var out [][]byte
		for _, ev := range events {
			got, err := filter.chunk(ev)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, got...)
		}
		rest, err := filter.end()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rest...)
		got := assemble(t, out)
		masked := func(s string) string { return strings.ReplaceAll(s, "SECRET", "[KEY_1]") }
		if got.content[0] != masked(content) || got.args[[2]int{0, 0}] != masked(args0) || got.args[[2]int{0, 1}] != masked(args1) {
			t.Fatalf("assembled %q %q %q\nwant      %q %q %q", got.content[0], got.args[[2]int{0, 0}], got.args[[2]int{0, 1}],
				masked(content), masked(args0), masked(args1))
		}

		// Blocked: no byte of a finding reaches the caller.
		filter = newTestFilter(redact.Block)
		var sent strings.Builder
		for _, ev := range events {
			got, err := filter.chunk(ev)
			if err != nil {
				break
			}
			for _, g := range got {
				sent.Write(g)
			}
		}
		if strings.Contains(sent.String(), "SECRET") {
			t.Fatalf("a blocked finding reached the caller: %s", sent.String())
		}
	})
}

// isPlain keeps the fuzzer to texts whose findings cannot be made by the
// placeholders themselves and that survive JSON unchanged.
func isPlain(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '[' || c == ']' {
			return false
		}
	}
	return true
}
