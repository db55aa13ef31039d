package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// chatSeeds are bodies that reach every branch of the chat parser, valid and
// not; the differential test also mutates them, and they seed the fuzz test.
var chatSeeds = []string{
	``, ` `, "\v", "\u00a0", `{`, `}`, `null`, `[]`, `"x"`, `1`, `true`, `{}`, `{} x`, `{}}`, `{"a":1,}`, `{,}`, `{"a" 1}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	` {"model":"m","messages":[{"role":"user","content":"hi"}]} ` + "\n",
	`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"temperature":0.2,
		"messages":[{"role":"system","content":"sys"},{"role":"assistant","content":null,"tool_calls":[]},
		{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}`,
	// Strings: escapes, surrogates, invalid UTF-8, control characters.
	`{"model":"m\u00e9\n","messages":[{"role":"user","content":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"lone \ud83d and \ude00 and \ud83d\u0041 and \ud83dx"}]}`,
	"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff\xfe utf8 \xed\xa0\x80 and \xe2\x82\"}]}",
	"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff and \\n escape\"}]}",
	"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"tab\tinside\"}]}",
	`{"model":"m","messages":[{"role":"user","content":"bad \x escape"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"bad \u12g4 escape"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\u00"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"abc`,
	`{"model":"m","messages":[{"role":"user","content":"\'"}]}`,
	// Keys: escaped, folded, duplicated.
	`{"mod\u0065l":"m","m\u0065ssages":[{"r\u006fle":"user","c\u006Ftent":"x","cont\u0065nt":"esc"}]}`,
	`{"model":"m","messages":[{"ROLE":"user","Content":[{"TYPE":"text","Text":"folded"}]}]}`,
	"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"te\u212at\":\"kelvin\"}]}],\"stream_options\":{\"include_u\u017fage\":true}}",
	`{"Model":"m","model":"m2","messages":[{"role":"user","content":"x"}]}`,
	`{"model":"a","model":"b","messages":[{"role":"user","content":"first"}],"messages":[{"role":"user","content":"last"}]}`,
	`{"model":"m","stream":true,"stream":null,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","stream":false,"stream":true,"stream_options":{"x":1},"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","messages":[{"role":"user","role":null,"content":"a","content":null}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","text":null,"type":null}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","type":"image"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text"},{"type":"t\u0065xt","text":"esc"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":null}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":["x"]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[null,{"type":"text","text":"a"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":1}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"text":true,"type":"text"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":{"type":"text"}}]}`,
	`{"model":"m","messages":[{"role":"user","content":true}]}`,
	`{"model":"m","messages":[{"role":"user","content":"x","tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}]}`,
	// Field errors, in the order they are reported.
	`{"messages":[{"role":"user","content":"x"}]}`,
	`{"model":null,"messages":[]}`,
	`{"model":"","messages":[]}`,
	`{"model":5,"messages":[]}`,
	`{"model":"m"}`,
	`{"model":"m","messages":null}`,
	`{"model":"m","messages":[]}`,
	`{"model":"m","messages":{}}`,
	`{"model":"m","messages":"x"}`,
	`{"model":"m","messages":[1]}`,
	`{"model":"m","messages":[null]}`,
	`{"model":"m","messages":[{"content":"x"}]}`,
	`{"model":"m","messages":[{"role":"","content":"x"}]}`,
	`{"model":"m","messages":[{"role":5,"content":"x"}]}`,
	`{"model":"m","messages":[{"content":"x"},{"role":7}]}`,
	`{"model":"m","messages":[{"role":"user","content":7},{"content":"x"}]}`,
	`{"model":"m","messages":[{"content":7},{"role":"user","content":7}]}`,
	`{"model":"m","messages":[{"role":"user","content":7}]}`,
	`{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","stream":1,"max_tokens":"x","messages":[]}`,
	`{"model":"m","stream_options":[],"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","stream_options":{"include_usage":"yes"},"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","stream_options":{"include_usage":null},"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":1e3,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":-0,"max_completion_tokens":0,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":9223372036854775808,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":-9223372036854775808,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_completion_tokens":7,"max_tokens":9,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_completion_tokens":0,"max_tokens":9,"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","max_tokens":null,"messages":[{"role":"user","content":"x"}]}`,
	// Numbers and literals elsewhere.
	`{"model":"m","t":[0,-0,1.5e+3,2E-2,-1.0,10],"messages":[{"role":"user","content":"x"}]}`,
	`{"model":"m","t":01,"messages":[]}`, `{"model":"m","t":1.,"messages":[]}`, `{"model":"m","t":-,"messages":[]}`,
	`{"model":"m","t":.5,"messages":[]}`, `{"model":"m","t":1e,"messages":[]}`, `{"model":"m","t":+1,"messages":[]}`,
	`{"model":"m","t":tru,"messages":[]}`, `{"model":"m","t":nul,"messages":[]}`, `{"model":"m","t":falsey,"messages":[]}`,
	`{"model":"m","t":[1 2],"messages":[]}`, `{"model":"m","t":{"a":1 "b":2},"messages":[]}`, `{"model":"m","t":{1:2},"messages":[]}`,
	`{"model":"m","t":[{}, [], {"a":[{"b":null}]}],"messages":[{"role":"user","content":"x"}]}`,
	"{\"model\":\"m\"\x00}",
}

// checkChat parses body with the scanner and with the reference parser, and
// fails on any difference a caller or an upstream would notice.
func checkChat(t testing.TB, body []byte) {
	t.Helper()
	orig := bytes.Clone(body)
	got, gerr := ParseChatRequest(body)
	want, werr := refParseChatRequest(body)
	if !bytes.Equal(body, orig) {
		t.Fatalf("%q: the parser changed the body", orig)
	}
	if werr == nil {
		// Sluice refuses what encoding/json accepts when a message names a
		// scanned field twice or in another case: upstreams disagree on which
		// copy counts, so the text Sluice scans might not be the one sent.
		if param, ambiguous := refAmbiguity(body); ambiguous {
			if gerr == nil || gerr.Code != "invalid_value" || gerr.Param != param {
				t.Fatalf("%q: an ambiguous %s must be refused, got %+v", body, param, gerr)
			}
			return
		}
	}
	if !sameError(gerr, werr) {
		t.Fatalf("%q:\n got error %+v\nwant error %+v", body, gerr, werr)
	}
	if werr != nil {
		return
	}
	if got.Model != want.Model || got.Stream != want.Stream || got.IncludeUsage != want.IncludeUsage ||
		got.MaxTokens != want.MaxTokens || got.Choices != want.Choices || got.MessageCount != want.MessageCount ||
		!coversReference(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", body, fieldsOf(got), fieldsOf(want.ChatRequest()))
	}
	for _, model := range []string{"up", "a\"<b>\n\u2028\xff"} {
		up, err := got.UpstreamBody(model)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := want.UpstreamBody(model)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := decodeDocument(t, up), decodeDocument(t, ref); !reflect.DeepEqual(g, w) {
			t.Fatalf("%q: upstream body\n got %s\nwant %s", body, up, ref)
		}
	}

	// Redaction: the upstream must carry exactly the new texts, in their
	// places, and nothing else may change.
	same, err := got.UpstreamBody("up")
	if err != nil {
		t.Fatal(err)
	}
	if err := got.SetTexts(slices.Clone(got.Texts)); err != nil {
		t.Fatalf("%q: SetTexts: %v", body, err)
	}
	if again, _ := got.UpstreamBody("up"); !bytes.Equal(again, same) {
		t.Fatalf("%q: SetTexts with the same texts changed the body:\n%s\n%s", body, same, again)
	}
	texts := make([]string, len(got.Texts))
	for i, s := range got.Texts {
		texts[i] = "[" + strings.ToUpper(s) + "\"\n]"
	}
	info := slices.Clone(got.TextInfo)
	if err := got.SetTexts(texts); err != nil {
		t.Fatalf("%q: SetTexts: %v", body, err)
	}
	up, _ := got.UpstreamBody("up")
	again, aerr := ParseChatRequest(up)
	if aerr != nil {
		t.Fatalf("%q: the redacted upstream body %q does not parse: %v", body, up, aerr)
	}
	if !slices.Equal(again.Texts, texts) || !slices.Equal(again.TextInfo, info) ||
		again.MessageCount != got.MessageCount || again.Stream != got.Stream || again.Model != "up" {
		t.Fatalf("%q: redacted upstream body %q reads as %+v", body, up, fieldsOf(again))
	}
}

// coversReference reports whether every message text the reference parser
// reads is among the texts the scanner collected, in order, with its message
// index: the scanner collects more (names, tool calls, URLs…), never less.
func coversReference(got *ChatRequest, want *refChatRequest) bool {
	j := 0
	for i, text := range want.Texts {
		if text == "" {
			continue
		}
		for j < len(got.Texts) && (got.Texts[j] != text || got.TextInfo[j].Message != want.TextMessage[i]) {
			j++
		}
		if j == len(got.Texts) {
			return false
		}
		j++
	}
	return true
}

func sameError(a, b *Error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// fieldsOf is the exported part of a request, for failure messages.
func fieldsOf(r *ChatRequest) ChatRequest {
	c := *r
	c.doc, c.texts = document{}, collected{}
	return c
}

// ChatRequest copies the reference's fields into a ChatRequest, for failure messages.
func (r *refChatRequest) ChatRequest() *ChatRequest {
	return &ChatRequest{Model: r.Model, Stream: r.Stream, IncludeUsage: r.IncludeUsage, MaxTokens: r.MaxTokens,
		MessageCount: r.MessageCount, Texts: r.Texts}
}

// decodeDocument is body as encoding/json reads it, with numbers kept exact.
func decodeDocument(t testing.TB, body []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("upstream body %q is not JSON: %v", body, err)
	}
	if d.More() {
		t.Fatalf("upstream body %q has trailing data", body)
	}
	return v
}

var embeddingsSeeds = []string{
	``, `{`, `null`, `[]`, `{}`,
	`{"model":"e","input":"hello"}`,
	`{"model":"e","input":"h\u00e9\nllo \ud83d"}`,
	`{"model":"e","input":null}`,
	`{"model":"e","input":["a","b\t",null]}`,
	`{"model":"e","input":[]}`,
	`{"model":"e","input":[null]}`,
	`{"model":"e","input":[1,2,null,-3]}`,
	`{"model":"e","input":[1,2.5]}`,
	`{"model":"e","input":[1,"a"]}`,
	`{"model":"e","input":[[1,2],[3],null,[]]}`,
	`{"model":"e","input":[[1,null],[9223372036854775808]]}`,
	`{"model":"e","input":[null,[1]]}`,
	`{"model":"e","input":[[1],2]}`,
	`{"model":"e","input":[["a"]]}`,
	`{"model":"e","input":{}}`,
	`{"model":"e","input":5}`,
	`{"model":"e","input":true}`,
	`{"model":"e"}`,
	`{"input":"x"}`,
	`{"model":7,"input":"x"}`,
	`{"model":"a","input":"x","model":"b","input":["y","z"],"dimensions":8}`,
	`{"model":"e","input":[[1,[2]]]}`,
}

func checkEmbeddings(t testing.TB, body []byte) {
	t.Helper()
	got, gerr := ParseEmbeddingsRequest(body)
	want, werr := refParseEmbeddingsRequest(body)
	if werr == nil {
		// Sluice refuses what encoding/json accepts when a message names a
		// scanned field twice or in another case: upstreams disagree on which
		// copy counts, so the text Sluice scans might not be the one sent.
		if param, ambiguous := refAmbiguity(body); ambiguous {
			if gerr == nil || gerr.Code != "invalid_value" || gerr.Param != param {
				t.Fatalf("%q: an ambiguous %s must be refused, got %+v", body, param, gerr)
			}
			return
		}
	}
	if !sameError(gerr, werr) {
		t.Fatalf("%q:\n got error %+v\nwant error %+v", body, gerr, werr)
	}
	if werr != nil {
		return
	}
	if got.Model != want.Model || got.InputTokens != want.InputTokens || !slices.Equal(got.Texts, want.Texts) {
		t.Fatalf("%q: got %q %q %d, want %q %q %d", body, got.Model, got.Texts, got.InputTokens, want.Model, want.Texts, want.InputTokens)
	}
	up, _ := got.UpstreamBody("up")
	ref, _ := want.UpstreamBody("up")
	if g, w := decodeDocument(t, up), decodeDocument(t, ref); !reflect.DeepEqual(g, w) {
		t.Fatalf("%q: upstream body\n got %s\nwant %s", body, up, ref)
	}
	texts := make([]string, len(got.Texts))
	for i, s := range got.Texts {
		texts[i] = "<" + s + "\\>"
	}
	if err := got.SetTexts(texts); err != nil {
		t.Fatalf("%q: SetTexts: %v", body, err)
	}
	up, _ = got.UpstreamBody("up")
	again, aerr := ParseEmbeddingsRequest(up)
	if aerr != nil || !slices.Equal(again.Texts, texts) {
		t.Fatalf("%q: redacted upstream body %q reads as %+v, %v", body, up, again, aerr)
	}
}

// mutations returns body cut short at every length and with each byte
// replaced by a few that matter to JSON, so that the invalid neighbours of
// every seed are compared too.
func mutations(body string) []string {
	var out []string
	for i := range len(body) {
		out = append(out, body[:i])
		for _, c := range []byte{'"', '\\', '{', '}', '[', ']', ',', ':', 'n', '0', ' ', 0x01, 0xff} {
			b := []byte(body)
			b[i] = c
			out = append(out, string(b))
		}
	}
	return out
}

func TestChatMatchesReference(t *testing.T) {
	for _, seed := range chatSeeds {
		for _, body := range append([]string{seed}, mutations(seed)...) {
			checkChat(t, []byte(body))
		}
	}
}

func TestEmbeddingsMatchReference(t *testing.T) {
	for _, seed := range embeddingsSeeds {
		for _, body := range append([]string{seed}, mutations(seed)...) {
			checkEmbeddings(t, []byte(body))
		}
	}
}

func TestNestingLimitMatchesReference(t *testing.T) {
	// encoding/json accepts 10000 open containers and no more; the top-level
	// object is the first.
	for _, depth := range []int{9998, 9999, 10000} {
		for _, deep := range []string{
			strings.Repeat("[", depth) + strings.Repeat("]", depth),
			strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1),
		} {
			body := `{"model":"m","messages":[{"role":"user","content":"x"}],"deep":` + deep + `}`
			checkChat(t, []byte(body))
			_, aerr := ParseChatRequest([]byte(body))
			if wantOK := depth < 10000; (aerr == nil) != wantOK {
				t.Errorf("%d nested %.5s: got %v", depth+1, deep, aerr)
			}
		}
	}
}

func FuzzParseChatRequest(f *testing.F) {
	for _, s := range chatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkChat(t, body)
	})
}

func FuzzParseEmbeddingsRequest(f *testing.F) {
	for _, s := range embeddingsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkEmbeddings(t, body)
	})
}

// refAmbiguity finds, with encoding/json's token reader, the first message that
// names content (or a content part's type or text) twice or in another case,
// in document order, and returns its param.
func refAmbiguity(body []byte) (string, bool) {
	var doc struct {
		Messages json.RawMessage `json:"messages"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return "", false
	}
	var msgs []json.RawMessage
	if json.Unmarshal(doc.Messages, &msgs) != nil {
		return "", false
	}
	for i, m := range msgs {
		if field, ok := ambiguousObject(m, []string{"content"}, func(v json.RawMessage) (string, bool) {
			var parts []json.RawMessage
			if json.Unmarshal(v, &parts) != nil {
				return "", false
			}
			for _, p := range parts {
				if field, ok := ambiguousObject(p, []string{"type", "text"}, nil); ok {
					return field, true
				}
			}
			return "", false
		}); ok {
			return fmt.Sprintf("messages[%d].%s", i, field), true
		}
	}
	return "", false
}

// ambiguousObject walks the keys of obj in order; a key that folds to one of
// names but is not that name, or a second one, is ambiguous. inner looks inside
// each value of such a key first, as the scanner reads a value before the keys
// after it.
func ambiguousObject(obj json.RawMessage, names []string, inner func(json.RawMessage) (string, bool)) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return "", false
		}
		for _, name := range names {
			if !strings.EqualFold(key, name) {
				continue
			}
			if seen[name] || key != name {
				return name, true
			}
			seen[name] = true
			if inner != nil {
				if field, ok := inner(v); ok {
					return field, true
				}
			}
		}
	}
	return "", false
}
