package api

import (
	"fmt"
	"slices"
)

// Location is the kind of place a text sits in a request or a reply. The
// policy sees it for each finding (input.findings[_].locations), so a rule can
// treat an address in a tool definition unlike one in a prompt.
type Location uint8

const (
	LocContent        Location = iota // message content and text parts
	LocName                           // a message's or tool call's name, a file name
	LocToolArguments                  // the arguments of a tool or function call
	LocToolDefinition                 // tools and functions: descriptions, parameter schemas
	LocRefusal                        // a refusal, as a field or a part
	LocReasoning                      // reasoning the model shows
	LocURL                            // image and file URLs, data URLs included
	LocFile                           // file and audio data
	LocMetadata                       // metadata keys and values
	LocUser                           // user and safety_identifier
	LocStop                           // stop sequences
	LocResponseFormat                 // response_format's schema
	LocPrediction                     // predicted output
	LocInput                          // an embeddings input
	LocTranscript                     // an audio reply's transcript
	LocAnnotation                     // annotations of a reply (citations and their URLs)
	LocOther                          // any member Sluice has no name for: scanned all the same
	locCount
)

var locationNames = [locCount]string{"content", "name", "tool_arguments", "tool_definition", "refusal", "reasoning", "url",
	"file", "metadata", "user", "stop", "response_format", "prediction", "input", "transcript", "annotation", "other"}

func (l Location) String() string {
	if l < locCount {
		return locationNames[l]
	}
	return fmt.Sprintf("location(%d)", l)
}

// NotMessage is the message index of a text outside messages.
const NotMessage = -1

// node describes one position of an API's JSON document: what a string
// found there is, the members an object there may have, and what its array
// elements are. Collection works by exclusion: any member a node does not
// name is walked as free text of the node's kind (or.other), keys included,
// so a field an API adds later is scanned from the day it appears. Only the
// members named here with skip are left out, and those are ids, enums of the
// API and the model name: strings the model does not read as text, or that
// Sluice must not rewrite.
type node struct {
	loc    Location
	skip   bool             // not text: neither this value nor anything inside it is collected
	fields map[string]*node // the members known at this position; nil for free-form objects
	other  Location         // the kind of an unknown member's strings
	elem   *node            // array elements; nil means this same node
	json   bool             // the string holds a JSON text whose own strings are collected one by one
	free   bool             // keys are text too, and so is every value inside
	// numbers marks free text whose long integers are collected too.
	numbers bool
	// indexes marks an array of messages (or choices): an element's index
	// is the message index of the texts inside it.
	indexes bool
	// parts marks an array of tool calls: each element's texts get its
	// "index" member (its position when it has none) as their Part, which
	// is how a stream's deltas name the call they continue.
	parts bool
}

var skipNode = &node{skip: true}

// freeNode is caller data in JSON form (metadata, a parameter schema, tool
// arguments): every key, string and long integer in it is text.
func freeNode(loc Location) *node { return &node{loc: loc, other: loc, free: true, numbers: true} }

// unknownNode is the value of a member a schema has no name for: its strings
// are text, its numbers are the API's parameters.
func unknownNode(loc Location) *node { return &node{loc: loc, other: loc, free: true} }

// contentNode is a content value: a string, or an array of parts.
func contentNode(loc Location) *node {
	n := &node{loc: loc, other: LocOther}
	n.fields = map[string]*node{
		"type":          skipNode,
		"text":          {loc: loc, other: loc},
		"refusal":       {loc: LocRefusal, other: LocRefusal},
		"image_url":     {loc: LocURL, other: LocURL, fields: map[string]*node{"url": {loc: LocURL}, "detail": skipNode}},
		"input_audio":   {loc: LocFile, other: LocFile, fields: map[string]*node{"data": {loc: LocFile}, "format": skipNode}},
		"file":          {loc: LocFile, other: LocFile, fields: map[string]*node{"file_data": {loc: LocFile}, "file_id": skipNode, "filename": {loc: LocName}}},
		"cache_control": skipNode,
	}
	return n
}

// callNode is a tool call, or a legacy function call when function is set.
// nested says whether the arguments are read as the JSON they hold: true for
// a whole request or reply, false for a stream's deltas, which carry them in
// fragments.
func callNode(nested, function bool) *node {
	fn := &node{loc: LocToolArguments, other: LocToolArguments, fields: map[string]*node{
		"name":      {loc: LocName},
		"arguments": {loc: LocToolArguments, json: nested},
		"input":     {loc: LocToolArguments, json: nested},
	}}
	if function {
		return fn
	}
	return &node{loc: LocToolArguments, other: LocToolArguments, parts: true, fields: map[string]*node{
		"id": skipNode, "type": skipNode, "index": skipNode,
		"function": fn, "custom": fn,
	}}
}

// toolNode is a tool or legacy function definition: all of it is text the
// model reads, but for its type.
func toolNode() *node {
	def := freeNode(LocToolDefinition)
	fn := &node{loc: LocToolDefinition, other: LocToolDefinition, fields: map[string]*node{
		"name": {loc: LocToolDefinition}, "description": {loc: LocToolDefinition}, "parameters": def, "format": def, "strict": skipNode,
	}}
	return &node{loc: LocToolDefinition, other: LocToolDefinition, fields: map[string]*node{
		"type": skipNode, "function": fn, "custom": fn,
		"name": {loc: LocToolDefinition}, "description": {loc: LocToolDefinition}, "parameters": def,
	}}
}

// messageNode is a chat message, asked or answered; nested is callNode's.
func messageNode(nested bool) *node {
	content := contentNode(LocContent)
	return &node{loc: LocOther, other: LocOther, fields: map[string]*node{
		"role": skipNode, "tool_call_id": skipNode,
		"content":           content,
		"name":              {loc: LocName},
		"refusal":           {loc: LocRefusal},
		"reasoning_content": {loc: LocReasoning},
		"reasoning":         {loc: LocReasoning, other: LocReasoning},
		"tool_calls":        callNode(nested, false),
		"function_call":     callNode(nested, true),
		"audio":             {loc: LocTranscript, other: LocTranscript, fields: map[string]*node{"id": skipNode, "expires_at": skipNode, "data": {loc: LocFile}, "transcript": {loc: LocTranscript}}},
		"annotations":       freeNode(LocAnnotation),
	}}
}

func indexed(n *node) *node {
	n.indexes = true
	return n
}

// chatSchema is a chat completion request. Numbers and booleans are never
// text; the API's string enums are listed to be skipped.
var chatSchema = &node{loc: LocOther, other: LocOther, fields: map[string]*node{
	"model":               skipNode,
	"stream":              skipNode,
	"messages":            indexed(messageNode(true)),
	"tools":               toolNode(),
	"functions":           toolNode(),
	"tool_choice":         skipNode,
	"function_call":       skipNode,
	"parallel_tool_calls": skipNode,
	"user":                {loc: LocUser},
	"safety_identifier":   {loc: LocUser},
	"metadata":            freeNode(LocMetadata),
	"stop":                {loc: LocStop},
	"prediction":          {loc: LocPrediction, other: LocPrediction, fields: map[string]*node{"type": skipNode, "content": contentNode(LocPrediction)}},
	"response_format":     {loc: LocResponseFormat, other: LocResponseFormat, fields: map[string]*node{"type": skipNode, "json_schema": freeNode(LocResponseFormat)}},
	"stream_options":      skipNode,
	"service_tier":        skipNode,
	"reasoning_effort":    skipNode,
	"verbosity":           skipNode,
	"modalities":          skipNode,
	"audio":               skipNode,
	"logit_bias":          skipNode,
	"prompt_cache_key":    skipNode,
	"store":               skipNode,
}}

// replySchema is a chat completion reply (nested true) or one chunk of a
// stream (nested false). A choice's message, or a chunk's delta, is a
// message like any other.
func replySchema(nested bool) *node {
	msg := messageNode(nested)
	choice := &node{loc: LocOther, other: LocOther, fields: map[string]*node{
		"index": skipNode, "finish_reason": skipNode, "logprobs": skipNode,
		"message": msg, "delta": msg,
	}}
	return &node{loc: LocOther, other: LocOther, fields: map[string]*node{
		"id": skipNode, "object": skipNode, "created": skipNode, "model": skipNode, "service_tier": skipNode,
		"system_fingerprint": skipNode, "usage": skipNode,
		"choices": {loc: LocOther, other: LocOther, elem: choice, indexes: true},
	}}
}

var (
	replyBodySchema  = replySchema(true)
	replyChunkSchema = replySchema(false)
)

// Text is one string of a request or a reply that the guardrails scan.
type Text struct {
	Loc Location
	// Message is the index in messages (or the position in a reply's
	// choices) of the message the text belongs to, or NotMessage.
	Message int
	// Part is the index of the tool call the text belongs to, or -1.
	Part int
}

// collected is every text of a document, decoded, with where it sits.
type collected struct {
	texts []string
	meta  []Text
	refs  []textRef
	// nested are the JSON texts (tool arguments) whose own strings were
	// collected: their spans in the body, and each one's decoded bytes.
	nested []nestedDoc

	arena   textArena
	hint    int
	dropped func(keyStart int) bool // see collect
}

// textRef is where a text sits: a span of the body, or of a nested document
// (parent >= 0).
type textRef struct {
	span   textSpan
	parent int
	number bool // a number in free text: written back as a string
}

// nestedDoc is a JSON text held in a string of the body.
type nestedDoc struct {
	span   textSpan // the string holding it, in the body
	src    []byte   // the decoded JSON text
	parent int      // the document holding it, -1 for the body
}

// minNumberDigits is the shortest integer in free text that is collected as
// a text: card numbers, SSNs and phone numbers written as JSON numbers
// instead of strings are personal data all the same; shorter ones are counts
// and sizes.
const minNumberDigits = 6

// maxNested bounds the JSON texts inside strings that are opened: the
// strings of a nested text beyond it are scanned as one text instead.
const maxNested = 1024

// collect walks the valid JSON document body with schema and gathers its
// texts. dropped, when not nil, names the top-level members (by the offset of
// their key) that will not be sent, whose texts are therefore not collected.
func (c *collected) collect(body []byte, schema *node, dropped func(keyStart int) bool) {
	c.hint = min(len(body), arenaHint)
	c.dropped = dropped
	s := scanner{buf: body}
	c.walk(&s, schema, NotMessage, -1, -1)
}

// member walks the value of the member whose key is at [ks, ke) of an object
// at n.
func (c *collected) member(s *scanner, n *node, ks, ke int, kesc bool, msg, parent, part int) {
	child := n.child(s.buf[ks:ke], kesc)
	if child == nil {
		if n.free {
			// In free text, a key is text as much as its value.
			c.add(s.buf, ks, ke, kesc, n.other, msg, parent, part)
		}
		// A member this schema has no name for is read as free text:
		// an API's new field is scanned from the day it appears. Its
		// key is a name of the API's, not text a model reads.
		child = unknownNode(n.other)
		if n.numbers {
			child = freeNode(n.other)
		}
	}
	c.walk(s, child, msg, parent, part)
}

// walk reads the value at the scanner's position as n describes it. parent
// is the nested document the scanner reads, -1 for the body.
func (c *collected) walk(s *scanner, n *node, msg, parent, part int) {
	switch s.peek() {
	case '"':
		start, end, esc := s.str()
		if s.bad || n.skip {
			return
		}
		if n.json && len(c.nested) < maxNested {
			if c.nestedJSON(s.buf, start, end, esc, n, msg, parent, part) {
				return
			}
		}
		c.add(s.buf, start, end, esc, n.loc, msg, parent, part)
	case '{':
		if n.skip {
			s.skip()
			return
		}
		s.open()
		top := parent < 0 && s.depth == 1
		for i := 0; s.more(i == 0, '}'); i++ {
			ks, ke, kesc := s.key()
			if s.bad {
				return
			}
			if top && c.dropped != nil && c.dropped(ks) {
				s.skip()
				continue
			}
			c.member(s, n, ks, ke, kesc, msg, parent, part)
		}
	case '[':
		if n.skip {
			s.skip()
			return
		}
		elem := n.elem
		if elem == nil {
			elem = n
		}
		s.open()
		for i := 0; s.more(i == 0, ']'); i++ {
			m, p := msg, part
			if n.indexes {
				m = i
			}
			if n.parts {
				p = indexMember(s, i)
			}
			c.walk(s, elem, m, parent, p)
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		start := s.pos
		s.number()
		if s.bad || n.skip || !n.numbers {
			return
		}
		if raw := s.buf[start:s.pos]; integerDigits(raw) >= minNumberDigits {
			c.texts = append(c.texts, string(raw))
			c.meta = append(c.meta, Text{Loc: n.loc, Message: msg, Part: part})
			c.refs = append(c.refs, textRef{span: textSpan{start: start, end: s.pos}, parent: parent, number: true})
		}
	default:
		s.skip()
	}
}

// child is the node of member key of an object at n, or nil when the member
// is free text.
func (n *node) child(raw []byte, esc bool) *node {
	if n.free || n.fields == nil {
		return nil
	}
	if esc {
		return n.fields[decodeString(raw, esc)]
	}
	// Converted in the index expression, the key is not allocated.
	return n.fields[string(raw[1:len(raw)-1])]
}

// indexMember is the integer "index" member of the object at the scanner's
// position, read ahead without moving the scanner, or pos when it has none.
func indexMember(s *scanner, pos int) int {
	if s.peek() != '{' {
		return pos
	}
	ahead := *s
	ahead.open()
	for i := 0; ahead.more(i == 0, '}'); i++ {
		ks, ke, kesc := ahead.key()
		if ahead.bad {
			break
		}
		if decodesTo(ahead.buf[ks:ke], kesc, "index") {
			vs := ahead.pos
			ahead.skip()
			if n, ok := parseInt(ahead.buf[vs:ahead.pos]); ok && n >= 0 && n < 1<<16 {
				return int(n)
			}
			return pos
		}
		ahead.skip()
	}
	return pos
}

func integerDigits(raw []byte) int {
	n := 0
	for _, c := range raw {
		switch {
		case '0' <= c && c <= '9':
			n++
		case c == '-':
		default:
			return 0 // a fraction or an exponent: a measurement, not an identifier
		}
	}
	return n
}

func (c *collected) add(buf []byte, start, end int, esc bool, loc Location, msg, parent, part int) {
	if end-start <= len(`""`) {
		return // nothing to scan, nothing to rewrite
	}
	if c.texts == nil {
		c.texts, c.meta, c.refs = make([]string, 0, 8), make([]Text, 0, 8), make([]textRef, 0, 8)
	}
	c.texts = append(c.texts, c.arena.decode(buf[start:end], esc, c.hint))
	c.meta = append(c.meta, Text{Loc: loc, Message: msg, Part: part})
	c.refs = append(c.refs, textRef{span: textSpan{start: start, end: end}, parent: parent})
}

// nestedJSON collects the strings of the JSON text held in the string at
// [start, end) one by one, as free text of n's kind, so that redaction puts
// placeholders inside them and the JSON stays valid. It reports false when
// the string holds no JSON object or array: the caller then takes it as one
// text.
func (c *collected) nestedJSON(buf []byte, start, end int, esc bool, n *node, msg, parent, part int) bool {
	src := []byte(decodeString(buf[start:end], esc))
	inner := scanner{buf: src}
	if b := inner.peek(); b != '{' && b != '[' {
		return false
	}
	inner.skip()
	inner.end()
	if inner.bad {
		return false
	}
	idx := len(c.nested)
	c.nested = append(c.nested, nestedDoc{span: textSpan{start: start, end: end}, src: src, parent: parent})
	s := scanner{buf: src}
	c.walk(&s, freeNode(n.loc), msg, idx, part)
	return true
}

// rewrite is body with every text whose value in texts differs from the
// collected one put in its place, nested documents re-encoded around theirs.
// Numbers that changed become strings.
func (c *collected) rewrite(body []byte, texts []string) ([]byte, error) {
	if len(texts) != len(c.texts) {
		return nil, fmt.Errorf("api: %d texts for %d collected", len(texts), len(c.texts))
	}
	// Each nested document's new text, innermost first: a nested document
	// is always collected after its parent, so walking backwards finishes
	// children before their parents use them.
	nestedOut := make([][]byte, len(c.nested))
	for d := len(c.nested) - 1; d >= 0; d-- {
		spans, olds, news := c.changes(d, texts, nestedOut)
		if spans != nil {
			nestedOut[d] = splice(c.nested[d].src, spans, olds, news)
		}
	}
	spans, olds, news := c.changes(-1, texts, nestedOut)
	if spans == nil {
		return body, nil
	}
	return splice(body, spans, olds, news), nil
}

// changes lists the changed texts and nested documents directly inside
// document d (-1: the body), in order.
func (c *collected) changes(d int, texts []string, nestedOut [][]byte) (spans []textSpan, olds, news []string) {
	type change struct {
		span     textSpan
		old, new string
	}
	var ch []change
	for i, r := range c.refs {
		if r.parent == d && texts[i] != c.texts[i] {
			ch = append(ch, change{r.span, c.texts[i], texts[i]})
		}
	}
	for k, nd := range c.nested {
		if nd.parent == d && nestedOut[k] != nil {
			ch = append(ch, change{nd.span, "", string(nestedOut[k])})
		}
	}
	if len(ch) == 0 {
		return nil, nil, nil
	}
	// Texts and nested documents each come in order; merged, they still must.
	slices.SortFunc(ch, func(a, b change) int { return a.span.start - b.span.start })
	for _, x := range ch {
		spans, olds, news = append(spans, x.span), append(olds, x.old), append(news, x.new)
	}
	return spans, olds, news
}
