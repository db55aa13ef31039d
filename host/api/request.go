package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ChatRequest is what the gateway needs to know about a chat completion request.
//
// It is read in one pass over the body that decodes only these fields and keeps
// the rest as byte offsets, so that the upstream receives the caller's own bytes.
// A ChatRequest keeps the body it was parsed from: the body must not change while
// the request is in use.
type ChatRequest struct {
	Model        string
	Stream       bool
	IncludeUsage bool  // the caller asked for the final usage chunk itself
	MaxTokens    int64 // max_completion_tokens or max_tokens; 0 when absent
	// Choices is n, the number of replies asked for (1 when absent): a
	// request's completion can use up to Choices × MaxTokens.
	Choices      int64
	MessageCount int
	// Texts are every text of the request the model reads, in the order of
	// the body: not only message content but names, tool calls and their
	// arguments, tool definitions, metadata, URLs, anything Sluice has no
	// name for; only ids, the API's enums and the model are left out (see
	// collect.go). TextInfo[i] says where Texts[i] sits.
	Texts    []string
	TextInfo []Text

	doc   document
	texts collected
	// maxTokens is the reply limit LowerMaxTokens set, as JSON; nil before.
	maxTokens []byte
}

// The top-level members of a chat request that Sluice reads, as indexes into chatFields.
const (
	chatModel = iota
	chatStream
	chatStreamOptions
	chatMaxCompletionTokens
	chatMaxTokens
	chatMessages
	chatN
	chatFieldCount
)

var chatFields = [chatFieldCount]string{"model", "stream", "stream_options", "max_completion_tokens", "max_tokens", "messages", "n"}

// MaxTokensLimit bounds max_tokens and max_completion_tokens. No model
// produces more, and a bound keeps every reservation far from overflow.
const MaxTokensLimit = 1 << 24

// MaxChoices bounds n.
const MaxChoices = 128

// includeUsageMember is the member UpstreamBody sets for a stream.
const includeUsageMember = `"stream_options":{"include_usage":true}`

// ParseChatRequest reads a /v1/chat/completions body. Every problem is reported
// as a 400 naming the offending parameter, as OpenAI does. The body is read as
// encoding/json would read it: the same documents are rejected, the last of
// duplicate keys wins, and message and content-part fields match their keys
// case-insensitively.
func ParseChatRequest(body []byte) (*ChatRequest, *Error) {
	r := &ChatRequest{}
	var msgs messageScan
	// The messages are decoded during the pass that validates the body, since
	// they are most of it; the other values are small and decoded afterwards.
	if aerr := r.doc.parse(body, chatFields[:], chatMessages, func(s *scanner) {
		msgs = messageScan{}
		msgs.scan(s)
	}); aerr != nil {
		return nil, aerr
	}
	var aerr *Error
	if r.Model, aerr = r.doc.model(); aerr != nil {
		return nil, aerr
	}
	if r.Stream, aerr = boolMember(r.doc.value(chatStream), "stream"); aerr != nil {
		return nil, aerr
	}
	if v := r.doc.value(chatStreamOptions); present(v) {
		var ok bool
		if r.IncludeUsage, ok = includeUsage(v); !ok {
			return nil, wrongType("stream_options", "expected an object")
		}
	}
	for _, f := range []int{chatMaxCompletionTokens, chatMaxTokens} {
		v := r.doc.value(f)
		if !present(v) {
			continue
		}
		name := chatFields[f]
		n, aerr := intMember(v, name)
		if aerr != nil {
			return nil, aerr
		}
		if n < 0 || n > MaxTokensLimit {
			return nil, param(name, "%s must be an integer from 1 to %d", name, MaxTokensLimit)
		}
		if n > 0 && r.MaxTokens == 0 {
			r.MaxTokens = n
		}
	}
	r.Choices = 1
	if v := r.doc.value(chatN); present(v) {
		n, aerr := intMember(v, "n")
		if aerr != nil {
			return nil, aerr
		}
		if n < 1 || n > MaxChoices {
			return nil, param("n", "n must be an integer from 1 to %d", MaxChoices)
		}
		r.Choices = n
	}
	if r.doc.value(chatMessages) == nil {
		return nil, param("messages", "you must provide a messages parameter")
	}
	if aerr := msgs.problem(); aerr != nil {
		return nil, aerr
	}
	if aerr := msgs.ambiguity(); aerr != nil {
		return nil, aerr
	}
	r.MessageCount = msgs.count
	r.collect()
	return r, nil
}

// collect gathers the texts of the body as it is now.
func (r *ChatRequest) collect() {
	r.texts = collected{}
	r.texts.collect(r.doc.body, chatSchema, r.doc.dropped)
	r.Texts, r.TextInfo = r.texts.texts, r.texts.meta
}

// UpstreamBody is the body to send upstream: the caller's request with the model
// renamed to the upstream's name and, for a stream, usage reporting switched on
// (stream_options replaced by {"include_usage":true}) so that a streamed reply
// is billed from exact figures.
//
// Every other byte is the caller's, unchanged, with three exceptions: texts
// rewritten by SetTexts, a reply limit lowered by LowerMaxTokens, and the
// earlier occurrences of a repeated key that Sluice reads, which are dropped
// so that an upstream that keeps the first of duplicate keys still sees the
// value Sluice checked.
func (r *ChatRequest) UpstreamBody(upstreamModel string) ([]byte, error) {
	var values [chatFieldCount][]byte
	var add []string
	if r.Stream {
		values[chatStreamOptions] = []byte(includeUsageMember[len(`"stream_options":`):])
		if r.doc.value(chatStreamOptions) == nil {
			add = append(add, includeUsageMember)
		}
	}
	if r.maxTokens != nil {
		sent := false
		for _, f := range []int{chatMaxCompletionTokens, chatMaxTokens} {
			if r.doc.value(f) != nil {
				values[f], sent = r.maxTokens, true
			}
		}
		if !sent {
			add = append(add, `"max_completion_tokens":`+string(r.maxTokens))
		}
	}
	return r.doc.upstream(upstreamModel, values[:], strings.Join(add, ",")), nil
}

// LowerMaxTokens lowers the reply limit the upstream receives to n when
// the request asks for more, or sets none, and reports whether it did; it
// never raises one, and n <= 0 changes nothing. The limit goes out in the
// member the caller used (max_completion_tokens, max_tokens, or both), or
// as max_completion_tokens when the caller sent neither: OpenAI's current
// name, the only one its reasoning models take. MaxTokens follows.
func (r *ChatRequest) LowerMaxTokens(n int64) bool {
	if n <= 0 || (r.MaxTokens > 0 && r.MaxTokens <= n) {
		return false
	}
	r.MaxTokens = n
	r.maxTokens = strconv.AppendInt(nil, n, 10)
	return true
}

// ReplyLimit is the reply limit per choice the upstream will be sent
// (MaxTokens); 0 when there is none.
func (r *ChatRequest) ReplyLimit() int64 { return r.MaxTokens }

// SetTexts replaces the texts, in the order of Texts, keeping every other
// byte as it was. It is how redaction reaches the body. A text inside JSON
// tool arguments stays inside its string, so the arguments remain valid
// JSON; a number collected as a text becomes a string when it changes.
func (r *ChatRequest) SetTexts(texts []string) error {
	body, err := r.texts.rewrite(r.doc.body, texts)
	if err != nil {
		return err
	}
	if aerr := r.doc.parse(body, chatFields[:], -1, nil); aerr != nil {
		return fmt.Errorf("api: the rewritten request does not parse: %s", aerr.Message)
	}
	r.collect()
	return nil
}

// includeUsage reads stream_options (v is its value) as encoding/json reads it
// into struct{ IncludeUsage bool }; ok is false for a type error.
func includeUsage(v []byte) (use, ok bool) {
	if v[0] != '{' {
		return false, false
	}
	ok = true
	s := scanner{buf: v}
	s.open()
	for i := 0; s.more(i == 0, '}'); i++ {
		start, end, esc := s.key()
		if s.bad {
			break
		}
		if keyFolds(v[start:end], esc, "include_usage") {
			switch s.peek() {
			case 't':
				use = true
			case 'f':
				use = false
			case 'n': // null leaves a bool as it was
			default:
				ok = false
			}
		}
		s.skip()
	}
	return use, ok
}

// arenaHint caps the first allocation for a request's texts: enough for the
// texts of most requests, but not sized to a body that is mostly images.
const arenaHint = 64 << 10

// messageScan is what one pass over a messages value finds: the message count,
// and the first problem in the order encoding/json and the checks after it
// report them. The texts themselves are collected afterwards, with the rest of
// the body's (collect.go).
type messageScan struct {
	count int

	notArray   bool // messages is not an array of objects with string roles
	badMessage int  // 1 + the index of the first message without a role or with bad content
	badRole    bool // that message's problem is its role
	// ambiguous is 1 + the index of the first message that names a field
	// Sluice scans (content, or a part's type or text) twice or in another
	// case. Upstreams disagree on which copy counts, so such a message could
	// carry text past the guardrails; it is refused instead.
	ambiguous      int
	ambiguousField string
}

// textSpan is where a text's JSON string sits: [start, end). A text part
// without a text member has none; the member is then inserted before the
// part's closing brace, at start == end.
type textSpan struct {
	start, end int
	insert     bool
}

func (m *messageScan) problem() *Error {
	switch {
	case m.notArray:
		return param("messages", "messages must be an array of message objects")
	case m.count == 0:
		return param("messages", "messages must contain at least one message")
	case m.badMessage == 0:
		return nil
	}
	i := m.badMessage - 1
	if m.badRole {
		return param(fmt.Sprintf("messages[%d].role", i), "messages[%d] has no role", i)
	}
	return param(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or an array of content parts", i)
}

// scan reads the messages value at the scanner's position.
func (m *messageScan) scan(s *scanner) {
	switch s.peek() {
	case '[':
	case 'n': // null decodes to no messages
		s.skip()
		return
	default:
		m.notArray = true
		s.skip()
		return
	}
	s.open()
	for i := 0; s.more(i == 0, ']'); i++ {
		m.count++
		role, contentOK := false, true
		switch s.peek() {
		case '{':
			role, contentOK = m.message(s, i)
		case 'n': // null decodes to a message without a role
			s.skip()
		default:
			m.notArray = true
			s.skip()
		}
		if m.badMessage == 0 && (!role || !contentOK) {
			m.badMessage, m.badRole = i+1, !role
		}
	}
}

// message reads message i, an object, and reports whether it has a role and
// whether its content is a string, null, or an array of content parts.
func (m *messageScan) message(s *scanner, i int) (role, contentOK bool) {
	buf := s.buf
	contentOK = true
	contentSeen := false
	s.open()
	for j := 0; s.more(j == 0, '}'); j++ {
		start, end, esc := s.key()
		if s.bad {
			break
		}
		switch k := buf[start:end]; {
		case keyFolds(k, esc, "role"):
			switch s.peek() {
			case '"':
				vs, ve, _ := s.str()
				role = ve-vs > len(`""`) // every escape decodes to something
			case 'n':
				s.skip()
			default:
				m.notArray = true
				s.skip()
			}
		case keyFolds(k, esc, "content"):
			if contentSeen || !keyIs(k, esc, "content") {
				m.markAmbiguous(i, "content")
			}
			contentSeen = true
			contentOK = m.content(s, i)
		default:
			s.skip()
		}
	}
	return role, contentOK
}

// content reads the content of message i.
func (m *messageScan) content(s *scanner, i int) bool {
	switch s.peek() {
	case '"':
		s.str()
		return true
	case 'n': // a message that only carries tool calls
		s.skip()
		return true
	case '[':
	default:
		s.skip()
		return false
	}
	ok := true
	s.open()
	for j := 0; s.more(j == 0, ']'); j++ {
		switch s.peek() {
		case '{':
			if !m.part(s, i) {
				ok = false
			}
		case 'n':
			s.skip()
		default:
			ok = false
			s.skip()
		}
	}
	return ok
}

// part reads one content part of message i, an object, and reports whether its
// type and text are strings (or null).
func (m *messageScan) part(s *scanner, i int) bool {
	buf := s.buf
	ok := true
	typeSeen, textSeen := false, false
	s.open()
	for j := 0; s.more(j == 0, '}'); j++ {
		start, end, esc := s.key()
		if s.bad {
			break
		}
		switch k := buf[start:end]; {
		case keyFolds(k, esc, "type"):
			if typeSeen || !keyIs(k, esc, "type") {
				m.markAmbiguous(i, "type")
			}
			typeSeen = true
			ok = m.stringOrNull(s) && ok
		case keyFolds(k, esc, "text"):
			if textSeen || !keyIs(k, esc, "text") {
				m.markAmbiguous(i, "text")
			}
			textSeen = true
			ok = m.stringOrNull(s) && ok
		default:
			s.skip()
		}
	}
	return ok
}

// stringOrNull skips the value at pos and reports whether it was a string or null.
func (m *messageScan) stringOrNull(s *scanner) bool {
	c := s.peek()
	s.skip()
	return c == '"' || c == 'n'
}

// ambiguity is the error for a message that names a scanned field twice or
// in another case. It is checked after every other problem, so a body that
// is wrong in several ways gets the error encoding/json's reading would give.
func (m *messageScan) ambiguity() *Error {
	if m.ambiguous == 0 {
		return nil
	}
	i := m.ambiguous - 1
	return param(fmt.Sprintf("messages[%d].%s", i, m.ambiguousField),
		"messages[%d] has more than one %q field, or one spelled in another case; send it once, in lower case", i, m.ambiguousField)
}

// keyIs reports whether the raw key (quotes included) decodes to exactly name.
func keyIs(raw []byte, esc bool, name string) bool {
	if !esc {
		return len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name
	}
	return decodeString(raw, esc) == name
}

func (m *messageScan) markAmbiguous(i int, field string) {
	if m.ambiguous == 0 {
		m.ambiguous, m.ambiguousField = i+1, field
	}
}

// splice is src with the text at spans[i] replaced by texts[i] wherever that
// differs from old[i]; unchanged texts keep the caller's bytes.
// resplice rescans src (a messages or input value) for the spans of its
// texts, puts texts in their places, and makes them the current texts (old).
// what describes the span count in the error, e.g. "input holds %d strings".
func resplice(src []byte, old, texts []string, what string, spans func(*scanner) []textSpan) ([]byte, error) {
	s := scanner{buf: src, depth: 1}
	sp := spans(&s)
	if s.bad || len(sp) != len(texts) {
		return nil, fmt.Errorf("api: "+what+", not the %d parsed", len(sp), len(texts))
	}
	out := splice(src, sp, old, texts)
	copy(old, texts)
	return out, nil
}

func splice(src []byte, spans []textSpan, old, texts []string) []byte {
	out := make([]byte, 0, len(src)+len(src)/8)
	at := 0
	for i, sp := range spans {
		if texts[i] == old[i] {
			continue
		}
		out = append(out, src[at:sp.start]...)
		if sp.insert {
			out = append(out, `,"text":`...)
		}
		out = appendString(out, texts[i])
		at = sp.end
	}
	return append(out, src[at:]...)
}

// EmbeddingsRequest is what the gateway needs to know about a /v1/embeddings body.
// Like a ChatRequest, it keeps the body it was parsed from.
type EmbeddingsRequest struct {
	Model string
	// Texts are the string inputs or, once DecodeTokens has run, the token
	// arrays decoded.
	Texts []string
	// InputTokens counts the tokens given directly as token arrays.
	InputTokens int64
	// TokenArrays counts the inputs given as token arrays: a caller can hide
	// text from a scanner that reads only strings by sending its token ids.
	TokenArrays int

	doc   document
	input []byte // the input value as SetTexts rewrote it; nil before
	// arrays are where the token arrays sit in the input value; encode
	// turns a rewritten text back into token ids.
	arrays []textSpan
	encode func(string) []int
}

// The top-level members of an embeddings request that Sluice reads.
const (
	embeddingsModel = iota
	embeddingsInput
	embeddingsFieldCount
)

var embeddingsFields = [embeddingsFieldCount]string{"model", "input"}

// ParseEmbeddingsRequest reads a /v1/embeddings body, with the same reading of
// JSON as ParseChatRequest.
func ParseEmbeddingsRequest(body []byte) (*EmbeddingsRequest, *Error) {
	r := &EmbeddingsRequest{}
	var in inputScan
	if aerr := r.doc.parse(body, embeddingsFields[:], embeddingsInput, func(s *scanner) {
		in = inputScan{}
		in.scan(s)
	}); aerr != nil {
		return nil, aerr
	}
	var aerr *Error
	if r.Model, aerr = r.doc.model(); aerr != nil {
		return nil, aerr
	}
	if r.doc.value(embeddingsInput) == nil {
		return nil, param("input", "you must provide an input parameter")
	}
	if in.bad {
		return nil, param("input", "input must be a string, an array of strings, or an array of token arrays")
	}
	r.Texts, r.InputTokens = in.texts, in.tokens
	// The scan read the body: make the arrays' spans relative to the input.
	base := r.doc.members[r.doc.last[embeddingsInput]-1].valStart
	for _, sp := range in.arrays {
		r.arrays = append(r.arrays, textSpan{start: sp.start - base, end: sp.end - base})
	}
	r.TokenArrays = len(r.arrays)
	return r, nil
}

// DecodeTokens decodes each token-array input with decode, the tokenizer of
// the model the request is for, so that the texts the ids stand for are
// scanned like any string input; encode writes a text SetTexts changes back
// as ids. An id the tokenizer does not know is an error, as it would be
// upstream.
func (r *EmbeddingsRequest) DecodeTokens(decode func([]int) (string, error), encode func(string) []int) error {
	if len(r.arrays) == 0 {
		return nil
	}
	r.encode = encode
	r.Texts = make([]string, 0, len(r.arrays))
	src := r.doc.value(embeddingsInput)
	for i, sp := range r.arrays {
		ids := tokenIDs(src[sp.start:sp.end])
		text, err := decode(ids)
		if err != nil {
			return fmt.Errorf("input[%d]: %w", i, err)
		}
		r.Texts = append(r.Texts, text)
	}
	return nil
}

// tokenIDs reads a valid JSON array of integers and nulls (zeros).
func tokenIDs(v []byte) []int {
	ids := make([]int, 0, len(v)/4)
	s := scanner{buf: v}
	s.open()
	for j := 0; s.more(j == 0, ']'); j++ {
		start := s.pos
		s.skip()
		n, _ := parseInt(s.buf[start:s.pos])
		ids = append(ids, int(n))
	}
	return ids
}

// UpstreamBody is the caller's request with the model renamed for the upstream.
// As for a chat request, every other byte is the caller's except input
// rewritten by SetTexts and the dropped earlier occurrences of a repeated
// model or input.
func (r *EmbeddingsRequest) UpstreamBody(upstreamModel string) ([]byte, error) {
	var values [embeddingsFieldCount][]byte
	values[embeddingsInput] = r.input
	return r.doc.upstream(upstreamModel, values[:], ""), nil
}

// SetTexts replaces the string inputs of an embeddings request, or its token
// arrays, re-encoded, when DecodeTokens made texts of them.
func (r *EmbeddingsRequest) SetTexts(texts []string) error {
	if len(texts) != len(r.Texts) {
		return fmt.Errorf("api: %d texts for %d inputs", len(texts), len(r.Texts))
	}
	if r.encode != nil {
		return r.setTokenArrays(texts)
	}
	src := r.input
	if src == nil {
		src = r.doc.value(embeddingsInput)
	}
	out, err := resplice(src, r.Texts, texts, "input holds %d strings", func(s *scanner) []textSpan {
		in := inputScan{wantSpans: true}
		in.scan(s)
		return in.spans
	})
	if err != nil {
		return err
	}
	r.input = out
	return nil
}

func (r *EmbeddingsRequest) setTokenArrays(texts []string) error {
	src := r.doc.value(embeddingsInput)
	out := make([]byte, 0, len(src))
	at := 0
	for i, sp := range r.arrays {
		if texts[i] == r.Texts[i] {
			continue
		}
		out = append(out, src[at:sp.start]...)
		out = append(out, '[')
		for k, id := range r.encode(texts[i]) {
			if k > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendInt(out, int64(id), 10)
		}
		out = append(out, ']')
		at = sp.end
	}
	r.input = append(out, src[at:]...)
	copy(r.Texts, texts)
	return nil
}

// inputScan reads an embeddings input the way the gateway always has: as a
// string, else an array of strings, else of integers, else of integer arrays,
// each as encoding/json decodes it (null is an empty string, a zero, or an
// empty array).
type inputScan struct {
	texts  []string
	tokens int64
	bad    bool

	wantSpans bool
	spans     []textSpan // where each string (or null standing for one) sits
	arrays    []textSpan // where each token array sits

	arena textArena // holds the texts
}

func (in *inputScan) scan(s *scanner) {
	switch s.peek() {
	case '"', 'n':
		start := s.pos
		if s.buf[start] == 'n' {
			s.skip()
			in.texts = []string{""}
		} else if _, end, esc := s.str(); !s.bad {
			in.texts = []string{in.arena.decode(s.buf[start:end], esc, 0)}
		}
		if in.wantSpans && !s.bad {
			in.spans = append(in.spans, textSpan{start: start, end: s.pos})
		}
		return
	case '[':
	default:
		in.bad = true
		s.skip()
		return
	}
	strs, ints, batches := true, true, true
	var count, batchTokens int64
	var arrays []textSpan
	whole := s.pos
	s.open()
	for j := 0; s.more(j == 0, ']'); j++ {
		count++
		switch c := s.peek(); {
		case c == 'n':
			start := s.pos
			s.skip()
			if strs {
				in.addText("", start, s.pos)
			}
		case c == '"':
			ints, batches = false, false
			start, end, esc := s.str()
			if strs && !s.bad {
				in.addText(in.arena.decode(s.buf[start:end], esc, min(len(s.buf)-start, arenaHint)), start, end)
			}
		case c == '-' || '0' <= c && c <= '9':
			strs, batches = false, false
			start := s.pos
			s.number()
			if ints && !s.bad {
				_, ints = parseInt(s.buf[start:s.pos])
			}
		case c == '[':
			strs, ints = false, false
			if !batches {
				s.skip()
				break
			}
			start := s.pos
			n, ok := tokenArray(s)
			batches = ok
			batchTokens += n
			arrays = append(arrays, textSpan{start: start, end: s.pos})
		default:
			strs, ints, batches = false, false, false
			s.skip()
		}
	}
	if !strs {
		in.spans = nil
	}
	switch {
	case strs:
		if in.texts == nil {
			in.texts = []string{}
		}
	case ints:
		in.texts, in.tokens = nil, count
		in.arrays = []textSpan{{start: whole, end: s.pos}}
	case batches:
		in.texts, in.tokens, in.arrays = nil, batchTokens, arrays
	default:
		in.texts, in.bad = nil, true
	}
}

func (in *inputScan) addText(text string, start, end int) {
	in.texts = append(in.texts, text)
	if in.wantSpans {
		in.spans = append(in.spans, textSpan{start: start, end: end})
	}
}

// tokenArray reads an array of integers (or nulls) and returns its length; ok
// is false when an element is anything else.
func tokenArray(s *scanner) (n int64, ok bool) {
	ok = true
	s.open()
	for j := 0; s.more(j == 0, ']'); j++ {
		n++
		switch c := s.peek(); {
		case c == 'n':
			s.skip()
		case c == '-' || '0' <= c && c <= '9':
			start := s.pos
			s.number()
			if !s.bad {
				if _, isInt := parseInt(s.buf[start:s.pos]); !isInt {
					ok = false
				}
			}
		default:
			ok = false
			s.skip()
		}
	}
	return n, ok
}

// document is a request body and where in it the top-level members that a
// parser reads sit. Sluice decodes those members and copies everything else.
type document struct {
	body    []byte
	members []member  // occurrences of the parser's fields, in body order
	last    [8]int32  // 1 + the index in members of each field's last occurrence
	end     int       // the end of the last top-level value: where a member is added
	inline  [6]member // members' storage for the usual request
	// caseVariant is the first field named by a key that differs from it
	// only in case; such a body is refused.
	caseVariant string

	// scan reads body during parse. It lives here because handing a
	// scanner on the stack to the inline reader would move it to the heap.
	scan scanner
}

// member is one occurrence of a field in the top-level object.
type member struct {
	field            int
	start            int // the key's opening quote
	valStart, valEnd int
	next             int // the next member's opening quote; 0 when none follows
}

// parse reads body, which must be a JSON object. It records the members whose
// key is one of fields and validates every value; the value of
// fields[inlineField] is read by inline, with the scanner at its start, so that
// the largest value is decoded in the same pass. A negative inlineField reads
// no value inline.
func (d *document) parse(body []byte, fields []string, inlineField int, inline func(*scanner)) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		return InvalidRequest("invalid_request_body", "The request body is empty; send a JSON object.")
	}
	d.body = body
	d.members = d.inline[:0]
	d.scan = scanner{buf: body}
	s := &d.scan
	if s.peek() != '{' {
		return invalidJSON(body)
	}
	s.open()
	for i := 0; s.more(i == 0, '}'); i++ {
		start, end, esc := s.key()
		if s.bad {
			break
		}
		if n := len(d.members); n > 0 && d.members[n-1].next == 0 {
			d.members[n-1].next = start
		}
		f := fieldIndex(body[start:end], esc, fields)
		if f < 0 && d.caseVariant == "" {
			if g := foldedFieldIndex(body[start:end], esc, fields); g >= 0 {
				d.caseVariant = fields[g]
			}
		}
		s.peek()
		valStart := s.pos
		if f >= 0 && f == inlineField {
			inline(s)
		} else {
			s.skip()
		}
		if f >= 0 {
			d.members = append(d.members, member{field: f, start: start, valStart: valStart, valEnd: s.pos})
			d.last[f] = int32(len(d.members))
		}
		d.end = s.pos
	}
	s.end()
	if s.bad {
		return invalidJSON(body)
	}
	if d.caseVariant != "" {
		// encoding/json, and so many upstreams, would read such a key as the
		// field; Sluice reads fields exactly, so the two could see different
		// models or messages.
		return param(d.caseVariant, "a member named %q in another case is not accepted; send %q in lower case, once", d.caseVariant, d.caseVariant)
	}
	return nil
}

// foldedFieldIndex is the index in fields of a name the key raw (quotes
// included) equals but for case, or -1.
func foldedFieldIndex(raw []byte, esc bool, fields []string) int {
	for i, name := range fields {
		if keyFolds(raw, esc, name) {
			return i
		}
	}
	return -1
}

// fieldIndex is the index in fields of the key raw (quotes included), matched
// exactly as a map key is in encoding/json, or -1.
func fieldIndex(raw []byte, esc bool, fields []string) int {
	key := raw[1 : len(raw)-1]
	if esc {
		key = []byte(decodeString(raw, esc))
	}
	for i, name := range fields {
		if string(key) == name {
			return i
		}
	}
	return -1
}

// dropped reports whether the member whose key starts at keyStart is an
// earlier occurrence of a field that upstream leaves out.
func (d *document) dropped(keyStart int) bool {
	for i, m := range d.members {
		if m.start == keyStart {
			return int(d.last[m.field]) != i+1
		}
	}
	return false
}

// value is the value of the last occurrence of field (as encoding/json keeps
// the last of duplicate keys), or nil when the field is absent.
func (d *document) value(field int) []byte {
	i := d.last[field]
	if i == 0 {
		return nil
	}
	m := d.members[i-1]
	return d.body[m.valStart:m.valEnd]
}

// model decodes the model member, field 0 of every request kind.
func (d *document) model() (string, *Error) {
	v := d.value(0)
	if !present(v) {
		return "", param("model", "you must provide a model parameter")
	}
	if v[0] != '"' {
		return "", wrongType("model", "expected a string")
	}
	s := scanner{buf: v}
	_, _, esc := s.str()
	model := decodeString(v, esc)
	if model == "" {
		return "", param("model", "you must provide a model parameter")
	}
	return model, nil
}

// upstream is the body with the model (field 0) set to model, the last
// occurrence of field f replaced by values[f] where that is not nil, every
// earlier occurrence of a field dropped, and add appended as a new member
// when not empty.
func (d *document) upstream(model string, values [][]byte, add string) []byte {
	size := len(d.body) + len(model) + len(`,`) + len(add)
	for _, v := range values {
		size += len(v)
	}
	out := make([]byte, 0, size)
	at := 0
	for i, m := range d.members {
		switch {
		case int(d.last[m.field]) != i+1:
			// An upstream may keep the first of duplicate keys where Sluice
			// kept the last; only the one Sluice read goes out.
			out = append(out, d.body[at:m.start]...)
			at = m.next
		case m.field == 0:
			out = append(out, d.body[at:m.valStart]...)
			out = appendString(out, model)
			at = m.valEnd
		case values[m.field] != nil:
			out = append(out, d.body[at:m.valStart]...)
			out = append(out, values[m.field]...)
			at = m.valEnd
		}
	}
	if add != "" {
		out = append(out, d.body[at:d.end]...)
		out = append(out, ',')
		out = append(out, add...)
		at = d.end
	}
	return append(out, d.body[at:]...)
}

// invalidJSON reports a body that is not a JSON object, with encoding/json's
// description of what is wrong with it.
func invalidJSON(body []byte) *Error {
	var fields map[string]json.RawMessage
	err := json.Unmarshal(body, &fields)
	switch {
	case err != nil:
		return InvalidRequest("invalid_json", "The request body is not valid JSON: "+err.Error())
	case fields == nil:
		return InvalidRequest("invalid_json", "The request body must be a JSON object.")
	}
	// The scanner and encoding/json disagree; the fuzz test exists to keep
	// this unreachable.
	return InvalidRequest("invalid_json", "The request body is not valid JSON.")
}

// present reports whether a member's value is there and not null, which
// encoding/json treats alike for the fields Sluice reads.
func present(v []byte) bool {
	return len(v) > 0 && v[0] != 'n'
}

func wrongType(name, hint string) *Error {
	return param(name, "%s has the wrong type: %s", name, hint)
}

func param(name, format string, args ...any) *Error {
	e := InvalidRequest("invalid_value", fmt.Sprintf(format, args...))
	e.Param = name
	return e
}

// boolMember reads the value v of the member name as a boolean; an absent
// or null member is false.
func boolMember(v []byte, name string) (bool, *Error) {
	if !present(v) {
		return false, nil
	}
	switch v[0] {
	case 't':
		return true, nil
	case 'f':
		return false, nil
	}
	return false, wrongType(name, "expected a boolean")
}

// intMember reads the present value v of the member name as an integer.
func intMember(v []byte, name string) (int64, *Error) {
	if v[0] == '-' || '0' <= v[0] && v[0] <= '9' {
		if n, ok := parseInt(v); ok {
			return n, nil
		}
	}
	return 0, wrongType(name, "expected an integer")
}
