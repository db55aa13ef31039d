package api

import (
	"errors"
	"fmt"
)

// ReplyContent is the content of each choice of a chat completion reply
// (choices[i].message.content) or of one stream chunk
// (choices[i].delta.content), and where it sits in the JSON, so that Sluice
// can restore or mask the texts and write them back while every other byte
// of the upstream's reply (tool calls, logprobs, ids) stays as it came.
//
// A ReplyContent can be reused for the chunks of a stream; each parse
// replaces what the previous one found. Texts stay valid after a reuse, but
// the body passed to a parse must not change until Rewrite has been called.
type ReplyContent struct {
	// Choices are the choices in the order of the JSON; their indexes
	// interleave in a stream with n > 1.
	Choices []ChoiceContent

	body  []byte
	spans []contentSpan
	inner string // "message" or "delta"
	all   collected
}

// ChoiceContent is one choice's text.
type ChoiceContent struct {
	// Index is the choice's index member, or its position in choices when it
	// has none.
	Index int
	// Text is the content, decoded; "" when it is null or absent (a chunk
	// that carries only a role, tool calls or a finish reason).
	Text string
	// Finished reports a finish_reason: in a stream, the choice's last chunk,
	// where text held back for that choice must be sent.
	Finished bool
}

// contentSpan is where a choice's content value sits: [start, end) for a
// string or null, or, for a message or delta without a content member, the
// position of its closing brace, where one is inserted (first: it would be
// the object's only member). A choice without a message or delta object has
// nowhere to write (!writable).
type contentSpan struct {
	start, end int
	insert     bool
	first      bool
	writable   bool
}

// ErrMalformedReply is returned, wrapped, for a reply or chunk whose choices
// Sluice cannot read: not JSON, choices not an array of objects, a content
// that is neither a string nor null, or a member it reads named twice or in
// another case (a client could read a copy Sluice did not check).
var ErrMalformedReply = errors.New("api: malformed chat completion reply")

// Texts are every text of the reply the guardrails read, not only content:
// refusals, reasoning, tool calls and their arguments, transcripts,
// annotations, and members Sluice has no name for (collect.go).
// info[i].Message is the position in Choices of the choice texts[i] belongs
// to, or NotMessage. In a reply, a tool call's JSON arguments are collected
// string by string; in a stream chunk, as the fragment the chunk carries.
func (c *ReplyContent) Texts() (texts []string, info []Text) {
	return c.all.texts, c.all.meta
}

// RewriteTexts is the body with each text of Texts replaced by texts[i];
// every other byte stays as it came.
func (c *ReplyContent) RewriteTexts(texts []string) ([]byte, error) {
	return c.all.rewrite(c.body, texts)
}

// ParseReply reads a non-streamed chat completion reply body.
func (c *ReplyContent) ParseReply(body []byte) error {
	return c.parse(body, "message")
}

// ParseChunk reads the data of one chat.completion.chunk stream event (the
// JSON after "data: "). The final chunk of a stream with usage has no
// choices, which is not an error.
func (c *ReplyContent) ParseChunk(data []byte) error {
	return c.parse(data, "delta")
}

// Rewrite is the body with each choice's content replaced by texts[i]
// (texts parallel to Choices). A choice whose text is unchanged keeps its
// bytes; a null or absent content given a text becomes a string member.
func (c *ReplyContent) Rewrite(texts []string) ([]byte, error) {
	if len(texts) != len(c.Choices) {
		return nil, fmt.Errorf("api: %d texts for %d choices", len(texts), len(c.Choices))
	}
	size := len(c.body)
	for i, t := range texts {
		if t != c.Choices[i].Text {
			size += len(t) + len(t)/8 + len(`,"content":""`)
		}
	}
	out := make([]byte, 0, size)
	at := 0
	for i, sp := range c.spans {
		t := texts[i]
		if t == c.Choices[i].Text {
			continue
		}
		if !sp.writable {
			return nil, fmt.Errorf("api: choice %d has no %s object to write content into", c.Choices[i].Index, c.inner)
		}
		out = append(out, c.body[at:sp.start]...)
		if sp.insert {
			if !sp.first {
				out = append(out, ',')
			}
			out = append(out, `"content":`...)
		}
		out = appendString(out, t)
		at = sp.end
	}
	return append(out, c.body[at:]...), nil
}

func (c *ReplyContent) parse(body []byte, inner string) error {
	*c = ReplyContent{Choices: c.Choices[:0], spans: c.spans[:0], body: body, inner: inner}
	r := replyScan{c: c, s: scanner{buf: body}}
	s := &r.s
	if s.peek() != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformedReply)
	}
	s.open()
	seen := false
	for i := 0; s.more(i == 0, '}'); i++ {
		start, end, esc := s.key()
		if s.bad {
			break
		}
		if r.named(body[start:end], esc, "choices", &seen) {
			r.choices()
			continue
		}
		s.skip()
	}
	s.end()
	switch {
	case r.err != nil:
		return r.err
	case s.bad:
		return fmt.Errorf("%w: not valid JSON", ErrMalformedReply)
	}
	c.all = collected{}
	if inner == "message" {
		c.all.collect(body, replyBodySchema, nil)
	} else {
		c.all.collect(body, replyChunkSchema, nil)
	}
	return nil
}

// replyScan is one pass over a reply. Its first problem is kept in err; the
// scanner is then failed so that every loop ends.
type replyScan struct {
	c     *ReplyContent
	s     scanner
	arena textArena
	err   error
}

func (r *replyScan) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformedReply}, args...)...)
	}
	r.s.fail()
}

// named reports whether the key raw names the member name, and fails the
// scan when it does so a second time or in another case: encoding/json
// would read such a key as the member, so it must not pass unread.
func (r *replyScan) named(raw []byte, esc bool, name string, seen *bool) bool {
	if !keyFolds(raw, esc, name) {
		return false
	}
	if *seen || !keyIs(raw, esc, name) {
		r.fail("%s is given more than once", name)
		return false
	}
	*seen = true
	return true
}

func (r *replyScan) choices() {
	s := &r.s
	switch s.peek() {
	case 'n':
		s.skip()
		return
	case '[':
	default:
		r.fail("choices is not an array")
		return
	}
	s.open()
	for i := 0; s.more(i == 0, ']'); i++ {
		if s.peek() != '{' {
			r.fail("choices[%d] is not an object", i)
			return
		}
		r.choice(i)
	}
}

func (r *replyScan) choice(pos int) {
	s, buf := &r.s, r.s.buf
	ch := ChoiceContent{Index: pos}
	var sp contentSpan
	var seenIndex, seenInner, seenFinish bool
	s.open()
	for j := 0; s.more(j == 0, '}'); j++ {
		start, end, esc := s.key()
		if s.bad {
			return
		}
		k := buf[start:end]
		switch {
		case r.named(k, esc, "index", &seenIndex):
			if s.peek() == 'n' {
				s.skip()
				break
			}
			vs := s.pos
			s.skip()
			if s.bad {
				return
			}
			// parseInt refuses anything but an integer, strings and
			// containers included.
			n, ok := parseInt(buf[vs:s.pos])
			if !ok || n < 0 || n >= MaxChoices {
				r.fail("choices[%d].index is not an integer from 0 to %d", pos, MaxChoices-1)
				return
			}
			ch.Index = int(n)
		case r.named(k, esc, r.c.inner, &seenInner):
			sp = r.content(pos, &ch)
		case r.named(k, esc, "finish_reason", &seenFinish):
			ch.Finished = s.peek() != 'n'
			s.skip()
		default:
			s.skip()
		}
	}
	if r.err == nil && !s.bad {
		r.c.Choices = append(r.c.Choices, ch)
		r.c.spans = append(r.c.spans, sp)
	}
}

// content reads a choice's message or delta and returns where its content
// sits, setting ch.Text.
func (r *replyScan) content(pos int, ch *ChoiceContent) contentSpan {
	s, buf := &r.s, r.s.buf
	switch s.peek() {
	case 'n':
		s.skip()
		return contentSpan{}
	case '{':
	default:
		r.fail("choices[%d].%s is not an object", pos, r.c.inner)
		return contentSpan{}
	}
	var sp contentSpan
	seen := false
	s.open()
	members := 0
	for ; ; members++ {
		if s.peek() == '}' {
			if !seen {
				sp = contentSpan{start: s.pos, end: s.pos, insert: true, first: members == 0, writable: true}
			}
			s.pos++
			s.depth--
			return sp
		}
		if !s.more(members == 0, '}') {
			return contentSpan{} // the scanner failed
		}
		start, end, esc := s.key()
		if s.bad {
			return contentSpan{}
		}
		if !r.named(buf[start:end], esc, "content", &seen) {
			s.skip()
			continue
		}
		switch s.peek() {
		case '"':
			vs, ve, vesc := s.str()
			if s.bad {
				return contentSpan{}
			}
			ch.Text = r.arena.decode(buf[vs:ve], vesc, 0)
			sp = contentSpan{start: vs, end: ve, writable: true}
		case 'n':
			vs := s.pos
			s.skip()
			sp = contentSpan{start: vs, end: s.pos, writable: true}
		default:
			r.fail("choices[%d].%s.content is neither a string nor null", pos, r.c.inner)
			return contentSpan{}
		}
	}
}
